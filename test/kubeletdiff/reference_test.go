package kubeletdiff

import (
	"math/rand"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	k8sv1 "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/kubernetes/pkg/util/parsers"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// Pieces of references, tricky on purpose: hosts the kubelet does and does
// not take for a registry, uppercase, ports, IPv6, dots and separators in
// odd places, tags and digests valid and not.
var (
	hostParts = []string{"", "", "docker.io/", "index.docker.io/", "registry.corp.io/", "registry.corp.io:5000/", "localhost/",
		"localhost:5000/", "MyReg/", "REG.io/", "[::1]:5000/", "127.0.0.1:5000/", "registry.corp.io./", "reg_corp.io/", "-reg.io/",
		"team/", "Team/", "a..b/", "reg.io:/", "library/"}
	pathParts = []string{"nginx", "api", "team/api", "a", "a_", "-a", "a__b", "a.b", "a..b", "a-b", "a--b", "a___b", "UPPER",
		"team//api", "x/y/z", "nginx/", "a:b/c", "sha256", strings.Repeat("0", 64)}
	tagParts = []string{"", "", ":v1", ":latest", ":LATEST", ":-bad", ":.bad", ":_ok", ":", ":v1.2.3-rc.1", ":" + strings.Repeat("t", 129)}
	digParts = []string{"", "", "", "@sha256:" + strings.Repeat("a", 64), "@sha256:abc", "@sha512:" + strings.Repeat("b", 128),
		"@SHA256:" + strings.Repeat("a", 64), "@md5:" + strings.Repeat("c", 32)}
)

func pick(rng *rand.Rand, s []string) string { return s[rng.Intn(len(s))] }

// compareReference checks one reference: the same verdict on validity, the
// same repository (what credentials are matched on), tag and digest, and
// the same defaulted imagePullPolicy (and image volume pullPolicy).
func compareReference(t *testing.T, image string) (valid bool) {
	t.Helper()
	repo, tag, digest, kerr := parsers.ParseImageName(image)
	r, err := registry.ParseReference(image)
	if (kerr != nil) != (err != nil) {
		t.Fatalf("%q: kubelet error %v, pullsafe error %v", image, kerr, err)
	}
	if kerr == nil && (r.Name != repo || r.Tag != tag || r.Digest != digest) {
		t.Fatalf("%q: kubelet %q %q %q, pullsafe %q %q %q", image, repo, tag, digest, r.Name, r.Tag, r.Digest)
	}
	// The parts as written give the image back, and only an image with
	// neither tag nor digest gets the kubelet's ":latest"
	// (applyDefaultImageTag): what pins and CRI-O's lookups rely on.
	if kerr == nil {
		back := r.Written
		if !r.TagDefaulted && r.Tag != "" {
			back += ":" + r.Tag
		}
		if r.Digest != "" {
			back += "@" + r.Digest
		}
		if back != image || r.TagDefaulted != (!strings.Contains(image[len(r.Written):], ":") && r.Digest == "") {
			t.Fatalf("%q: written %q, tag %q (defaulted %v), digest %q do not give the image back", image, r.Written, r.Tag, r.TagDefaulted, r.Digest)
		}
	}
	c := corev1.Container{Image: image}
	k8sv1.SetDefaults_Container(&c)
	if got := policy.PullPolicy(policy.Container{Image: image}); got != c.ImagePullPolicy {
		t.Fatalf("%q: the API server defaults imagePullPolicy to %s, pullsafe to %s", image, c.ImagePullPolicy, got)
	}
	// An image volume's pullPolicy is defaulted by its own function
	// (SetDefaults_Volume, behind the ImageVolume gate, GA in 1.36).
	v := corev1.Volume{VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: image}}}
	k8sv1.SetDefaults_Volume(&v)
	if got := policy.PullPolicy(policy.Container{Image: image, Source: policy.SourceVolume}); got != v.Image.PullPolicy {
		t.Fatalf("%q: the API server defaults an image volume's pullPolicy to %q, pullsafe to %s", image, v.Image.PullPolicy, got)
	}
	return kerr == nil
}

// TestReferencesMatchKubelet compares parsing and normalisation with the
// kubelet's own (pkg/util/parsers.ParseImageName) over 20000 generated
// references, and the API server's imagePullPolicy defaulting.
func TestReferencesMatchKubelet(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	valid, short := 0, 0
	for range 20000 {
		image := pick(rng, hostParts) + pick(rng, pathParts) + pick(rng, tagParts) + pick(rng, digParts)
		if compareReference(t, image) {
			valid++
			if !strings.ContainsAny(strings.SplitN(image, "/", 2)[0], ".:") || !strings.Contains(image, "/") {
				short++
			}
		}
	}
	// The generator must exercise both sides and the normalisation of short names.
	if valid < 3000 || valid > 16000 || short < 1000 {
		t.Errorf("%d of 20000 valid, %d short: the generator is too weak", valid, short)
	}
}

// FuzzReferenceMatchesKubelet: for any string, pullsafe's parse and
// normalisation agree with the kubelet's.
func FuzzReferenceMatchesKubelet(f *testing.F) {
	for _, s := range []string{"nginx", "MyReg/app:v1", "registry.io/a..b:v1", "team//api", "-a", "a_", "nginx:-bad", "nginx:.bad",
		"registry.corp.io./x", "index.docker.io/library/nginx:1@sha256:" + strings.Repeat("a", 64), "[::1]:5000/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) { compareReference(t, image) })
}
