package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// manifestAccept is what containerd's resolver sends (remotes/docker
// resolver.go): the four schema 2/OCI types and "*/*". Without "*/*" a
// registry that negotiates by Accept answers 404 for a schema 1 manifest
// the nodes are served, and pullsafe would deny it as not found.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"*/*",
}, ", ")

// endpoint is one host serving a repository: a mirror or the registry itself.
type endpoint struct {
	host   string // host[:port] as contacted
	reg    name.Registry
	repo   string // repository path on that host
	mirror bool
	// Set for hosts from a hosts folder (hostsdir_resolve.go): the kubelet's
	// credential goes to every host, the path replaces /v2, the headers are
	// sent, and caps say which lookups the host may serve.
	withCreds bool
	path      string
	header    http.Header
	caps      int
}

func (r *Resolver) endpoints(repo name.Repository) []endpoint {
	if hosts, ok := r.o.hostsDir.Hosts(repo.RegistryStr()); ok {
		return r.dirEndpoints(repo, hosts)
	}
	regName := canonicalHost(repo.RegistryStr())
	var out []endpoint
	for _, m := range r.o.mirrors[regName] {
		ep := r.endpoint(canonicalHostForDial(m), repo.RepositoryStr())
		ep.mirror = true
		out = append(out, ep)
	}
	return append(out, r.endpoint(repo.RegistryStr(), repo.RepositoryStr()))
}

// canonicalHostForDial strips a scheme but keeps Docker Hub's real host.
func canonicalHostForDial(h string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
}

func (r *Resolver) endpoint(host, repo string) endpoint {
	var opts []name.Option
	if r.o.insecure[canonicalHost(host)] {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		// Only a config error can get here; the registry will fail to answer.
		reg, _ = name.NewRegistry("invalid.invalid")
	}
	return endpoint{host: reg.RegistryStr(), reg: reg, repo: repo, caps: capAll}
}

// authenticator gives go-containerregistry one credential: pullsafe picks
// which one (the kubelet's rules), ggcr only speaks the token protocols.
func authenticator(c Credential) authn.Authenticator {
	if c.Username == "" && c.Password == "" {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password})
}

// authed is an authenticated transport for one repository on one endpoint
// with one credential, and the challenge it follows. It is cached so the
// ping and the bearer token are paid once and connections are reused.
type authed struct {
	http.RoundTripper
	challenge *transport.Challenge
}

// authedFor is transportFor, also saying whether the transport was built
// before this lookup (from the cache, or from a cached ping).
func (r *Resolver) authedFor(ctx context.Context, ep endpoint, c Credential) (authed, bool, error) {
	key := ep.host + ep.path + "/" + ep.repo + "|" + c.Fingerprint()
	if t, ok := r.auth.Get(key); ok {
		if a := t.(authed); !a.worn() {
			return a, true, nil
		}
		// It learned more scopes than a registry names for one repository
		// (scopeguard.go): start again from pullsafe's own.
		r.auth.Remove(key)
	}
	scope := ep.reg.Repo(ep.repo).Scope(transport.PullScope)
	// r.base holds the guard (HTTPS unless insecure, capped bodies, pullsafe's
	// User-Agent), so the ping and token requests pass it too.
	_, pinged := r.pings.Get(ep.reg.Scheme() + "://" + ep.reg.RegistryStr())
	t, pr, err := r.authenticate(ctx, ep.reg, authenticator(c), scope)
	if err != nil {
		return authed{}, false, err
	}
	a := authed{RoundTripper: t, challenge: pr}
	r.auth.Add(key, a)
	return a, pinged, nil
}

// renewTransport drops the cached transport for (ep, c) and builds it again
// when the registry's challenge is no longer the one a it was built from;
// false when it is unchanged.
func (r *Resolver) renewTransport(ctx context.Context, ep endpoint, c Credential, a authed) (authed, bool) {
	fresh, changed := r.renewChallenge(ctx, ep.reg, a.challenge)
	if !changed {
		return authed{}, false
	}
	key := ep.host + ep.path + "/" + ep.repo + "|" + c.Fingerprint()
	r.auth.Remove(key)
	t, err := r.fromChallenge(ctx, ep.reg, authenticator(c), ep.reg.Repo(ep.repo).Scope(transport.PullScope), fresh)
	if err != nil {
		return authed{}, false
	}
	renewed := authed{RoundTripper: t, challenge: fresh}
	r.auth.Add(key, renewed)
	return renewed, true
}

func (r *Resolver) client(t http.RoundTripper) *http.Client {
	return &http.Client{Transport: t, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		return nil
	}}
}

// lookupAt resolves ref on one endpoint, unless a window (a 429's back-off
// or a remembered outage) answers for it; what the endpoint then says opens
// or closes the outage windows it is evidence for.
func (r *Resolver) lookupAt(ctx context.Context, ep endpoint, ref name.Reference, c Credential) (*Image, error) {
	if e := r.remembered(ep, c); e != nil {
		return nil, e
	}
	start := time.Now()
	img, err := r.contact(withEndpoint(ctx, ep), ep, ref, c)
	r.settle(ctx, ep, c, err, time.Since(start))
	return img, err
}

