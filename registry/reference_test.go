package registry

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/google/go-cmp/cmp"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

const digestA = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

// TestParseReferenceIsTheKubelets pins the cases that decide admission: each
// is checked against github.com/distribution/reference directly (the
// kubelet's parser), then against ParseReference.
func TestParseReferenceIsTheKubelets(t *testing.T) {
	tests := []struct {
		image string
		want  Reference // zero: invalid, the kubelet's InvalidImageName
	}{
		{"registry.io/a..b:v1", Reference{}},
		{"team//api", Reference{}},
		{"-a", Reference{}},
		{"a_", Reference{}},
		{"nginx:-bad", Reference{}},
		{"nginx:.bad", Reference{}},
		{"registry.corp.io./x", Reference{}},
		{"team/UPPER", Reference{}},
		{"nginx:", Reference{}},
		{"", Reference{}},
		{"nginx", Reference{Name: "docker.io/library/nginx", Domain: "docker.io", Path: "library/nginx", Tag: "latest", Written: "nginx", TagDefaulted: true}},
		{"index.docker.io/bitnami/redis:7", Reference{Name: "docker.io/bitnami/redis", Domain: "docker.io", Path: "bitnami/redis", Tag: "7", Written: "index.docker.io/bitnami/redis"}},
		{"MyReg/app:v1", Reference{Name: "MyReg/app", Domain: "MyReg", Path: "app", Tag: "v1", Written: "MyReg/app"}},
		{"localhost/app", Reference{Name: "localhost/app", Domain: "localhost", Path: "app", Tag: "latest", Written: "localhost/app", TagDefaulted: true}},
		{"registry.corp.io:5000/team/api@" + digestA, Reference{Name: "registry.corp.io:5000/team/api", Domain: "registry.corp.io:5000",
			Path: "team/api", Digest: digestA, Written: "registry.corp.io:5000/team/api"}},
		{"nginx:1.27@" + digestA, Reference{Name: "docker.io/library/nginx", Domain: "docker.io", Path: "library/nginx", Tag: "1.27", Digest: digestA, Written: "nginx"}},
		{"[fd00::1]:5000/app:v1", Reference{Name: "[fd00::1]:5000/app", Domain: "[fd00::1]:5000", Path: "app", Tag: "v1", Written: "[fd00::1]:5000/app"}},
		{"localhost:5000", Reference{Name: "docker.io/library/localhost", Domain: "docker.io", Path: "library/localhost", Tag: "5000", Written: "localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			_, kerr := reference.ParseNormalizedNamed(tt.image)
			if (kerr != nil) != (tt.want == Reference{}) {
				t.Fatalf("the kubelet's parser says %v; the table is wrong", kerr)
			}
			got, err := ParseReference(tt.image)
			if tt.want == (Reference{}) {
				if ReasonOf(err) != InvalidReference {
					t.Fatalf("ParseReference = %+v, %v; want invalid-reference", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseReference (-want +got):\n%s", d)
			}
		})
	}
}

// TestResolveUppercaseRegistry: "MyReg/app:v1" is valid for the kubelet (an
// uppercase first component is a registry host), so it is looked up at that
// host, never refused as invalid. The host is mapped to the loopback test
// registry by the transport.
func TestResolveUppercaseRegistry(t *testing.T) {
	tr := registrytest.New(t)
	want := tr.Image("app", "v1", "linux", "amd64")
	var hosts []string
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, tr.Host)
	}
	rt := &http.Transport{DialContext: dial}
	record := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		hosts = append(hosts, req.URL.Host)
		return rt.RoundTrip(req)
	})
	r := newTestResolver(t, WithTransport(record), WithInsecure("myreg"))
	img, err := r.Resolve(context.Background(), "MyReg/app:v1", nil)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if img.Digest != want {
		t.Errorf("digest %s, want %s", img.Digest, want)
	}
	for _, h := range hosts {
		if !strings.EqualFold(h, "myreg") {
			t.Errorf("request to %q, want the host MyReg names", h)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestResolveKubeletValidButUncheckable: a sha384 digest is valid for the
// kubelet but go-containerregistry cannot hash it: "cannot verify", with no
// request sent, never invalid-reference.
func TestResolveKubeletValidButUncheckable(t *testing.T) {
	image := "127.0.0.1:1/x@sha384:" + strings.Repeat("a", 96)
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		t.Fatalf("the kubelet's parser refuses it (%v); pick another case", err)
	}
	_, err := newTestResolver(t).Resolve(context.Background(), image, nil)
	if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourUnsupported {
		t.Errorf("Resolve = %+v, want unreachable/%s", e, FlavourUnsupported)
	}
}

// One registry is one host however a reference spells it, as the name the
// per-registry state is keyed by (lookup slots, the audit's budget, the
// hosts a kubelet error names): case, HTTPS's default port, Docker Hub's
// three names, a mirror endpoint's scheme and path.
func TestRegistryHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"docker.io", "docker.io"},
		{"index.docker.io", "docker.io"},
		{"registry-1.docker.io", "docker.io"},
		{"Registry-1.Docker.IO:443", "docker.io"},
		{"https://registry-1.docker.io/v2/", "docker.io"},
		{"MyReg.Example.com", "myreg.example.com"},
		{"myreg.example.com:443", "myreg.example.com"},
		{"myreg.example.com:5000", "myreg.example.com:5000"},
		{"myreg.example.com:4430", "myreg.example.com:4430"},
		{"http://mirror.corp:5000/path", "mirror.corp:5000"},
		{"[FD00::1]:5000", "[fd00::1]:5000"},
		{"[fd00::1]:443", "[fd00::1]"},
		{"localhost", "localhost"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := RegistryHost(tt.in); got != tt.want {
			t.Errorf("RegistryHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// HostOf is the host of the reference as the kubelet's parser reads it:
// a first component is a host only with a ".", a ":" or "localhost", or in
// capitals; else the image is Docker Hub's.
func TestHostOf(t *testing.T) {
	tests := []struct{ image, want string }{
		{"nginx", "docker.io"},
		{"library/nginx:1.27", "docker.io"},
		{"index.docker.io/library/nginx", "docker.io"},
		{"registry-1.docker.io/library/nginx", "docker.io"},
		{"docker.io/library/nginx@" + digestA, "docker.io"},
		{"MyReg/app:v1", "myreg"},
		{"LOCALHOST:5000/team/app:v1", "localhost:5000"},
		{"localhost/app", "localhost"},
		{"team/app", "docker.io"},
		{"myreg.example.com:443/team/app", "myreg.example.com"},
		{"[fd00::1]:5000/app", "[fd00::1]:5000"},
		{"localhost:5000", "docker.io"}, // Docker Hub's library/localhost, tag 5000
		{"team/UPPER", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := HostOf(tt.image); got != tt.want {
			t.Errorf("HostOf(%q) = %q, want %q", tt.image, got, tt.want)
		}
	}
}

// Whatever a user writes, one registry has one key: RegistryHost is
// idempotent, lowercase, and HostOf is the parsed reference's; the parts
// as written give the image back.
func FuzzRegistryHost(f *testing.F) {
	for _, s := range []string{"nginx", "Registry-1.Docker.IO:443/library/nginx", "https://mirror.corp:5000/v2/", "[FD00::1]:443/app:v1", "MyReg/app@" + digestA} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := RegistryHost(s)
		if RegistryHost(h) != h || strings.ToLower(h) != h {
			t.Fatalf("RegistryHost(%q) = %q, not a fixed point", s, h)
		}
		r, err := ParseReference(s)
		if err != nil {
			if HostOf(s) != "" {
				t.Fatalf("HostOf(%q) = %q for a reference the kubelet refuses", s, HostOf(s))
			}
			return
		}
		if HostOf(s) != r.Host() || r.Host() != RegistryHost(r.Domain) {
			t.Fatalf("%q: HostOf %q, Host %q", s, HostOf(s), r.Host())
		}
		back := r.Written
		if !r.TagDefaulted && r.Tag != "" {
			back += ":" + r.Tag
		}
		if r.Digest != "" {
			back += "@" + r.Digest
		}
		if back != s {
			t.Fatalf("%q: the parts as written give %q", s, back)
		}
	})
}
