package registry

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestPingFlightIsNotTheFirstCallersDeadline: lookups of several
// repositories on one host share one /v2/ ping. A lookup that spent most of
// its time elsewhere (here at a mirror that is slow for its repository
// only) reaches the ping with little time left; a second tenant's lookup
// that joins that ping must get the ping's answer within its own deadline,
// not the first caller's timeout: that would turn its denial (a missing
// tag) into "cannot verify".
func TestPingFlightIsNotTheFirstCallersDeadline(t *testing.T) {
	const timeout = 4 * time.Second
	upstream := registrytest.New(t)
	upstream.Image("team/b", "v1", "linux", "amd64")
	mirror := registrytest.New(t)

	firstPing := make(chan struct{})   // closed when the first ping reaches upstream
	releasePing := make(chan struct{}) // closed by the test once A has given up
	var pings atomic.Int32
	upstream.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/" {
			return false
		}
		if pings.Add(1) == 1 {
			close(firstPing)
			<-releasePing
		}
		return false
	})
	bAtMirror := make(chan struct{}, 1)
	var slowed atomic.Bool
	mirror.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.Contains(r.URL.Path, "/team/a/manifests/"):
			// A spends half its lookup here; the mirror has not got it: on
			// to upstream (a 404, which no client retries).
			if !slowed.Swap(true) {
				time.Sleep(timeout / 2)
			}
			http.Error(w, "not here", http.StatusNotFound)
			return true
		case strings.Contains(r.URL.Path, "/team/b/manifests/"):
			select {
			case bAtMirror <- struct{}{}:
			default:
			}
		}
		return false // B: the mirror answers 404 at once
	})
	r := newTestResolver(t, WithLookupTimeout(timeout), WithOutageWindow(0),
		WithMirrors(map[string][]string{upstream.Host: {mirror.Host}}))

	aDone := make(chan error, 1)
	go func() {
		_, err := r.Resolve(context.Background(), upstream.Host+"/team/a:v1", nil)
		aDone <- err
	}()
	wait(t, firstPing, "A's ping")
	bDone := make(chan error, 1)
	go func() {
		_, err := r.Resolve(context.Background(), upstream.Host+"/team/b:v9", nil)
		bDone <- err
	}()
	wait(t, bAtMirror, "B at the mirror")
	// A's deadline ends while the ping it started is still held.
	if err := waitFor(t, aDone, "A's answer"); err == nil {
		t.Fatal("A resolved: the test proves nothing")
	}
	close(releasePing)
	e := mustFail(t, waitFor(t, bDone, "B's answer"))
	if e.Reason != NotFound {
		t.Errorf("B: %+v, want not-found: another lookup's deadline decided its verdict", e)
	}
	if n := pings.Load(); n != 1 {
		t.Errorf("%d pings, want 1 (B joined A's): the test proves nothing", n)
	}
}

// wait and waitFor bound a test's waits on other goroutines: a hang is a
// failure that names what never came, not a stuck test binary.
func wait[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	waitFor(t, c, what)
}

func waitFor[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s never came", what)
		panic("unreachable")
	}
}
