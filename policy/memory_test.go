package policy

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
