package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Bounds on what one image's platform list may keep. No real image offers
// more than a few dozen platforms; a hostile index may list 182,000 entries
// in 4 MiB. A field longer than any label value (63 bytes) can match no
// node whatever follows its first maxPlatformField bytes.
const (
	maxPlatforms     = 64
	maxPlatformField = 128
)

// FlavourTooManyPlatforms: an index offers more distinct platforms than
// pullsafe keeps, so it cannot say which nodes cannot run it.
const FlavourTooManyPlatforms = "too-many-platforms"

// answer is the set as Platforms returns it: a truncated list comes with
// an error, so the rule says "cannot verify" instead of denying.
func (s platformSet) answer(img *Image) ([]v1.Platform, error) {
	if !s.truncated {
		return s.platforms, nil
	}
	return s.platforms, &Error{Reason: Unreachable, Flavour: FlavourTooManyPlatforms, Image: img.ref.String(), Registry: img.ep.host,
		Message: fmt.Sprintf("the index lists more than %d distinct platforms; pullsafe keeps %d and cannot tell which nodes it leaves out", maxPlatforms, maxPlatforms)}
}

// fetchPlatforms GETs the manifest by digest and, for a single manifest, its
// config blob. Both are size-capped and verified against their digests. The
// index is decoded as it streams in, keeping only distinct platforms: its
// entries are never all in memory at once.
func (r *Resolver) fetchPlatforms(ctx context.Context, img *Image) (platformSet, error) {
	t, _, err := r.authedFor(ctx, img.ep, img.cred)
	if refusedCredentials(err) {
		t, _, err = r.unchallenged(ctx, img.ep) // as contact: the manifest's 401 decides
	}
	if err != nil {
		return platformSet{}, err
	}
	base := fmt.Sprintf("%s://%s/v2/%s", img.ep.reg.Scheme(), img.ep.host, img.ep.repo)
	resp, err := r.do(ctx, t, http.MethodGet, base+"/manifests/"+img.Digest.String(), manifestAccept)
	if err != nil {
		return platformSet{}, err
	}
	var ch *challenged
	if errors.As(challengedBy(resp, t.challenge), &ch) {
		// The transport and the host's challenge expired, or were never
		// this repository's (a root that does not challenge): follow the
		// 401 once, as the lookup does.
		resp.Body.Close()
		if t, err = r.authFollowing(ctx, img.ep, img.cred, ch.challenge); err != nil {
			return platformSet{}, err
		}
		if resp, err = r.do(ctx, t, http.MethodGet, base+"/manifests/"+img.Digest.String(), manifestAccept); err != nil {
			return platformSet{}, err
		}
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return platformSet{}, err
	}
	if resp.ContentLength > r.o.maxManifest {
		return platformSet{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("manifest of %d bytes is larger than the %d allowed", resp.ContentLength, r.o.maxManifest)}
	}
	body := newVerifyingReader(resp.Body, r.o.maxManifest)
	m, decodeErr := decodeManifest(body)
	if err := body.verify(img.Digest.String()); err != nil {
		if ctx.Err() != nil {
			return platformSet{}, ctx.Err() // the body was cut by the deadline: a timeout
		}
		return platformSet{}, err // size and digest first: nothing unverified is believed
	}
	if decodeErr != nil {
		return platformSet{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Message: "manifest is not valid JSON"}
	}
	if m.config == nil || !imageConfig(m.config.MediaType) {
		// No config, or an OCI artifact's (an image volume may reference
		// one, KEP-4639): it states no platform, and need not be JSON.
		return m.set, nil
	}
	return r.configPlatform(ctx, t, base, img, m)
}

// configPlatform is the platform a single manifest's config blob states,
// the blob size-capped and verified against its digest.
func (r *Resolver) configPlatform(ctx context.Context, t http.RoundTripper, base string, img *Image, m manifestPlatforms) (platformSet, error) {
	if m.config.Size > r.o.maxManifest {
		return platformSet{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("config blob of %d bytes is larger than the %d allowed", m.config.Size, r.o.maxManifest)}
	}
	cfgBytes, err := r.getVerified(ctx, t, base+"/blobs/"+m.config.Digest.String(), "", m.config.Digest.String())
	if err != nil {
		return platformSet{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgBytes))
	if err != nil {
		return platformSet{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Message: "image config is not valid JSON"}
	}
	s := platformSet{blobs: m.set.blobs, readAt: configReader(img)}
	s.addPlatform(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion})
	return s, nil
}

