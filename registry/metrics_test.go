package registry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

func TestMetrics(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, WithMetrics(reg))
	for range 3 {
		if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(r.metrics.requests.WithLabelValues(tr.Host, "HEAD", "200")); got != 1 {
		t.Errorf("registry HEAD 200 requests = %v, want 1", got)
	}
	if miss, hit := testutil.ToFloat64(r.metrics.cache.WithLabelValues("miss")), testutil.ToFloat64(r.metrics.cache.WithLabelValues("hit")); miss != 1 || hit != 2 {
		t.Errorf("cache miss %v hit %v, want 1 and 2", miss, hit)
	}
	if n, err := testutil.GatherAndCount(reg, "pullsafe_registry_request_duration_seconds"); err != nil || n == 0 {
		t.Errorf("latency histogram: %d series, %v", n, err)
	}
	// Registering twice on one registry is a start-up error, not a panic.
	if _, err := NewResolver(WithMetrics(reg)); err == nil {
		t.Error("duplicate metrics registration accepted")
	}
}

// A resolver rebuilt after a config reload records into its predecessor's
// series: no second registration, no reset, no double count.
func TestMetricsOfPredecessor(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	reg := prometheus.NewRegistry()
	first := newTestResolver(t, WithMetrics(reg))
	second := newTestResolver(t, WithMetricsOf(first))
	for _, r := range []*Resolver{first, second} {
		if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(first.metrics.requests.WithLabelValues(tr.Host, "HEAD", "200")); got != 2 {
		t.Errorf("registry HEAD 200 requests = %v, want 2 (one per resolver, one series)", got)
	}
	if r := newTestResolver(t, WithMetricsOf(nil)); r.metrics != nil {
		t.Error("WithMetricsOf(nil) records")
	}
}
