package registrytest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// LayerDigest is the digest of img's layer i: the blob a test deletes or
// breaks.
func LayerDigest(t testing.TB, img v1.Image, i int) v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[i].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ConfigDigest is the digest of img's config blob.
func ConfigDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ManifestDigest is the digest of img's manifest.
func ManifestDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
