// Package registry resolves image references the way a node would pull them:
// with the kubelet's credential matching, containerd-style mirrors, insecure
// registries and CA bundles, and answers classified into pullsafe's rule ids.
// It knows nothing of admission.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"
)

// Image is what the registry said about a reference that resolved.
type Image struct {
	// Repository is the image name as the kubelet matches credentials:
	// "docker.io/library/nginx", "registry.corp.io:5000/team/api".
	Repository string
	Tag        string  // empty for a digest-only reference
	Digest     v1.Hash // what the registry serves: the index digest for multi-arch images
	MediaType  string
	// Registry is the host that answered: a mirror's host where one was used.
	Registry string
	// Credential is the source of the credential that worked ("ns/name (key
	// ...)"), empty for an anonymous pull.
	Credential string
	// Tried lists every credential tried before one worked, in order.
	Tried []string
	// Providers are the credential providers that matched the image and
	// what each gave (credprovider.go), as on Error.
	Providers []ProviderOutcome

	ref  name.Reference
	ep   endpoint
	cred Credential
	// chosen is the credential the kubelet's keychain chose: cred is
	// anonymous where a mirror answered, and the registry after it is
	// asked with chosen (PullPath).
	chosen Credential
	// digest is Digest's "algorithm:hex", made once when the answer is
	// cached: every review of a cached image keys its platforms, its pull
	// path and its pin by it.
	digest string
}

// DigestString is Digest.String() ("sha256:…"), without building it again
// for each review of a cached answer. It is Digest's text even where a
// caller changed Digest after the lookup.
func (i *Image) DigestString() string {
	d, alg := i.digest, i.Digest.Algorithm
	if len(d) == len(alg)+1+len(i.Digest.Hex) && d[:len(alg)] == alg && d[len(alg)] == ':' && d[len(alg)+1:] == i.Digest.Hex {
		return d
	}
	return alg + ":" + i.Digest.Hex
}

// PullCredential identifies the credential the kubelet's keychain chose
// for this image (its fingerprint, "anonymous" for none), whoever answered:
// Credential is empty where a shorthand mirror served the tag, yet the
// pull path asks the registry behind it with this one. Keys of answers that
// depend on what a credential may read use it, never Credential.
func (i *Image) PullCredential() string { return i.chosen.Fingerprint() }

// Pinned returns repository:tag@digest, or repository@digest when keepTag is
// false or the reference had no tag. The digest is exactly the one resolved.
func (i *Image) Pinned(keepTag bool) string {
	if keepTag && i.Tag != "" {
		return i.Repository + ":" + i.Tag + "@" + i.Digest.String()
	}
	return i.Repository + "@" + i.Digest.String()
}

// Resolver looks images up. It is safe for concurrent use; build one per
// process so connections, tokens, cached answers and rate-limit windows are
// shared.
type Resolver struct {
	o         *options
	retired   *atomic.Bool // set by CloseIdleConnections: its caches are emptied, not evicted
	base      http.RoundTripper
	pool      http.RoundTripper // base's connection pools, for CloseIdleConnections
	metrics   *metrics
	tags      *ttlCache[string, *Image]
	digests   *ttlCache[string, *Image]
	negative  *ttlCache[string, *Error]
	platforms *platformCache
	paths     *ttlCache[string, struct{}] // pull paths walked without a failure (pullpath.go)
	auth      *ttlCache[string, http.RoundTripper]
	refs      *ttlCache[string, parsed]
	pings     *ttlCache[string, *transport.Challenge]
	flights   singleflight.Group
	// windows are the 429 back-offs and remembered outages (windows.go),
	// in one struct so a resolver replacing this one can keep them.
	windows *windows
}

