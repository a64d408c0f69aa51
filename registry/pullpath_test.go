package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// pathFixture is a multi-arch image (linux/amd64 of 5 layers, linux/arm64
// of 2) and a single-platform one (linux/amd64, 3 layers) in one registry.
type pathFixture struct {
	tr               *registrytest.Registry
	amd, arm, single v1.Image
}

func newPathFixture(t *testing.T) pathFixture {
	t.Helper()
	f := pathFixture{tr: registrytest.New(t),
		amd:    registrytest.LayeredImage(t, "linux", "amd64", 5),
		arm:    registrytest.LayeredImage(t, "linux", "arm64", 2),
		single: registrytest.LayeredImage(t, "linux", "amd64", 3)}
	f.tr.PushIndex("team/multi", "v1", []v1.Image{f.amd, f.arm}, []v1.Platform{amd64, arm64})
	f.tr.Push("team/single", "v1", f.single)
	return f
}

// walkPath resolves image and walks its pull path for platforms, as policy
// does: Platforms first, then PullPath.
func walkPath(t *testing.T, r *Resolver, image string, kc *Keychain, platforms ...v1.Platform) error {
	t.Helper()
	ctx := context.Background()
	img, err := r.Resolve(ctx, image, kc)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", image, err)
	}
	_, _ = r.Platforms(ctx, img) // as policy: its failure (a missing config) is PullPath's to name
	return r.PullPath(ctx, img, platforms)
}

func blobFault(status int, method string) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") && (method == "" || r.Method == method) {
			w.WriteHeader(status)
			return true
		}
		return false
	}
}

