package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// These tests point pullsafe at registries that attack it (issue 10):
// every one of them failed before the fix it names.

// withAnyHostAlias dials every host:port to addr, as if DNS named it
// there; the address stands in for a remote host.
func withAnyHostAlias(addr string) Option { return withHostAlias("*", addr) }

func keychainFor(host string) *Keychain {
	return NewKeychain([]*corev1.Secret{dockerSecret("regcred", map[string]string{host: "alice"})})
}

func portOf(hostport string) string {
	_, p, _ := strings.Cut(hostport, ":")
	return p
}

func TestDenyControlZonedIPv6(t *testing.T) {
	control := denyControl(netPolicy{denied: DefaultDeniedNetworks})
	for _, addr := range []string{"[fe80::1%eth0]:443", "[fe80::1%25eth0]:443", "[fd00:ec2::254%eth0]:80",
		"[fd00:ec2::254%1]:80", "169.254.169.254:80", "[::ffff:169.254.169.254]:80"} {
		if err := control("tcp", addr, nil); !errors.Is(err, errBlocked) {
			t.Errorf("%s: %v, want blocked", addr, err)
		}
	}
	if err := control("tcp", "[2001:db8::1%eth0]:443", nil); err != nil {
		t.Errorf("a zoned address outside the deny list: %v", err)
	}
}

func TestRedirectToZonedIPv6IsBlocked(t *testing.T) {
	// fe80::1 on lo: without the fix the dial happens, but stays on this machine.
	h := registrytest.NewHostile(t, registrytest.Redirect, "https://[fe80::1%25lo]:1/v2/x/manifests/v1")
	// A generous deadline: on a loaded machine (-race, shared cores) the
	// default 2 s ran out in the ping, before the redirect was ever seen.
	r := newTestResolver(t, WithLookupTimeout(15*time.Second))
	_, err := r.Resolve(context.Background(), h.Host+"/x:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourBlocked {
		t.Errorf("error = %+v (%v), want unreachable (blocked)", e, e.Err)
	}
}

func TestProxyNeverSeesDeniedHosts(t *testing.T) {
	regHost := "reg.example.com:5000"
	tests := []struct {
		name   string
		mode   registrytest.Mode
		target string
	}{
		{"redirect to metadata over https", registrytest.Redirect, "https://169.254.169.254/latest/meta-data/iam"},
		{"redirect to metadata over http", registrytest.Redirect, "http://169.254.169.254/latest/meta-data/iam"},
		{"redirect to zoned metadata", registrytest.Redirect, "https://[fd00:ec2::254%25eth0]/latest/meta-data/"},
		{"token realm on loopback", registrytest.Realm, "https://localhost:1/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := registrytest.NewHostile(t, tt.mode, tt.target)
			p := registrytest.NewProxy(t, map[string]string{regHost: h.Host})
			// The proxy stands in for a remote one: proxy.example.com is an alias.
			proxyHost := "proxy.example.com:" + portOf(strings.TrimPrefix(p.URL, "http://"))
			proxyURL := &url.URL{Scheme: "http", Host: proxyHost}
			r := newTestResolver(t, WithAllowLoopback(false), WithInsecure(regHost),
				withHostAlias(regHost, "192.0.2.1:1"), withHostAlias(proxyHost, strings.TrimPrefix(p.URL, "http://")),
				WithProxy(func(*http.Request) (*url.URL, error) { return proxyURL, nil }))
			_, err := r.Resolve(context.Background(), regHost+"/x:v1", keychainFor(regHost))
			if e := mustFail(t, err); e.Reason != Unreachable {
				t.Errorf("error = %+v (%v), want unreachable", e, e.Err)
			}
			var hosts []string
			for _, req := range p.Requests() {
				if req.Host != regHost {
					hosts = append(hosts, req.Method+" "+req.Host)
				}
			}
			if len(hosts) > 0 {
				t.Errorf("the proxy was asked for %v", hosts)
			}
			if len(p.Requests()) == 0 {
				t.Error("the registry itself was not reached through the proxy")
			}
		})
	}
}

func TestLoopbackDeniedByDefault(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	ctx := context.Background()
	for _, host := range []string{tr.Host, "localhost:" + portOf(tr.Host), "0.0.0.0:" + portOf(tr.Host), "[::1]:" + portOf(tr.Host)} {
		r, err := NewResolver()
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Resolve(ctx, host+"/team/api:v1", nil)
		e := mustFail(t, err)
		// [::1] may have no listener; it must still be refused, not dialled.
		if e.Reason != Unreachable || e.Flavour != FlavourBlocked || !strings.Contains(e.Message, "pullsafe's own pod") {
			t.Errorf("%s: error = %+v (%v), want blocked as loopback", host, e, e.Err)
		}
	}
	if len(tr.Authorizations()) != 0 {
		t.Errorf("the loopback registry received %d requests", len(tr.Authorizations()))
	}
	r := newTestResolver(t, WithAllowLoopback(true))
	if _, err := r.Resolve(ctx, tr.Host+"/team/api:v1", nil); err != nil {
		t.Errorf("with loopback allowed: %v", err)
	}
}

