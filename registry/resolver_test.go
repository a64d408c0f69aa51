package registry

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/certs"
)

// newTestResolver allows loopback, where registrytest serves; opts may
// take it back.
func newTestResolver(t testing.TB, opts ...Option) *Resolver {
	t.Helper()
	r, err := NewResolver(append([]Option{WithAllowLoopback(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustFail(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	return e
}

func TestResolveTagHeadOnly(t *testing.T) {
	tr := registrytest.New(t)
	want := tr.Image("team/api", "v1.4.1", "linux", "amd64")
	r := newTestResolver(t)

	img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1.4.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != want || img.Tag != "v1.4.1" || img.Repository != tr.Host+"/team/api" {
		t.Errorf("image = %+v, want digest %s", img, want)
	}
	if got := img.Pinned(true); got != tr.Host+"/team/api:v1.4.1@"+want.String() {
		t.Errorf("Pinned(true) = %s", got)
	}
	if n := tr.Count(http.MethodGet, "/manifests/"); n != 0 {
		t.Errorf("GET manifests = %d, want 0 (existence is a HEAD)", n)
	}
	if n := tr.Count(http.MethodHead, "/manifests/"); n != 1 {
		t.Errorf("HEAD manifests = %d, want 1", n)
	}
}

func TestResolveDigestIsVerifiedNotRewritten(t *testing.T) {
	tr := registrytest.New(t)
	d := tr.Image("team/api", "v1", "linux", "amd64")
	r := newTestResolver(t)
	img, err := r.Resolve(context.Background(), tr.Host+"/team/api@"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d || img.Tag != "" || img.Pinned(true) != tr.Host+"/team/api@"+d.String() {
		t.Errorf("image = %+v", img)
	}
	missing := "sha256:" + strings.Repeat("0", 64)
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api@"+missing, nil)
	if e := mustFail(t, err); e.Reason != NotFound || e.Flavour != FlavourDigest {
		t.Errorf("missing digest: %+v", e)
	}
}

func TestResolveNotFoundSuggestsNearestTags(t *testing.T) {
	tr := registrytest.New(t)
	for _, tag := range []string{"v1.4.0", "v1.4.1", "latest", "v2.0.0-rc.1"} {
		tr.Image("team/api", tag, "linux", "amd64")
	}
	r := newTestResolver(t)
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1.4.2", nil)
	e := mustFail(t, err)
	if e.Reason != NotFound || e.Flavour != FlavourTag {
		t.Fatalf("error = %+v", e)
	}
	if diff := cmp.Diff([]string{"v1.4.1", "v1.4.0"}, e.Suggestions); diff != "" {
		t.Errorf("suggestions (-want +got):\n%s", diff)
	}
	if !strings.Contains(e.Message, "manifest unknown") && !strings.Contains(strings.ToLower(e.Message), "unknown manifest") {
		t.Errorf("registry's words lost: %q", e.Message)
	}

	_, err = r.Resolve(context.Background(), tr.Host+"/team/nope:v1", nil)
	if e := mustFail(t, err); e.Reason != NotFound || e.Flavour != FlavourRepository || len(e.Suggestions) != 0 {
		t.Errorf("missing repository: %+v", e)
	}
}

func TestResolveInvalidReference(t *testing.T) {
	r := newTestResolver(t)
	for _, ref := range []string{"team/UPPER", "nginx:", "a b", "nginx@sha256:abc", ""} {
		_, err := r.Resolve(context.Background(), ref, nil)
		if e := mustFail(t, err); e.Reason != InvalidReference || e.Message == "" {
			t.Errorf("%q: %+v", ref, e)
		}
	}
}

func TestResolveAuth(t *testing.T) {
	for _, kind := range []string{"basic", "bearer"} {
		t.Run(kind, func(t *testing.T) {
			tr := registrytest.New(t)
			want := tr.Image("private/app", "v1", "linux", "amd64")
			tr.SetAuth(kind)
			r := newTestResolver(t)
			ref := tr.Host + "/private/app:v1"

			_, err := r.Resolve(context.Background(), ref, nil)
			if e := mustFail(t, err); e.Reason != Unauthorized || len(e.Tried) != 0 {
				t.Errorf("anonymous: %+v", e)
			}

			wrong := NewKeychain([]*corev1.Secret{dockerSecret("wrong", map[string]string{tr.Host: "mallory"})})
			_, err = r.Resolve(context.Background(), ref, wrong)
			e := mustFail(t, err)
			if e.Reason != Unauthorized || len(e.Tried) != 1 || !strings.Contains(e.Tried[0], "ns/wrong") {
				t.Errorf("wrong credential: %+v", e)
			}

			// One stale secret must not cause a false denial: the next matching one is tried.
			stale := dockerSecret("stale", map[string]string{tr.Host: "mallory"})
			good := goodSecret(tr)
			img, err := r.Resolve(context.Background(), ref, NewKeychain([]*corev1.Secret{stale, good}))
			if err != nil {
				t.Fatalf("stale then good: %v", err)
			}
			if img.Digest != want || len(img.Tried) != 2 || !strings.Contains(img.Credential, "ns/good") {
				t.Errorf("image = %+v", img)
			}
		})
	}
}

// goodSecret holds the test registry's real credentials.
func goodSecret(tr *registrytest.Registry) *corev1.Secret {
	s := dockerSecret("good", nil)
	s.Data[corev1.DockerConfigJsonKey] = []byte(fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, tr.Host, tr.User, tr.Pass))
	return s
}

func TestCacheNeverAnswersForANamespaceWithoutTheSecret(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("private/app", "v1", "linux", "amd64")
	tr.SetAuth("bearer")
	r := newTestResolver(t)
	ref := tr.Host + "/private/app:v1"

	if _, err := r.Resolve(context.Background(), ref, NewKeychain([]*corev1.Secret{goodSecret(tr)})); err != nil {
		t.Fatal(err)
	}
	_, err := r.Resolve(context.Background(), ref, nil)
	if e := mustFail(t, err); e.Reason != Unauthorized {
		t.Fatalf("namespace without secret got %+v, want unauthorized", e)
	}
	// And the other way round: a cached denial does not deny the namespace holding the secret.
	if _, err := r.Resolve(context.Background(), ref, NewKeychain([]*corev1.Secret{goodSecret(tr)})); err != nil {
		t.Errorf("namespace with secret after a denial: %v", err)
	}
}

func TestConcurrentLookupsAreCoalesced(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	release := make(chan struct{})
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead {
			<-release // hold the first lookup until all callers have joined it
		}
		return false
	})
	r := newTestResolver(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := tr.Count(http.MethodHead, "/manifests/"); n != 1 {
		t.Errorf("100 concurrent lookups made %d HEAD requests, want 1", n)
	}
}

func TestSecondTagInSameRepositoryIsOneRequest(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("private/app", "v1", "linux", "amd64")
	tr.Image("private/app", "v2", "linux", "amd64")
	tr.SetAuth("bearer")
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	if _, err := r.Resolve(context.Background(), tr.Host+"/private/app:v1", kc); err != nil {
		t.Fatal(err)
	}
	first := tr.Count("", "")
	tr.Reset()
	if _, err := r.Resolve(context.Background(), tr.Host+"/private/app:v2", kc); err != nil {
		t.Fatal(err)
	}
	if n := tr.Count("", ""); n != 1 {
		t.Errorf("second tag: %d requests, want 1 (ping, token and connection reused); first lookup took %d", n, first)
	}
}

func TestRateLimitOpensABackoffWindow(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.Image("team/api", "v2", "linux", "amd64")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := newTestResolver(t, WithClock(clock))

	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	e := mustFail(t, err)
	if e.Reason != RateLimited || e.RetryAfter != 30*time.Second {
		t.Fatalf("error = %+v", e)
	}
	if n := tr.Count("", "/manifests/"); n != 1 {
		t.Errorf("manifest requests = %d, want 1 (no retry of 429)", n)
	}
	tr.Reset()
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v2", nil)
	if e := mustFail(t, err); e.Reason != RateLimited || tr.Count("", "") != 0 {
		t.Errorf("inside the window: %+v, %d requests", e, tr.Count("", ""))
	}
	tr.SetFault(nil)
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v2", nil); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestTransientErrorsAreNotCachedNotFoundIs(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	fail := true
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if fail && strings.Contains(r.URL.Path, "/manifests/") {
			http.Error(w, "upstream exploded", http.StatusInternalServerError)
			return true
		}
		return false
	})
	clock := newTestClock()
	r := newTestResolver(t, WithClock(clock.Now))
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourServerError || e.Status != 500 {
		t.Fatalf("500: %+v", e)
	}
	fail = false
	clock.Add(31 * time.Second) // the outage window (TestOutageIsRememberedPerRegistry) ends
	if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil); err != nil {
		t.Errorf("after recovery: %v (a 500 was cached)", err)
	}

	tr.Reset()
	for range 3 {
		_, err := r.Resolve(context.Background(), tr.Host+"/team/api:missing", nil)
		if e := mustFail(t, err); e.Reason != NotFound {
			t.Fatal(e)
		}
	}
	if n := tr.Count(http.MethodHead, "/manifests/"); n != 1 {
		t.Errorf("not-found looked up %d times, want 1 (cached)", n)
	}
}

func TestNotFoundTTLIsShort(t *testing.T) {
	tr := registrytest.New(t)
	r := newTestResolver(t, WithCache(100, time.Minute, 50*time.Millisecond))
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:late", nil)
	if e := mustFail(t, err); e.Reason != NotFound {
		t.Fatal(e)
	}
	tr.Image("team/api", "late", "linux", "amd64") // the push lands seconds later
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err = r.Resolve(context.Background(), tr.Host+"/team/api:late", nil); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("tag pushed after a not-found is still not found: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	tr := registrytest.New(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	r := newTestResolver(t, WithLookupTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Resolve(ctx, tr.Host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTimeout {
		t.Errorf("error = %+v", e)
	}
	// Not a timing assertion on speed: only that the caller's deadline, not
	// the 5s lookup timeout, bounded the wait.
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("took %s, the caller's 150ms deadline was not honoured", el)
	}

	// The resolver's own lookup timeout bounds a caller without a deadline.
	r2 := newTestResolver(t, WithLookupTimeout(150*time.Millisecond))
	_, err = r2.Resolve(context.Background(), tr.Host+"/team/api:v2", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTimeout {
		t.Errorf("lookup timeout: %+v", e)
	}
}

func TestUnreachableFlavours(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()
	tr := registrytest.New(t)
	tests := []struct {
		name    string
		ref     string
		opts    []Option
		flavour string
	}{
		{"refused", closedHost + "/a/b:v1", nil, FlavourRefused},
		{"dns", "registry.does-not-exist.invalid/a/b:v1", nil, FlavourDNS},
		{"blocked", tr.Host + "/a/b:v1", []Option{WithDeniedNetworks(netip.MustParsePrefix("127.0.0.0/8"))}, FlavourBlocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestResolver(t, tt.opts...)
			_, err := r.Resolve(context.Background(), tt.ref, nil)
			if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != tt.flavour {
				t.Errorf("error = %+v (%v)", e, e.Err)
			}
		})
	}
}

