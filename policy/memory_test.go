package policy

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestCachedAnswersTakeNoSlot: a review whose answers are all in memory is
// answered while another namespace's slow lookups hold every slot. It sends
// no request, so it waited for a slot it did not need, and answered "cannot
// verify" at its deadline.
func TestCachedAnswersTakeNoSlot(t *testing.T) {
	fast, slow := registrytest.New(t), registrytest.New(t)
	fast.Image("team/api", "v1", "linux", "amd64")
	release := make(chan struct{})
	defer close(release)
	slow.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/flood/") {
			<-release
		}
		return false
	})
	c := newLimitTestChecker(t, WithLookups(newLookups(2, 2, 2)))
	cached := podWith([]string{fast.Host + "/team/api:v1", fast.Host + "/team/api:v1"})
	want := c.Check(context.Background(), cached)
	if want.Decision() == DecisionDeny || slices.ContainsFunc(want.Findings, func(f Finding) bool { return f.Rule == RuleUnreachable }) {
		t.Fatalf("warm-up: %+v", want.Findings)
	}
	flood := podWith([]string{slow.Host + "/flood/a:v1", slow.Host + "/flood/b:v1"})
	flood.Workload.Namespace = "flood"
	go c.Check(context.Background(), flood)
	until(t, "the flood holds both slots", func() bool { return c.LookupsInFlight() == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	before := fast.Count(http.MethodHead, "/team/api/manifests/v1")
	v := c.Check(ctx, cached)
	if d := cmp.Diff(want.Findings, v.Findings); d != "" {
		t.Errorf("a review of cached images while another namespace holds every slot (-alone +during the flood):\n%s", d)
	}
	if n := fast.Count(http.MethodHead, "/team/api/manifests/v1") - before; n != 0 {
		t.Errorf("%d HEADs for a cached image, want 0", n)
	}
}

// TestCacheEventsCountedOnce: a container whose tag is cached but whose
// later answers are not is checked twice (memory first, then through the
// slots); the cache's hit was counted on both passes, so
// pullsafe_cache_events_total reported more hits than lookups made.
func TestCacheEventsCountedOnce(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/api", "v1", "linux", "amd64")
	prom := prometheus.NewRegistry()
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(30*time.Second), registry.WithMetrics(prom))
	if err != nil {
		t.Fatal(err)
	}
	image := reg.Host + "/team/api:v1"
	if _, err := res.Resolve(context.Background(), image, nil); err != nil {
		t.Fatal(err)
	}
	events := func() map[string]float64 {
		out := map[string]float64{}
		mfs, err := prom.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "pullsafe_cache_events_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		return out
	}
	before := events()
	in := podWith([]string{image})
	in.Nodes = []Node{{Name: "n", Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}}
	NewChecker(DefaultConfig(), res).Check(context.Background(), in)
	after := events()
	if hits := after["hit"] - before["hit"]; hits != 1 {
		t.Errorf("%v cache hits for one cached tag looked up once, want 1 (events before %v, after %v)", hits, before, after)
	}
}