func TestPullPathVerdicts(t *testing.T) {
	type want struct {
		reason  Reason // "" for no error
		flavour string
		says    string // in the message
	}
	cases := []struct {
		name      string
		image     string
		platforms []v1.Platform
		break_    func(t *testing.T, f pathFixture)
		want      want
	}{
		{name: "healthy index", image: "team/multi:v1", platforms: []v1.Platform{amd64, arm64}},
		{name: "healthy single manifest", image: "team/single:v1", platforms: []v1.Platform{amd64}},
		{name: "deleted layer of an index entry", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.DeleteBlob("team/multi", registrytest.LayerDigest(t, f.amd, 2))
			},
			want: want{NotFound, FlavourBlob, "layer 3 of 5 of linux/amd64 (sha256:"}},
		{name: "deleted config of an index entry", image: "team/multi:v1", platforms: []v1.Platform{arm64},
			break_: func(t *testing.T, f pathFixture) { f.tr.DeleteBlob("team/multi", registrytest.ConfigDigest(t, f.arm)) },
			want:   want{NotFound, FlavourBlob, "config of linux/arm64 (sha256:"}},
		{name: "only an ineligible platform's layer is missing", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.DeleteBlob("team/multi", registrytest.LayerDigest(t, f.arm, 0))
			}},
		{name: "deleted platform manifest", image: "team/multi:v1", platforms: []v1.Platform{arm64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if strings.HasSuffix(r.URL.Path, "/manifests/"+registrytest.ManifestDigest(t, f.arm).String()) {
						w.WriteHeader(http.StatusNotFound)
						return true
					}
					return false
				})
			},
			want: want{NotFound, FlavourBlob, "the linux/arm64 manifest (sha256:"}},
		{name: "deleted layer of a single manifest", image: "team/single:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.DeleteBlob("team/single", registrytest.LayerDigest(t, f.single, 1))
			},
			want: want{NotFound, FlavourBlob, "layer 2 of 3 of linux/amd64 (sha256:"}},
		{name: "deleted config of a single manifest", image: "team/single:v1",
			break_: func(t *testing.T, f pathFixture) {
				f.tr.DeleteBlob("team/single", registrytest.ConfigDigest(t, f.single))
			},
			want: want{NotFound, FlavourBlob, "config of the image (sha256:"}},
		{name: "platform manifest does not match its digest", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(servesOther(registrytest.ManifestDigest(t, f.amd), manifestBytes(t, f.arm)))
			},
			want: want{NotFound, FlavourDigestMismatch, "the linux/amd64 manifest (sha256:"}},
		{name: "top-level manifest does not match its digest", image: "team/single:v1",
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(servesOther(registrytest.ManifestDigest(t, f.single), manifestBytes(t, f.amd)))
			},
			want: want{NotFound, FlavourDigestMismatch, "the image's manifest (sha256:"}},
		{name: "blob 401", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) { f.tr.SetFault(blobFault(http.StatusUnauthorized, "")) },
			want:   want{Unreachable, "", "cannot check config of linux/amd64"}},
		{name: "blob 403", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) { f.tr.SetFault(blobFault(http.StatusForbidden, "")) },
			want:   want{Unreachable, "", "cannot check"}},
		{name: "blob 429", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) { f.tr.SetFault(blobFault(http.StatusTooManyRequests, "")) },
			want:   want{RateLimited, "", "cannot check"}},
		{name: "blob 500", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) { f.tr.SetFault(blobFault(http.StatusInternalServerError, "")) },
			want:   want{Unreachable, FlavourServerError, "cannot check"}},
		{name: "blob slower than the lookup", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if strings.Contains(r.URL.Path, "/blobs/") {
						<-r.Context().Done()
						return true
					}
					return false
				})
			},
			want: want{Unreachable, FlavourTimeout, "cannot check"}},
		{name: "no HEAD on blobs: a ranged GET finds them", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(blobFault(http.StatusMethodNotAllowed, http.MethodHead))
			}},
		{name: "no HEAD on blobs: a ranged GET misses a deleted one", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(blobFault(http.StatusMethodNotAllowed, http.MethodHead))
				f.tr.DeleteBlob("team/multi", registrytest.LayerDigest(t, f.amd, 4))
			},
			want: want{NotFound, FlavourBlob, "layer 5 of 5 of linux/amd64"}},
		// containerd's fetcher GETs blobs: a front (a CDN, a proxy) whose
		// HEAD misses what its GET serves must not turn into a denial.
		{name: "HEAD on blobs answers 404, GET serves them", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(blobFault(http.StatusNotFound, http.MethodHead))
			}},
		{name: "HEAD on blobs answers 404, GET misses a deleted one", image: "team/multi:v1", platforms: []v1.Platform{amd64},
			break_: func(t *testing.T, f pathFixture) {
				f.tr.SetFault(blobFault(http.StatusNotFound, http.MethodHead))
				f.tr.DeleteBlob("team/multi", registrytest.LayerDigest(t, f.amd, 4))
			},
			want: want{NotFound, FlavourBlob, "layer 5 of 5 of linux/amd64"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPathFixture(t)
			r := newTestResolver(t, WithLookupTimeout(time.Second))
			image := f.tr.Host + "/" + tc.image
			ctx := context.Background()
			img, err := r.Resolve(ctx, image, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.break_ != nil {
				tc.break_(t, f)
			}
			_, _ = r.Platforms(ctx, img)
			err = r.PullPath(ctx, img, tc.platforms)
			if tc.want.reason == "" {
				if err != nil {
					t.Fatalf("PullPath = %v, want nil", err)
				}
				return
			}
			e := mustFail(t, err)
			if e.Reason != tc.want.reason || (tc.want.flavour != "" && e.Flavour != tc.want.flavour) || !strings.Contains(e.Message, tc.want.says) {
				t.Errorf("PullPath = %s / %s / %q, want %s / %s / containing %q", e.Reason, e.Flavour, e.Message, tc.want.reason, tc.want.flavour, tc.want.says)
			}
		})
	}
}

func manifestBytes(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// servesOther answers a GET of the manifest digest with body: bytes that
// hash to another digest.
func servesOther(digest v1.Hash, body []byte) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/manifests/"+digest.String()) {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Docker-Content-Digest", digest.String())
		_, _ = w.Write(body)
		return true
	}
}

