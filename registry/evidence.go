package registry

import (
	"errors"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// connectError is a request that failed before any connection to its host
// was made: refused, no such host, a failed TLS handshake, a connect
// timeout. Unlike a slow or failing answer about one repository, it is
// evidence about the host itself.
type connectError struct {
	host string // host[:port] the request was for
	err  error
}

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// connTraced marks the failures of requests that never got a connection
// (connectError). It sits under go-containerregistry, so the ping, token
// requests, redirects and lookups are all marked, whoever sends them.
type connTraced struct{ next http.RoundTripper }

func (t connTraced) RoundTrip(req *http.Request) (*http.Response, error) {
	var got atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { got.Store(true) }}
	resp, err := t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil && !got.Load() {
		return nil, &connectError{host: req.URL.Host, err: err}
	}
	return resp, err
}

// hostLevel reports whether err, met while asking host, is about the host
// itself rather than about the repository asked for: no connection to host
// (a redirect target or token realm elsewhere is not host), or a failure of
// its /v2/ ping, which names no repository.
func hostLevel(err error, host string) bool {
	host = canonicalHost(host)
	var ce *connectError
	if errors.As(err, &ce) && canonicalHost(ce.host) == host {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && isPing(u, host) {
			return true
		}
	}
	var te *transport.Error
	return errors.As(err, &te) && te.Request != nil && isPing(te.Request.URL, host)
}

func isPing(u *url.URL, host string) bool {
	return u != nil && canonicalHost(u.Host) == host && (u.Path == "/v2/" || u.Path == "/v2")
}
