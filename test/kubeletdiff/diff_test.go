package kubeletdiff

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"

	"github.com/pullsafe/pullsafe/registry"
)

var keys = []string{
	"registry.corp.io", "registry.corp.io:5000", "https://registry.corp.io/v2/", "http://registry.corp.io/v1/",
	"*.corp.io", "corp.io", "reg*.corp.io", "registry.corp.io/team", "registry.corp.io/te", "registry.corp.io:5000/team/api",
	"docker.io", "docker.io/library", "index.docker.io", "https://index.docker.io/v1/", "*.docker.io",
	"quay.io", "quay.io/org", "quay.io/org/app", "*.*.io", "localhost:5000", "127.0.0.1:5000", "[::1]:5000",
	"registry.corp.io:*", "https://registry.corp.io:5000/v2/team", "a.b.corp.io", "*.b.corp.io", "*",
}

var images = []string{
	"registry.corp.io/team/api", "registry.corp.io:5000/team/api", "registry.corp.io/other/x",
	"docker.io/library/nginx", "docker.io/bitnami/redis", "quay.io/org/app", "quay.io/org/app2", "quay.io/other/x",
	"localhost:5000/x", "127.0.0.1:5000/x", "a.b.corp.io/x", "[::1]:5000/x", "nginx", "library/nginx",
	"index.docker.io/library/nginx:1.27", "bitnami/redis:7", "quay.io/org/app:v1@sha256:" + strings.Repeat("a", 64),
	"MyReg/app:v1", "localhost/x", "registry.corp.io:5000/team/api:v2",
}

