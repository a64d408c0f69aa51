package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// A registry that changes how it authenticates while pullsafe holds its
// ping (Basic to Bearer; a token realm moved, the old one refusing) must not
// be judged by the stale challenge: containerd reads the challenge of each
// pull's 401 and would pull, so a cached challenge may not produce a denial.
func TestStaleChallengeIsNotADenial(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string
		change func(tr *registrytest.Registry)
	}{
		{name: "basic to bearer", before: "basic", change: func(tr *registrytest.Registry) { tr.SetAuth("bearer") }},
		{name: "realm moved, the old one refusing", before: "bearer", change: func(tr *registrytest.Registry) {
			good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tr.User+":"+tr.Pass))
			tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case r.URL.Path == "/token2" && r.Header.Get("Authorization") == good:
					fmt.Fprint(w, `{"token":"tok-`+tr.User+`"}`)
					return true
				case r.URL.Path == "/token": // the old realm refuses everyone
					http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"gone"}]}`, http.StatusUnauthorized)
					return true
				case r.Header.Get("Authorization") != "Bearer tok-"+tr.User:
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token2",service="test"`, tr.Server.URL))
					w.WriteHeader(http.StatusUnauthorized)
					return true
				}
				return false
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := registrytest.New(t)
			tr.Image("team/a", "v1", "linux", "amd64")
			tr.Image("team/a", "v2", "linux", "amd64")
			tr.Image("team/b", "v1", "linux", "amd64")
			tr.SetAuth(tc.before)
			r := newTestResolver(t)
			kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
			if _, err := r.Resolve(context.Background(), tr.Host+"/team/a:v1", kc); err != nil {
				t.Fatal(err)
			}
			tc.change(tr)
			for _, image := range []string{"/team/b:v1", "/team/a:v2"} {
				if _, err := r.Resolve(context.Background(), tr.Host+image, kc); err != nil {
					t.Errorf("%s after the registry changed its challenge: %v", image, err)
				}
			}
		})
	}
}

// A stale secret refused, then the good one meeting an outage (or a
// remembered one): the kubelet's pull fails now and succeeds on its retry
// once the registry answers, so pullsafe cannot know. The refusal of the
// stale secret must not become the verdict.
func TestRefusedThenOutageIsNotADenial(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("private/app", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tr.User+":"+tr.Pass))
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == good && r.URL.Path != "/v2/" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{dockerSecret("stale", map[string]string{tr.Host: "mallory"}), goodSecret(tr)})
	for i := range 2 { // the second is answered from the outage window
		_, err := r.Resolve(context.Background(), tr.Host+"/private/app:v1", kc)
		if e := mustFail(t, err); !e.Transient() || len(e.Tried) != 2 {
			t.Errorf("lookup %d: %+v, want cannot verify after trying both", i, e)
		}
	}
}
