package registry

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestAcceptAsContainerd: a registry negotiates the manifest by Accept and
// may answer 404 MANIFEST_UNKNOWN when the stored manifest is of a type the
// client did not accept (the distribution spec lets it). containerd's
// resolver accepts the four schema 2/OCI types and "*/*", so it is served a
// schema 1 manifest (containerd 1.x pulls it); pullsafe must be served the
// same, or it denies as not-found an image the nodes pull.
func TestAcceptAsContainerd(t *testing.T) {
	tr := registrytest.New(t)
	const schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	tr.RawManifest("old/app", "v1", schema1, []byte(`{"schemaVersion":1,"name":"old/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`))
	var mu sync.Mutex
	var accepts []string
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		a := r.Header.Get("Accept")
		mu.Lock()
		accepts = append(accepts, r.Method+" "+a)
		mu.Unlock()
		if strings.Contains(a, "*/*") || strings.Contains(a, "distribution.manifest.v1+") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		return true
	})
	r := newTestResolver(t)
	img, err := r.Resolve(context.Background(), tr.Host+"/old/app:v1", nil)
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("Resolve: %v (Accept sent: %q)", err, accepts)
	}
	if img.MediaType != schema1 {
		t.Errorf("media type %q, want %q", img.MediaType, schema1)
	}
}
