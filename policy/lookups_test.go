package policy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// slowRegistry answers every manifest HEAD of repo "many/app" after delay,
// with one digest (tag "flaky": 503), and records the most requests it
// ever had in flight at once.
type slowRegistry struct {
	*registrytest.Registry
	inFlight, maxInFlight atomic.Int64
}

func newSlowRegistry(t *testing.T, delay time.Duration) *slowRegistry {
	s := &slowRegistry{Registry: registrytest.New(t)}
	const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	s.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxInFlight.Load()
			if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(delay)
		if !strings.HasPrefix(r.URL.Path, "/v2/many/app/manifests/") {
			return false
		}
		if strings.HasSuffix(r.URL.Path, "/flaky") || r.Method == http.MethodGet {
			// No manifest behind the digest: its GET (platforms, the pull
			// path) cannot verify, where empty bytes would not match it.
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		w.Header().Set("Docker-Content-Digest", digest)
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		return true
	})
	return s
}

// podWith is a Pod whose containers run images, in order.
func podWith(images []string) Input {
	w := &Workload{Kind: "Pod", Name: "big", Namespace: "shop"}
	for i, im := range images {
		w.Containers = append(w.Containers, Container{Name: fmt.Sprintf("c%d", i), Image: im,
			List: "containers", Path: fmt.Sprintf("/spec/containers/%d/image", i)})
	}
	return Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Credentials: Credentials{Keychain: registry.NewKeychain(nil)}}
}

func newLimitTestChecker(t *testing.T, opts ...CheckerOption) *Checker {
	t.Helper()
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return NewChecker(DefaultConfig(), res, opts...)
}

func TestThousandsOfContainersAreBoundedAndShared(t *testing.T) {
	reg := newSlowRegistry(t, 5*time.Millisecond)
	var images []string
	for i := range 3000 {
		// 300 distinct tags, each ten times; "flaky" (never cached) 100 times.
		images = append(images, fmt.Sprintf("%s/many/app:v%d.0", reg.Host, i%300))
		if i%30 == 0 {
			images = append(images, reg.Host+"/many/app:flaky")
		}
	}
	c := newLimitTestChecker(t)
	v := c.Check(context.Background(), podWith(images))
	if v.Decision() == DecisionDeny {
		t.Errorf("denied:\n%s", v.DenialMessage())
	}
	if got := reg.maxInFlight.Load(); got > DefaultLookupsPerReview {
		t.Errorf("%d requests in flight at once at the registry, want at most %d", got, DefaultLookupsPerReview)
	}
	if got := reg.Count(http.MethodHead, "/many/app/manifests/flaky"); got != 1 {
		t.Errorf("%d HEADs for an image listed 100 times in one Pod, want 1", got)
	}
	if got := reg.Count(http.MethodHead, "/many/app/manifests/v7.0"); got != 1 {
		t.Errorf("%d HEADs for an image listed 10 times in one Pod, want 1", got)
	}
}

func TestLookupsAreBoundedAcrossReviews(t *testing.T) {
	reg := newSlowRegistry(t, 5*time.Millisecond)
	c := newLimitTestChecker(t, WithLookupLimits(16, 4))
	var wg sync.WaitGroup
	for r := range 4 {
		var images []string
		for i := range 100 {
			images = append(images, fmt.Sprintf("%s/many/app:r%d-%d", reg.Host, r, i))
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Check(context.Background(), podWith(images)) }()
	}
	wg.Wait()
	if got := reg.maxInFlight.Load(); got > 4 {
		t.Errorf("%d requests in flight at once across reviews, want at most 4", got)
	}
}

// TestWaitingForASlotObeysTheDeadline: containers the deadline leaves no
// time for are "cannot verify", never denied, and Check returns.
func TestWaitingForASlotObeysTheDeadline(t *testing.T) {
	reg := newSlowRegistry(t, 300*time.Millisecond)
	c := newLimitTestChecker(t, WithLookupLimits(2, 2))
	var images []string
	for i := range 40 {
		images = append(images, fmt.Sprintf("%s/many/app:d%d", reg.Host, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	v := c.Check(ctx, podWith(images))
	if v.Decision() == DecisionDeny {
		t.Fatalf("denied:\n%s", v.DenialMessage())
	}
	unverified := 0
	for _, f := range v.Findings {
		if f.Rule == RuleUnreachable && strings.Contains(f.Cause, "cannot verify") {
			unverified++
		}
	}
	if unverified < 30 {
		t.Errorf("%d of 40 containers answered \"cannot verify\", want most of them; findings: %+v", unverified, v.Findings)
	}
}
