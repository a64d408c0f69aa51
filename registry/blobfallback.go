package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
)

// FlavourBlobOnly: a digest no host serves as a manifest but one serves,
// as a blob, bytes that read as a manifest.
const FlavourBlobOnly = "blob-only"

// servedAsBlob is containerd's fallback for legacy registries
// (core/remotes/docker/resolver.go): a digest that every host answered 404
// under /manifests/ is asked again under /blobs/. Where a host serves a
// manifest there, the node may well pull it, so pullsafe's not-found
// becomes "cannot verify". A blob that is no manifest (a config: Docker's
// "image ID" written as the digest, a common slip; a layer) stays
// not-found: there is no image to unpack. nil when the fallback does not
// apply or no host serves a manifest as a blob.
func (r *Resolver) servedAsBlob(ctx context.Context, eps []endpoint, ref name.Reference, c Credential, notFound *Error) *Error {
	d, ok := ref.(name.Digest)
	if !ok || notFound.Reason != NotFound || notFound.Flavour == FlavourNoHosts || notFound.Flavour == FlavourDigestMismatch {
		return nil
	}
	for _, ep := range eps {
		if ctx.Err() != nil {
			return nil
		}
		if r.manifestBlobAt(ctx, pullHost{ep: ep, cred: credentialFor(ep, c)}, d.DigestStr()) {
			return &Error{Reason: Unreachable, Flavour: FlavourBlobOnly, Image: ref.String(), Registry: ep.host,
				Message: "no manifest " + d.DigestStr() + ", but " + ep.host + " serves one as a blob, which containerd falls back to for legacy registries"}
		}
	}
	return nil
}

// manifestBlobAt reports whether h serves digest under /blobs/ as bytes
// that decode as an image manifest or index (size-bounded like manifests).
func (r *Resolver) manifestBlobAt(ctx context.Context, h pullHost, digest string) bool {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", h.ep.reg.Scheme(), h.ep.host, h.ep.repo, digest)
	resp, err := r.askHost(ctx, h, http.MethodGet, u, "")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if ans, _ := r.pieceOf(h, resp); ans != pieceServed || resp.ContentLength > r.o.maxManifest {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.o.maxManifest+1))
	if err != nil || int64(len(b)) > r.o.maxManifest {
		return false
	}
	var m struct {
		SchemaVersion int             `json:"schemaVersion"`
		Layers        json.RawMessage `json:"layers"`
		Manifests     json.RawMessage `json:"manifests"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	return m.SchemaVersion == 2 && (m.Layers != nil || m.Manifests != nil) || m.SchemaVersion == 1 && m.FSLayers != nil
}
