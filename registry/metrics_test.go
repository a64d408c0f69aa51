package registry

import (
	"context"
	"fmt"
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

// The bound on registry label values holds across reloads (issue 20: 51
// values became 101 after one reload): resolvers recording into the same
// series share the hosts that count against it.
func TestRegistryLabelBoundSurvivesReloads(t *testing.T) {
	h := registrytest.NewHostile(t, registrytest.Plain, "")
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, WithMetrics(reg), withAnyHostAlias(h.Host))
	for reload := range 3 {
		if reload > 0 {
			r = newTestResolver(t, WithMetricsOf(r), withAnyHostAlias(h.Host))
		}
		for i := range maxHostLabels + 10 {
			_, _ = r.Resolve(context.Background(), fmt.Sprintf("r%d-h%d.example.com:5000/x:v1", reload, i), nil)
		}
	}
	values := registryLabels(t, reg)
	if limit := maxHostLabels + 1; len(values) > limit { // the recent hosts and "other"
		t.Errorf("%d registry label values after 3 configurations, want at most %d", len(values), limit)
	}
}

// registryLabels is the set of values the "registry" label takes in reg.
func registryLabels(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	values := map[string]bool{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "registry" {
					values[l.GetValue()] = true
				}
			}
		}
	}
	return values
}