// NewResolver builds a Resolver; see the With* options for defaults.
func NewResolver(opts ...Option) (*Resolver, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o)
	if err != nil {
		return nil, fmt.Errorf("registering registry metrics: %w", err)
	}
	base := o.base
	if base == nil {
		base = newBaseTransport(o)
	}
	retired := new(atomic.Bool)
	evicted := func(string, any) {
		if !retired.Load() { // emptying a replaced resolver evicts nothing that was in use
			m.cacheEvent("eviction")
		}
	}
	r := &Resolver{
		retired:  retired,
		o:        o,
		base:     containedTransport{next: endpointRequests{next: newGuard(o, connTraced{next: instrumented{next: budgeted{next: base}, m: m}})}},
		pool:     base,
		metrics:  m,
		tags:     newTTLCache(o.cacheSize, func(k string, v *Image) { evicted(k, v) }, o.tagTTL),
		digests:  newTTLCache(o.cacheSize, func(k string, v *Image) { evicted(k, v) }, o.digestTTL),
		negative: newTTLCache(o.cacheSize, func(k string, v *Error) { evicted(k, v) }, o.notFoundTTL),
		// Content addressed by digest, but bounded in bytes and expiring:
		// every image a user names would otherwise stay forever.
		platforms: newPlatformCache(o.platformEntries, o.platformBytes, o.platformTTL, o.now),
		paths:     newTTLCache[string, struct{}](o.cacheSize, nil, o.digestTTL),
		auth:      newTTLCache[string, http.RoundTripper](1024, nil, o.transportTTL),
		pings:     newTTLCache[string, *transport.Challenge](1024, nil, o.transportTTL),
		windows:   newWindows(o.now, o.outageWindow),
		refs:      newTTLCache[string, parsed](o.cacheSize, nil, 0),
	}
	return r, nil
}

// CloseIdleConnections closes the keep-alive connections no lookup is
// using. A resolver replaced by a config reload is otherwise only dropped:
// its idle connections (a socket and two goroutines each) would stay until
// the idle timeout, 90s, and pile up under frequent reloads.
//
// It also empties the resolver's caches, so a replaced resolver that
// something still points at holds no answers, credentials or transports;
// reviews still running on it only miss the cache. Its caches start no
// goroutines (ttlCache): nothing else of it outlives its last use.
func (r *Resolver) CloseIdleConnections() {
	if c, ok := r.pool.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	r.retired.Store(true)
	r.tags.Purge()
	r.digests.Purge()
	r.negative.Purge()
	r.paths.Purge()
	r.auth.Purge()
	r.pings.Purge()
	r.refs.Purge()
}

// Resolve looks image up with the credentials the kubelet would use from kc
// (nil: anonymous). Like the kubelet, it tries every matching credential in
// turn until one works, and never falls back to anonymous once one matched.
// Failures are *Error. The Image may be a cached answer shared with other
// callers: it is read, never modified.
func (r *Resolver) Resolve(ctx context.Context, image string, kc *Keychain) (*Image, error) {
	p, err := r.parse(image)
	if err != nil {
		return nil, err
	}
	ref := p.ref
	if memoryOnly(ctx) && r.o.providers.matchesAny(p.repo) {
		return nil, ErrNotInMemory
	}
	creds, outcomes := PullCredentials(ctx, p.repo, kc, r.o.providers, r.o.lookupTimeout)
	if len(creds) == 0 {
		creds = []Credential{{}}
	}
	var (
		tried []string
		best  *Error
	)
	for _, c := range creds {
		if c.Source != "" {
			tried = append(tried, c.String())
		}
		img, err := r.cached(ctx, p, c)
		if err == nil && tried == nil && outcomes == nil {
			// Nothing of this caller's to add: the cached answer itself
			// (its key names the credential, so every caller that gets it
			// would get the same copy). Every container of every review
			// of an anonymous image asks.
			return img, nil
		}
		if err == nil {
			out := *img
			out.Tried, out.Providers = tried, outcomes
			return &out, nil
		}
		if errors.Is(err, ErrNotInMemory) {
			return nil, err
		}
		e := withImage(classify(err, image, ref.Context().RegistryStr()), image)
		if e.Transient() {
			// The next credential would meet the same outage or quota; and
			// this one's answer is unknown, so an earlier credential's
			// refusal is no verdict: the kubelet's retry, once the registry
			// answers, pulls with this one.
			best = e
			break
		}
		if best == nil || rank(e) > rank(best) {
			best = e
		}
	}
	best.Tried = tried
	return nil, withProviders(best, outcomes)
}

// parsed is an image reference with the strings every lookup needs,
// memoised: a busy cluster names the same few hundred images all day.
type parsed struct {
	ref  name.Reference
	name string // canonical, e.g. index.docker.io/library/nginx:latest
	repo string // as the kubelet matches credentials
	// anonymous is the cache key of an anonymous lookup (cacheKey), made
	// once with the parse: most images are pulled without credentials.
	anonymous string
}

// cacheKey is the key of (reference, credential) in the answer caches.
func (p parsed) cacheKey(c Credential) string {
	if fp := c.Fingerprint(); fp != "anonymous" || p.anonymous == "" {
		return p.name + "|" + fp
	}
	return p.anonymous
}

func (r *Resolver) parse(image string) (parsed, error) {
	if p, ok := r.refs.Get(image); ok {
		return p, nil
	}
	p, err := parseImage(image)
	if err != nil {
		return p, err
	}
	r.refs.Add(image, p)
	return p, nil
}

