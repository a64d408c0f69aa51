package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_700_000_000, 0)} }

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// hangManifests makes tr hold manifest requests until the client gives up.
func hangManifests(tr *registrytest.Registry) {
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			<-r.Context().Done()
			return true
		}
		return false
	})
}

// failManifests makes tr answer every manifest request with status.
func failManifests(tr *registrytest.Registry, status int) {
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Retry-After", "30")
			http.Error(w, http.StatusText(status), status)
			return true
		}
		return false
	})
}

// A mirror is one of containerd's hosts: its 404 means "try the next host".
// The verdict is the registry's own; when it cannot be reached the answer is
// transient (fail open), never a denial naming the mirror.
func TestMirrorNotFoundDefersToTheRegistry(t *testing.T) {
	type want struct {
		Reason   Reason
		Flavour  string
		Registry string // "upstream" or "mirror"
	}
	tests := []struct {
		name     string
		upstream func(up *registrytest.Registry)
		want     want
	}{
		{"registry serves it", func(*registrytest.Registry) {}, want{}},
		{"registry 5xx", func(up *registrytest.Registry) { failManifests(up, http.StatusServiceUnavailable) },
			want{Unreachable, FlavourServerError, "upstream"}},
		{"registry 429", func(up *registrytest.Registry) { failManifests(up, http.StatusTooManyRequests) },
			want{RateLimited, "", "upstream"}},
		{"registry times out", hangManifests, want{Unreachable, FlavourTimeout, "upstream"}},
		{"registry 404 too", func(up *registrytest.Registry) { failManifests(up, http.StatusNotFound) },
			want{NotFound, FlavourTag, "upstream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, mirror := registrytest.New(t), registrytest.New(t)
			up.Image("team/api", "v1", "linux", "amd64") // the mirror has never cached it
			tt.upstream(up)
			r := newTestResolver(t, WithMirrors(map[string][]string{up.Host: {mirror.Host}}),
				WithLookupTimeout(time.Second))
			img, err := r.Resolve(context.Background(), up.Host+"/team/api:v1", nil)
			var got want
			if err != nil {
				e := mustFail(t, err)
				got = want{e.Reason, e.Flavour, map[string]string{up.Host: "upstream", mirror.Host: "mirror"}[e.Registry]}
			} else if img.Registry != up.Host {
				t.Errorf("answered by %s, want the registry %s", img.Registry, up.Host)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if n := mirror.Count(http.MethodHead, "/manifests/"); n != 1 {
				t.Errorf("mirror asked %d times, want 1 (mirrors first, as containerd)", n)
			}
		})
	}
}

// A mirror's 404 during a registry outage must not be remembered as a
// denial: once the registry is back, the image resolves.
func TestMirrorNotFoundIsNotCachedDuringRegistryOutage(t *testing.T) {
	up, mirror := registrytest.New(t), registrytest.New(t)
	up.Image("team/api", "v1", "linux", "amd64")
	failManifests(up, http.StatusBadGateway)
	clock := newTestClock()
	r := newTestResolver(t, WithMirrors(map[string][]string{up.Host: {mirror.Host}}), WithClock(clock.Now),
		WithOutageWindow(10*time.Second))
	_, err := r.Resolve(context.Background(), up.Host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable {
		t.Fatalf("during the outage: %+v, want unreachable", e)
	}
	up.SetFault(nil)
	clock.Add(11 * time.Second)
	if _, err := r.Resolve(context.Background(), up.Host+"/team/api:v1", nil); err != nil {
		t.Errorf("registry recovered, still refused: %v", err)
	}
}

// panicTransport panics on requests that match.
type panicTransport struct{ match func(*http.Request) bool }

func (p panicTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.match(req) {
		panic("boom in transport")
	}
	return http.DefaultTransport.RoundTrip(req)
}

// singleflight.DoChan re-panics in a goroutine of its own, which no recover
// reaches: a panic in a lookup must become the fail-open answer instead of
// killing the process (this test process would die).
func TestPanicInLookupFailsOpen(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	r := newTestResolver(t, WithTransport(panicTransport{func(*http.Request) bool { return true }}))
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourInternal || !strings.Contains(e.Message, "boom in transport") {
		t.Errorf("panicking lookup: %+v, want unreachable/internal naming the panic", e)
	}

	// Platform fetches too: the HEAD works, the GET of the manifest panics.
	r = newTestResolver(t, WithTransport(panicTransport{func(req *http.Request) bool {
		return req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/sha256:")
	}}))
	img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Platforms(context.Background(), img)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourInternal {
		t.Errorf("panicking platform fetch: %+v", e)
	}
}

// The mutating webhook pins repo:tag@digest; the validating webhook then
// looks that digest up. It was learned from the registry a moment ago: one
// HEAD for the whole rollout.
func TestDigestCacheIsSeededFromTheTagAnswer(t *testing.T) {
	tr := registrytest.New(t)
	d := tr.Image("private/app", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	img, err := r.Resolve(context.Background(), tr.Host+"/private/app:v1", kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{img.Pinned(true), img.Pinned(false), tr.Host + "/private/app@" + d.String()} {
		got, err := r.Resolve(context.Background(), ref, kc)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if got.Digest != d || got.Tag != "" {
			t.Errorf("%s: %+v", ref, got)
		}
	}
	if n := tr.Count(http.MethodHead, "/manifests/"); n != 1 {
		t.Errorf("tag then pinned digest: %d HEADs, want 1", n)
	}
	// The seeded answer is the credential's own: anonymous still asks.
	_, err = r.Resolve(context.Background(), img.Pinned(true), nil)
	if e := mustFail(t, err); e.Reason != Unauthorized {
		t.Errorf("pinned digest without the secret: %+v, want unauthorized", e)
	}
}

// A new repository on a registry already seen reuses the registry's ping:
// a token request (bearer) and the HEAD, no second GET /v2/.
func TestNewRepositoryReusesThePing(t *testing.T) {
	for _, auth := range []string{"", "basic", "bearer"} {
		t.Run("auth="+auth, func(t *testing.T) {
			tr := registrytest.New(t)
			tr.Image("team/a", "v1", "linux", "amd64")
			tr.Image("team/b", "v1", "linux", "amd64")
			tr.SetAuth(auth)
			r := newTestResolver(t)
			kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
			if _, err := r.Resolve(context.Background(), tr.Host+"/team/a:v1", kc); err != nil {
				t.Fatal(err)
			}
			tr.Reset()
			if _, err := r.Resolve(context.Background(), tr.Host+"/team/b:v1", kc); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"ping": 0, "token": 0, "HEAD": 1}
			if auth == "bearer" {
				want["token"] = 1
			}
			got := map[string]int{"ping": tr.CountPath(http.MethodGet, "/v2/"), "token": tr.CountPath("", "/token"),
				"HEAD": tr.Count(http.MethodHead, "/manifests/")}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("requests for a new repository (-want +got):\n%s", diff)
			}
		})
	}
}

// lastFor12s: the episode began when the first lookup did, a lookup
// timeout (real time, 300 ms; more on a loaded machine) before it failed.
var lastFor12s = regexp.MustCompile(`unreachable for the last 1[23]s`)

// A registry that times out is remembered: the next lookups there answer
// "cannot verify" at once, without a connection, until the window ends.
func TestOutageIsRememberedPerRegistry(t *testing.T) {
	bh, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bh.Close)
	other := registrytest.New(t)
	other.Image("team/api", "v1", "linux", "amd64")
	clock := newTestClock()
	r := newTestResolver(t, WithLookupTimeout(300*time.Millisecond), WithOutageWindow(30*time.Second), WithClock(clock.Now))

	_, err = r.Resolve(context.Background(), bh.Addr+"/team/app:v0", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTimeout {
		t.Fatalf("first lookup: %+v", e)
	}
	// The blackhole counts a connection when its accept loop gets to it,
	// which on a loaded machine can be after the lookup gave up.
	first := settledConnections(bh)
	if first == 0 {
		t.Fatal("the blackhole was never contacted")
	}
	clock.Add(12 * time.Second)
	for i := 1; i < 20; i++ {
		_, err := r.Resolve(context.Background(), fmt.Sprintf("%s/team/app%d:v%d", bh.Addr, i%3, i), nil)
		e := mustFail(t, err)
		if e.Reason != Unreachable || e.Flavour != FlavourTimeout || !lastFor12s.MatchString(e.Message) {
			t.Fatalf("lookup %d inside the window: %+v", i, e)
		}
	}
	if n := bh.Connections(); n != first {
		t.Errorf("19 lookups inside the window opened %d connections, want 0", n-first)
	}
	// Another registry is not affected: it is asked (whether it answers in
	// 300 ms on a loaded machine under -race is not this test's business).
	if _, err := r.Resolve(context.Background(), other.Host+"/team/api:v1", nil); errors.Is(err, errRemembered) || other.Count("", "/manifests/") == 0 {
		t.Errorf("another registry was answered from the blackhole's window: %v", err)
	}
	// When the window ends, one probe goes out; it fails and reopens the window.
	clock.Add(19 * time.Second)
	_, err = r.Resolve(context.Background(), bh.Addr+"/team/app:probe", nil)
	if e := mustFail(t, err); e.Reason != Unreachable {
		t.Fatalf("probe: %+v", e)
	}
	probe := settledConnections(bh)
	if probe == first {
		t.Error("no probe after the window ended")
	}
	_, _ = r.Resolve(context.Background(), bh.Addr+"/team/app:again", nil)
	if n := bh.Connections(); n != probe {
		t.Errorf("a failed probe did not reopen the window: %d more connections", n-probe)
	}
}

// settledConnections is the blackhole's connection count once it has not
// changed for 200ms (at most 5s).
func settledConnections(bh *registrytest.Blackhole) int {
	n := bh.Connections()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		m := bh.Connections()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// One probe at a time; when the registry answers, the window closes.
func TestOutageWindowProbeClosesIt(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.Image("team/api", "v2", "linux", "amd64")
	failManifests(tr, http.StatusInternalServerError)
	clock := newTestClock()
	r := newTestResolver(t, WithOutageWindow(10*time.Second), WithClock(clock.Now))
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Status != http.StatusInternalServerError {
		t.Fatalf("5xx: %+v", e)
	}
	tr.Reset()
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v2", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || tr.Count("", "") != 0 {
		t.Errorf("inside the window: %+v after %d requests", e, tr.Count("", ""))
	}

	// The registry is back but slow; the window ends; the probe is held.
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tr.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/manifests/") {
			once.Do(func() { close(arrived) })
			<-release
		}
		return false
	})
	clock.Add(11 * time.Second)
	probeErr := make(chan error, 1)
	go func() {
		_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
		probeErr <- err
	}()
	<-arrived
	tr.Reset()
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v2", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || tr.Count("", "") != 0 {
		t.Errorf("while a probe is out: %+v after %d requests, want the remembered answer", e, tr.Count("", ""))
	}
	close(release)
	if err := <-probeErr; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v2", nil); err != nil {
		t.Errorf("after a successful probe the window is still open: %v", err)
	}
}

var _ = v1.Hash{}

// New repositories looked up at once on a registry never seen share its ping.
func TestConcurrentNewRepositoriesShareOnePing(t *testing.T) {
	tr := registrytest.New(t)
	for i := range 10 {
		tr.Image(fmt.Sprintf("team/r%d", i), "v1", "linux", "amd64")
	}
	release := make(chan struct{})
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" {
			<-release // hold the ping until every lookup has started
		}
		return false
	})
	r := newTestResolver(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Resolve(context.Background(), fmt.Sprintf("%s/team/r%d:v1", tr.Host, i), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := tr.CountPath(http.MethodGet, "/v2/"); n != 1 {
		t.Errorf("10 new repositories at once: %d pings, want 1", n)
	}
}