// TestPullPathCachedCostsNothing: a second lookup of the same digest asks
// the registry for no blob and no manifest; a failure is remembered too,
// for the not-found TTL.
func TestPullPathCachedCostsNothing(t *testing.T) {
	f := newPathFixture(t)
	r := newTestResolver(t)
	image := f.tr.Host + "/team/multi:v1"
	if err := walkPath(t, r, image, nil, amd64, arm64); err != nil {
		t.Fatal(err)
	}
	if n := f.tr.Count(http.MethodHead, "/blobs/"); n != 9 {
		t.Errorf("first lookup: %d blob HEADs, want 9 (2 configs, 7 layers)", n)
	}
	f.tr.Reset()
	if err := walkPath(t, r, image, nil, amd64, arm64); err != nil {
		t.Fatal(err)
	}
	if n, m := f.tr.Count("", "/blobs/"), f.tr.Count("", "/manifests/"); n != 0 || m != 0 {
		t.Errorf("second lookup: %d blob and %d manifest requests, want 0 and 0", n, m)
	}

	f.tr.DeleteBlob("team/single", registrytest.LayerDigest(t, f.single, 0))
	single := f.tr.Host + "/team/single:v1"
	for i := range 2 {
		f.tr.Reset()
		if err := walkPath(t, r, single, nil, amd64); ReasonOf(err) != NotFound {
			t.Fatalf("lookup %d: %v, want not-found", i+1, err)
		}
		// The first: Platforms' GET of the config, then a HEAD of each
		// layer, and the GET that confirms the missing one's 404.
		if n, want := f.tr.Count("", "/blobs/"), []int{5, 0}[i]; n != want {
			t.Errorf("lookup %d of the broken image: %d blob requests, want %d", i+1, n, want)
		}
	}
}

// TestPullPathTenantIsolation: a pull path walked with one tenant's
// credential answers nothing for another's, whose credential cannot read
// the blobs (a registry granting per-user access).
func TestPullPathTenantIsolation(t *testing.T) {
	f := newPathFixture(t)
	f.tr.User, f.tr.Pass = "alice", "pw-alice"
	f.tr.SetAuth("basic")
	alice := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw-alice"))
	bob := "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:pw-bob"))
	f.tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != bob {
			return false
		}
		if strings.Contains(r.URL.Path, "/blobs/") {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		r.Header.Set("Authorization", alice) // bob reads manifests as alice does
		return false
	})
	r := newTestResolver(t)
	image := f.tr.Host + "/team/multi:v1"
	kc := func(user string) *Keychain {
		return NewKeychain([]*corev1.Secret{dockerSecret(user, map[string]string{f.tr.Host: user})})
	}
	if err := walkPath(t, r, image, kc("alice"), amd64); err != nil {
		t.Fatalf("alice: %v", err)
	}
	err := walkPath(t, r, image, kc("bob"), amd64)
	if ReasonOf(err) != NotFound {
		t.Fatalf("bob: %v, want not-found (alice's walk must not answer for bob)", err)
	}
}

// TestPullPathAcrossMirrors: as containerd's fetcher, a piece a mirror
// lacks is asked of the next host; it is missing only when every host says
// so, and a mirror that could not be asked leaves the registry's 404 no
// verdict.
func TestPullPathAcrossMirrors(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, mirror, up *registrytest.Registry, img v1.Image)
		want   Reason
	}{
		{name: "both serve it"},
		{name: "the mirror lost a layer, the registry has it",
			break_: func(t *testing.T, mirror, _ *registrytest.Registry, img v1.Image) {
				mirror.DeleteBlob("team/app", registrytest.LayerDigest(t, img, 0))
			}},
		{name: "both lost it",
			break_: func(t *testing.T, mirror, up *registrytest.Registry, img v1.Image) {
				mirror.DeleteBlob("team/app", registrytest.LayerDigest(t, img, 0))
				up.DeleteBlob("team/app", registrytest.LayerDigest(t, img, 0))
			},
			want: NotFound},
		{name: "the mirror fails on blobs, the registry lost it",
			break_: func(t *testing.T, mirror, up *registrytest.Registry, img v1.Image) {
				mirror.SetFault(blobFault(http.StatusBadGateway, ""))
				up.DeleteBlob("team/app", registrytest.LayerDigest(t, img, 0))
			},
			want: Unreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, mirror := registrytest.New(t), registrytest.New(t)
			img := registrytest.LayeredImage(t, "linux", "amd64", 2)
			for _, reg := range []*registrytest.Registry{up, mirror} {
				reg.PushIndex("team/app", "v1", []v1.Image{img}, []v1.Platform{amd64})
			}
			if tc.break_ != nil {
				tc.break_(t, mirror, up, img)
			}
			r := newTestResolver(t, WithMirrors(map[string][]string{up.Host: {mirror.Host}}), WithLookupTimeout(time.Second))
			err := walkPath(t, r, up.Host+"/team/app:v1", nil, amd64)
			if ReasonOf(err) != tc.want {
				t.Errorf("PullPath = %v, want reason %q", err, tc.want)
			}
		})
	}
}