func TestTokenRealmOnLoopbackGetsNoCredentials(t *testing.T) {
	h := registrytest.NewHostile(t, registrytest.Realm, "")
	h.Target = "http://localhost:" + portOf(h.Host) + "/token"
	regHost := "reg.example.com:5000"
	r, err := NewResolver(WithInsecure(regHost), withHostAlias(regHost, h.Host))
	if err != nil {
		t.Fatal(err)
	}
	// The second repository is authenticated from the cached challenge: its
	// token request must pass the same guard.
	for _, repo := range []string{"/x:v1", "/y:v1"} {
		_, err = r.Resolve(context.Background(), regHost+repo, keychainFor(regHost))
		if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourBlocked || !strings.Contains(e.Message, "loopback") {
			t.Errorf("%s: error = %+v (%v), want blocked as loopback", repo, e, e.Err)
		}
	}
	if n := len(r.pings.Keys()); n != 1 {
		t.Errorf("%d cached challenges, want the registry's: the second lookup must have used it", n)
	}
	for _, req := range h.Requests() {
		if req.Path == "/token" {
			t.Errorf("the loopback realm was asked for a token (Authorization %q)", req.Authorization)
		}
	}
}

func TestPlainHTTPOnlyForInsecureRegistries(t *testing.T) {
	for _, host := range []string{"10.1.2.3:5000", "192.168.1.10:5000", "172.16.0.5:5000", "registry.private:5000", "registry.local:5000"} {
		t.Run(host, func(t *testing.T) {
			h := registrytest.NewHostile(t, registrytest.BasicAuth, "")
			r := newTestResolver(t, WithAllowLoopback(false), withHostAlias(host, h.Host))
			_, err := r.Resolve(context.Background(), host+"/x:v1", keychainFor(host))
			if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTLS {
				t.Errorf("error = %+v (%v), want unreachable (tls)", e, e.Err)
			}
			for _, req := range h.Requests() {
				if req.Authorization != "" {
					t.Errorf("%s %s carried credentials over plain HTTP", req.Method, req.Path)
				}
			}
			// Declared insecure, as on the nodes: plain HTTP it is.
			r = newTestResolver(t, WithAllowLoopback(false), withHostAlias(host, h.Host), WithInsecure(host))
			_, err = r.Resolve(context.Background(), host+"/x:v1", keychainFor(host))
			if e := mustFail(t, err); e.Reason != NotFound {
				t.Errorf("insecure: error = %+v (%v), want not-found", e, e.Err)
			}
		})
	}
}

func TestUserAgentOnEveryRequest(t *testing.T) {
	h := registrytest.NewHostile(t, registrytest.Realm, "")
	h.Target = h.Server.URL + "/token"
	r := newTestResolver(t, WithUserAgent("pullsafe/v1.2.3"))
	_, err := r.Resolve(context.Background(), h.Host+"/x:v1", keychainFor(h.Host))
	if e := mustFail(t, err); e.Reason != NotFound {
		t.Fatalf("error = %+v (%v)", e, e.Err)
	}
	got := map[string]string{}
	for _, req := range h.Requests() {
		got[req.Method+" "+req.Path] = req.UserAgent
	}
	want := map[string]string{"GET /v2/": "pullsafe/v1.2.3", "GET /token": "pullsafe/v1.2.3",
		"HEAD /v2/x/manifests/v1": "pullsafe/v1.2.3", "GET /v2/x/manifests/v1": "pullsafe/v1.2.3",
		"GET /v2/x/tags/list": "pullsafe/v1.2.3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("User-Agent by request (-want +got):\n%s", diff)
	}
}

func TestEndlessPingIsCapped(t *testing.T) {
	h := registrytest.NewHostile(t, registrytest.EndlessPing, "")
	r := newTestResolver(t)
	_, err := r.Resolve(context.Background(), h.Host+"/x:v1", nil)
	if e := mustFail(t, err); e.Reason != NotFound {
		t.Errorf("error = %+v (%v), want the lookup to go on past the ping", e, e.Err)
	}
	// What the server wrote includes what sat in socket buffers when the
	// client hung up: a few MiB on loopback. Unbounded, it is gigabytes.
	t.Logf("the server wrote %d KiB of ping body", h.Served()>>10)
	if n := h.Served(); n > 32<<20 {
		t.Errorf("the ping body was read for %d MiB", n>>20)
	}
}

