package registry

import (
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxChallengeParam caps each parameter of a registry's challenge that
// pullsafe keeps or follows: a realm is a URL, a service a host name, a
// scope a repository and its actions; 1 KiB holds any real one. Only realm,
// service and scope are kept: a challenge is cached per host for the
// transport TTL, and a registry may send anything in it.
const maxChallengeParam = 1 << 10

// challengeParams are the parameters of a challenge pullsafe uses.
var challengeParams = []string{"realm", "service", "scope"}

// challengeOf reads the WWW-Authenticate headers of a 401 as containerd's
// authorizer does: the first Bearer or Basic challenge, in order. found
// reports whether there was one; the challenge is nil when one of its
// realm, service or scope is longer than maxChallengeParam.
func challengeOf(h http.Header, insecure bool) (ch *transport.Challenge, found bool) {
	for _, v := range h.Values("WWW-Authenticate") {
		scheme, params, ok := parseChallenge(v)
		if scheme != "bearer" && scheme != "basic" {
			continue
		}
		if !ok {
			return nil, true
		}
		return &transport.Challenge{Scheme: scheme, Parameters: params, Insecure: insecure}, true
	}
	return nil, false
}

// parseChallenge reads one challenge, `Bearer realm="https://auth",
// service="registry"`, keeping the parameters pullsafe uses, copied out of
// v. ok is false when one of them is longer than maxChallengeParam; the
// scheme is lower-cased and empty when v does not start with one.
func parseChallenge(v string) (scheme string, params map[string]string, ok bool) {
	scheme, s := token(v)
	scheme = strings.ToLower(scheme)
	params, ok = map[string]string{}, true
	if scheme == "" {
		return "", params, true
	}
	s = "," + strings.TrimLeft(s, " \t")
	for strings.HasPrefix(s, ",") {
		var key, value string
		key, s = token(strings.TrimLeft(s[1:], " \t"))
		if key == "" || !strings.HasPrefix(s, "=") {
			break
		}
		if value, s = tokenOrQuoted(s[1:]); value == "" {
			break
		}
		key = strings.ToLower(key)
		if !isChallengeParam(key) {
			s = strings.TrimLeft(s, " \t")
			continue
		}
		if len(value) > maxChallengeParam {
			ok = false
		} else {
			params[key] = strings.Clone(value)
		}
		s = strings.TrimLeft(s, " \t")
	}
	return scheme, params, ok
}

func isChallengeParam(key string) bool {
	for _, p := range challengeParams {
		if key == p {
			return true
		}
	}
	return false
}

// token reads an RFC 7230 token from the start of s.
func token(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenByte(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[]\\{}", rune(c))
}

// tokenOrQuoted reads a token or a quoted string (backslash escapes
// undone); an unterminated quoted string reads as empty.
func tokenOrQuoted(s string) (value, rest string) {
	if !strings.HasPrefix(s, `"`) {
		return token(s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return b.String(), s[i+1:]
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", ""
}

// keptChallenge is the copy of a ping's challenge the ping cache holds:
// the scheme lower-cased (Bearer, Basic, or none), realm, service and scope
// copied out of the header they were cut from. nil when one of them is
// longer than maxChallengeParam.
func keptChallenge(pr *transport.Challenge) *transport.Challenge {
	scheme := strings.ToLower(pr.Scheme)
	if scheme != "bearer" && scheme != "basic" {
		// What go-containerregistry's ping keeps of a challenge it could
		// not parse is the whole header; it authenticates as Basic then.
		scheme = ""
	}
	out := &transport.Challenge{Scheme: scheme, Insecure: pr.Insecure}
	for _, k := range challengeParams {
		v, ok := pr.Parameters[k]
		if !ok {
			continue
		}
		if len(v) > maxChallengeParam {
			return nil
		}
		if out.Parameters == nil {
			out.Parameters = map[string]string{}
		}
		out.Parameters[k] = strings.Clone(v)
	}
	return out
}