// TestPullPathSkipsForeignLayers: a foreign (non-distributable) layer is
// fetched by containerd from its urls, never from the registry: its
// absence there is no failure.
func TestPullPathSkipsForeignLayers(t *testing.T) {
	tr := registrytest.New(t)
	img := registrytest.LayeredImage(t, "linux", "amd64", 1)
	tr.Push("team/win", "base", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	absent := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	m.Layers = append(m.Layers,
		v1.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Digest: absent, Size: 1},
		v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: absent, Size: 1, URLs: []string{"https://example.com/layer"}})
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tr.RawManifest("team/win", "v1", string(m.MediaType), body)
	r := newTestResolver(t)
	if err := walkPath(t, r, tr.Host+"/team/win:v1", nil, amd64); err != nil {
		t.Errorf("PullPath = %v, want nil (foreign layers are not the registry's)", err)
	}
	if n := tr.Count("", "/blobs/"+absent.String()); n != 0 {
		t.Errorf("asked the registry %d times for a foreign layer, want 0", n)
	}
}

// TestPullPathBackgroundAsksAgain: the audit's lookups (WithBudget) skip
// the cached walks, so a layer deleted after admission is found at the
// next pass, not when the cached answer expires.
func TestPullPathBackgroundAsksAgain(t *testing.T) {
	f := newPathFixture(t)
	r := newTestResolver(t)
	image := f.tr.Host + "/team/multi:v1"
	if err := walkPath(t, r, image, nil, amd64); err != nil {
		t.Fatal(err)
	}
	f.tr.DeleteBlob("team/multi", registrytest.LayerDigest(t, f.amd, 0))
	ctx := WithBudget(context.Background(), nopBudget{})
	img, err := r.Resolve(ctx, image, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PullPath(ctx, img, []v1.Platform{amd64}); ReasonOf(err) != NotFound {
		t.Errorf("background PullPath after the layer was deleted = %v, want not-found", err)
	}
}

type nopBudget struct{}

func (nopBudget) Spend(string) {}

// TestPullPathLayersBounded: a manifest listing more layers than any image
// has costs at most maxLayers blob requests, and still names a missing one.
func TestPullPathLayersBounded(t *testing.T) {
	tr := registrytest.New(t)
	img := registrytest.LayeredImage(t, "linux", "amd64", 1)
	tr.Push("team/many", "base", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	for i := range 300 {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: m.Layers[0].MediaType, Size: 1,
			Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}})
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tr.RawManifest("team/many", "v1", string(m.MediaType), body)
	r := newTestResolver(t, WithLookupTimeout(10*time.Second))
	err = walkPath(t, r, tr.Host+"/team/many:v1", nil, amd64)
	if e := mustFail(t, err); e.Reason != NotFound || !strings.Contains(e.Message, "layer 2 of 301 of linux/amd64") {
		t.Errorf("PullPath = %v, want layer 2 of 301 named missing", err)
	}
	if n := tr.Count(http.MethodHead, "/blobs/"); n > maxLayers {
		t.Errorf("%d blob HEADs, want at most %d", n, maxLayers)
	}
}

// TestPullPathConfigReadElsewhere: the platform cache is shared by digest
// (content-addressed), but that one registry served a single manifest's
// config says nothing of another: the same digest in a registry that lost
// its config fails every pull there, whoever looked the digest up first.
func TestPullPathConfigReadElsewhere(t *testing.T) {
	x, y := registrytest.New(t), registrytest.New(t)
	img := registrytest.LayeredImage(t, "linux", "amd64", 2)
	x.Push("team/a", "v1", img)
	y.Push("team/b", "v1", img)
	y.DeleteBlob("team/b", registrytest.ConfigDigest(t, img))
	r := newTestResolver(t)
	if err := walkPath(t, r, x.Host+"/team/a:v1", nil, amd64); err != nil {
		t.Fatalf("the healthy registry: %v", err)
	}
	err := walkPath(t, r, y.Host+"/team/b:v1", nil, amd64)
	if e := mustFail(t, err); e.Reason != NotFound || !strings.Contains(e.Message, "config of linux/amd64") {
		t.Errorf("the registry without the config = %v; want not-found naming the config", err)
	}
}
