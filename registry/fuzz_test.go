package registry

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzKeychain feeds arbitrary pull-secret bytes and image names through the
// secret parser and the kubelet matcher: no panic, and a secret either
// contributes credentials or is reported, never silently dropped.
func FuzzKeychain(f *testing.F) {
	f.Add([]byte(`{"auths":{"registry.corp.io:5000":{"auth":"dTpw"}}}`), "registry.corp.io:5000/team/api", true)
	f.Add([]byte(`{"*.corp.io/team":{"username":"u","password":"p"}}`), "a.corp.io/team/x", false)
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"!!"}}}`), "nginx", true)
	f.Add([]byte(`{"auths":{"[::1":{}}}`), "[::1]:5000/x", true)
	f.Add([]byte(`{"auths":{}}`), "nginx", true)
	f.Add([]byte(`{}`), "nginx", false)
	f.Add([]byte(`null`), "nginx", true)
	f.Add([]byte(`{"auths":{"http://[::1":{"auth":"dTpw"}}}`), "nginx", true)
	f.Fuzz(func(t *testing.T, data []byte, image string, jsonType bool) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}}
		if jsonType {
			s.Type, s.Data = corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: data}
		} else {
			s.Type, s.Data = corev1.SecretTypeDockercfg, map[string][]byte{corev1.DockerConfigKey: data}
		}
		kc := NewKeychain([]*corev1.Secret{s})
		contributes := len(kc.Sources()["ns/s"]) > 0
		reported := len(kc.Problems()) == 1 && kc.Problems()[0].Secret == "ns/s"
		if contributes == reported {
			t.Fatalf("secret %q: contributes %v (%v), reported %v (%+v): want exactly one", data, contributes, kc.Sources(), reported, kc.Problems())
		}
		for _, c := range kc.Lookup(image) {
			if c.Source != "ns/s" || !slices.Contains(kc.Sources()["ns/s"], c.Key) {
				t.Fatalf("credential from nowhere: %+v", c)
			}
		}
	})
}

// FuzzClassify feeds arbitrary image references and registry error responses
// through reference parsing and classification: every failure gets a known
// reason, and the registry's words come out printable, one line and short.
func FuzzClassify(f *testing.F) {
	f.Add("registry.corp.io/team/api:v1.4.2", 404, []byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
	f.Add("nginx", 401, []byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[1]}]}`))
	f.Add("UPPER:case", 429, []byte("toomanyrequests\x1b[31m"))
	f.Add("a@sha256:00", 503, []byte(strings.Repeat("x", 70000)))
	known := map[Reason]bool{NotFound: true, Unauthorized: true, InvalidReference: true, Unreachable: true, RateLimited: true}
	f.Fuzz(func(t *testing.T, image string, status int, body []byte) {
		p, err := parseImage(image)
		if err != nil {
			if r := ReasonOf(err); r != InvalidReference && (r != Unreachable || err.(*Error).Flavour != FlavourUnsupported) {
				t.Fatalf("parse failure classified %q", ReasonOf(err))
			}
			checkMessage(t, err.(*Error).Message)
		} else if p.repo == "" || p.name == "" {
			t.Fatalf("parsed %q to %+v", image, p)
		}
		if status < 100 || status > 999 {
			return
		}
		u, _ := url.Parse("https://registry.example/v2/x/manifests/y")
		resp := &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body)), Request: &http.Request{Method: "GET", URL: u}}
		cerr := transport.CheckError(resp, http.StatusOK)
		if (cerr == nil) != (status == http.StatusOK) {
			t.Fatalf("status %d: CheckError = %v", status, cerr)
		}
		e := classify(cerr, image, "registry.example")
		if !known[e.Reason] {
			t.Fatalf("unknown reason %q", e.Reason)
		}
		checkMessage(t, e.Message)
	})
}

func checkMessage(t *testing.T, m string) {
	t.Helper()
	if len(m) > maxMessage+len("…") {
		t.Fatalf("message of %d bytes", len(m))
	}
	for _, r := range m {
		if !unicode.IsPrint(r) {
			t.Fatalf("unprintable %q in %q", r, m)
		}
	}
}

// FuzzChallenge feeds arbitrary WWW-Authenticate values through the
// challenge parser: no panic, only realm, service and scope kept, each at
// most maxChallengeParam bytes, an over-long one makes the challenge
// unusable rather than cut, and what scopeGuard writes back of a challenge
// reads as the original did.
func FuzzChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`)
	f.Add(`Basic realm="test"`)
	f.Add(`Negotiate, Bearer realm=x`)
	f.Add(`bearer realm="a\"b\\c", error="insufficient_scope"`)
	f.Add(`Bearer realm="unterminated`)
	f.Add(`Bearer service="` + strings.Repeat("s", 2000) + `"`)
	f.Fuzz(func(t *testing.T, v string) {
		scheme, params, ok := parseChallenge(v)
		if scheme != strings.ToLower(scheme) {
			t.Fatalf("scheme %q not lower-cased", scheme)
		}
		for k, p := range params {
			if !slices.Contains(challengeParams, k) || len(p) > maxChallengeParam {
				t.Fatalf("kept %q of %d bytes", k, len(p))
			}
		}
		if ok && scheme != "" {
			// What scopeGuard passes the bearer transport reads as v did.
			w := formatChallenge(scheme, params)
			if s2, p2, ok2 := parseChallenge(w); s2 != scheme || !maps.Equal(p2, params) || !ok2 {
				t.Fatalf("%q written back as %q reads as %q %v %v", v, w, s2, p2, ok2)
			}
		}
		h := http.Header{"Www-Authenticate": {v}}
		ch, found := challengeOf(h, false)
		usable := scheme == "bearer" || scheme == "basic"
		if found != usable || (ch != nil) != (usable && ok) {
			t.Fatalf("%q: found %v, challenge %+v; parsed scheme %q ok %v", v, found, ch, scheme, ok)
		}
	})
}
