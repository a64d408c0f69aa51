package registry

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// dockerSecret builds a kubernetes.io/dockerconfigjson secret whose auths map
// each key to user:pass (pass defaults to "pw-"+user).
func dockerSecret(name string, auths map[string]string) *corev1.Secret {
	var parts []string
	for k, user := range auths {
		a := base64.StdEncoding.EncodeToString([]byte(user + ":pw-" + user))
		parts = append(parts, fmt.Sprintf("%q:{\"auth\":%q}", k, a))
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{` + strings.Join(parts, ",") + `}}`)},
	}
}

func users(cs []Credential) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Username)
	}
	return out
}

func TestKeychainLookupFollowsKubeletRules(t *testing.T) {
	tests := []struct {
		name  string
		auths map[string]string
		image string
		want  []string
	}{
		{"exact host", map[string]string{"registry.corp.io": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"scheme stripped", map[string]string{"https://registry.corp.io": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"http scheme stripped", map[string]string{"http://registry.corp.io": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"/v2/ suffix stripped", map[string]string{"https://registry.corp.io/v2/": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"/v1/ suffix stripped", map[string]string{"registry.corp.io/v1/": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"port must be equal: key without port", map[string]string{"registry.corp.io": "a"}, "registry.corp.io:5000/team/api", nil},
		{"port must be equal: key with port", map[string]string{"registry.corp.io:5000": "a"}, "registry.corp.io/team/api", nil},
		{"port equal", map[string]string{"registry.corp.io:5000": "a"}, "registry.corp.io:5000/team/api", []string{"a"}},
		{"glob per label", map[string]string{"*.corp.io": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"glob does not span labels", map[string]string{"*.io": "a"}, "registry.corp.io/team/api", nil},
		{"label count must be equal", map[string]string{"corp.io": "a"}, "registry.corp.io/team/api", nil},
		{"glob inside a label", map[string]string{"reg*.corp.io": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"path prefix matches", map[string]string{"registry.corp.io/team": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"path prefix is a string prefix", map[string]string{"registry.corp.io/te": "a"}, "registry.corp.io/team/api", []string{"a"}},
		{"other path does not match", map[string]string{"registry.corp.io/other": "a"}, "registry.corp.io/team/api", nil},
		{"most specific first", map[string]string{"registry.corp.io": "host", "registry.corp.io/team": "team"},
			"registry.corp.io/team/api", []string{"team", "host"}},
		{"docker.io key matches hub images", map[string]string{"docker.io": "a"}, "docker.io/library/nginx", []string{"a"}},
		{"index.docker.io serves hub when nothing matched", map[string]string{"https://index.docker.io/v1/": "hub"},
			"docker.io/library/nginx", []string{"hub"}},
		{"index.docker.io only when nothing else matched", map[string]string{"https://index.docker.io/v1/": "hub", "docker.io/library": "lib"},
			"docker.io/library/nginx", []string{"lib"}},
		{"index.docker.io never serves other registries", map[string]string{"index.docker.io": "hub"}, "quay.io/org/app", nil},
		{"no match is anonymous", map[string]string{"quay.io": "a"}, "registry.corp.io/team/api", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := NewKeychain([]*corev1.Secret{dockerSecret("s", tt.auths)})
			if p := kc.Problems(); len(p) > 0 {
				t.Fatalf("unexpected problems: %v", p)
			}
			if diff := cmp.Diff(tt.want, users(kc.Lookup(tt.image))); diff != "" {
				t.Errorf("Lookup(%q) users (-want +got):\n%s", tt.image, diff)
			}
		})
	}
}

func TestKeychainTriesEveryMatchingSecretInOrder(t *testing.T) {
	kc := NewKeychain([]*corev1.Secret{
		dockerSecret("stale", map[string]string{"registry.corp.io": "old"}),
		dockerSecret("fresh", map[string]string{"registry.corp.io": "new"}),
	})
	got := kc.Lookup("registry.corp.io/team/api")
	if diff := cmp.Diff([]string{"old", "new"}, users(got)); diff != "" {
		t.Fatalf("users (-want +got):\n%s", diff)
	}
	if got[0].Source != "ns/stale" || got[1].Source != "ns/fresh" {
		t.Errorf("sources = %q, %q", got[0].Source, got[1].Source)
	}
}

func TestKeychainUsernamePasswordAndIdentityToken(t *testing.T) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Type:       corev1.SecretTypeDockercfg,
		Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{
			"a.example": {"username": "u", "password": "p"},
			"b.example": {"identitytoken": "tok", "registrytoken": "rt"},
			"c.example": {"auth": "dTpw"}
		}`)},
	}
	kc := NewKeychain([]*corev1.Secret{s})
	if c := kc.Lookup("a.example/x"); len(c) != 1 || c[0].Username != "u" || c[0].Password != "p" {
		t.Errorf("a.example: %+v", c)
	}
	// identitytoken is ignored: the entry is there, with no username/password,
	// so the kubelet sends nothing useful (an anonymous-equivalent credential).
	if c := kc.Lookup("b.example/x"); len(c) != 1 || c[0].Username != "" || c[0].Fingerprint() != "anonymous" {
		t.Errorf("b.example: %+v", c)
	}
	// "dTpw" is unpadded base64 of "u:p".
	if c := kc.Lookup("c.example/x"); len(c) != 1 || c[0].Username != "u" || c[0].Password != "p" {
		t.Errorf("c.example: %+v", c)
	}
}