// imageConfig reports whether a manifest's config is an image's, whose
// os/architecture say where it runs; an unset media type is read as one.
func imageConfig(mediaType types.MediaType) bool {
	switch mediaType {
	case "", types.OCIConfigJSON, types.DockerConfigJSON:
		return true
	}
	return false
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

// addEntry is addPlatform for an index entry, keeping the digest of the
// first entry offering each platform: containerd's matcher sorts entries
// stably, so of equally good ones the first is pulled.
func (s *platformSet) addEntry(p v1.Platform, digest string) {
	if s.addPlatform(p) {
		s.children = append(s.children, strings.Clone(digest))
	}
}

// addPlatform keeps p if it is new, with its fields cut to
// maxPlatformField; past maxPlatforms distinct ones it only notes that
// there were more. It reports whether p was kept.
func (s *platformSet) addPlatform(p v1.Platform) bool {
	p = v1.Platform{OS: cut(p.OS), Architecture: cut(p.Architecture), Variant: cut(p.Variant), OSVersion: cut(p.OSVersion)}
	for _, q := range s.platforms {
		if q.OS == p.OS && q.Architecture == p.Architecture && q.Variant == p.Variant && q.OSVersion == p.OSVersion {
			return false
		}
	}
	if len(s.platforms) == maxPlatforms {
		s.truncated = true
		return false
	}
	// Clone: the strings must not pin the decoder's buffers.
	p = v1.Platform{OS: strings.Clone(p.OS), Architecture: strings.Clone(p.Architecture),
		Variant: strings.Clone(p.Variant), OSVersion: strings.Clone(p.OSVersion)}
	s.platforms = append(s.platforms, p)
	return true
}

func cut(s string) string {
	if len(s) > maxPlatformField {
		return s[:maxPlatformField]
	}
	return s
}

// manifestPlatforms is what decodeManifest keeps of a manifest or index.
// set.blobs is filled in for a manifest with a config (pullpath.go).
type manifestPlatforms struct {
	set    platformSet
	config *v1.Descriptor
}

// decodeManifest reads one JSON object as encoding/json would decode it into
// an OCI manifest or index (keys matched case-insensitively, the last of
// duplicate keys winning, nothing after the object), keeping of an index
// only its distinct platforms. Attestation entries (buildx provenance,
// unknown/unknown) are not platforms; an entry without a platform is the
// empty platform (unknown: containerd would read its config).
func decodeManifest(r io.Reader) (manifestPlatforms, error) {
	var (
		m      manifestPlatforms
		layers pathLayers
	)
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return m, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, err
		}
		key, _ := tok.(string)
		switch {
		case strings.EqualFold(key, "manifests"):
			m.set = platformSet{index: true}
			if err := decodeEntries(dec, &m.set); err != nil {
				return m, err
			}
		case strings.EqualFold(key, "config"):
			m.config = nil
			if err := dec.Decode(&m.config); err != nil {
				return m, err
			}
		case strings.EqualFold(key, "layers"):
			layers = pathLayers{}
			if err := decodeLayers(dec, &layers); err != nil {
				return m, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return m, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return m, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return m, errors.New("data after the manifest's JSON object")
	}
	if m.config != nil && !m.set.index {
		m.set.blobs = &pathBlobs{config: m.config.Digest.String(), imageConfig: imageConfig(m.config.MediaType), pathLayers: layers}
	}
	return m, nil
}

// decodeEntries reads the "manifests" array one entry at a time.
func decodeEntries(dec *json.Decoder, s *platformSet) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		s.index = false // "manifests": null, as encoding/json reads it: no index
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("manifests is %v, not an array", tok)
	}
	for dec.More() {
		var e struct {
			Platform *v1.Platform    `json:"platform"`
			Digest   json.RawMessage `json:"digest"`
		}
		if err := dec.Decode(&e); err != nil {
			return err
		}
		switch {
		case e.Platform == nil:
			// containerd keeps such an entry and reads its config to
			// decide: it may be any platform. Kept as the empty
			// platform, which the rule reads as "unknown".
			s.addEntry(v1.Platform{}, digestOf(e.Digest))
		case e.Platform.OS != "unknown":
			s.addEntry(*e.Platform, digestOf(e.Digest))
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

// verifyingReader hashes and counts what is read through it, up to one
// byte past max.
type verifyingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

func newVerifyingReader(r io.Reader, max int64) *verifyingReader {
	return &verifyingReader{r: io.LimitReader(r, max+1), h: sha256.New(), max: max}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	return n, err
}

// verify reads the rest of the body and checks its size and digest.
func (v *verifyingReader) verify(want string) error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	if v.n > v.max {
		return &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("manifest larger than the %d bytes allowed", v.max)}
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != want {
		return &Error{Reason: Unreachable, Flavour: FlavourDigestMismatch,
			Message: fmt.Sprintf("content hashes to %s, not %s", got, want)}
	}
	return nil
}
