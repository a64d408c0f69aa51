package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestCheckPinNeverPinsAContradictedDigest: the registry's HEAD gives one
// digest, and the bytes it serves for that digest hash to another. Pinning
// it would make every pull by digest fail (or fetch other bytes); check
// --pin leaves the tag as written.
func TestCheckPinNeverPinsAContradictedDigest(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	var lies int
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		digest, byDigest := strings.CutPrefix(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], "sha256:")
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") || !byDigest {
			return false
		}
		lies++
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.Header().Set("Docker-Content-Digest", "sha256:"+digest)
		fmt.Fprint(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		return true
	})
	image := tr.Host + "/team/api:v1"
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop}\nspec:\n  containers:\n  - name: api\n    image: " + image + "\n"
	out, errOut, code := runCheck(t, pod, "-f", "-", "--pin", "--platforms", "linux/amd64")
	if lies == 0 {
		t.Fatalf("the manifest was never fetched by digest: the test proves nothing\n%s%s", out, errOut)
	}
	if strings.Contains(out, "@sha256:") {
		t.Errorf("exit %d: pinned a digest the registry's own bytes contradict:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "image: "+image+"\n") {
		t.Errorf("the image is not written back as it was:\n%s", out)
	}
}
