package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubeletconfig "k8s.io/kubelet/config/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// pluginBed is a bin dir with shell-script plugins that record each
// request they get and answer with the file "response" beside them.
type pluginBed struct {
	t   *testing.T
	dir string
}

func newPluginBed(t *testing.T) *pluginBed {
	return &pluginBed{t: t, dir: t.TempDir()}
}

// plugin writes an executable script named name.
func (b *pluginBed) plugin(name, body string) {
	b.t.Helper()
	if err := os.WriteFile(filepath.Join(b.dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		b.t.Fatal(err)
	}
}

// recorder is a plugin that appends its stdin to "requests" and prints
// "response".
func (b *pluginBed) recorder(name string) {
	b.plugin(name, fmt.Sprintf("cat >> %q/requests; echo >> %q/requests; cat %q/response\n", b.dir, b.dir, b.dir))
}

func (b *pluginBed) respond(s string) {
	b.t.Helper()
	if err := os.WriteFile(filepath.Join(b.dir, "response"), []byte(s), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// requests are the requests the recorder got, decoded.
func (b *pluginBed) requests() []map[string]any {
	data, _ := os.ReadFile(filepath.Join(b.dir, "requests"))
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			b.t.Fatalf("request %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// providers loads config (YAML) with the bed's bin dir and clock.
func (b *pluginBed) providers(config string, now func() time.Time) *CredentialProviders {
	b.t.Helper()
	f := filepath.Join(b.t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(config), 0o644); err != nil {
		b.t.Fatal(err)
	}
	ps, err := readProviderConfig(f)
	if err != nil {
		b.t.Fatal(err)
	}
	return newCredentialProviders(ps, b.dir, now, func() []string { return []string{"FROM_NODE=node", "OVERRIDDEN=node"} })
}

func providerConfig(name, match, extra string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: %s
  matchImages: [%q]
  defaultCacheDuration: 10m
  apiVersion: credentialprovider.kubelet.k8s.io/v1
%s`, name, match, extra)
}

func response(cacheKeyType, duration string, auth map[string][2]string) string {
	r := map[string]any{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse", "cacheKeyType": cacheKeyType}
	if duration != "" {
		r["cacheDuration"] = duration
	}
	a := map[string]any{}
	for k, up := range auth {
		a[k] = map[string]string{"username": up[0], "password": up[1]}
	}
	r["auth"] = a
	data, _ := json.Marshal(r)
	return string(data)
}

func TestProviderConfigValidatedAsKubelet(t *testing.T) {
	head := "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"
	ok := "- name: ecr\n  matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]\n  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"
	tok := ok + "  tokenAttributes:\n    serviceAccountTokenAudience: sts.amazonaws.com\n    requireServiceAccount: true\n    cacheType: ServiceAccount\n    requiredServiceAccountAnnotationKeys: [eks.amazonaws.com/ecr-role-arn]\n"
	for _, tc := range []struct {
		name, config, wantErr string
	}{
		{"valid", head + ok, ""},
		{"valid with token attributes", head + tok, ""},
		{"no providers", head, "at least 1 item"},
		{"unknown field", head + ok + "  colour: blue\n", "unknown field"},
		{"wrong kind", strings.Replace(head, "CredentialProviderConfig", "KubeletConfiguration", 1) + ok, "wrong Kind"},
		{"wrong config version", strings.Replace(head, "kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v2", 1) + ok, "want kubelet.config.k8s.io/v1"},
		{"v1beta1 has no tokenAttributes", strings.Replace(head, "/v1\n", "/v1beta1\n", 1) + tok, "tokenAttributes"},
		{"missing defaultCacheDuration", head + strings.Replace(ok, "  defaultCacheDuration: 12h\n", "", 1), "defaultCacheDuration: required"},
		{"negative defaultCacheDuration", head + strings.Replace(ok, "12h", "-1s", 1), "greater than or equal to 0"},
		{"bad request version", head + strings.Replace(ok, "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v9", 1), "apiVersion"},
		{"name with slash", head + strings.Replace(ok, "name: ecr", "name: a/b", 1), "must not contain"},
		{"no matchImages", head + strings.Replace(ok, "[\"*.dkr.ecr.*.amazonaws.com\"]", "[]", 1), "matchImages"},
		{"bad matchImage", head + strings.Replace(ok, "*.dkr.ecr.*.amazonaws.com", "%zz", 1), "not a valid match image"},
		{"duplicate names", head + ok + ok, "duplicate provider name"},
		{"token without cacheType", head + strings.Replace(tok, "    cacheType: ServiceAccount\n", "", 1), "cacheType: required"},
		{"token bad cacheType", head + strings.Replace(tok, "cacheType: ServiceAccount", "cacheType: Pod", 1), "is not ServiceAccount or Token"},
		{"token without audience", head + strings.Replace(tok, "    serviceAccountTokenAudience: sts.amazonaws.com\n", "", 1), "serviceAccountTokenAudience: required"},
		{"token without requireServiceAccount", head + strings.Replace(tok, "    requireServiceAccount: true\n", "", 1), "requireServiceAccount: required"},
		{"required keys need requireServiceAccount", head + strings.Replace(tok, "requireServiceAccount: true", "requireServiceAccount: false", 1), "requireServiceAccount cannot be false"},
		{"key both required and optional", head + tok + "    optionalServiceAccountAnnotationKeys: [eks.amazonaws.com/ecr-role-arn]\n", "both required and optional"},
		{"invalid annotation key", head + strings.Replace(tok, "[eks.amazonaws.com/ecr-role-arn]", "[\"bad key!\"]", 1), "requiredServiceAccountAnnotationKeys"},
		{"token with v1beta1 requests", head + strings.Replace(tok, "apiVersion: credentialprovider.kubelet.k8s.io/v1", "apiVersion: credentialprovider.kubelet.k8s.io/v1beta1", 1), "only supported for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCredentialProviderConfig([]byte(tc.config))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestProviderConfigDirectoryMergedInNameOrder(t *testing.T) {
	dir := t.TempDir()
	for f, name := range map[string]string{"b.yaml": "second", "a.json": "first", "c.txt": "ignored"} {
		cfg := providerConfig(name, "x.io", "")
		if err := os.WriteFile(filepath.Join(dir, f), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := readProviderConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := newCredentialProviders(ps, dir, time.Now, os.Environ).Names()
	if diff := cmp.Diff([]string{"first", "second"}, got); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(filepath.Join(dir, "d.yaml"), []byte(providerConfig("first", "y.io", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readProviderConfig(dir); err == nil || !strings.Contains(err.Error(), "duplicate provider name") {
		t.Errorf("a name in two files: error = %v", err)
	}
}

// TestProviderExecRequestEnvAndAnswer: the request on stdin, the config's
// env after the node's (so it wins), args, and the answer matched against
// the image as the kubelet's keyring does.
func TestProviderExecRequestEnvAndAnswer(t *testing.T) {
	b := newPluginBed(t)
	b.plugin("envy", fmt.Sprintf(`cat >> %q/requests; echo >> %q/requests
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"0s","auth":{"reg.io":{"username":"%%s %%s %%s","password":"p"}}}' "$FROM_NODE" "$OVERRIDDEN" "$1"
`, b.dir, b.dir))
	cp := b.providers(providerConfig("envy", "*.io", "  args: [first-arg]\n  env: [{name: OVERRIDDEN, value: config}]\n"), time.Now)
	creds, outs := cp.Lookup(context.Background(), "reg.io/team/api", PodIdentity{}, 10*time.Second)
	if len(creds) != 1 || creds[0].Username != "node config first-arg" || creds[0].Source != "credential provider envy" || creds[0].Key != "reg.io" {
		t.Fatalf("credentials = %+v, outcomes %+v", creds, outs)
	}
	want := []map[string]any{{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": "reg.io/team/api"}}
	if diff := cmp.Diff(want, b.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if creds, _ := cp.Lookup(context.Background(), "other.com/x", PodIdentity{}, time.Second); len(creds) != 0 || len(b.requests()) != 1 {
		t.Errorf("an image matchImages does not match ran the plugin or got %+v", creds)
	}
}

// TestProviderCacheKeys: one run per cache key and duration, as the
// kubelet caches: Image, Registry and Global keys, cacheDuration 0 not
// cached, the config's default when the plugin names none, expiry.
func TestProviderCacheKeys(t *testing.T) {
	auth := map[string][2]string{"*.io": {"u", "p"}}
	images := []string{"a.io/x", "a.io/x", "a.io/y", "b.io/z"}
	for _, tc := range []struct {
		name, keyType, duration string
		defaultCache            string
		runs                    int
	}{
		{"image", "Image", "1h", "10m", 3},
		{"registry", "Registry", "1h", "10m", 2},
		{"global", "Global", "1h", "10m", 1},
		{"zero duration is not cached", "Global", "0s", "10m", 4},
		{"default duration", "Global", "", "10m", 1},
		{"default duration zero", "Global", "", "0s", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newPluginBed(t)
			b.recorder("p")
			b.respond(response(tc.keyType, tc.duration, auth))
			cfg := strings.Replace(providerConfig("p", "*.io", ""), "10m", tc.defaultCache, 1)
			cp := b.providers(cfg, time.Now)
			for _, img := range images {
				if creds, outs := cp.Lookup(context.Background(), img, PodIdentity{}, 10*time.Second); len(creds) != 1 {
					t.Fatalf("%s: credentials %+v, outcomes %+v", img, creds, outs)
				}
			}
			if n := len(b.requests()); n != tc.runs {
				t.Errorf("plugin ran %d times for %v, want %d", n, images, tc.runs)
			}
		})
	}
	t.Run("expiry", func(t *testing.T) {
		b := newPluginBed(t)
		b.recorder("p")
		b.respond(response("Global", "1m", auth))
		now := time.Unix(1e9, 0)
		cp := b.providers(providerConfig("p", "*.io", ""), func() time.Time { return now })
		cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 10*time.Second)
		now = now.Add(59 * time.Second)
		cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 10*time.Second)
		now = now.Add(time.Second)
		cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 10*time.Second)
		if n := len(b.requests()); n != 2 {
			t.Errorf("plugin ran %d times, want 2 (cached for 1m, then asked again)", n)
		}
	})
}

// TestProviderConcurrentLookupsShareOneRun: the kubelet's singleflight.
func TestProviderConcurrentLookupsShareOneRun(t *testing.T) {
	b := newPluginBed(t)
	release := filepath.Join(b.dir, "release")
	b.plugin("slow", fmt.Sprintf("echo run >> %q/runs; while [ ! -e %q ]; do sleep 0.05; done; cat %q/response\n", b.dir, release, b.dir))
	b.respond(response("Image", "0s", map[string][2]string{"a.io": {"u", "p"}}))
	cp := b.providers(providerConfig("slow", "a.io", ""), time.Now)
	var wg sync.WaitGroup
	got := make([]int, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			creds, _ := cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 30*time.Second)
			got[i] = len(creds)
		}()
	}
	for {
		if _, err := os.Stat(filepath.Join(b.dir, "runs")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the other lookups join the run in flight
	os.WriteFile(release, nil, 0o644)
	wg.Wait()
	runs, _ := os.ReadFile(filepath.Join(b.dir, "runs"))
	if n := strings.Count(string(runs), "run"); n != 1 {
		t.Errorf("plugin ran %d times for 8 concurrent lookups, want 1", n)
	}
	if diff := cmp.Diff([]int{1, 1, 1, 1, 1, 1, 1, 1}, got); diff != "" {
		t.Errorf("credentials per lookup (-want +got):\n%s", diff)
	}
}

// TestProviderFailuresCannotVerify: whatever goes wrong with a plugin, the
// image the registry refuses without it is "cannot verify" naming the
// plugin, never a denial and never a crash.
func TestProviderFailuresCannotVerify(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	for _, tc := range []struct {
		name, script string
		mode         os.FileMode
		want         string
	}{
		{"missing", "", 0, "does not exist"},
		{"not executable", "echo {}", 0o644, "cannot be run"},
		{"exits non-zero", "echo boom >&2; exit 3", 0o755, "failed: exit status 3 (boom)"},
		{"garbage", "echo '<html>'", 0o755, "no valid CredentialProviderResponse"},
		{"wrong apiVersion", `echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderResponse","cacheKeyType":"Image"}'`, 0o755, "not the configured"},
		{"wrong kind", `echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Secret","cacheKeyType":"Image"}'`, 0o755, "not CredentialProviderResponse"},
		{"unknown field", `echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","extra":1}'`, 0o755, "unknown or duplicate"},
		{"bad cacheKeyType", `echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Pod"}'`, 0o755, "cacheKeyType"},
		{"endless output", "yes x", 0o755, "printed more than"},
		{"hangs", "exec sleep 60", 0o755, "did not answer within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newPluginBed(t)
			if tc.mode != 0 {
				b.plugin("broken", tc.script)
				os.Chmod(filepath.Join(b.dir, "broken"), tc.mode)
			}
			cp := b.providers(providerConfig("broken", tr.Host, ""), time.Now)
			r := newTestResolver(t, WithCredentialProviders(cp), WithLookupTimeout(300*time.Millisecond))
			_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
			e := mustFail(t, err)
			if e.Reason != Unreachable || e.Flavour != FlavourProvider || !strings.Contains(e.Message, "credential provider broken") || !strings.Contains(e.Message, tc.want) {
				t.Errorf("error = %+v, want cannot verify naming the plugin with %q", e, tc.want)
			}
		})
	}
}

// TestResolveTriesSecretsThenProviders: the kubelet's union keyring, pull
// secrets first; a provider's credentials resolve what the secrets cannot,
// and a provider that returns none for the service account is a refusal
// that names it.
func TestResolveTriesSecretsThenProviders(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1.4.1", "linux", "amd64")
	tr.SetAuth("basic")
	b := newPluginBed(t)
	b.recorder("p")
	cp := b.providers(providerConfig("p", tr.Host, ""), time.Now)
	r := newTestResolver(t, WithCredentialProviders(cp))
	stale := NewKeychain([]*corev1.Secret{dockerSecret("stale", map[string]string{tr.Host: "old"})})

	b.respond(response("Image", "0s", map[string][2]string{tr.Host: {tr.User, tr.Pass}}))
	img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1.4.1", stale)
	if err != nil {
		t.Fatal(err)
	}
	wantTried := []string{fmt.Sprintf("%s/stale (key %q)", dockerSecret("stale", nil).Namespace, tr.Host), fmt.Sprintf("credential provider p (key %q)", tr.Host)}
	if diff := cmp.Diff(wantTried, img.Tried); diff != "" || !strings.HasPrefix(img.Credential, "credential provider p") {
		t.Errorf("credential %q, tried (-want +got):\n%s", img.Credential, diff)
	}
	if len(img.Providers) != 1 || img.Providers[0].Credentials != 1 {
		t.Errorf("the resolved image's provider outcomes %+v, want p's with its one credential", img.Providers)
	}
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v1.4.2", stale)
	if e := mustFail(t, err); e.Reason != NotFound || len(e.Suggestions) == 0 || e.Suggestions[0] != "v1.4.1" {
		t.Errorf("missing tag with the provider's credentials: %+v", e)
	}

	b.respond(response("Image", "0s", map[string][2]string{"elsewhere.io": {"u", "p"}}))
	_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v1.4.1", nil)
	e := mustFail(t, err)
	if e.Reason != Unauthorized || len(e.Providers) != 1 || e.Providers[0].Note() != "credential provider p returned no credentials for this image" {
		t.Errorf("provider with nothing for the image: %+v", e)
	}
}

// TestProviderServiceAccountTokens: KEP-4412 as the kubelet 1.36 does it:
// the token for the configured audience and the selected annotations go to
// the plugin; a missing required annotation skips it (cannot verify here);
// no way to get a token (offline) is cannot verify; answers are cached per
// service account (namespace, name, UID, annotations) or per token.
func TestProviderServiceAccountTokens(t *testing.T) {
	attrs := func(cacheType string) string {
		return "  tokenAttributes:\n    serviceAccountTokenAudience: registry.example\n    requireServiceAccount: true\n    cacheType: " + cacheType +
			"\n    requiredServiceAccountAnnotationKeys: [example.com/role]\n    optionalServiceAccountAnnotationKeys: [example.com/region, example.com/absent]\n"
	}
	accounts := map[string]*corev1.ServiceAccount{
		"api":     {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api", UID: types.UID("uid-api"), Annotations: map[string]string{"example.com/role": "puller", "example.com/region": "eu", "other": "x"}}},
		"default": {ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "default", UID: types.UID("uid-default")}},
	}
	var tokens []string
	id := func(sa string, online bool) PodIdentity {
		id := PodIdentity{Namespace: "shop", ServiceAccount: sa, GetServiceAccount: func(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
			return accounts[name], nil
		}}
		if online {
			id.Token = func(_ context.Context, sa *corev1.ServiceAccount, aud string) (string, error) {
				tok := fmt.Sprintf("token-%s-%s-%d", sa.Name, aud, len(tokens))
				tokens = append(tokens, tok)
				return tok, nil
			}
		}
		return id
	}
	b := newPluginBed(t)
	b.recorder("p")
	b.respond(response("Registry", "1h", map[string][2]string{"a.io": {"u", "p"}}))
	cp := b.providers(providerConfig("p", "a.io", attrs("ServiceAccount")), time.Now)

	creds, outs := cp.Lookup(context.Background(), "a.io/x", id("api", true), 10*time.Second)
	if len(creds) != 1 || creds[0].Source != "credential provider p for service account shop/api" {
		t.Fatalf("credentials %+v, outcomes %+v", creds, outs)
	}
	want := []map[string]any{{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": "a.io/x",
		"serviceAccountToken":       "token-api-registry.example-0",
		"serviceAccountAnnotations": map[string]any{"example.com/role": "puller", "example.com/region": "eu"}}}
	if diff := cmp.Diff(want, b.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	cp.Lookup(context.Background(), "a.io/y", id("api", true), 10*time.Second)
	if n := len(b.requests()); n != 1 {
		t.Errorf("cacheType ServiceAccount: plugin ran %d times for one account and registry, want 1", n)
	}

	_, outs = cp.Lookup(context.Background(), "a.io/x", id("default", true), 10*time.Second)
	if len(outs) != 1 || !strings.Contains(outs[0].Problem, "lacks the required annotation example.com/role") || len(b.requests()) != 1 {
		t.Errorf("missing required annotation: outcomes %+v, %d runs", outs, len(b.requests()))
	}
	_, outs = cp.Lookup(context.Background(), "a.io/x", id("api", false), 10*time.Second)
	if len(outs) != 1 || !strings.Contains(outs[0].Problem, "no API server was asked (checked offline)") {
		t.Errorf("offline: outcomes %+v", outs)
	}

	b2 := newPluginBed(t)
	b2.recorder("p")
	b2.respond(response("Registry", "1h", map[string][2]string{"a.io": {"u", "p"}}))
	byToken := b2.providers(providerConfig("p", "a.io", attrs("Token")), time.Now)
	byToken.Lookup(context.Background(), "a.io/x", id("api", true), 10*time.Second)
	byToken.Lookup(context.Background(), "a.io/y", id("api", true), 10*time.Second)
	if n := len(b2.requests()); n != 2 {
		t.Errorf("cacheType Token: plugin ran %d times for two tokens, want 2", n)
	}

	b.respond(response("Registry", "1h", map[string][2]string{"a.io": {"u", "token-api-registry.example-9"}}))
	tokens = make([]string, 9)
	_, outs = newCredentialProviders(mustProviders(t, providerConfig("p", "a.io", attrs("ServiceAccount"))), b.dir, time.Now, os.Environ).
		Lookup(context.Background(), "a.io/x", id("api", true), 10*time.Second)
	if len(outs) != 1 || !strings.Contains(outs[0].Problem, "service account token as the password") {
		t.Errorf("echoed token: outcomes %+v", outs)
	}
}

func mustProviders(t *testing.T, config string) []kubeletconfigProvider {
	t.Helper()
	ps, err := decodeProviderConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

type kubeletconfigProvider = kubeletconfig.CredentialProvider

// TestProviderHangingChildrenKilled: a plugin that is a script waiting on
// a child leaves no process behind when the lookup deadline stops it.
func TestProviderHangingChildrenKilled(t *testing.T) {
	b := newPluginBed(t)
	pidFile := filepath.Join(b.dir, "child.pid")
	b.plugin("waits", fmt.Sprintf("sleep 60 &\necho $! > %q\nwait\n", pidFile))
	cp := b.providers(providerConfig("waits", "a.io", ""), time.Now)
	_, outs := cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 300*time.Millisecond)
	if len(outs) != 1 || !strings.Contains(outs[0].Problem, "did not answer within 300ms") {
		t.Fatalf("outcomes %+v", outs)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 { // SIGKILL is delivered at once; reaping by init may lag
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the plugin's child %s still runs after the lookup deadline", strings.TrimSpace(string(pid)))
}

// BenchmarkProviderLookup: what a provider costs a lookup, answered from
// its cache and by running the plugin (a shell script) every time.
func BenchmarkProviderLookup(b *testing.B) {
	for _, tc := range []struct{ name, duration string }{{"cached", "1h"}, {"exec", "0s"}} {
		b.Run(tc.name, func(b *testing.B) {
			bed := &pluginBed{t: &testing.T{}, dir: b.TempDir()}
			bed.plugin("p", fmt.Sprintf("cat >/dev/null; cat %q/response\n", bed.dir))
			bed.respond(response("Registry", tc.duration, map[string][2]string{"a.io": {"u", "p"}}))
			f := filepath.Join(b.TempDir(), "config.yaml")
			if err := os.WriteFile(f, []byte(providerConfig("p", "a.io", "")), 0o644); err != nil {
				b.Fatal(err)
			}
			ps, err := readProviderConfig(f)
			if err != nil {
				b.Fatal(err)
			}
			cp := newCredentialProviders(ps, bed.dir, time.Now, os.Environ)
			b.ReportAllocs()
			for b.Loop() {
				if creds, outs := cp.Lookup(context.Background(), "a.io/x", PodIdentity{}, 10*time.Second); len(creds) != 1 {
					b.Fatalf("credentials %+v, outcomes %+v", creds, outs)
				}
			}
		})
	}
}
