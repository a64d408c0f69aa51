package registry

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestDigestServedOnlyAsBlob: containerd asks /blobs/<digest> when every
// host answered 404 for /manifests/<digest> (a legacy registry). A manifest
// served there is "cannot verify", never a denial; a digest that is no
// manifest (Docker's image ID, the config's digest, written as the
// image's) stays not-found, as does a digest served nowhere.
func TestDigestServedOnlyAsBlob(t *testing.T) {
	tr := registrytest.New(t)
	want := tr.Image("team/api", "v1", "linux", "amd64")
	ref, err := name.ParseReference(tr.Host+"/team/api@"+want.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	// The legacy registry: no manifest by digest, the manifest's bytes
	// under /blobs/.
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/"+want.String()):
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return true
		case strings.HasSuffix(r.URL.Path, "/blobs/"+want.String()):
			w.Header().Set("Content-Type", "application/octet-stream")
			if r.Method == http.MethodGet {
				_, _ = w.Write(raw)
			}
			return true
		}
		return false
	})
	for _, tc := range []struct {
		name, digest string
		reason       Reason
	}{
		{"the manifest only under /blobs/", want.String(), Unreachable},
		{"the config's digest (an image ID)", cfg.String(), NotFound},
		{"a digest served nowhere", "sha256:" + strings.Repeat("ab", 32), NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestResolver(t)
			_, err := r.Resolve(context.Background(), tr.Host+"/team/api@"+tc.digest, nil)
			if e := mustFail(t, err); e.Reason != tc.reason {
				t.Errorf("%+v, want %s", e, tc.reason)
			}
		})
	}
}

// TestPullCredentialSurvivesAMirror: where a shorthand mirror served the
// tag (asked anonymously), Credential is empty for every tenant, but the
// pull path asks the registry behind it with each tenant's own credential.
// Keys of pull-path answers (policy's shared walks, the audit's pass) use
// PullCredential: a tenant with a pull secret and an anonymous one must not
// share a walk.
func TestPullCredentialSurvivesAMirror(t *testing.T) {
	upstream, mirror := registrytest.New(t), registrytest.New(t)
	upstream.Image("team/api", "v1", "linux", "amd64")
	upstream.SetAuth("basic")
	mirror.Image("team/api", "v1", "linux", "amd64")
	r := newTestResolver(t, WithMirrors(map[string][]string{upstream.Host: {mirror.Host}}))
	withSecret, err := r.Resolve(context.Background(), upstream.Host+"/team/api:v1", NewKeychain([]*corev1.Secret{goodSecret(upstream)}))
	if err != nil {
		t.Fatal(err)
	}
	anonymous, err := r.Resolve(context.Background(), upstream.Host+"/team/api:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if withSecret.Registry != mirror.Host || withSecret.Credential != anonymous.Credential {
		t.Fatalf("the mirror did not serve both alike (%q %q, %q): the test proves nothing", withSecret.Registry, withSecret.Credential, anonymous.Credential)
	}
	if withSecret.PullCredential() == anonymous.PullCredential() {
		t.Errorf("a pull secret's walk and an anonymous one share the key %q", withSecret.PullCredential())
	}
}
