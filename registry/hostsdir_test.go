package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// hostsFolder writes files (path under the folder → content) and loads it.
func hostsFolder(t *testing.T, files map[string]string) *HostsDir {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		f := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := LoadHostsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The air-gapped cluster of issue 21: the nodes reach Docker Hub only
// through a mirror (server = the mirror), so upstream is never asked. A
// tag the mirror lacks fails on every node: not-found, naming the mirror.
func TestHostsDirAirGappedDockerHub(t *testing.T) {
	mirror := registrytest.New(t)
	d := mirror.Image("library/present", "v1", "linux", "amd64")
	upstream, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	hosts := hostsFolder(t, map[string]string{"docker.io/hosts.toml": `server = "http://` + mirror.Host + `"` + "\n"})
	r := newTestResolver(t, WithHostsDir(hosts), WithLookupTimeout(2*time.Second),
		withHostAlias("index.docker.io:443", upstream.Addr), withHostAlias("registry-1.docker.io:443", upstream.Addr))

	img, err := r.Resolve(context.Background(), "present:v1", nil)
	if err != nil {
		t.Fatalf("present:v1: %v", err)
	}
	if img.Digest != d || img.Registry != mirror.Host {
		t.Errorf("present:v1 = %+v, want %s from %s", img, d, mirror.Host)
	}
	_, err = r.Resolve(context.Background(), "docker.io/library/missing:v1", nil)
	if e := mustFail(t, err); e.Reason != NotFound || e.Registry != mirror.Host {
		t.Errorf("missing:v1 = %+v (%v), want not-found at %s", e, e.Err, mirror.Host)
	}
	if n := upstream.Connections(); n != 0 {
		t.Errorf("Docker Hub was contacted %d times; hosts.toml's server replaces it", n)
	}
	if !r.HasMirror("docker.io") {
		t.Error("HasMirror(docker.io) = false with a mirror as the only host")
	}
}

// What each host may serve decides who is asked: a tag needs pull and
// resolve, a digest pull only (containerd's resolver.go:258-282); with no
// host left, containerd fails every pull.
func TestHostsDirCapabilities(t *testing.T) {
	pullOnly, server := registrytest.New(t), registrytest.New(t)
	d := pullOnly.Image("team/api", "v1", "linux", "amd64")
	ds := server.Image("team/api", "v1", "linux", "amd64")
	reg := "registry.invalid:5000"
	toml := `server = "http://` + server.Host + `"` + "\n" +
		`[host."http://` + pullOnly.Host + `"]` + "\n" + `capabilities = ["pull"]` + "\n"
	r := newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{"registry.invalid_5000_/hosts.toml": toml})))

	img, err := r.Resolve(context.Background(), reg+"/team/api:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Registry != server.Host || pullOnly.Count("", "/manifests/") != 0 {
		t.Errorf("tag answered by %s, pull-only host asked %d times; want only %s", img.Registry, pullOnly.Count("", "/manifests/"), server.Host)
	}
	img, err = r.Resolve(context.Background(), reg+"/team/api@"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Registry != pullOnly.Host {
		t.Errorf("digest answered by %s, want the pull-only host %s (first in order)", img.Registry, pullOnly.Host)
	}

	noResolve := `server = "http://` + server.Host + `"` + "\n" + `capabilities = ["pull"]` + "\n"
	r = newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{"registry.invalid_5000_/hosts.toml": noResolve})))
	_, err = r.Resolve(context.Background(), reg+"/team/api:v1", nil)
	if e := mustFail(t, err); e.Reason != NotFound || e.Flavour != FlavourNoHosts {
		t.Errorf("tag with no resolve host = %+v, want not-found/%s", e, FlavourNoHosts)
	}
	if _, err := r.Resolve(context.Background(), reg+"/team/api@"+ds.String(), nil); err != nil {
		t.Errorf("digest with a pull host: %v", err)
	}
}

