package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// What one host said about one piece of the pull path.
type pieceAnswer int

const (
	pieceServed  pieceAnswer = iota // 200: the node gets it here
	pieceMissing                    // 404 or BLOB_UNKNOWN
	pieceUnknown                    // anything else: no verdict
)

// blobAcross asks each host for the blob, the host that answered the
// manifest first (the likeliest to serve it), until one has it. Missing
// only when every host says so: containerd's fetcher moves on to the next
// host after any failure, a mirror's 404 included.
func (r *Resolver) blobAcross(ctx context.Context, hosts []pullHost, b pathBlob) error {
	if _, err := v1.NewHash(b.digest); err != nil {
		return cannotVerify(b.what, fmt.Errorf("the manifest gives it an invalid digest"))
	}
	var unknown error
	for _, h := range hosts {
		ans, err := r.blobAt(ctx, h, b.digest)
		switch ans {
		case pieceServed:
			return nil
		case pieceUnknown:
			if unknown == nil {
				unknown = err
			}
		}
	}
	if unknown != nil {
		return cannotVerify(b.what+" ("+b.digest+")", unknown)
	}
	return missing(b.what, b.digest, hosts)
}

// manifestAcross reads a manifest by digest from the first host in
// containerd's order that serves it. Its bytes must hash to digest: the
// node reads the same host first and fails on them.
func (r *Resolver) manifestAcross(ctx context.Context, hosts []pullHost, digest, what string) (manifestPlatforms, error) {
	if _, err := v1.NewHash(digest); err != nil {
		return manifestPlatforms{}, cannotVerify(what, fmt.Errorf("the index gives it an invalid digest"))
	}
	var unknown error
	for _, h := range hosts {
		m, ans, err := r.manifestAt(ctx, h, digest)
		var e *Error
		switch {
		case errors.As(err, &e) && e.Flavour == FlavourDigestMismatch:
			// Short enough that the not-found cache (maxMessage) keeps it whole.
			return m, &Error{Reason: NotFound, Flavour: FlavourDigestMismatch, Registry: h.ep.host,
				Message: fmt.Sprintf("%s (%s) does not match its digest", what, digest)}
		case ans == pieceServed:
			return m, nil
		case ans == pieceUnknown && unknown == nil:
			unknown = err
		}
	}
	if unknown != nil {
		return manifestPlatforms{}, cannotVerify(what+" ("+digest+")", unknown)
	}
	return manifestPlatforms{}, missing(what, digest, hosts)
}

func missing(what, digest string, hosts []pullHost) *Error {
	last := hosts[len(hosts)-1].ep.host
	return &Error{Reason: NotFound, Flavour: FlavourBlob, Registry: last, Status: http.StatusNotFound,
		Message: fmt.Sprintf("%s (%s) is missing: blob unknown to %s", what, digest, last)}
}

// cannotVerify is a piece no host could be asked about: never a denial,
// whatever the host said (a 401 on a blob the manifest's credential could
// read is the registry's fault, or a token's scope, not the pod's).
func cannotVerify(what string, err error) *Error {
	e := classify(err, "", "")
	out := &Error{Reason: Unreachable, Flavour: e.Flavour, Registry: e.Registry, Status: e.Status, RetryAfter: e.RetryAfter,
		Message: sanitize("cannot check " + what + ": " + e.Message)}
	if e.Reason == RateLimited {
		out.Reason = RateLimited
	}
	if out.Flavour == "" {
		out.Flavour = FlavourServerError
	}
	return out
}

// blobAt asks one host for a blob with HEAD, or, where the host does not
// implement HEAD on blobs (405, 501), a GET of its first byte. A HEAD's
// 404 is asked again with that GET: containerd's fetcher GETs blobs, and
// fronts (CDNs, proxies, redirect targets signed for GET) exist whose HEAD
// misses what their GET serves. The GET costs a request only for a blob
// the HEAD calls missing.
func (r *Resolver) blobAt(ctx context.Context, h pullHost, digest string) (pieceAnswer, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", h.ep.reg.Scheme(), h.ep.host, h.ep.repo, digest)
	resp, err := r.askHost(ctx, h, http.MethodHead, u, "")
	if err != nil {
		return pieceUnknown, err
	}
	switch resp.StatusCode {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusNotFound:
		resp.Body.Close()
		if resp, err = r.askHost(ctx, h, http.MethodGet, u, "bytes=0-0"); err != nil {
			return pieceUnknown, err
		}
	}
	// Never read: a GET whose range the host ignored streams the whole
	// blob. Closing unread drops the connection instead.
	defer resp.Body.Close()
	return r.pieceOf(h, resp)
}

