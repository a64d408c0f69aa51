package kubeletdiff

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"

	"github.com/pullsafe/pullsafe/registry"
)

// providerCase is one generated set of credential providers (each with
// its plugin's answer), pull secrets and images. Every host carries the
// case's own label: the kubelet's providers are registered process-wide
// and cannot be removed, so an earlier case's providers must never match
// a later case's images.
type providerCase struct {
	label     string
	providers []genProvider
	secrets   []corev1.Secret
	images    []string
}

type genProvider struct {
	name     string
	match    []string
	response map[string]any
	// tokenAttributes, YAML, or "" for a provider without tokens.
	tokenAttributes string
}

func genProviderCase(rng *rand.Rand, i int) providerCase {
	l := fmt.Sprintf("it%d", i)
	pick := func(pool []string, n int) []string {
		var out []string
		for range n {
			if p := pool[rng.Intn(len(pool))]; !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out
	}
	matchPool := []string{"reg." + l + ".io", "*." + l + ".io", "reg." + l + ".io:5000", "reg." + l + ".io/team", "*.reg." + l + ".io",
		"reg." + l + ".io/te", "reg." + l + ".io:5000/team/api", "*.*." + l + ".io"}
	keyPool := append(slices.Clone(matchPool), "*.*.io", "*.io", "reg."+l+".io/team/api", "other.io")
	c := providerCase{label: l, images: pick([]string{"reg." + l + ".io/team/api", "reg." + l + ".io:5000/team/api", "a.reg." + l + ".io/x",
		"other." + l + ".io/team/y", "reg." + l + ".io/other"}, 1+rng.Intn(3))}
	user := 0
	for j := range 1 + rng.Intn(3) {
		auth := map[string]any{}
		for _, k := range pick(keyPool, rng.Intn(4)) {
			auth[k] = map[string]string{"username": fmt.Sprintf("p%d-u%d", j, user), "password": "pw"}
			user++
		}
		resp := map[string]any{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse",
			"cacheKeyType": []string{"Image", "Registry", "Global"}[rng.Intn(3)], "auth": auth}
		if d := []string{"", "0s", "1h"}[rng.Intn(3)]; d != "" {
			resp["cacheDuration"] = d
		}
		p := genProvider{name: fmt.Sprintf("p-%s-%d", l, j), match: pick(matchPool, 1+rng.Intn(2)), response: resp}
		if rng.Intn(2) == 0 {
			p.tokenAttributes = fmt.Sprintf("  tokenAttributes:\n    serviceAccountTokenAudience: aud-%d\n    requireServiceAccount: true\n    cacheType: %s\n    optionalServiceAccountAnnotationKeys: [example.com/region, example.com/none]\n",
				j, []string{"ServiceAccount", "Token"}[rng.Intn(2)])
			if rng.Intn(3) == 0 {
				p.tokenAttributes += "    requiredServiceAccountAnnotationKeys: [example.com/role]\n"
			}
		}
		c.providers = append(c.providers, p)
	}
	for s := range rng.Intn(3) {
		auths := map[string]string{}
		for _, k := range pick(keyPool, 1+rng.Intn(2)) {
			auths[k] = fmt.Sprintf("s%d-u%d", s, user)
			user++
		}
		c.secrets = append(c.secrets, secret(fmt.Sprintf("s%d", s), auths))
	}
	return c
}

// write lays the case out as a node would have it: the plugins in binDir
// (a script that prints its answer), the CredentialProviderConfig.
func (c providerCase) write(t *testing.T) (config, binDir string) {
	t.Helper()
	binDir = t.TempDir()
	var b strings.Builder
	b.WriteString("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n")
	for _, p := range c.providers {
		resp, _ := json.Marshal(p.response)
		bin := filepath.Join(binDir, p.name)
		if err := os.WriteFile(bin+".json", resp, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, []byte("#!/bin/sh\ncat >> \"$0.requests\"\necho >> \"$0.requests\"\ncat \"$0.json\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		match, _ := json.Marshal(p.match)
		fmt.Fprintf(&b, "- name: %s\n  matchImages: %s\n  defaultCacheDuration: 10m\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n%s", p.name, match, p.tokenAttributes)
	}
	config = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return config, binDir
}

// account is the case's service account as both sides read it, and the
// token the API server would issue for it.
func (c providerCase) account(withRole bool) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api", UID: types.UID("uid-" + c.label),
		Annotations: map[string]string{"example.com/region": "eu", "unrelated": "x"}}}
	if withRole {
		sa.Annotations["example.com/role"] = "puller"
	}
	return sa
}

