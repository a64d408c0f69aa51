package registrytest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// LayeredImage is a random image of n small layers whose config says os/arch.
func LayeredImage(t testing.TB, os, arch string, n int) v1.Image {
	t.Helper()
	img, err := random.Image(32, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// Push pushes img to repo:tag and returns its digest.
func (tr *Registry) Push(repo, tag string, img v1.Image) v1.Hash {
	tr.t.Helper()
	if err := remote.Write(tr.seedTag(repo, tag), img); err != nil {
		tr.t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// PushIndex pushes an index of imgs, imgs[i] with platforms[i], to
// repo:tag and returns its digest.
func (tr *Registry) PushIndex(repo, tag string, imgs []v1.Image, platforms []v1.Platform) v1.Hash {
	tr.t.Helper()
	var idx v1.ImageIndex = empty.Index
	for i, img := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platforms[i]}})
	}
	if err := remote.WriteIndex(tr.seedTag(repo, tag), idx); err != nil {
		tr.t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// DeleteBlob deletes a blob from the registry, as a garbage collection or
// a pull-through cache losing it would.
func (tr *Registry) DeleteBlob(repo string, d v1.Hash) {
	tr.t.Helper()
	req, err := http.NewRequest(http.MethodDelete, tr.seed.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		tr.t.Fatal(err)
	}
	resp, err := tr.seed.Client().Do(req)
	if err != nil {
		tr.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		tr.t.Fatalf("deleting blob %s: %s", d, resp.Status)
	}
}

func (tr *Registry) seedTag(repo, tag string) name.Tag {
	ref, err := name.NewTag(strings.TrimPrefix(tr.seed.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		tr.t.Fatal(err)
	}
	return ref
}
