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
		{"nginx", Reference{Name: "docker.io/library/nginx", Domain: "docker.io", Path: "library/nginx", Tag: "latest"}},
		{"index.docker.io/bitnami/redis:7", Reference{Name: "docker.io/bitnami/redis", Domain: "docker.io", Path: "bitnami/redis", Tag: "7"}},
		{"MyReg/app:v1", Reference{Name: "MyReg/app", Domain: "MyReg", Path: "app", Tag: "v1"}},
		{"localhost/app", Reference{Name: "localhost/app", Domain: "localhost", Path: "app", Tag: "latest"}},
		{"registry.corp.io:5000/team/api@" + digestA, Reference{Name: "registry.corp.io:5000/team/api", Domain: "registry.corp.io:5000",
			Path: "team/api", Digest: digestA}},
		{"nginx:1.27@" + digestA, Reference{Name: "docker.io/library/nginx", Domain: "docker.io", Path: "library/nginx", Tag: "1.27", Digest: digestA}},
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