// A host without server falls through to the registry itself; hosts are
// asked in file order; override_path and the headers shape every request.
func TestHostsDirOrderPathAndHeader(t *testing.T) {
	up, mirror := registrytest.New(t), registrytest.New(t)
	up.Image("team/api", "v1", "linux", "amd64")
	mirror.Image("team/api", "cached", "linux", "amd64")
	// The mirror serves the API under /proxy (override_path) and only to
	// requests carrying the header its hosts.toml names.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Mirror-Key") != "k1" {
			http.Error(w, "no key", http.StatusForbidden)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/proxy/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = "/v2/" + rest
		mirror.Server.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	frontHost := strings.TrimPrefix(front.URL, "http://")
	toml := `[host."http://` + frontHost + `/proxy"]` + "\n" + "override_path = true\n" +
		`[host."http://` + frontHost + `/proxy".header]` + "\n" + `X-Mirror-Key = "k1"` + "\n"
	r := newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{portFolder(up.Host) + "/hosts.toml": toml})))

	img, err := r.Resolve(context.Background(), up.Host+"/team/api:cached", nil)
	if err != nil || img.Registry != frontHost {
		t.Fatalf("cached tag: %+v, %v; want it from the mirror %s", img, err, frontHost)
	}
	// The platform check's GET goes the same way (path and header).
	ps, err := r.Platforms(context.Background(), img)
	if err != nil || len(ps) != 1 {
		t.Fatalf("platforms of the cached tag: %v, %v", ps, err)
	}
	// So do the pull path's manifest GETs and blob HEADs.
	mirror.Reset()
	if err := r.PullPath(context.Background(), img, ps); err != nil {
		t.Errorf("pull path of the cached tag: %v", err)
	}
	if mirror.Count(http.MethodHead, "/blobs/") == 0 {
		t.Error("the pull path asked the mirror for no blob: the test proves nothing")
	}
	img, err = r.Resolve(context.Background(), up.Host+"/team/api:v1", nil)
	if err != nil || img.Registry != up.Host {
		t.Fatalf("v1: %+v, %v; want it from the registry after the mirror's 404", img, err)
	}
	if got := mirror.Count("", "/team/api/manifests/v1"); got == 0 {
		t.Error("the mirror was not asked first")
	}
}

// ca and skip_verify of hosts.toml decide how a TLS host is verified.
func TestHostsDirTLS(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tlsSrv := httptest.NewUnstartedServer(tr.Server.Config.Handler)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	addr := tlsSrv.Listener.Addr().String()
	_, port, _ := strings.Cut(addr, ":")
	host := "example.com:" + port // a name in httptest's certificate
	folder := "example.com_" + port + "_"
	pem := string(pemEncode(tlsSrv.Certificate().Raw))
	tests := []struct {
		name  string
		files map[string]string
		ok    bool
	}{
		{"no TLS settings", map[string]string{folder + "/hosts.toml": `server = "https://` + host + `"` + "\n"}, false},
		{"ca relative to the folder", map[string]string{folder + "/hosts.toml": `server = "https://` + host + `"` + "\nca = \"ca.pem\"\n",
			folder + "/ca.pem": pem}, true},
		{"skip_verify", map[string]string{folder + "/hosts.toml": `server = "https://` + host + `"` + "\nskip_verify = true\n"}, true},
		{"certs.d layout without hosts.toml", map[string]string{folder + "/ca.crt": pem}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestResolver(t, withHostAlias(host, addr), WithHostsDir(hostsFolder(t, tt.files)))
			_, err := r.Resolve(context.Background(), host+"/team/api:v1", nil)
			if tt.ok && err != nil {
				t.Errorf("want it resolved: %v", err)
			}
			if !tt.ok {
				if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourTLS {
					t.Errorf("want a TLS failure: %+v", e)
				}
			}
		})
	}
}

// _default serves registries without a folder of their own; its server
// replaces each of them.
func TestHostsDirDefault(t *testing.T) {
	mirror := registrytest.New(t)
	mirror.Image("team/api", "v1", "linux", "amd64")
	hosts := hostsFolder(t, map[string]string{"_default/hosts.toml": `server = "http://` + mirror.Host + `"` + "\n"})
	r := newTestResolver(t, WithHostsDir(hosts), WithLookupTimeout(time.Second))
	if img, err := r.Resolve(context.Background(), "registry.invalid/team/api:v1", nil); err != nil || img.Registry != mirror.Host {
		t.Fatalf("v1: %+v, %v", img, err)
	}
	_, err := r.Resolve(context.Background(), "registry.invalid/team/api:v2", nil)
	if e := mustFail(t, err); e.Reason != NotFound || e.Registry != mirror.Host {
		t.Errorf("v2 = %+v, want not-found at the mirror", e)
	}
}

