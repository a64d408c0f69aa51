//go:build e2e

package e2e

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullsafe/pullsafe/test/bed"
)

// A tag whose layer was deleted from the registry (garbage collection, a
// replication half done) resolves, and every pull of it fails: kubectl
// apply is refused naming the layer, on the real distribution registry.
func TestDeletedLayerIsDeniedNamingIt(t *testing.T) {
	d, err := b.Push(b.Open, "gc/app", "v1", bed.Linux("amd64"), bed.Linux("arm64"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(b.Open.Addr+"/gc/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var layer string
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "amd64" {
			img, err := remote.Image(repo.Digest(m.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			mf, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			layer = mf.Layers[0].Digest.String()
		}
	}
	req, err := http.NewRequest(http.MethodDelete, "http://"+b.Open.Addr+"/v2/gc/app/blobs/"+layer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting the layer: %s", resp.Status)
	}

	out, ok := apply(t, podYAML("team-a", "gc", "app", b.Open.Addr+"/gc/app:v1", podOpts{nodeSelector: "amd64"}))
	if ok {
		t.Fatalf("a tag with a deleted layer was admitted:\n%s", out)
	}
	mustContain(t, out, "[not-found]", "layer 1 of 1 of linux/amd64 ("+layer+") is missing")

	out, ok = apply(t, podYAML("team-a", "gc-arm", "app", b.Open.Addr+"/gc/app:v1", podOpts{nodeSelector: "arm64"}))
	if !ok {
		t.Errorf("arm64 nodes pull the arm64 manifest, whose layers are all there; refused:\n%s", out)
	}
}
