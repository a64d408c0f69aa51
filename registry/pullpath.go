package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The pull path is what a node fetches after resolving a reference: for an
// index, the manifest of its platform; then that manifest's config and
// layer blobs. A tag whose layer was deleted (registry GC, a replication
// half done, a pull-through cache that lost a blob) resolves, and every
// pull of it fails with "blob unknown".

// Bounds on what one manifest's pull path may keep and cost. Docker caps
// an image at 125 layers and no runtime pulls thousands; a hostile
// manifest lists 30,000 in 4 MiB. Layers past maxLayers go unchecked.
const (
	maxLayers = 256
	// maxDigest is longer than any digest containerd accepts (sha512: 135).
	maxDigest = 160
	// pathChecksPerLookup bounds one lookup's requests in flight: blob
	// HEADs run in parallel, so a first lookup costs about one round trip
	// more, without a 100-layer image opening 100 connections.
	pathChecksPerLookup = 8
)

// FlavourBlob: NotFound for a manifest, config or layer a node fetches
// after the reference resolved; the message names it.
const FlavourBlob = "blob"

// Media types of layers a registry does not serve (Windows base layers):
// containerd fetches them from their urls, which pullsafe does not follow.
var foreignLayers = []string{
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}

// pathBlobs are the blobs of one manifest a node fetches.
type pathBlobs struct {
	config      string // digest as the manifest wrote it
	imageConfig bool   // false for an OCI artifact's config: not a runnable image
	pathLayers
}

// pathLayers are a manifest's layers: their digests (foreign ones as "",
// never fetched from the registry), at most maxLayers of them.
type pathLayers struct {
	digests []string
	total   int // layers the manifest lists
}

func (b *pathBlobs) size() int64 {
	if b == nil {
		return 0
	}
	n := int64(unsafe.Sizeof(*b)) + int64(len(b.config)) + int64(cap(b.digests))*int64(unsafe.Sizeof(""))
	for _, d := range b.digests {
		n += int64(len(d))
	}
	return n
}

// decodeLayers reads the "layers" array one entry at a time.
func decodeLayers(dec *json.Decoder, l *pathLayers) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err // "layers": null is no layers
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("layers is %v, not an array", tok)
	}
	for dec.More() {
		// The fields as containerd's ocispec.Descriptor types them: what
		// it cannot decode, neither does this.
		var e struct {
			MediaType string   `json:"mediaType"`
			Digest    string   `json:"digest"`
			URLs      []string `json:"urls"`
		}
		if err := dec.Decode(&e); err != nil {
			return err
		}
		l.add(e.MediaType, e.Digest, e.URLs)
	}
	return expectDelim(dec, ']')
}

// add keeps a layer's digest ("" for a foreign one), up to maxLayers.
func (l *pathLayers) add(mediaType, digest string, urls []string) {
	l.total++
	if len(l.digests) == maxLayers {
		return
	}
	if foreign(mediaType, urls) {
		digest = ""
	} else if digest == "" || len(digest) > maxDigest {
		digest = "invalid"
	}
	l.digests = append(l.digests, strings.Clone(digest))
}

// foreign reports a layer containerd fetches from its urls first: a
// non-distributable media type, or urls set.
func foreign(mediaType string, urls []string) bool {
	for _, t := range foreignLayers {
		if strings.EqualFold(mediaType, t) {
			return true
		}
	}
	return len(urls) > 0
}

// digestOf is a descriptor's digest as written, or "invalid" when it is not
// a string of a digest's length: checked (v1.NewHash) before it reaches a URL.
func digestOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" || len(s) > maxDigest {
		return "invalid"
	}
	return strings.Clone(s)
}

