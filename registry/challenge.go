package registry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// authenticate builds the authenticated transport for one repository scope,
// as transport.NewWithContext does, but pings each registry once: what its
// GET /v2/ taught (HTTPS or HTTP, Basic or Bearer, the token realm and
// service) is the same for every repository on it, so a new repository
// costs a token request (bearer registries only) and the HEAD, not a ping
// more. Pings are remembered per scheme and host for the transport TTL and
// only when they succeeded.
func (r *Resolver) authenticate(ctx context.Context, reg name.Registry, auth authn.Authenticator, scope string) (http.RoundTripper, *transport.Challenge, error) {
	key := reg.Scheme() + "://" + reg.RegistryStr()
	pr, cached := r.pings.Get(key)
	if !cached {
		var err error
		if pr, err = r.ping(ctx, reg, key); err != nil {
			return nil, nil, err
		}
	}
	t, err := r.fromChallenge(ctx, reg, auth, scope, pr)
	if err == nil || !cached {
		return t, pr, err
	}
	if !refusedCredentials(err) {
		// The registry may have changed how it authenticates: ask again.
		r.pings.Remove(key)
		if pr, err = r.ping(ctx, reg, key); err != nil {
			return nil, nil, err
		}
		t, err = r.fromChallenge(ctx, reg, auth, scope, pr)
		return t, pr, err
	}
	// A refusal by the token realm the cached challenge named: a moved realm
	// refuses too, and a denial may only come from what the registry says
	// now. One ping settles it; the credential is tried again only if the
	// challenge changed.
	if fresh, changed := r.renewChallenge(ctx, reg, pr); changed {
		t, err = r.fromChallenge(ctx, reg, auth, scope, fresh)
		return t, fresh, err
	}
	return nil, nil, err
}

// renewChallenge pings reg again unless someone already replaced used in the
// cache, and reports whether the registry's challenge differs from used.
func (r *Resolver) renewChallenge(ctx context.Context, reg name.Registry, used *transport.Challenge) (*transport.Challenge, bool) {
	key := reg.Scheme() + "://" + reg.RegistryStr()
	if cur, ok := r.pings.Get(key); ok && cur != used {
		return cur, !sameChallenge(cur, used)
	}
	r.pings.Remove(key)
	pr, err := r.ping(ctx, reg, key)
	if err != nil {
		return nil, false
	}
	return pr, !sameChallenge(pr, used)
}

// sameChallenge compares how two challenges authenticate: the scope a
// manifest's 401 names is the request's, not a different way in.
func sameChallenge(a, b *transport.Challenge) bool {
	return a != nil && b != nil && strings.EqualFold(a.Scheme, b.Scheme) && a.Insecure == b.Insecure &&
		a.Parameters["realm"] == b.Parameters["realm"] && a.Parameters["service"] == b.Parameters["service"]
}

// ping asks the registry for its challenge; lookups of several new
// repositories at once share one ping. The ping only advises: containerd
// never sends it, it asks for the manifest and follows the challenge that
// answer carries. So a ping answered with a status that is neither 200 nor
// a usable 401 (path-routed ingresses, WAFs and static registries answer
// /v2/ with 404 or 403) teaches nothing, and the manifest request decides
// (ask and follow). A 5xx on the root is no verdict either (a load
// balancer's default rule for paths it does not route; the node never sees it):
// the manifest request decides, and the answer is not kept, so the next
// lookup asks again. That a host is down is settled by askPing, after
// repositories failed too (windows.go). A 429 still fails the lookup: a
// rate limit, which no path escapes.
//
// The shared ping runs on a deadline of its own, a full lookup timeout from
// when it starts, and each caller waits only as long as its own deadline:
// the first caller may have spent most of its time elsewhere (a slow
// mirror, its repository's token realm), and its deadline ending must not
// become the "cannot verify" of another tenant's lookup that joined.
func (r *Resolver) ping(ctx context.Context, reg name.Registry, key string) (*transport.Challenge, error) {
	ch := r.flights.DoChan("ping|"+key, contained("", reg.RegistryStr(), func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.lookupTimeout)
		defer cancel()
		pr, err := transport.Ping(pctx, reg, r.base)
		if err != nil {
			if pr = advisory(err); pr == nil {
				return nil, err
			}
			if overloaded(err) {
				return pr, nil
			}
		}
		kept := keptChallenge(pr)
		if kept == nil {
			// Too large to keep or follow: nothing learned, as after a 404.
			kept = &transport.Challenge{Insecure: pr.Insecure}
		}
		r.pings.Add(key, kept)
		return kept, nil
	}))
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*transport.Challenge), nil
	case <-ctx.Done():
		// What this caller learned is what the flight's own timeout would
		// have said: the host's /v2/ did not answer in its time (host-level
		// evidence, hostLevel, as the ping's own error is).
		return nil, &url.Error{Op: "Get", URL: reg.Scheme() + "://" + reg.RegistryStr() + "/v2/", Err: ctx.Err()}
	}
}

// advisory is what a ping that failed with an HTTP answer still teaches:
// no challenge (the manifest request will bring one if it is needed) and
// the scheme that answered. nil when there was no HTTP answer, or a 429:
// the registry's quota is spent, whatever path asks next (a rate limit).
func advisory(err error) *transport.Challenge {
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode == http.StatusTooManyRequests {
		return nil
	}
	return &transport.Challenge{Insecure: terr.Request != nil && terr.Request.URL.Scheme == "http"}
}

// overloaded reports a ping answered 5xx: a passing state, not kept.
func overloaded(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode >= 500
}

// fromChallenge is the second half of transport.NewWithContext: the scheme
// the ping settled on, then Basic, or one token exchange for Bearer.
func (r *Resolver) fromChallenge(ctx context.Context, reg name.Registry, auth authn.Authenticator, scope string, pr *transport.Challenge) (http.RoundTripper, error) {
	scheme := "https"
	if pr.Insecure {
		scheme = "http"
	}
	var t http.RoundTripper = &schemeTransport{scheme: scheme, host: reg.RegistryStr(), inner: r.base}
	t = transport.NewUserAgent(t, r.o.userAgent)
	if !strings.EqualFold(pr.Scheme, "bearer") {
		return transport.FromToken(reg, auth, t, pr, &transport.Token{})
	}
	tok, err := transport.Exchange(ctx, reg, auth, t, []string{scope}, pr)
	if err != nil {
		return nil, err
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken // some registries name it so
	}
	g := newScopeGuard(t, reg.RegistryStr(), pr.Parameters["realm"], scope)
	bt, err := transport.FromToken(reg, auth, g, pr, tok)
	if err != nil {
		return nil, err
	}
	return &guarded{RoundTripper: bt, guard: g}, nil
}

// refusedCredentials reports whether the token endpoint refused the
// credential itself: asking the registry for a fresh challenge would not help.
func refusedCredentials(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden)
}

// schemeTransport sends requests for the registry host with the scheme its
// ping succeeded with (a loopback registry may speak HTTPS or HTTP); token
// servers and redirect targets keep their own.
type schemeTransport struct {
	scheme, host string
	inner        http.RoundTripper
}

func (s *schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == s.host && req.URL.Scheme != s.scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = s.scheme
	}
	return s.inner.RoundTrip(req)
}