func TestRegistryMetricLabelsBounded(t *testing.T) {
	h := registrytest.NewHostile(t, registrytest.Plain, "")
	reg := prometheus.NewRegistry()
	mirror := "mirror.example.com:5000"
	r := newTestResolver(t, WithMetrics(reg), withAnyHostAlias(h.Host),
		WithMirrors(map[string][]string{"docker.io": {mirror}}))
	ctx := context.Background()
	const hosts = 500
	for i := range hosts {
		_, _ = r.Resolve(ctx, fmt.Sprintf("h%d.example.com:5000/x:v1", i), nil)
	}
	_, _ = r.Resolve(ctx, "nginx:1", nil) // through the configured mirror
	labels := registryLabels(t, reg)
	// Recent hosts, the mirror, Docker Hub (index.docker.io) and "other".
	if limit := maxHostLabels + 3; len(labels) > limit {
		t.Errorf("%d registry label values after %d hosts, want at most %d", len(labels), hosts, limit)
	}
	if !labels[otherHosts] || !labels[mirror] || !labels["h0.example.com:5000"] {
		t.Errorf("labels lack %q, the configured mirror or the first hosts: %d labels", otherHosts, len(labels))
	}
}

func TestEveryTransportCapsIdleConnections(t *testing.T) {
	o, err := makeOptions(WithInsecure("insecure.example.com"), WithCABundle("ca.example.com", pemEncode(testCert(t))))
	if err != nil {
		t.Fatal(err)
	}
	ht := newBaseTransport(o).(*hostTransport)
	all := []http.RoundTripper{ht.def}
	for _, rt := range ht.byHost {
		all = append(all, rt)
	}
	for i, rt := range all {
		if tr := rt.(*http.Transport); tr.MaxIdleConns <= 0 || tr.MaxIdleConns > 100 {
			t.Errorf("transport %d: MaxIdleConns = %d", i, tr.MaxIdleConns)
		}
	}
}

func testCert(t *testing.T) []byte {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.Certificate().Raw
}

func TestProxyNeverSeesDeniedRegistry(t *testing.T) {
	p := registrytest.NewProxy(t, nil)
	proxyHost := "proxy.example.com:" + portOf(strings.TrimPrefix(p.URL, "http://"))
	proxyURL := &url.URL{Scheme: "http", Host: proxyHost}
	r := newTestResolver(t, WithAllowLoopback(false), withHostAlias(proxyHost, strings.TrimPrefix(p.URL, "http://")),
		WithProxy(func(*http.Request) (*url.URL, error) { return proxyURL, nil }))
	for _, image := range []string{"169.254.169.254/latest/meta-data:v1", "[fd00:ec2::254]:443/x:v1", "localhost:5002/x:v1"} {
		_, err := r.Resolve(context.Background(), image, nil)
		if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourBlocked {
			t.Errorf("%s: error = %+v (%v), want blocked", image, e, e.Err)
		}
	}
	if got := p.Requests(); len(got) != 0 {
		t.Errorf("the proxy was asked for %v", got)
	}
}

func TestHostLabelsFreeIdleHosts(t *testing.T) {
	now := time.Unix(0, 0)
	var forgotten []string
	o, err := makeOptions(WithClock(func() time.Time { return now }), WithInsecure("configured.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	l := newHostLabels(o, func(h string) { forgotten = append(forgotten, h) })
	for i := range maxHostLabels {
		l.label(fmt.Sprintf("h%d.example.com", i))
	}
	got := []string{l.label("late.example.com"), l.label("configured.example.com"), l.label("h0.example.com"), l.label("index.docker.io")}
	want := []string{otherHosts, "configured.example.com", "h0.example.com", "index.docker.io"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("labels while full (-want +got):\n%s", diff)
	}
	now = now.Add(hostLabelIdle + time.Minute)
	if got := l.label("late.example.com"); got != "late.example.com" {
		t.Errorf("after an idle hour: %q", got)
	}
	if len(forgotten) != maxHostLabels {
		t.Errorf("%d idle hosts' series deleted, want %d", len(forgotten), maxHostLabels)
	}
}

func TestPlainHTTPMirror(t *testing.T) {
	tr := registrytest.New(t)
	d := tr.Image("library/nginx", "1.27", "linux", "amd64")
	mirror := "10.9.8.7:5000"
	r := newTestResolver(t, WithAllowLoopback(false), withHostAlias(mirror, tr.Host),
		withHostAlias("index.docker.io:443", "127.0.0.1:1"), // never Docker Hub itself
		WithMirrors(map[string][]string{"docker.io": {"http://" + mirror}}))
	img, err := r.Resolve(context.Background(), "nginx:1.27", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d || img.Registry != mirror {
		t.Errorf("image = %+v", img)
	}
}