// PullPath checks what a node fetches after img resolved: for an index,
// the manifest of each of platforms (entries as Platforms listed them: the
// ones the eligible nodes pull), for a single manifest itself; then each
// manifest's config and layers. Manifests are read (size-capped, their
// bytes hashed and compared with their digest); blobs are asked with HEAD,
// which Docker Hub does not count as a pull, pathChecksPerLookup at once.
//
// Like containerd's fetcher, each piece is asked of every host in order
// (mirrors, then the registry) until one serves it, with the credential
// each host gets (credentialFor). A piece is missing (NotFound, flavour
// FlavourBlob, naming it) only when every host answers 404; a manifest
// whose bytes do not match its digest is NotFound of flavour
// FlavourDigestMismatch (containerd fails the pull: "unexpected commit
// digest"). Anything else (401/403 on a blob, 429, 5xx, a timeout) is
// Unreachable or RateLimited: cannot verify.
//
// The answer is immutable for the digest: success is cached (per
// repository, host and credential: a blob one tenant can read says nothing
// of another's), NotFound like the resolver's other NotFound answers.
// Schema 1 manifests and OCI artifacts are not walked; nor are foreign
// layers, which containerd fetches from their urls.
func (r *Resolver) PullPath(ctx context.Context, img *Image, platforms []v1.Platform) error {
	if img == nil || img.ref == nil || isSchema1(img.MediaType) {
		return nil
	}
	key := pathKey(img.ep, img.chosen, img.DigestString(), platforms)
	if !background(ctx) {
		if _, ok := r.paths.Get(key); ok {
			r.hit(ctx)
			return nil
		}
		if e, ok := r.negative.Get(key); ok {
			r.hit(ctx)
			return withImage(e, img.ref.String())
		}
	}
	if memoryOnly(ctx) {
		return ErrNotInMemory
	}
	r.metrics.cacheEvent("miss")
	ch := r.flights.DoChan(key, contained(img.ref.String(), img.ep.host, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.lookupTimeout)
		defer cancel()
		err := r.walk(lctx, img, platforms)
		switch {
		case err == nil:
			r.paths.Add(key, struct{}{})
		case ReasonOf(err) == NotFound:
			r.negative.Add(key, classify(err, "", "").cacheable())
		}
		return nil, err
	}))
	select {
	case res := <-ch:
		if res.Err != nil {
			return withImage(classify(res.Err, img.ref.String(), img.ep.host), img.ref.String())
		}
		return nil
	case <-ctx.Done():
		return &Error{Reason: Unreachable, Flavour: FlavourTimeout, Image: img.ref.String(), Registry: img.ep.host,
			Message: "no answer before the admission deadline", Err: ctx.Err()}
	}
}

// pathKey names a manifest's pull path, for platforms of it, as one
// credential sees it on the hosts that serve ep's repository.
func pathKey(ep endpoint, c Credential, digest string, platforms []v1.Platform) string {
	var b strings.Builder
	fp := c.Fingerprint()
	b.Grow(len("pullpath|") + len(ep.host) + len(ep.repo) + len(digest) + len(fp) + 3 + 16*len(platforms))
	b.WriteString("pullpath|")
	b.WriteString(ep.host)
	b.WriteByte('/')
	b.WriteString(ep.repo)
	b.WriteByte('@')
	b.WriteString(digest)
	b.WriteByte('|')
	b.WriteString(fp)
	writePlatforms(&b, platforms)
	return b.String()
}

// writePlatforms appends "|os/arch/variant/osversion" for each platform.
func writePlatforms(b *strings.Builder, ps []v1.Platform) {
	for _, p := range ps {
		for i, s := range []string{p.OS, p.Architecture, p.Variant, p.OSVersion} {
			b.WriteByte("|///"[i])
			b.WriteString(s)
		}
	}
}

// configReader names where and as whom fetchPlatforms reads img's config.
func configReader(img *Image) string {
	return img.ep.host + img.ep.path + "/" + img.ep.repo + "|" + img.cred.Fingerprint()
}

func isSchema1(mediaType string) bool {
	mt, _, _ := strings.Cut(mediaType, ";")
	switch strings.TrimSpace(mt) {
	case "application/vnd.docker.distribution.manifest.v1+prettyjws", "application/vnd.docker.distribution.manifest.v1+json":
		return true
	}
	return false
}

// pullHost is one host a node asks for a piece, with the credential it
// sends there.
type pullHost struct {
	ep   endpoint
	cred Credential
}

// pathTarget is one manifest whose blobs a node fetches.
type pathTarget struct {
	label  string // "linux/amd64", or "the image" where unknown
	digest string // the manifest's; empty when blobs are known already
	blobs  *pathBlobs
	// configRead: Platforms has read the config already (a single
	// manifest's): a host serves it, no HEAD needed.
	configRead bool
}

// pathTargets are what a node of each platform fetches below top: the
// single manifest itself, or the index's entry for the platform.
func pathTargets(ctx context.Context, img *Image, top platformSet, cached bool, platforms []v1.Platform) []pathTarget {
	var targets []pathTarget
	if !top.index {
		// A cached single manifest's set states a platform only once its
		// config was read, here only if read where and as this lookup
		// reads it; the audit asks again whatever was cached.
		read := cached && len(top.platforms) > 0 && !background(ctx) && top.readAt == configReader(img)
		targets = append(targets, pathTarget{label: singleLabel(platforms), blobs: top.blobs, configRead: read})
	}
	for _, p := range platforms {
		if i := indexOfPlatform(top, p); top.index && i >= 0 {
			targets = append(targets, pathTarget{label: platformLabel(p), digest: top.children[i]})
		}
	}
	return targets
}