// contact asks one endpoint: one HEAD for existence and digest; a GET only
// where the HEAD failed, to read the registry's own words or to serve
// registries that do not implement HEAD.
func (r *Resolver) contact(ctx context.Context, ep endpoint, ref name.Reference, c Credential) (*Image, error) {
	a, reused, err := r.authedFor(ctx, ep, c)
	if refusedCredentials(err) {
		// The realm the host's challenge named (its /v2/ ping's, or one
		// another repository's 401 taught) refused c. That challenge is
		// not this repository's answer: a front routing by path may send
		// it elsewhere. containerd asks the manifest and follows its 401,
		// whose realm's refusal is then the verdict.
		a, reused, err = r.unchallenged(ctx, ep)
	}
	if err != nil {
		return nil, err
	}
	img, err := r.ask(ctx, a, ep, ref, c)
	var ch *challenged
	if errors.As(err, &ch) {
		return r.follow(ctx, ep, ref, c, ch.challenge)
	}
	if reused && ReasonOf(err) == Unauthorized {
		// Refused with a transport built from an earlier challenge: if the
		// registry now authenticates differently (Basic to Bearer, a new
		// realm), containerd would follow its new challenge and pull; only
		// an answer under the current challenge may deny.
		if fresh, ok := r.renewTransport(ctx, ep, c, a); ok {
			return unfollowed(r.ask(ctx, fresh, ep, ref, c))
		}
	}
	return img, err
}

// unchallenged is a transport that sends no credential, on the scheme the
// host's ping settled on: the manifest's 401 then says how to authenticate.
// It is not cached; the transport follow builds is.
func (r *Resolver) unchallenged(ctx context.Context, ep endpoint) (authed, bool, error) {
	pr := &transport.Challenge{Insecure: ep.reg.Scheme() == "http"}
	if cur, ok := r.pings.Peek(ep.reg.Scheme() + "://" + ep.reg.RegistryStr()); ok {
		pr = &transport.Challenge{Insecure: cur.Insecure}
	}
	t, err := r.fromChallenge(ctx, ep.reg, authn.Anonymous, "", pr)
	return authed{RoundTripper: t, challenge: pr}, false, err
}

// challenged is a manifest request's 401 whose challenge is not the one the
// request was sent under: the registry wants another way in (a realm or
// scheme the ping did not name, or no ping answer at all).
type challenged struct {
	challenge *transport.Challenge // nil: too large to follow
}

func (c *challenged) Error() string {
	return "the registry asked for authentication with another challenge"
}

// challengedBy reports a 401 of resp whose challenge differs from used.
func challengedBy(resp *http.Response, used *transport.Challenge) error {
	if resp.StatusCode != http.StatusUnauthorized {
		return nil
	}
	ch, found := challengeOf(resp.Header, used.Insecure)
	if !found || (ch != nil && sameChallenge(ch, used)) {
		return nil
	}
	return &challenged{challenge: ch}
}

// follow answers a challenge the manifest request got, as containerd's
// authorizer does: authenticate as it says and ask once more. The transport
// is cached for the repository and the challenge, without its scope, for
// the host: the next repository there needs no detour.
func (r *Resolver) follow(ctx context.Context, ep endpoint, ref name.Reference, c Credential, ch *transport.Challenge) (*Image, error) {
	a, err := r.authFollowing(ctx, ep, c, ch)
	if err != nil {
		return nil, err
	}
	return unfollowed(r.ask(ctx, a, ep, ref, c))
}

// authFollowing is the transport for (ep, c) that ch, a 401's challenge,
// asks for, cached for the repository; the challenge, without its scope,
// is kept for the host: the next repository there needs no detour.
func (r *Resolver) authFollowing(ctx context.Context, ep endpoint, c Credential, ch *transport.Challenge) (authed, error) {
	if ch == nil {
		return authed{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Registry: ep.host,
			Message: fmt.Sprintf("the registry's challenge has a realm, service or scope longer than the %d bytes pullsafe follows", maxChallengeParam)}
	}
	t, err := r.fromChallenge(ctx, ep.reg, authenticator(c), ep.reg.Repo(ep.repo).Scope(transport.PullScope), ch)
	if err != nil {
		return authed{}, err
	}
	a := authed{RoundTripper: t, challenge: ch}
	r.auth.Add(ep.host+"/"+ep.repo+"|"+c.Fingerprint(), a)
	host := *ch
	host.Parameters = maps.Clone(ch.Parameters)
	delete(host.Parameters, "scope")
	r.pings.Add(ep.reg.Scheme()+"://"+ep.reg.RegistryStr(), &host)
	return a, nil
}

// unfollowed ends a lookup that met yet another challenge after following
// one: the registry moves its way in with every answer, which proves no
// refusal.
func unfollowed(img *Image, err error) (*Image, error) {
	var ch *challenged
	if errors.As(err, &ch) {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: "the registry answered the credentials its own challenge asked for with another challenge"}
	}
	return img, err
}