// manifestAt reads a manifest by digest from one host, hashing its bytes.
func (r *Resolver) manifestAt(ctx context.Context, h pullHost, digest string) (manifestPlatforms, pieceAnswer, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", h.ep.reg.Scheme(), h.ep.host, h.ep.repo, digest)
	resp, err := r.askHost(ctx, h, http.MethodGet, u, "")
	if err != nil {
		return manifestPlatforms{}, pieceUnknown, err
	}
	defer resp.Body.Close()
	if ans, err := r.pieceOf(h, resp); ans != pieceServed {
		return manifestPlatforms{}, ans, err
	}
	if resp.ContentLength > r.o.maxManifest {
		return manifestPlatforms{}, pieceUnknown, &Error{Reason: Unreachable, Flavour: FlavourBadResponse,
			Message: fmt.Sprintf("manifest of %d bytes is larger than the %d allowed", resp.ContentLength, r.o.maxManifest)}
	}
	body := newVerifyingReader(resp.Body, r.o.maxManifest)
	m, decodeErr := decodeManifest(body)
	if err := body.verify(digest); err != nil {
		if ctx.Err() != nil {
			return manifestPlatforms{}, pieceUnknown, ctx.Err() // cut by the deadline: no verdict
		}
		return manifestPlatforms{}, pieceUnknown, err // too large, or not its digest (manifestAcross decides)
	}
	if decodeErr != nil {
		return manifestPlatforms{}, pieceUnknown, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Message: "manifest is not valid JSON"}
	}
	return m, pieceServed, nil
}

// pieceOf reads a host's status for a piece.
func (r *Resolver) pieceOf(h pullHost, resp *http.Response) (pieceAnswer, error) {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
		return pieceServed, nil
	case http.StatusNotFound:
		return pieceMissing, nil
	case http.StatusTooManyRequests:
		return pieceUnknown, r.rateLimited(h.ep, h.cred, resp, &Error{Reason: RateLimited, Registry: h.ep.host, Status: resp.StatusCode,
			Message: "toomanyrequests: the registry's pull quota is spent"})
	}
	err := transport.CheckError(resp, http.StatusOK)
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			if d.Code == transport.BlobUnknownErrorCode || d.Code == transport.ManifestUnknownErrorCode {
				return pieceMissing, nil
			}
		}
	}
	return pieceUnknown, err
}

// askHost sends one request for a piece with the host's credential,
// following a 401 whose challenge differs from the transport's once, as
// the lookup does. A window (a 429's back-off, a remembered outage) open
// for the host answers instead.
func (r *Resolver) askHost(ctx context.Context, h pullHost, method, u, rng string) (*http.Response, error) {
	// The host's hosts.toml path (override_path) and headers, as on the
	// lookup's own requests.
	ctx = withEndpoint(ctx, h.ep)
	if e := r.remembered(h.ep, h.cred); e != nil {
		return nil, e
	}
	a, _, err := r.authedFor(ctx, h.ep, h.cred)
	if refusedCredentials(err) {
		a, _, err = r.unchallenged(ctx, h.ep)
	}
	if err != nil {
		return nil, err
	}
	resp, err := r.send(ctx, a, method, u, rng)
	if err != nil {
		return nil, err
	}
	var ch *challenged
	if errors.As(challengedBy(resp, a.challenge), &ch) {
		resp.Body.Close()
		if a, err = r.authFollowing(ctx, h.ep, h.cred, ch.challenge); err != nil {
			return nil, err
		}
		return r.send(ctx, a, method, u, rng)
	}
	return resp, nil
}

func (r *Resolver) send(ctx context.Context, t http.RoundTripper, method, u, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if method == http.MethodGet && rng == "" {
		req.Header.Set("Accept", manifestAccept)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	req.Header.Set("User-Agent", r.o.userAgent)
	return r.client(t).Do(req)
}