func tokenFor(name, audience string) string { return "token-" + name + "-" + audience }

// requests are what each plugin was sent, in order, decoded.
func requests(t *testing.T, binDir string, c providerCase) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, p := range c.providers {
		data, _ := os.ReadFile(filepath.Join(binDir, p.name+".requests"))
		for _, l := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(l) == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s request %q: %v", p.name, l, err)
			}
			out[p.name] = append(out[p.name], m)
		}
	}
	return out
}

// TestProviderCredentialsMatchKubelet: for generated provider configs
// (with and without KEP-4412 tokenAttributes), plugin answers, pull
// secrets and images, the credentials pullsafe hands to the lookup
// (registry.PullCredentials) are the kubelet's, in the kubelet's order
// (its union keyring of the pull secrets and the plugin providers,
// pkg/kubelet/images/image_manager.go), and every plugin is sent the same
// requests (image, token, annotations), as often (the same cache keys).
func TestProviderCredentialsMatchKubelet(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const cases = 200
	fromProviders, withToken := 0, 0
	for i := range cases {
		c := genProviderCase(rng, i)
		sa := c.account(rng.Intn(2) == 0)
		configK, binK := c.write(t)
		getSA := func(ns, name string) (*corev1.ServiceAccount, error) { return sa, nil }
		getToken := func(ns, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			out := tr.DeepCopy()
			out.Status.Token = tokenFor(name, tr.Spec.Audiences[0])
			return out, nil
		}
		if err := plugin.RegisterCredentialProviderPlugins(configK, binK, getToken, getSA); err != nil {
			t.Fatalf("case %d: the kubelet refuses the config: %v", i, err)
		}
		configP, binP := c.write(t)
		cp, err := registry.LoadCredentialProviders(configP, binP)
		if err != nil {
			t.Fatalf("case %d: pullsafe refuses the config: %v", i, err)
		}
		ptrs := make([]*corev1.Secret, len(c.secrets))
		for j := range c.secrets {
			ptrs[j] = &c.secrets[j]
		}
		kc := registry.NewKeychain(ptrs)
		kc.SetIdentity(registry.PodIdentity{Namespace: "ns", ServiceAccount: "api",
			GetServiceAccount: func(context.Context, string, string) (*corev1.ServiceAccount, error) { return sa, nil },
			Token: func(_ context.Context, sa *corev1.ServiceAccount, audience string) (string, error) {
				return tokenFor(sa.Name, audience), nil
			}})
		for _, image := range c.images {
			kr, err := secrets.MakeDockerKeyring(c.secrets, credentialprovider.UnionDockerKeyring{
				plugin.NewExternalCredentialProviderDockerKeyring("ns", "pod", "uid", "api")})
			if err != nil {
				t.Fatal(err)
			}
			found, _ := kr.Lookup(image)
			var want []string
			for _, a := range found {
				want = append(want, a.Username)
			}
			creds, outcomes := registry.PullCredentials(context.Background(), image, kc, cp, 10*time.Second)
			var got []string
			for _, cr := range creds {
				got = append(got, cr.Username)
				if strings.HasPrefix(cr.Source, "credential provider ") {
					fromProviders++
				}
			}
			for _, o := range outcomes {
				// The kubelet skips such a provider silently; pullsafe says
				// it cannot verify (and contributes nothing either).
				if o.Problem != "" && !strings.Contains(o.Problem, "lacks the required annotation example.com/role") {
					t.Fatalf("case %d image %s: provider problem %s", i, image, o.Problem)
				}
			}
			if !slices.Equal(want, got) {
				t.Fatalf("case %d image %q providers %+v secrets %v:\nkubelet  %v\npullsafe %v", i, image, c.providers, dump(c.secrets), want, got)
			}
		}
		want, got := requests(t, binK, c), requests(t, binP, c)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("case %d: plugin requests (-kubelet +pullsafe):\n%s", i, diff)
		}
		for _, rs := range got {
			for _, r := range rs {
				if r["serviceAccountToken"] != nil {
					withToken++
				}
			}
		}
	}
	if fromProviders < cases/4 || withToken < cases/4 {
		t.Errorf("%d credentials from providers, %d requests with a token in %d cases: the generator is too weak", fromProviders, withToken, cases)
	}
}
