package registry

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxFollowedScopes is how many scopes besides its own a cached bearer
// transport may learn from the registry's 401s before it is dropped from
// the cache: go-containerregistry's bearer transport adds the scope of
// every challenge it follows to those it asks tokens for and never drops
// one, so a registry naming a new scope on each 401 would grow it (and
// every later token request) without end. A real registry names the
// repository's pull scope, the one pullsafe asks for; a dropped transport
// only costs the next lookup a token request.
const maxFollowedScopes = 4

// guarded is a bearer transport with the scopeGuard under it.
type guarded struct {
	http.RoundTripper
	guard *scopeGuard
}

// worn reports whether a's transport learned more scopes than it may keep.
func (a authed) worn() bool {
	g, ok := a.RoundTripper.(*guarded)
	return ok && g.guard.worn()
}

// scopeGuard sits under go-containerregistry's bearer transport, on the
// registry's own requests (not the token realm's). It passes the bearer
// transport only what of a 401's challenges pullsafe would follow itself
// (realm, service and scope, each within maxChallengeParam, copied out of
// the header), since what the bearer transport keeps of a scope is a slice
// of the whole header; it refuses a challenge with a longer one as
// unfollowable, the answer pullsafe gives when it meets one (follow); and
// it counts the scopes the bearer transport learned.
type scopeGuard struct {
	inner http.RoundTripper
	host  string   // the registry's host[:port], as requests name it
	realm *url.URL // the token realm: its answers are not the registry's

	own  string // the scope pullsafe asked for
	mu   sync.Mutex
	seen map[string]struct{} // the other scopes learned; at most maxFollowedScopes+1
}

func newScopeGuard(inner http.RoundTripper, host, realm, own string) *scopeGuard {
	u, err := url.Parse(realm)
	if err != nil {
		u = nil
	}
	return &scopeGuard{inner: inner, host: host, realm: u, own: own, seen: map[string]struct{}{}}
}

func (g *scopeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.inner.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !g.ofRegistry(req.URL) {
		return resp, err
	}
	values := resp.Header.Values("WWW-Authenticate")
	if len(values) == 0 {
		return resp, nil
	}
	kept := make([]string, 0, len(values))
	for _, v := range values {
		scheme, params, ok := parseChallenge(v)
		if !ok {
			resp.Body.Close()
			return nil, &Error{Reason: Unreachable, Flavour: FlavourBadResponse, Registry: g.host,
				Message: fmt.Sprintf("the registry's challenge has a realm, service or scope longer than the %d bytes pullsafe follows", maxChallengeParam)}
		}
		if scheme == "" {
			continue // what go-containerregistry's parser skips too
		}
		kept = append(kept, formatChallenge(scheme, params))
		if s, ok := params["scope"]; ok {
			g.learn(s)
		}
	}
	resp.Header.Del("WWW-Authenticate")
	for _, v := range kept {
		resp.Header.Add("WWW-Authenticate", v)
	}
	return resp, nil
}

// ofRegistry reports whether u is a request the bearer transport reads
// challenges of: the registry's, not its token realm's.
func (g *scopeGuard) ofRegistry(u *url.URL) bool {
	if u.Host != g.host {
		return false // a redirect target: the bearer transport keeps nothing of its challenge
	}
	return g.realm == nil || u.Host != g.realm.Host || u.Path != g.realm.Path
}

func (g *scopeGuard) learn(scope string) {
	if scope == g.own {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) <= maxFollowedScopes {
		g.seen[scope] = struct{}{}
	}
}

func (g *scopeGuard) worn() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen) > maxFollowedScopes
}

// formatChallenge writes back what parseChallenge read.
func formatChallenge(scheme string, params map[string]string) string {
	var b strings.Builder
	b.WriteString(scheme)
	sep := " "
	for _, k := range challengeParams {
		v, ok := params[k]
		if !ok {
			continue
		}
		b.WriteString(sep + k + `="`)
		for i := range len(v) {
			if v[i] == '"' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteByte('"')
		sep = ","
	}
	return b.String()
}
