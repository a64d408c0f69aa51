package registrytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RawManifest pushes body as repo:tag with the given media type, byte for
// byte, and returns its digest: for manifests no client library would
// write (thousands of entries, hostile platform strings). Entries of an
// index must name manifests already pushed (the registry checks).
func (tr *Registry) RawManifest(repo, tag, mediaType string, body []byte) v1.Hash {
	tr.t.Helper()
	req, err := http.NewRequest(http.MethodPut, tr.seed.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(body))
	if err != nil {
		tr.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := tr.seed.Client().Do(req)
	if err != nil {
		tr.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		tr.t.Fatalf("pushing %s:%s: %s", repo, tag, resp.Status)
	}
	sum := sha256.Sum256(body)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// IndexOf is an OCI image index whose every entry points at child (a
// manifest already pushed) with one of platforms: an index as large and as
// strange as a test needs.
func IndexOf(child v1.Descriptor, platforms []v1.Platform) []byte {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}
	for _, p := range platforms {
		d := child
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
	}
	var b strings.Builder
	if err := jsonEncoder(&b).Encode(idx); err != nil {
		panic(err) // a v1.IndexManifest always encodes
	}
	return []byte(b.String())
}

func jsonEncoder(b *strings.Builder) *json.Encoder {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	return enc
}

// ImageDescriptor pushes a random os/arch image as repo:tag and returns its
// descriptor, for IndexOf.
func (tr *Registry) ImageDescriptor(repo, tag, os, arch string) v1.Descriptor {
	tr.t.Helper()
	img := PlatformImage(tr.t, os, arch)
	ref, err := name.NewTag(strings.TrimPrefix(tr.seed.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		tr.t.Fatal(err)
	}
	d, err := partial.Descriptor(img)
	if err != nil {
		tr.t.Fatal(err)
	}
	return *d
}