// A mirror that cannot be reached leaves the answer unknown even when the
// next host says not found: the nodes may reach it (containerd itself
// reports the 404 then, resolver.go:338-358; pullsafe fails open).
func TestHostsDirUnreachableMirrorIsNoDenial(t *testing.T) {
	server := registrytest.New(t)
	hole, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	toml := `server = "http://` + server.Host + `"` + "\n" + `[host."http://mirror.invalid:5000"]` + "\n"
	r := newTestResolver(t, withHostAlias("mirror.invalid:5000", "127.0.0.1:1"),
		WithHostsDir(hostsFolder(t, map[string]string{"docker.io/hosts.toml": toml})))
	_, err = r.Resolve(context.Background(), "library/missing:v1", nil)
	if e := mustFail(t, err); e.Reason != Unreachable {
		t.Errorf("missing:v1 = %+v, want unreachable (cannot verify)", e)
	}
}

func TestParseHostsTOML(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []hostSpec
		err        string
	}{
		{"server only", `server = "https://mirror.example"`,
			[]hostSpec{{scheme: "https", host: "mirror.example", path: "/v2", caps: capAll}}, ""},
		// getSortedHosts lists b twice: its header table follows a's.
		{"hosts in order, then the registry", "[host.\"http://b:5000\"]\ncapabilities = [\"pull\", \"RESOLVE\"]\n[host.\"https://a/sub\"]\n[host.\"http://b:5000\".header]\nx = \"1\"\n",
			[]hostSpec{
				{scheme: "http", host: "b:5000", path: "/v2", caps: capPull | capResolve, header: http.Header{"x": {"1"}}},
				{scheme: "https", host: "a", path: "/sub/v2", caps: capAll},
				{scheme: "http", host: "b:5000", path: "/v2", caps: capPull | capResolve, header: http.Header{"x": {"1"}}},
				{path: "/v2", caps: capAll},
			}, ""},
		{"override_path", "server = \"https://h/api\"\noverride_path = true\n",
			[]hostSpec{{scheme: "https", host: "h", path: "/api", caps: capAll}}, ""},
		{"a host only in dotted keys is not tried", "host.\"https://x\".capabilities = [\"pull\"]\nserver = \"https://s\"\n",
			[]hostSpec{{scheme: "https", host: "s", path: "/v2", caps: capAll}}, ""},
		{"ca list, relative", "server = \"https://s\"\nca = [\"a.pem\", \"/abs.pem\"]\n",
			[]hostSpec{{scheme: "https", host: "s", path: "/v2", caps: capAll, caFiles: []string{"/f/a.pem", "/abs.pem"}}}, ""},
		{"unknown capability", "server = \"https://s\"\ncapabilities = [\"fly\"]\n", nil, "unknown capability"},
		{"not TOML", "server = ", nil, "not TOML"},
		{"bad header name", "server = \"https://s\"\n[header]\n\"a b\" = \"x\"\n", nil, "header name"},
		{"ftp", "server = \"ftp://s\"\n", nil, "no host"}, // no http prefix: https://ftp://s, whose host is "ftp:"
		{"ca of a number", "server = \"https://s\"\nca = 3\n", nil, "ca is a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHostsTOML("/f", []byte(tt.toml))
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(hostSpec{})); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadHostsDirErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "docker.io", "hosts.toml")
	if err := os.WriteFile(file, []byte("server = \"https://m\"\nca = \"missing.pem\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHostsDir(dir); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing ca file: %v", err)
	}
	if err := os.WriteFile(file, []byte(strings.Repeat("#", MaxHostsFileBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHostsDir(dir); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("oversized file: %v", err)
	}
	if _, err := LoadHostsDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing folder loaded")
	}
}