// walk reads the manifests of the targets and checks their blobs.
func (r *Resolver) walk(ctx context.Context, img *Image, platforms []v1.Platform) error {
	// containerd's fetcher (v2.4.2 fetcher.go, Fetch) requires a host with
	// the pull capability, then asks every host of hosts.toml in order for
	// manifests by digest and blobs, whatever its capabilities ("range
	// r.hosts"): a resolve-only host that serves a blob makes the pull work.
	var hosts []pullHost
	pull := false
	for _, ep := range r.endpoints(img.ref.Context()) {
		pull = pull || ep.caps&capPull != 0
		hosts = append(hosts, pullHost{ep: ep, cred: credentialFor(ep, img.chosen)})
	}
	if !pull {
		return nil // the lookup itself refused a registry with no pull host
	}
	top, cached, err := r.topOfPath(ctx, img, hosts)
	if err != nil {
		return err
	}
	targets := pathTargets(ctx, img, top, cached, platforms)
	errs := parallel(len(targets), pathChecksPerLookup, func(i int) error {
		t := &targets[i]
		if t.blobs != nil || t.digest == "" {
			return nil
		}
		if _, ok := r.paths.Get(pathKey(img.ep, img.chosen, t.digest, nil)); ok && !background(ctx) {
			t.digest = "" // walked before, under another index or tag
			return nil
		}
		m, err := r.manifestAcross(ctx, hosts, t.digest, "the "+t.label+" manifest")
		if err == nil && m.set.index {
			return cannotVerify("the "+t.label+" manifest", fmt.Errorf("an index nested in an index is not walked"))
		}
		t.blobs = m.set.blobs
		return err
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if err := r.checkBlobs(ctx, hosts, targets); err != nil {
		return err
	}
	for _, t := range targets {
		if t.digest != "" {
			r.paths.Add(pathKey(img.ep, img.chosen, t.digest, nil), struct{}{})
		}
	}
	return nil
}

// topOfPath is img's manifest as a path: from the platform cache, where
// Platforms left it, or read again (it was not cached when Platforms
// failed, e.g. on a missing config).
func (r *Resolver) topOfPath(ctx context.Context, img *Image, hosts []pullHost) (s platformSet, cached bool, err error) {
	if s, ok := r.platforms.get(img.Digest.String()); ok && (s.index || s.blobs != nil) {
		return s, true, nil
	}
	m, err := r.manifestAcross(ctx, hosts, img.Digest.String(), "the image's manifest")
	return m.set, false, err
}

func indexOfPlatform(s platformSet, p v1.Platform) int {
	for i, q := range s.platforms {
		same := q.OS == p.OS && q.Architecture == p.Architecture && q.Variant == p.Variant && q.OSVersion == p.OSVersion
		if same && i < len(s.children) {
			return i
		}
	}
	return -1
}

// platformLabel is p for a message: registry-chosen words, sanitized.
func platformLabel(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " " + p.OSVersion
	}
	return Sanitize(s, 64)
}

func singleLabel(platforms []v1.Platform) string {
	if len(platforms) == 1 && platforms[0].OS != "" {
		return platformLabel(platforms[0])
	}
	return "the image"
}

// pathBlob is one blob to ask for, and what it is, for messages.
type pathBlob struct {
	digest string
	what   string
}

// checkBlobs asks for every target's config and layers, in parallel, and
// answers with the first missing one in manifest order, else the first
// that could not be checked.
func (r *Resolver) checkBlobs(ctx context.Context, hosts []pullHost, targets []pathTarget) error {
	var blobs []pathBlob
	seen := map[string]bool{}
	add := func(d, what string) {
		if d != "" && !seen[d] {
			seen[d] = true
			blobs = append(blobs, pathBlob{digest: d, what: what})
		}
	}
	for _, t := range targets {
		if t.blobs == nil || !t.blobs.imageConfig {
			continue // no config, or an artifact's: not a runnable image
		}
		if !t.configRead {
			add(t.blobs.config, "config of "+t.label)
		}
		for i, d := range t.blobs.digests {
			add(d, fmt.Sprintf("layer %d of %d of %s", i+1, t.blobs.total, t.label))
		}
	}
	errs := parallel(len(blobs), pathChecksPerLookup, func(i int) error {
		return r.blobAcross(ctx, hosts, blobs[i])
	})
	var unknown error
	for _, err := range errs {
		if ReasonOf(err) == NotFound {
			return err
		}
		if err != nil && unknown == nil {
			unknown = err
		}
	}
	return unknown
}

// parallel runs fn(0..n-1), at most limit at once, and returns their
// errors. A panic in fn is its error: these goroutines are out of reach of
// the lookup's own recover (contained), and must not end the process.
func parallel(n, limit int, fn func(int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, errs[i] = contained("", "", func() (any, error) { return nil, fn(i) })()
		}()
	}
	wg.Wait()
	return errs
}