// rank orders failures across credentials: a credential that got as far as
// "no such tag" proves more than one that was refused.
func rank(e *Error) int {
	switch e.Reason {
	case NotFound:
		return 3
	case Unauthorized:
		return 2
	case RateLimited:
		return 1
	}
	return 0
}

// withImage copies a (possibly cached, shared) error for one caller.
func withImage(e *Error, image string) *Error {
	c := *e
	c.Image = image
	c.Tried = nil
	return &c
}

// cached answers from the caches, or joins or starts one lookup for
// (reference, credential). The lookup runs under its own deadline so that a
// caller giving up does not fail the others waiting on it; the caller still
// returns when its own context ends.
func (r *Resolver) cached(ctx context.Context, p parsed, c Credential) (*Image, error) {
	ref := p.ref
	key := p.cacheKey(c)
	// A background lookup asks the registry again: it checks whether the
	// answer admission cached (a digest for 24h) still holds.
	if !background(ctx) {
		if img, ok := r.answer(ref, key); ok {
			r.hit(ctx)
			return img, nil
		}
		if e, ok := r.negative.Get(key); ok {
			r.hit(ctx)
			return nil, e
		}
	}
	if memoryOnly(ctx) {
		return nil, ErrNotInMemory
	}
	r.metrics.cacheEvent("miss")
	ch := r.flights.DoChan(key, contained(p.name, ref.Context().RegistryStr(), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.lookupTimeout)
		defer cancel()
		img, err := r.lookup(lctx, ref, c)
		r.store(ref, key, img, err)
		if _, isTag := ref.(name.Tag); isTag && err == nil {
			r.seedDigest(img, c.Fingerprint())
		}
		return img, err
	}))
	select {
	case res := <-ch:
		if res.Shared {
			r.metrics.cacheEvent("coalesced")
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Image), nil
	case <-ctx.Done():
		return nil, &Error{Reason: Unreachable, Flavour: FlavourTimeout, Registry: ref.Context().RegistryStr(),
			Message: "no answer before the admission deadline", Err: ctx.Err()}
	}
}

func (r *Resolver) answer(ref name.Reference, key string) (*Image, bool) {
	if _, ok := ref.(name.Digest); ok {
		return r.digests.Get(key)
	}
	return r.tags.Get(key)
}

// store caches definitive answers only: transient failures must be retried
// by the next admission, not remembered.
func (r *Resolver) store(ref name.Reference, key string, img *Image, err error) {
	if err != nil {
		if e := classify(err, "", ""); e.Reason == NotFound || e.Reason == Unauthorized || e.Reason == InvalidReference {
			r.negative.Add(key, e.cacheable())
		}
		return
	}
	if _, ok := ref.(name.Digest); ok {
		r.digests.Add(key, img)
		return
	}
	r.tags.Add(key, img)
}

// seedDigest caches a tag's answer under its digest too: the mutating
// webhook pins repo:tag@digest and the validating webhook looks exactly that
// up a moment later; the registry has just said it exists. The key is the
// one a later Resolve of the pinned reference computes (same parser, same
// credential fingerprint), so both spellings (with and without the tag) hit.
func (r *Resolver) seedDigest(img *Image, fingerprint string) {
	p, err := r.parse(img.Pinned(false))
	if err != nil {
		return
	}
	d := *img
	d.Tag, d.ref = "", p.ref
	r.digests.Add(p.name+"|"+fingerprint, &d)
}