// withHostAlias makes dials of host reach addr (still through the deny list).
func withHostAlias(host, addr string) Option {
	return func(o *options) error {
		if o.hostAliases == nil {
			o.hostAliases = map[string]string{}
		}
		o.hostAliases[host] = addr
		return nil
	}
}

func TestCABundleAndTLSFailure(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	// The same registry over TLS, reached as example.com (a name in
	// httptest's certificate; a loopback name would make go-containerregistry
	// fall back to plain HTTP).
	tlsSrv := httptest.NewUnstartedServer(tr.Server.Config.Handler)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	addr := tlsSrv.Listener.Addr().String()
	_, port, _ := strings.Cut(addr, ":")
	host := "example.com:" + port
	pem := pemEncode(tlsSrv.Certificate().Raw)

	r := newTestResolver(t, withHostAlias(host, addr))
	_, err := r.Resolve(context.Background(), host+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTLS || !strings.Contains(e.Message, "caBundles") {
		t.Errorf("untrusted certificate: %+v (%v)", e, e.Err)
	}
	r = newTestResolver(t, withHostAlias(host, addr), WithCABundle(host, pem))
	if _, err := r.Resolve(context.Background(), host+"/team/api:v1", nil); err != nil {
		t.Errorf("with CA bundle: %v", err)
	}
	r = newTestResolver(t, withHostAlias(host, addr), WithInsecure(host))
	if _, err := r.Resolve(context.Background(), host+"/team/api:v1", nil); err != nil {
		t.Errorf("declared insecure: %v", err)
	}
}

func pemEncode(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestMirrorServesDockerHub(t *testing.T) {
	tr := registrytest.New(t)
	d := tr.Image("library/nginx", "1.27", "linux", "amd64")
	// Docker Hub itself is a closed port: a mirror that failed would fall
	// through to it and fail here, never reach the real index.docker.io.
	r := newTestResolver(t, WithMirrors(map[string][]string{"docker.io": {tr.Host}}), withHostAlias("index.docker.io:443", "127.0.0.1:1"))
	if !r.HasMirror("index.docker.io") {
		t.Error("HasMirror(index.docker.io) = false")
	}
	img, err := r.Resolve(context.Background(), "nginx:1.27", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d || img.Registry != tr.Host || img.Repository != "docker.io/library/nginx" {
		t.Errorf("image = %+v", img)
	}
	if got := img.Pinned(true); got != "docker.io/library/nginx:1.27@"+d.String() {
		t.Errorf("Pinned = %s", got)
	}

	// What the mirror lacks is asked of Docker Hub, as containerd does: the
	// fallthrough is seen, at the aliased closed port.
	_, err = r.Resolve(context.Background(), "nginx:1.28", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Registry != "index.docker.io" {
		t.Errorf("mirror without the tag: %+v, want unreachable at index.docker.io", e)
	}
	if tr.Count("", "/library/nginx/manifests/1.28") == 0 {
		t.Error("the mirror was never asked for 1.28")
	}
}

func TestPlatforms(t *testing.T) {
	tr := registrytest.New(t)
	tr.Index("multi/app", "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	tr.Image("single/app", "v1", "linux", "arm64")
	r := newTestResolver(t)
	ctx := context.Background()

	img, err := r.Resolve(ctx, tr.Host+"/multi/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Platforms(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("index platforms (-want +got):\n%s", diff)
	}

	img, err = r.Resolve(ctx, tr.Host+"/single/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Reset()
	p, err = r.Platforms(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]v1.Platform{{OS: "linux", Architecture: "arm64"}}, p); diff != "" {
		t.Errorf("config platform (-want +got):\n%s", diff)
	}
	if g, b := tr.Count(http.MethodGet, "/manifests/"), tr.Count(http.MethodGet, "/blobs/"); g != 1 || b != 1 {
		t.Errorf("platform lookup: %d manifest GETs, %d blob GETs; want 1, 1", g, b)
	}
	tr.Reset()
	if _, err := r.Platforms(ctx, img); err != nil || tr.Count("", "") != 0 {
		t.Errorf("second platform lookup: err %v, %d requests (want cached by digest)", err, tr.Count("", ""))
	}
}

func TestHostileRegistryResponses(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	ctx := context.Background()

	t.Run("manifest bytes do not match the digest", func(t *testing.T) {
		r := newTestResolver(t)
		img, err := r.Resolve(ctx, tr.Host+"/team/api:v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				fmt.Fprint(w, `{"schemaVersion":2,"manifests":[]}`)
				return true
			}
			return false
		})
		defer tr.SetFault(nil)
		_, err = r.Platforms(ctx, img)
		if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourDigestMismatch {
			t.Errorf("error = %+v", e)
		}
	})
	t.Run("huge manifest", func(t *testing.T) {
		r := newTestResolver(t, WithMaxManifestSize(1024))
		img, err := r.Resolve(ctx, tr.Host+"/team/api:v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				w.Write([]byte(strings.Repeat("x", 1<<20)))
				return true
			}
			return false
		})
		defer tr.SetFault(nil)
		_, err = r.Platforms(ctx, img)
		if e := mustFail(t, err); e.Flavour != FlavourBadResponse || !strings.Contains(e.Message, "1024") {
			t.Errorf("error = %+v", e)
		}
	})
	t.Run("hostile error body is sanitized and short", func(t *testing.T) {
		r := newTestResolver(t)
		tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				w.WriteHeader(http.StatusNotFound)
				if r.Method == http.MethodGet {
					fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"evil\n\x1b[31mred%s"}]}`, strings.Repeat("A", 5000))
				}
				return true
			}
			return false
		})
		defer tr.SetFault(nil)
		_, err := r.Resolve(ctx, tr.Host+"/team/api:v9", nil)
		e := mustFail(t, err)
		if e.Reason != NotFound || len(e.Message) > maxMessage+4 || strings.ContainsAny(e.Message, "\n\x1b") {
			t.Errorf("message %q (%d bytes)", e.Message, len(e.Message))
		}
	})
	t.Run("registry without HEAD support", func(t *testing.T) {
		r := newTestResolver(t)
		tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return true
			}
			return false
		})
		defer tr.SetFault(nil)
		img, err := r.Resolve(ctx, tr.Host+"/team/api:v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := v1.NewHash(img.Digest.String())
		if img.Digest != want {
			t.Errorf("digest = %s", img.Digest)
		}
	})
}

func TestCredentialsNotSentToRedirectTarget(t *testing.T) {
	other := httptest.NewServer(nil)
	var mu sync.Mutex
	var leaked []string
	other.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	})
	defer other.Close()

	tr := registrytest.New(t)
	tr.Image("private/app", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	img, err := r.Resolve(context.Background(), tr.Host+"/private/app:v1", kc)
	if err != nil {
		t.Fatal(err)
	}
	// Blob storage behind a redirect, as S3/GCS-backed registries do.
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, other.URL+"/storage"+r.URL.Path, http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	_, _ = r.Platforms(context.Background(), img)
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) == 0 {
		t.Fatal("redirect target was never reached")
	}
	for _, h := range leaked {
		if h != "" {
			t.Errorf("credentials sent to another host: %q", h)
		}
	}
}

func TestMirrorNeverReceivesDockerHubCredentials(t *testing.T) {
	// Docker Hub itself is a loopback registry behind TLS, reached as
	// index.docker.io:443 through a host alias: nothing leaves the machine.
	hub := registrytest.New(t)
	hub.Image("library/nginx", "1.27", "linux", "amd64")
	hub.User, hub.Pass = "hubuser", "pw-hubuser" // what dockerSecret writes
	hub.SetAuth("basic")
	hubAddr, hubCA := serveAs(t, hub, "index.docker.io")
	hubCred := NewKeychain([]*corev1.Secret{dockerSecret("hub", map[string]string{"https://index.docker.io/v1/": "hubuser"})})
	if c := hubCred.Lookup("docker.io/library/nginx"); len(c) != 1 {
		t.Fatalf("the kubelet would use the hub credential: %+v", c)
	}
	tests := []struct {
		name       string
		mirrorAuth string // what the mirror asks for
		wantHost   string // who answers
	}{
		{"open mirror answers", "", "mirror"},
		// A mirror asking for credentials is where a leak would happen: the
		// challenge invites them. It gets none; Docker Hub answers.
		{"mirror asking for basic credentials", "basic", "index.docker.io"},
		{"mirror asking for a bearer token", "bearer", "index.docker.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirror := registrytest.New(t)
			mirror.Image("library/nginx", "1.27", "linux", "amd64")
			mirror.SetAuth(tt.mirrorAuth)
			hub.Reset()
			r := newTestResolver(t, WithMirrors(map[string][]string{"docker.io": {mirror.Host}}),
				withHostAlias("index.docker.io:443", hubAddr), WithCABundle("index.docker.io", hubCA))
			img, err := r.Resolve(context.Background(), "nginx:1.27", hubCred)
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			want := map[string]string{"mirror": mirror.Host, "index.docker.io": "index.docker.io"}[tt.wantHost]
			if img.Registry != want {
				t.Errorf("answered by %q, want %q", img.Registry, want)
			}
			got := mirror.Authorizations()
			if len(got) == 0 {
				t.Fatal("the mirror was never asked")
			}
			for _, h := range got {
				if h != "" {
					t.Errorf("mirror received an Authorization header: %q", h)
				}
			}
			if tt.wantHost == "index.docker.io" && !slices.Contains(hub.Authorizations(), "Basic "+base64.StdEncoding.EncodeToString([]byte("hubuser:pw-hubuser"))) {
				t.Errorf("Docker Hub did not receive its own credential: %q", hub.Authorizations())
			}
		})
	}
}

// serveAs serves tr over TLS with a certificate for host, from a fresh CA,
// and returns the loopback address to alias host to and the CA's PEM.
func serveAs(t *testing.T, tr *registrytest.Registry, host string) (addr string, caPEM []byte) {
	t.Helper()
	ca, err := certs.NewCA("test-ca", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{host}, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tr.Server.Config.Handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ca.CertPEM
}

// TestMirrorUnverifiableOutranksUpstreamRefusal: containerd takes the image
// from the first mirror that serves it. When a mirror cannot be verified
// (it wants the credentials the nodes hold in hosts.toml, or it does not
// answer), the upstream's not-found or unauthorized says nothing about
// what the nodes get from that mirror: "cannot verify", never a denial.
func TestMirrorUnverifiableOutranksUpstreamRefusal(t *testing.T) {
	upstream := registrytest.New(t) // holds nothing: 404 / or 401
	mirror := registrytest.New(t)
	mirror.Image("team/api", "v1", "linux", "amd64")
	mirror.SetAuth("basic") // credentials only the nodes have
	for _, upstreamAuth := range []string{"", "basic"} {
		upstream.SetAuth(upstreamAuth)
		r := newTestResolver(t, WithMirrors(map[string][]string{upstream.Host: {mirror.Host}}))
		_, err := r.Resolve(context.Background(), upstream.Host+"/team/api:v1", nil)
		if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourMirrorAuth {
			t.Errorf("upstream auth %q: %+v, want unreachable (mirror-auth)", upstreamAuth, e)
		}
		if upstream.Count("", "/manifests/") == 0 {
			t.Errorf("upstream auth %q: the upstream was never asked: the test proves nothing", upstreamAuth)
		}
	}
}

// TestCloseIdleConnectionsEmptiesTheCaches: a resolver replaced by a reload
// keeps goroutines golang-lru cannot stop; emptied, they hold no answers, and
// emptying is not counted as evictions.
func TestCloseIdleConnectionsEmptiesTheCaches(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	r := newTestResolver(t, WithMetrics(prometheus.NewRegistry()))
	if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil); err != nil {
		t.Fatal(err)
	}
	if r.tags.Len()+r.digests.Len() == 0 {
		t.Fatal("nothing cached: the test proves nothing")
	}
	r.CloseIdleConnections()
	if n := r.tags.Len() + r.digests.Len() + r.negative.Len() + r.auth.Len() + r.pings.Len() + r.refs.Len(); n != 0 {
		t.Errorf("%d entries left in a replaced resolver's caches", n)
	}
	if got := promtestutil.ToFloat64(r.metrics.cache.WithLabelValues("eviction")); got != 0 {
		t.Errorf("emptying counted as %v evictions", got)
	}
}
