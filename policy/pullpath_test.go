package policy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

func plat(os, arch, variant string) v1.Platform {
	return v1.Platform{OS: os, Architecture: arch, Variant: variant}
}

func TestPulledPlatforms(t *testing.T) {
	amd, arm, i386 := plat("linux", "amd64", ""), plat("linux", "arm64", ""), plat("linux", "386", "")
	armv6, armv7 := plat("linux", "arm", "v6"), plat("linux", "arm", "v7")
	cases := []struct {
		name      string
		platforms []v1.Platform
		nodes     []Node
		want      []v1.Platform
	}{
		{"each node its own", []v1.Platform{amd, arm, i386}, []Node{node("a", "amd64"), node("r", "arm64")}, []v1.Platform{amd, arm}},
		{"the node's own before what its CPU also runs", []v1.Platform{i386, amd}, []Node{node("a", "amd64")}, []v1.Platform{amd}},
		{"what the CPU also runs when nothing better", []v1.Platform{i386, arm}, []Node{node("a", "amd64")}, []v1.Platform{i386}},
		{"the first of equal entries", []v1.Platform{plat("linux", "x86_64", ""), amd}, []Node{node("a", "amd64")}, []v1.Platform{plat("linux", "x86_64", "")}},
		{"unknown variant, entries of two variants: unknowable", []v1.Platform{armv6, armv7}, []Node{node("r", "arm")}, nil},
		{"a stated variant decides", []v1.Platform{armv6, armv7}, []Node{{Name: "r", Variant: "v7", Labels: node("r", "arm").Labels}}, []v1.Platform{armv7}},
		{"no node pulls any", []v1.Platform{arm}, []Node{node("a", "amd64")}, nil},
		{"unlabelled and Windows nodes are left out", []v1.Platform{amd, plat("windows", "amd64", "")},
			[]Node{{Name: "x"}, {Name: "w", Labels: map[string]string{corev1.LabelOSStable: "windows", corev1.LabelArchStable: "amd64"}}}, nil},
		{"nodes unknown", []v1.Platform{amd}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, pulledPlatforms(tc.platforms, tc.nodes)); d != "" {
				t.Errorf("pulledPlatforms (-want +got):\n%s", d)
			}
		})
	}
}

// TestCheckPullPath runs the rule against the in-process registry: a tag
// with a deleted layer is denied naming the layer, where the nodes pull
// it; what cannot be checked is a warning.
func TestCheckPullPath(t *testing.T) {
	off := false
	cases := []struct {
		name     string
		nodes    []Node
		config   func(*Config)
		break_   func(t *testing.T, f pathFixture)
		decision Decision
		finding  string // "rule: text in the cause", "" for none
	}{
		{name: "healthy", nodes: []Node{node("a", "amd64")}, decision: DecisionAllow},
		{name: "deleted layer where the nodes pull", nodes: []Node{node("a", "amd64")},
			break_: func(t *testing.T, f pathFixture) {
				f.reg.DeleteBlob("team/app", registrytest.LayerDigest(t, f.amd, 1))
			},
			decision: DecisionDeny, finding: "not-found: layer 2 of 3 of linux/amd64 (sha256:"},
		{name: "deleted layer of a platform no node pulls", nodes: []Node{node("a", "amd64")},
			break_: func(t *testing.T, f pathFixture) {
				f.reg.DeleteBlob("team/app", registrytest.LayerDigest(t, f.arm, 0))
			},
			decision: DecisionAllow},
		{name: "deleted layer, verifyBlobs off", nodes: []Node{node("a", "amd64")},
			config: func(c *Config) { c.Registries.VerifyBlobs = &off },
			break_: func(t *testing.T, f pathFixture) {
				f.reg.DeleteBlob("team/app", registrytest.LayerDigest(t, f.amd, 1))
			},
			decision: DecisionAllow},
		{name: "platform manifest does not match its digest", nodes: []Node{node("a", "amd64")},
			break_: func(t *testing.T, f pathFixture) {
				f.reg.SetFault(servesOther(t, registrytest.ManifestDigest(t, f.amd), f.arm))
			},
			decision: DecisionDeny, finding: "not-found: the linux/amd64 manifest (sha256:"},
		{name: "index does not match its digest", nodes: []Node{node("a", "amd64")},
			break_: func(t *testing.T, f pathFixture) {
				f.reg.SetFault(servesOther(t, f.index, f.amd))
			},
			decision: DecisionDeny, finding: "not-found: the image's manifest (sha256:"},
		{name: "blob 500 cannot verify", nodes: []Node{node("a", "amd64")},
			break_: func(t *testing.T, f pathFixture) {
				f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
						w.WriteHeader(http.StatusInternalServerError)
						return true
					}
					return false
				})
			},
			decision: DecisionWarn, finding: "unreachable: cannot verify the layers the nodes pull"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := pathFixture{reg: registrytest.New(t),
				amd: registrytest.LayeredImage(t, "linux", "amd64", 3), arm: registrytest.LayeredImage(t, "linux", "arm64", 2)}
			f.index = f.reg.PushIndex("team/app", "v1", []v1.Image{f.amd, f.arm}, []v1.Platform{plat("linux", "amd64", ""), plat("linux", "arm64", "")})
			if tc.break_ != nil {
				tc.break_(t, f)
			}
			cfg := DefaultConfig()
			cfg.Rules[RuleMutableTag] = ActionIgnore
			if tc.config != nil {
				tc.config(cfg)
			}
			res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			in := podWith([]string{f.reg.Host + "/team/app:v1"})
			in.Nodes = tc.nodes
			v := NewChecker(cfg, res).Check(context.Background(), in)
			var got []string
			for _, f := range v.Findings {
				got = append(got, string(f.Rule)+": "+f.Cause)
			}
			if v.Decision() != tc.decision || (tc.finding == "") != (len(got) == 0) ||
				(tc.finding != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.finding))) {
				t.Errorf("decision %s, findings %q; want %s with %q", v.Decision(), got, tc.decision, tc.finding)
			}
		})
	}
}

// pathFixture is an index of an amd64 image of 3 layers and an arm64 one of 2.
type pathFixture struct {
	reg      *registrytest.Registry
	amd, arm v1.Image
	index    v1.Hash
}

// servesOther answers GETs of the manifest digest with img's manifest:
// bytes that hash to another digest.
func servesOther(t *testing.T, digest v1.Hash, img v1.Image) func(w http.ResponseWriter, r *http.Request) bool {
	body, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/manifests/"+digest.String()) {
			return false
		}
		w.Header().Set("Docker-Content-Digest", digest.String())
		_, _ = w.Write(body)
		return true
	}
}
