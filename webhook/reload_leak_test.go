package webhook

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// A reload that reshapes the resolver drops the old one; its idle
// keep-alive connections (two goroutines and a socket each) must go with
// it rather than linger until the transport's idle timeout (90s): a
// config changed every few seconds would otherwise pile them up.
func TestReloadRebuildsLeakNoConnections(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	req := request(t, admissionv1.Create, pod("team-a", rb.open.Host+"/team/api:v1.4.1"), nil, "")
	if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	time.Sleep(100 * time.Millisecond)
	before := connGoroutines()
	const reloads = 100
	for i := range reloads {
		cfg := fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: warn\ncache: {size: %d}\nregistries:\n  mirrors: {docker.io: [%q]}\n  allowLoopback: true\n", 1000+i, rb.open.Host)
		rb.writeRaw(t, cfg)
		rb.reloader.Reload(ctx)
		if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("reload %d: denied: %v", i, resp.Result)
		}
	}
	rb.wantReloads(t, "success", reloads)
	var after int
	for range 50 { // connections closing take a moment
		if after = connGoroutines(); after-before < 10 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d reloads that reshape the resolver left %d connection goroutines behind (%d -> %d)", reloads, after-before, before, after)
}

// connGoroutines counts the goroutines serving HTTP client connections.
func connGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "net/http.(*persistConn).readLoop")
}

// settledGoroutines is runtime.NumGoroutine once it stops changing (two
// equal readings in a row), read a bounded number of times: goroutines
// that are ending take a moment, and the count, not the time, is asserted.
func settledGoroutines() int {
	last := -1
	for range 200 {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n == last {
			return n
		}
		last = n
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// TestHundredReloadsLeakNothingAndKeepWindows: each reload that rebuilds
// the resolver used to leave 5 goroutines behind (golang-lru's expirable
// caches; 100 reloads: 37 -> 537) and forgot the registries' 429 windows,
// so a registry that said "come back in 15 minutes" was asked again at
// once after every reload.
func TestHundredReloadsLeakNothingAndKeepWindows(t *testing.T) {
	rb := newReloadBed(t)
	limited := registrytest.New(t)
	limited.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Retry-After", "900")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	ctx := context.Background()
	ok := request(t, admissionv1.Create, pod("team-a", rb.open.Host+"/team/api:v1.4.1"), nil, "")
	quota := request(t, admissionv1.Create, pod("team-a", limited.Host+"/team/app:v1"), nil, "")
	for _, req := range []admission.Request{ok, quota} {
		if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
			t.Fatalf("denied: %v", resp.Result)
		}
	}
	manifestCalls := func() int {
		return limited.Count(http.MethodHead, "/manifests/") + limited.Count(http.MethodGet, "/manifests/")
	}
	if n := manifestCalls(); n != 1 {
		t.Fatalf("%d manifest requests to the rate-limited registry before the reloads, want 1", n)
	}
	before := settledGoroutines()
	const reloads = 100
	for i := range reloads {
		// A new cache size reshapes the resolver: each reload builds one.
		rb.writeRaw(t, fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: warn\ncache: {size: %d}\nregistries:\n  mirrors: {docker.io: [%q]}\n  allowLoopback: true\n", 1000+i, rb.open.Host))
		prev, _ := rb.live.Load()
		rb.reloader.Reload(ctx)
		if cur, _ := rb.live.Load(); cur.resolver == prev.resolver {
			t.Fatalf("reload %d kept the resolver; the test needs each to build one", i)
		}
		for _, req := range []admission.Request{ok, quota} {
			if resp := rb.validate.Handle(ctx, req); !resp.Allowed {
				t.Fatalf("reload %d: denied: %v", i, resp.Result)
			}
		}
	}
	rb.wantReloads(t, "success", reloads)
	if after := settledGoroutines(); after-before > 10 {
		t.Errorf("%d reloads that rebuild the resolver: %d -> %d goroutines", reloads, before, after)
	}
	if n := manifestCalls(); n != 1 {
		t.Errorf("%d manifest requests to a registry that answered 429 Retry-After: 900 across %d reloads, want 1 (its window kept)", n, reloads)
	}
}