// containerd's CRI gives the kubelet's credential to every host of
// hosts.toml (the kubelet sets no ServerAddress, so ParseAuth answers it
// for any host): a mirror that wants it gets it, as on the nodes.
func TestHostsDirMirrorGetsTheKubeletCredential(t *testing.T) {
	mirror := registrytest.New(t)
	mirror.Image("team/api", "v1", "linux", "amd64")
	mirror.SetAuth("basic")
	reg := "registry.invalid:5000"
	secret := dockerSecret("good", nil)
	secret.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"` + reg + `":{"username":"` + mirror.User + `","password":"` + mirror.Pass + `"}}}`)
	r := newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{
		"registry.invalid_5000_/hosts.toml": `server = "http://` + mirror.Host + `"` + "\n"})))
	img, err := r.Resolve(context.Background(), reg+"/team/api:v1", NewKeychain([]*corev1.Secret{secret}))
	if err != nil {
		t.Fatal(err)
	}
	if img.Registry != mirror.Host || img.Credential == "" {
		t.Errorf("image = %+v, want it from %s with the secret", img, mirror.Host)
	}
}

// FuzzHostsTOML feeds arbitrary bytes to the hosts.toml reader: no panic,
// the bounds hold, and every host it returns has a scheme containerd speaks.
func FuzzHostsTOML(f *testing.F) {
	f.Add([]byte("server = \"https://m\"\n[host.\"http://a:5000/p\"]\noverride_path = true\ncapabilities = [\"pull\"]\n"))
	f.Add([]byte("[host.\"https://a\".header]\nx = [\"1\", \"2\"]\n[host.\"https://b\"]\nca = [\"c\"]\nclient = [[\"c\", \"k\"], \"p\"]\n"))
	f.Add([]byte("host.\"x\" = {}\n[[host]]\n"))
	f.Add([]byte("server = \"https://ftp://s\"\nskip_verify = true\ndial_timeout = \"1s\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, err := parseHostsTOML("/f", data)
		if err != nil {
			return
		}
		if len(hosts) == 0 || len(hosts) > MaxHostsPerFile+1 {
			t.Fatalf("%d hosts", len(hosts))
		}
		for _, h := range hosts {
			if h.host != "" && h.scheme != "https" && h.scheme != "http" {
				t.Fatalf("scheme %q", h.scheme)
			}
			if len(h.header) > MaxHostHeaders {
				t.Fatalf("%d headers", len(h.header))
			}
		}
	})
}

// The hosts of a hosts folder are configured hosts: their metrics carry
// their names, as mirrors' do, not "other" once unknown hosts filled the
// label budget.
func TestHostsDirHostsAreFixedMetricLabels(t *testing.T) {
	hosts := hostsFolder(t, map[string]string{"registry.corp_5000_/hosts.toml": "server = \"https://mirror.corp.example:8443\"\n"})
	o, err := makeOptions(WithHostsDir(hosts))
	if err != nil {
		t.Fatal(err)
	}
	l := newHostLabels(o, nil)
	for _, h := range []string{"registry.corp:5000", "mirror.corp.example:8443"} {
		if !l.fixed[h] {
			t.Errorf("%s is not a fixed label", h)
		}
	}
}

// containerd's fetcher checks that some host has the pull capability, then
// asks every host of the file for manifests by digest and blobs, in order,
// whatever its capabilities (core/remotes/docker/fetcher.go, Fetch: "range
// r.hosts"). A blob only a resolve-only host still serves pulls.
func TestHostsDirPullPathAsksEveryHost(t *testing.T) {
	resolveOnly, server := registrytest.New(t), registrytest.New(t)
	img := registrytest.LayeredImage(t, "linux", "amd64", 3)
	resolveOnly.Push("team/api", "v1", img)
	server.Push("team/api", "v1", img)
	server.DeleteBlob("team/api", registrytest.LayerDigest(t, img, 1))
	reg := "registry.invalid:5000"
	toml := `server = "http://` + server.Host + `"` + "\n" +
		`[host."http://` + resolveOnly.Host + `"]` + "\n" + `capabilities = ["resolve"]` + "\n"
	r := newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{"registry.invalid_5000_/hosts.toml": toml})))

	if err := walkPath(t, r, reg+"/team/api:v1", nil, amd64); err != nil {
		t.Errorf("pull path = %v; want nil: containerd fetches the layer from the resolve-only host", err)
	}
	if resolveOnly.Count("", "/blobs/") == 0 {
		t.Error("the resolve-only host was asked for no blob")
	}
}

// A hosts.toml header is sent as containerd sends it: on the host's own
// requests and, through a redirect (a blob behind a CDN), as Go's client
// copies headers, never a credential (Authorization, Cookie) to another
// domain. Some hosts.toml carry a static credential as a header.
func TestHostsDirHeaderCredentialNotRedirected(t *testing.T) {
	up, mirror := registrytest.New(t), registrytest.New(t)
	mirror.Image("team/api", "cached", "linux", "amd64")
	var mu sync.Mutex
	var cdnAuth []string
	cdnHits := 0
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnHits++
		cdnAuth = append(cdnAuth, r.Header.Values("Authorization")...)
		cdnAuth = append(cdnAuth, r.Header.Values("Cookie")...)
		mu.Unlock()
		mirror.Server.Config.Handler.ServeHTTP(w, r)
	}))
	defer cdn.Close()
	_, cdnPort, _ := strings.Cut(strings.TrimPrefix(cdn.URL, "http://"), ":")
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer static-secret" {
			http.Error(w, "no key", http.StatusForbidden)
			return
		}
		if strings.Contains(r.URL.Path, "/blobs/") {
			// Another domain than the front's 127.0.0.1: Go's client strips
			// credentials there.
			http.Redirect(w, r, "http://localhost:"+cdnPort+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		mirror.Server.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	frontHost := strings.TrimPrefix(front.URL, "http://")
	toml := `[host."http://` + frontHost + `"]` + "\n" +
		`[host."http://` + frontHost + `".header]` + "\n" + `Authorization = "Bearer static-secret"` + "\n" + `Cookie = "session=s"` + "\n"
	r := newTestResolver(t, WithHostsDir(hostsFolder(t, map[string]string{portFolder(up.Host) + "/hosts.toml": toml})))

	if err := walkPath(t, r, up.Host+"/team/api:cached", nil, amd64); err != nil {
		t.Fatalf("pull path through the CDN: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if cdnHits == 0 {
		t.Fatal("no request reached the CDN: the test proves nothing")
	}
	if len(cdnAuth) != 0 {
		t.Errorf("the CDN got the hosts.toml credential headers %q; Go's client (and containerd) strip them on a redirect to another domain", cdnAuth)
	}
}

// containerd's CRI normalizes an image's registry as the docker reference
// library does: index.docker.io is docker.io, registry-1.docker.io is a
// registry of its own, whose folder is "registry-1.docker.io" (else
// _default, else none). A pod naming registry-1.docker.io/... is pulled
// from there even when docker.io's hosts.toml replaces Docker Hub with a
// mirror that lacks the image.
func TestHostsDirDockerHubSpellings(t *testing.T) {
	mirror := registrytest.New(t)
	upstream, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	hosts := hostsFolder(t, map[string]string{"docker.io/hosts.toml": `server = "http://` + mirror.Host + `"` + "\n"})
	for _, reg := range []string{"docker.io", "index.docker.io"} {
		if hs, ok := hosts.Hosts(reg); !ok || len(hs) != 1 || hs[0].Host != mirror.Host {
			t.Errorf("Hosts(%s) = %+v, %v; want docker.io's folder", reg, hs, ok)
		}
	}
	if hs, ok := hosts.Hosts("registry-1.docker.io"); ok {
		t.Errorf("Hosts(registry-1.docker.io) = %+v; containerd looks for a folder of that name", hs)
	}
	r := newTestResolver(t, WithHostsDir(hosts), WithLookupTimeout(time.Second),
		withHostAlias("registry-1.docker.io:443", upstream.Addr))
	_, err = r.Resolve(context.Background(), "registry-1.docker.io/library/missing:v1", nil)
	if e := mustFail(t, err); e.Reason == NotFound {
		t.Errorf("registry-1.docker.io/library/missing:v1 = %v; want cannot verify: the nodes ask registry-1.docker.io, not the mirror", e)
	}
	if n := mirror.Count("", "/manifests/"); n != 0 {
		t.Errorf("the docker.io mirror was asked %d times for a registry-1.docker.io image", n)
	}
}
