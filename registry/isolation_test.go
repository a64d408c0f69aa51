package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// faultRepo makes requests for repo's manifests fail with fail (it answers
// and returns true), and leaves every other request to the registry.
func faultRepo(tr *registrytest.Registry, repo string, fail func(http.ResponseWriter, *http.Request)) {
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/manifests/") {
			fail(w, r)
			return true
		}
		return false
	})
}

// An answer about one repository changes verdicts for that repository only:
// another team's missing tag on the same host is still denied and its image
// still resolves, whatever repository A answers, however often it is asked.
func TestOneRepositoryFailureStaysInItsRepository(t *testing.T) {
	tests := []struct {
		name string
		fail func(http.ResponseWriter, *http.Request)
		want Reason
	}{
		{"5xx", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upstream of this proxy project is down", http.StatusBadGateway)
		}, Unreachable},
		{"past the lookup timeout", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, Unreachable},
		{"429 Retry-After 900", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "900")
			w.WriteHeader(http.StatusTooManyRequests)
		}, RateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := registrytest.New(t)
			tr.Image("team-b/api", "v1", "linux", "amd64")
			tr.Image("team-b/api", "v2", "linux", "amd64")
			clock := newTestClock()
			r := newTestResolver(t, WithClock(clock.Now), WithLookupTimeout(time.Second), WithOutageWindow(30*time.Second))
			ctx := context.Background()
			if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v1", nil); err != nil {
				t.Fatal(err)
			}
			faultRepo(tr, "team-a/app", tt.fail)
			var first int
			for i := range 3 { // the first asks, the next are answered from A's window
				_, err := r.Resolve(ctx, fmt.Sprintf("%s/team-a/app:v%d", tr.Host, i), nil)
				if e := mustFail(t, err); e.Reason != tt.want {
					t.Fatalf("repository A, lookup %d: %+v, want %s", i, e, tt.want)
				}
				if i == 0 {
					first = tr.Count("", "/team-a/app/manifests/")
				}
			}
			if n := tr.Count("", "/team-a/app/manifests/") - first; n != 0 {
				t.Errorf("repository A asked %d more times after its failure, want 0 (its own window answers)", n)
			}
			if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v2", nil); err != nil {
				t.Errorf("repository B's image: %v, want it resolved", err)
			}
			_, err := r.Resolve(ctx, tr.Host+"/team-b/api:missing", nil)
			if e := mustFail(t, err); e.Reason != NotFound {
				t.Errorf("repository B's missing tag: %+v, want not-found", e)
			}
		})
	}
}

// Many broken repositories on a registry whose /v2/ answers do not make it
// "down": the ping is asked and answers, so no host window opens.
func TestBrokenRepositoriesDoNotOpenTheHostWindow(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team-b/api", "v1", "linux", "amd64")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/junk") {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	clock := newTestClock()
	r := newTestResolver(t, WithClock(clock.Now))
	ctx := context.Background()
	for i := range 3 * hostFailThreshold {
		_, err := r.Resolve(ctx, fmt.Sprintf("%s/junk%d/app:v1", tr.Host, i), nil)
		if e := mustFail(t, err); e.Reason != Unreachable || errors.Is(err, errRemembered) {
			t.Fatalf("junk repository %d: %+v, want a 503 from the registry", i, e)
		}
	}
	if n := tr.CountPath(http.MethodGet, "/v2/"); n < 2 {
		t.Errorf("%d pings, want the first and at least one asking whether the host is down", n)
	}
	if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v1", nil); err != nil {
		t.Errorf("healthy repository: %v", err)
	}
	_, err := r.Resolve(ctx, tr.Host+"/team-b/api:missing", nil)
	if e := mustFail(t, err); e.Reason != NotFound {
		t.Errorf("missing tag: %+v, want not-found", e)
	}
}

