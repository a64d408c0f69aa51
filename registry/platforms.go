package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// fetchPlatforms GETs the manifest by digest and, for a single manifest, its
// config blob. Both are size-capped and verified against their digests.
func (r *Resolver) fetchPlatforms(ctx context.Context, img *Image) ([]v1.Platform, error) {
	t, err := r.transportFor(ctx, img.ep, img.cred)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s://%s/v2/%s", img.ep.reg.Scheme(), img.ep.host, img.ep.repo)
	body, err := r.getVerified(ctx, t, base+"/manifests/"+img.Digest.String(), manifestAccept, img.Digest.String())
	if err != nil {
		return nil, err
	}
	var m struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Platform *v1.Platform `json:"platform"`
		} `json:"manifests"`
		Config *v1.Descriptor `json:"config"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Message: "manifest is not valid JSON"}
	}
	if m.Config == nil {
		var out []v1.Platform
		for _, d := range m.Manifests {
			// Attestation manifests (buildx provenance) claim unknown/unknown.
			if d.Platform != nil && d.Platform.OS != "unknown" {
				out = append(out, *d.Platform)
			}
		}
		return out, nil
	}
	if m.Config.Size > r.o.maxManifest {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("config blob of %d bytes is larger than the %d allowed", m.Config.Size, r.o.maxManifest)}
	}
	cfgBytes, err := r.getVerified(ctx, t, base+"/blobs/"+m.Config.Digest.String(), "", m.Config.Digest.String())
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgBytes))
	if err != nil {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Message: "image config is not valid JSON"}
	}
	return []v1.Platform{{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}}, nil
}

func (r *Resolver) getVerified(ctx context.Context, t http.RoundTripper, u, accept, digest string) ([]byte, error) {
	resp, err := r.do(ctx, t, http.MethodGet, u, accept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, err
	}
	body, _, err := r.readVerified(resp, digest)
	return body, err
}