// ask sends the HEAD (and, where it fails, the GET) with transport a.
func (r *Resolver) ask(ctx context.Context, a authed, ep endpoint, ref name.Reference, c Credential) (*Image, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", ep.reg.Scheme(), ep.host, ep.repo, ref.Identifier())
	resp, err := r.do(ctx, a, http.MethodHead, u, manifestAccept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := challengedBy(resp, a.challenge); err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return nil, r.rateLimited(ep, c, resp, &Error{Reason: RateLimited, Registry: ep.host, Status: resp.StatusCode,
			Message: "toomanyrequests: the registry's pull quota is spent"})
	}
	var digest v1.Hash
	if resp.StatusCode == http.StatusOK {
		digest, err = v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	}
	if resp.StatusCode != http.StatusOK || err != nil {
		return r.lookupByGet(ctx, a, ep, ref, c, u)
	}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != digest.String() {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourDigestMismatch, Registry: ep.host,
			Message: fmt.Sprintf("registry answered digest %s for %s", digest, d.DigestStr())}
	}
	return r.image(ref, ep, c, digest, resp.Header.Get("Content-Type")), nil
}

// lookupByGet follows a failed HEAD. A 200 means the registry does not
// implement HEAD: the body is hashed for the digest. Any other status is
// classified with the error body the HEAD could not carry.
func (r *Resolver) lookupByGet(ctx context.Context, a authed, ep endpoint, ref name.Reference, c Credential, u string) (*Image, error) {
	resp, err := r.do(ctx, a, http.MethodGet, u, manifestAccept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := challengedBy(resp, a.challenge); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := classify(transport.CheckError(resp, http.StatusOK), ref.String(), ep.host)
		if resp.StatusCode == http.StatusTooManyRequests {
			return nil, r.rateLimited(ep, c, resp, e)
		}
		return nil, r.explain(ctx, a, ep, ref, e)
	}
	_, digest, err := r.readVerified(resp, "")
	if err != nil {
		return nil, err
	}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != digest.String() {
		return nil, &Error{Reason: Unreachable, Flavour: FlavourDigestMismatch, Registry: ep.host,
			Message: fmt.Sprintf("manifest bytes hash to %s, not %s", digest, d.DigestStr())}
	}
	return r.image(ref, ep, c, digest, resp.Header.Get("Content-Type")), nil
}

func (r *Resolver) image(ref name.Reference, ep endpoint, c Credential, digest v1.Hash, mediaType string) *Image {
	img := &Image{Repository: kubeletName(ref.Context()), Digest: digest, MediaType: mediaType, Registry: ep.host,
		ref: ref, ep: ep, cred: c, digest: digest.Algorithm + ":" + digest.Hex}
	if c.Source != "" {
		img.Credential = c.String()
	}
	if tag, ok := ref.(name.Tag); ok {
		img.Tag = tag.TagStr()
	}
	return img
}

// explain adds to a not-found answer what does exist: whether the repository
// exists at all and, for a missing tag, the nearest tags.
func (r *Resolver) explain(ctx context.Context, t http.RoundTripper, ep endpoint, ref name.Reference, e *Error) *Error {
	if e.Reason != NotFound {
		return e
	}
	if _, ok := ref.(name.Digest); ok {
		e.Flavour = FlavourDigest
		return e
	}
	tags, err := r.listTags(ctx, t, ep)
	switch {
	case err != nil && ReasonOf(err) == NotFound:
		e.Flavour = FlavourRepository
	case err == nil && len(tags) == 0:
		e.Flavour = FlavourRepository
	case err == nil:
		e.Suggestions = nearest(ctx, ref.Identifier(), tags, maxSuggestions)
	}
	return e
}

func (r *Resolver) do(ctx context.Context, t http.RoundTripper, method, u, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", r.o.userAgent)
	return r.client(t).Do(req)
}

// readVerified reads at most maxManifest bytes and hashes them; with a
// non-empty want, the hash must equal it. Registries are untrusted: a body
// that is too large or does not match its digest is refused.
func (r *Resolver) readVerified(resp *http.Response, want string) ([]byte, v1.Hash, error) {
	if resp.ContentLength > r.o.maxManifest {
		return nil, v1.Hash{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("manifest of %d bytes is larger than the %d allowed", resp.ContentLength, r.o.maxManifest)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.o.maxManifest+1))
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if int64(len(body)) > r.o.maxManifest {
		return nil, v1.Hash{}, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("manifest larger than the %d bytes allowed", r.o.maxManifest)}
	}
	sum := sha256.Sum256(body)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if want != "" && h.String() != want {
		return nil, v1.Hash{}, &Error{Reason: Unreachable, Flavour: FlavourDigestMismatch,
			Message: fmt.Sprintf("content hashes to %s, not %s", h, want)}
	}
	return body, h, nil
}