// Host-level evidence still opens the host window: a /v2/ that fails too,
// asked once hostFailThreshold repositories failed; a connection refused.
func TestHostEvidenceOpensTheHostWindow(t *testing.T) {
	t.Run("ping fails too", func(t *testing.T) {
		tr := registrytest.New(t)
		tr.Image("team-b/api", "v1", "linux", "amd64")
		r := newTestResolver(t, WithClock(newTestClock().Now))
		ctx := context.Background()
		if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v1", nil); err != nil {
			t.Fatal(err) // the ping is cached: later lookups go straight to the manifests
		}
		tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
			return true
		})
		for i := range hostFailThreshold {
			_, err := r.Resolve(ctx, fmt.Sprintf("%s/team%d/app:v1", tr.Host, i), nil)
			if e := mustFail(t, err); e.Status != http.StatusServiceUnavailable || errors.Is(err, errRemembered) {
				t.Fatalf("repository %d: %+v, want the registry's 503", i, e)
			}
		}
		tr.Reset()
		_, err := r.Resolve(ctx, tr.Host+"/team-b/api:v2", nil)
		if !errors.Is(err, errRemembered) || tr.Count("", "") != 0 {
			t.Errorf("after the ping failed too: %v after %d requests, want the host's window", err, tr.Count("", ""))
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		addr := refusedAddr(t)
		r := newTestResolver(t, WithClock(newTestClock().Now))
		_, err := r.Resolve(context.Background(), addr+"/team-a/app:v1", nil)
		if e := mustFail(t, err); e.Flavour != FlavourRefused || errors.Is(err, errRemembered) {
			t.Fatalf("first lookup: %+v, want refused", e)
		}
		_, err = r.Resolve(context.Background(), addr+"/team-b/api:v1", nil)
		if !errors.Is(err, errRemembered) {
			t.Errorf("another repository on a host that refuses connections: %v, want the host's window", err)
		}
	})
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// The probe after a host window cannot be kept by a repository that keeps
// failing: its failure says the host answers, so the host window closes and
// another team's missing tag is denied again.
func TestBrokenRepositoryCannotHoldTheHostWindow(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team-b/api", "v1", "linux", "amd64")
	var mu sync.Mutex
	pingDown := true
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		down := pingDown && r.URL.Path == "/v2/"
		mu.Unlock()
		if down || strings.HasPrefix(r.URL.Path, "/v2/team-a/") {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	clock := newTestClock()
	r := newTestResolver(t, WithClock(clock.Now), WithOutageWindow(10*time.Second))
	ctx := context.Background()
	// A ping failing by itself is no verdict (TestPingFailureIsNotTheVerdict):
	// the window opens when repositories fail and the ping confirms.
	for i := range hostFailThreshold {
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/team-a/app%d:v0", tr.Host, i), nil); ReasonOf(err) != Unreachable {
			t.Fatalf("during the outage: %v", err)
		}
	}
	if _, err := r.Resolve(ctx, tr.Host+"/team-b/api:v1", nil); !errors.Is(err, errRemembered) {
		t.Fatalf("the ping failed: %v, want the host window", err)
	}
	mu.Lock()
	pingDown = false
	mu.Unlock()
	for i := range 3 {
		clock.Add(11 * time.Second)
		// The attacker asks first, each time the window ends.
		_, err := r.Resolve(ctx, fmt.Sprintf("%s/team-a/app:v%d", tr.Host, i+1), nil)
		if ReasonOf(err) != Unreachable {
			t.Fatalf("round %d, broken repository: %v", i, err)
		}
		_, err = r.Resolve(ctx, fmt.Sprintf("%s/team-b/api:missing%d", tr.Host, i), nil)
		if e := mustFail(t, err); e.Reason != NotFound {
			t.Errorf("round %d, another team's missing tag: %+v, want not-found", i, e)
		}
	}
}

// A flood of hosts named once, each refusing connections, does not push out
// the window of a real outage that two repositories met.
func TestJunkHostsDoNotEvictARealOutage(t *testing.T) {
	addr := refusedAddr(t)
	clock := newTestClock()
	noProxy := func(*http.Request) (*url.URL, error) { return nil, nil }
	r := newTestResolver(t, WithClock(clock.Now), withHostAlias("*", addr), WithProxy(noProxy))
	ctx := context.Background()
	if _, err := r.Resolve(ctx, "registry.corp.example/team-a/app:v1", nil); ReasonOf(err) != Unreachable {
		t.Fatalf("real outage: %v", err)
	}
	if _, err := r.Resolve(ctx, "registry.corp.example/team-b/api:v1", nil); !errors.Is(err, errRemembered) {
		t.Fatalf("real outage, second repository: %v, want the host window", err)
	}
	clock.Add(time.Second) // the real window now ends before any junk one
	const junk = 4200      // past every bound, today's and yesterday's (4096)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < junk; i += 4 {
				_, _ = r.Resolve(ctx, fmt.Sprintf("junk%d.example/x/y:z", i), nil)
			}
		}()
	}
	wg.Wait()
	if _, err := r.Resolve(ctx, "registry.corp.example/team-c/web:v1", nil); !errors.Is(err, errRemembered) {
		t.Errorf("after %d junk hosts: %v, want the real outage still remembered", junk, err)
	}
}