func TestKeychainReportsBrokenSecrets(t *testing.T) {
	sec := func(name string, typ corev1.SecretType, key, data string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Type: typ,
			Data: map[string][]byte{key: []byte(data)}}
	}
	tests := []struct {
		secret    *corev1.Secret
		reason    string
		failsPull bool
	}{
		{sec("badjson", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":`), "invalid JSON", true},
		{sec("badb64", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":{"r.io":{"auth":"!!!"}}}`), "not valid base64", true},
		{sec("nocolon", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey,
			`{"auths":{"r.io":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("nocolon"))+`"}}}`), "username:password", true},
		{sec("opaque", corev1.SecretTypeOpaque, corev1.DockerConfigJsonKey, `{"auths":{}}`), "kubelet ignores it", false},
		{sec("missing", corev1.SecretTypeDockerConfigJson, "other", `{}`), "missing or empty", false},
		{sec("dockercfg-bad", corev1.SecretTypeDockercfg, corev1.DockerConfigKey, `[]`), "invalid JSON", true},
	}
	for _, tt := range tests {
		t.Run(tt.secret.Name, func(t *testing.T) {
			good := dockerSecret("good", map[string]string{"r.io": "u"})
			kc := NewKeychain([]*corev1.Secret{tt.secret, good})
			p := kc.Problems()
			if len(p) != 1 {
				t.Fatalf("problems = %v, want one", p)
			}
			if p[0].Secret != "ns/"+tt.secret.Name || !strings.Contains(p[0].Reason, tt.reason) || p[0].FailsPull != tt.failsPull {
				t.Errorf("problem = %+v, want reason containing %q, failsPull %v", p[0], tt.reason, tt.failsPull)
			}
			// The usable secret still counts.
			if c := kc.Lookup("r.io/x"); len(c) != 1 || c[0].Source != "ns/good" {
				t.Errorf("good secret lost: %+v", c)
			}
		})
	}
}

func TestKeychainSourcesAndFingerprints(t *testing.T) {
	kc := NewKeychain([]*corev1.Secret{dockerSecret("corp", map[string]string{"https://registry.corp.io/v1/": "u"})})
	if diff := cmp.Diff(map[string][]string{"ns/corp": {"registry.corp.io"}}, kc.Sources()); diff != "" {
		t.Errorf("Sources (-want +got):\n%s", diff)
	}
	a := Credential{Key: "r", Username: "ab", Password: "c"}
	b := Credential{Key: "r", Username: "a", Password: "bc"}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("fingerprints collide across field boundaries")
	}
	if strings.Contains(a.Fingerprint(), "ab") || strings.Contains(a.String(), "ab") {
		t.Error("credential values leak into fingerprint or String")
	}
	var nilKC *Keychain
	if nilKC.Lookup("docker.io/library/nginx") != nil {
		t.Error("nil keychain must be anonymous")
	}
}

func TestKeychainDockerConfig(t *testing.T) {
	kc := &Keychain{}
	if err := kc.AddDockerConfig("~/.docker/config.json", []byte(`{"auths":{"r.io":{"username":"u","password":"p"}}}`)); err != nil {
		t.Fatal(err)
	}
	if c := kc.Lookup("r.io/x"); len(c) != 1 || c[0].Source != "~/.docker/config.json" {
		t.Errorf("got %+v", c)
	}
	if err := kc.AddDockerConfig("broken", []byte(`{`)); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("broken config error = %v", err)
	}
}