// lookup tries each endpoint in order, mirrors first, as containerd's
// resolver does with its hosts: any failure of a mirror (its 404 included:
// it has not cached the image, or does not serve this repository) moves on
// to the next host. The verdict is the registry's own; a mirror's failure
// never becomes a denial. A mirror pullsafe could not verify (it wants
// credentials the nodes may hold in hosts.toml, or did not answer) may
// serve the nodes: the registry's own not-found or unauthorized then proves
// nothing, and the mirror's "cannot verify" is the answer. With a hosts
// folder the endpoints are its hosts, those whose capabilities allow the
// lookup (usable); when its server replaces the registry, the last host's
// not-found is the verdict.
func (r *Resolver) lookup(ctx context.Context, ref name.Reference, c Credential) (*Image, error) {
	eps, err := usable(r.endpoints(ref.Context()), ref)
	if err != nil {
		return nil, err
	}
	var mirrorUnknown *Error
	for i, ep := range eps {
		img, err := r.lookupAt(ctx, ep, ref, credentialFor(ep, c))
		if err == nil {
			img.chosen = c
			return img, nil
		}
		e := mirrorRefused(classify(err, ref.String(), ep.host), ep)
		if e.Reason == RateLimited && e.RetryAfter == 0 {
			// A 429 from the /v2/ ping or a token endpoint comes through
			// go-containerregistry without its headers: the default
			// back-off, so the registry is still left alone.
			e = r.rateLimited(ep, credentialFor(ep, c), nil, e)
		}
		if ep.mirror && mirrorUnknown == nil && (e.Reason == Unreachable || e.Reason == RateLimited) {
			mirrorUnknown = e
		}
		if i == len(eps)-1 {
			if mirrorUnknown != nil && (e.Reason == NotFound || e.Reason == Unauthorized) {
				return nil, mirrorUnknown
			}
			if b := r.servedAsBlob(ctx, eps, ref, c, e); b != nil {
				return nil, b
			}
			return nil, e
		}
		if ctx.Err() != nil {
			return nil, notAsked(e, eps[len(eps)-1], ctx.Err())
		}
	}
	return nil, errors.New("no endpoint") // endpoints always ends with the registry
}

// notAsked is the answer when the deadline ended the lookup at a mirror,
// before the registry itself was asked: cannot verify, whatever the mirror
// said.
func notAsked(last *Error, registry endpoint, err error) *Error {
	if last.Transient() {
		return last
	}
	return &Error{Reason: Unreachable, Flavour: FlavourTimeout, Registry: registry.host, Err: err,
		Message: "no answer from the registry before the lookup deadline (mirrors tried first)"}
}

// credentialFor keeps credentials on the host they are for. The kubelet
// picks them for the image's registry; a mirror is asked anonymously, as
// pull-through caches are (they hold their own upstream credentials). A
// Docker Hub password has no business reaching a mirror. The hosts of a
// hosts folder are the exception: the nodes' containerd sends them the
// credential (dirEndpoints).
func credentialFor(ep endpoint, c Credential) Credential {
	if ep.mirror && !ep.withCreds {
		return Credential{}
	}
	return c
}

// mirrorRefused turns a mirror's refusal into "cannot verify": nodes may
// hold credentials for it in containerd's own configuration, which pullsafe
// cannot see, so it must not cause a denial.
func mirrorRefused(e *Error, ep endpoint) *Error {
	if !ep.mirror || e.Reason != Unauthorized {
		return e
	}
	c := *e
	c.Reason, c.Flavour = Unreachable, FlavourMirrorAuth
	c.Message = "mirror " + ep.host + " requires credentials pullsafe does not have (" + e.Message + ")"
	return &c
}

// Platforms lists the distinct os/arch/variant/os.version an image offers:
// the entries of its index, or the config of a single manifest. The bytes
// are hashed and compared with the digest; the answer is cached by digest
// (bounded, expiring). An index offering more than maxPlatforms distinct
// platforms is answered with the first maxPlatforms and an Unreachable
// error of flavour FlavourTooManyPlatforms: the rule cannot tell a node it
// cannot run there, so it must not deny.
func (r *Resolver) Platforms(ctx context.Context, img *Image) ([]v1.Platform, error) {
	key := img.DigestString()
	if s, ok := r.platforms.get(key); ok {
		return s.answer(img)
	}
	if memoryOnly(ctx) {
		return nil, ErrNotInMemory
	}
	ch := r.flights.DoChan("platforms|"+key+"|"+img.cred.Fingerprint(), contained(img.ref.String(), img.ep.host, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.lookupTimeout)
		defer cancel()
		s, err := r.fetchPlatforms(withEndpoint(lctx, img.ep), img)
		if err != nil {
			return nil, classify(err, img.ref.String(), img.ep.host)
		}
		r.platforms.add(key, s)
		return s, nil
	}))
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(platformSet).answer(img)
	case <-ctx.Done():
		return nil, &Error{Reason: Unreachable, Flavour: FlavourTimeout, Image: img.ref.String(), Registry: img.ep.host,
			Message: "no answer before the admission deadline", Err: ctx.Err()}
	}
}

// HasMirror reports whether references to registry (e.g. "docker.io") are
// pulled through a configured mirror.
func (r *Resolver) HasMirror(registry string) bool {
	if hosts, ok := r.o.hostsDir.Hosts(registry); ok {
		for _, h := range hosts {
			if h.Host != "" && canonicalHost(h.Host) != canonicalHost(registry) {
				return true
			}
		}
		return false
	}
	return len(r.o.mirrors[canonicalHost(registry)]) > 0
}