func secret(name string, auths map[string]string) corev1.Secret {
	var parts []string
	for k, user := range auths {
		parts = append(parts, fmt.Sprintf("%q:{\"auth\":%q}", k, base64.StdEncoding.EncodeToString([]byte(user+":pw"))))
	}
	return corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{` + strings.Join(parts, ",") + `}}`)}}
}

// cred is one credential a keyring returned: its user and secret.
type cred struct{ user, secret string }

func kubeletCreds(t *testing.T, ss []corev1.Secret, image string) []cred {
	kr, err := secrets.MakeDockerKeyring(ss, &credentialprovider.BasicDockerKeyring{})
	if err != nil {
		t.Fatal(err)
	}
	found, _ := kr.Lookup(image)
	var out []cred
	for _, c := range found {
		out = append(out, cred{c.Username, c.Source.Secret.Name})
	}
	return out
}

// pullsafeCreds also returns each user's normalised key.
func pullsafeCreds(ss []corev1.Secret, image string) ([]cred, map[string]string) {
	ptrs := make([]*corev1.Secret, len(ss))
	for i := range ss {
		ptrs[i] = &ss[i]
	}
	var out []cred
	keyOf := map[string]string{}
	for _, c := range registry.NewKeychain(ptrs).Lookup(image) {
		out = append(out, cred{c.Username, strings.TrimPrefix(c.Source, "ns/")})
		keyOf[c.Username] = c.Key
	}
	return out, keyOf
}

// TestLookupMatchesKubelet compares credential selection and order on 3000
// random sets of secrets and images built from tricky keys.
func TestLookupMatchesKubelet(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	matched := 0
	for i := range 3000 {
		var ss []corev1.Secret
		user := 0
		for s := range 1 + rng.Intn(3) {
			auths := map[string]string{}
			for range 1 + rng.Intn(4) {
				k := keys[rng.Intn(len(keys))]
				if _, dup := auths[k]; !dup {
					auths[k] = fmt.Sprintf("u%d", user)
					user++
				}
			}
			ss = append(ss, secret(fmt.Sprintf("s%d", s), auths))
		}
		image := images[rng.Intn(len(images))]
		// Each side normalises with its own parser, as each does before
		// matching: the kubelet keyring.Lookup(repoToPull) after
		// parsers.ParseImageName, pullsafe Lookup(Reference.Name).
		repoToPull, _, _, err := parsers.ParseImageName(image)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := registry.ParseReference(image)
		if err != nil {
			t.Fatal(err)
		}
		want := kubeletCreds(t, ss, repoToPull)
		got, keyOf := pullsafeCreds(ss, ref.Name)
		if len(want) > 0 {
			matched++
		}
		if !slices.Equal(groups(want, keyOf), groups(got, keyOf)) {
			t.Fatalf("case %d image %q secrets %v:\nkubelet  %v\npullsafe %v", i, image, dump(ss), want, got)
		}
	}
	if matched < 1000 {
		t.Errorf("only %d of 3000 cases matched any credential: the generator is too weak", matched)
	}
}

// groups renders the sequence as "key/secret:users" runs. Within one run
// (raw keys of one secret that normalise alike) the kubelet's order is its
// map iteration order, random, so users are sorted there; everything else
// is compared in order.
func groups(cs []cred, keyOf map[string]string) []string {
	var out []string
	var run []string
	flush := func(label string) {
		if len(run) > 0 {
			slices.Sort(run)
			out = append(out, label+":"+strings.Join(run, ","))
			run = nil
		}
	}
	label := ""
	for _, c := range cs {
		l := keyOf[c.user] + "/" + c.secret
		if l != label {
			flush(label)
			label = l
		}
		run = append(run, c.user)
	}
	flush(label)
	return out
}

func dump(ss []corev1.Secret) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s.Data[corev1.DockerConfigJsonKey]))
	}
	return out
}

// FuzzSecretParsingMatchesKubelet: for any pull-secret bytes, the kubelet
// fails the pull exactly when pullsafe reports the secret as failing pulls,
// and where both parse, they pick the same credentials.
func FuzzSecretParsingMatchesKubelet(f *testing.F) {
	f.Add([]byte(`{"auths":{"r.io":{"auth":"dTpw"}}}`), true, "r.io/x")
	f.Add([]byte(`{"auths":{"r.io":{"auth":"dTpw","email":5}}}`), true, "r.io/x")
	f.Add([]byte(`{"r.io":{"username":"u","password":"p","identitytoken":"t"}}`), false, "r.io/x")
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"bm9jb2xvbg=="}}}`), true, "docker.io/library/nginx")
	f.Add([]byte(`{"auths":null}`), true, "x.io/y")
	f.Fuzz(func(t *testing.T, data []byte, jsonType bool, image string) {
		s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}}
		if jsonType {
			s.Type, s.Data = corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: data}
		} else {
			s.Type, s.Data = corev1.SecretTypeDockercfg, map[string][]byte{corev1.DockerConfigKey: data}
		}
		_, kerr := secrets.MakeDockerKeyring([]corev1.Secret{s}, &credentialprovider.BasicDockerKeyring{})
		kc := registry.NewKeychain([]*corev1.Secret{&s})
		fails := false
		for _, p := range kc.Problems() {
			fails = fails || p.FailsPull
		}
		if (kerr != nil) != fails {
			t.Fatalf("kubelet error %v, pullsafe problems %+v for %q", kerr, kc.Problems(), data)
		}
		if kerr != nil {
			return
		}
		// As in TestLookupMatchesKubelet: each side matches the name its own
		// parser gives; a reference the kubelet rejects (InvalidImageName)
		// never reaches its keyring, so there is nothing to compare.
		repoToPull, _, _, perr := parsers.ParseImageName(image)
		if perr != nil {
			return
		}
		ref, err := registry.ParseReference(image)
		if err != nil {
			t.Fatalf("the kubelet parses %q, pullsafe does not: %v", image, err)
		}
		want, got := users(kubeletCreds(t, []corev1.Secret{s}, repoToPull)), users(first(pullsafeCreds([]corev1.Secret{s}, ref.Name)))
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Fatalf("image %q secret %q: kubelet %q, pullsafe %q", image, data, want, got)
		}
	})
}

func users(cs []cred) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.user)
	}
	return out
}

func first(cs []cred, _ map[string]string) []cred { return cs }
