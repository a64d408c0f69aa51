package registry

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// errPlainHTTP refuses a plain-HTTP request to a host not declared insecure.
var errPlainHTTP = errors.New("plain HTTP refused: only hosts in registries.insecure (and localhost) are reached without TLS")

// errBodyTooLarge ends a response body read past its cap.
var errBodyTooLarge = errors.New("response body larger than pullsafe reads")

// maxPingBody caps the body of a /v2/ ping: nothing in it is used.
const maxPingBody = 64 << 10

// guard sits under go-containerregistry's authentication, so the ping, token
// requests, redirects and lookups all pass it: it speaks as pullsafe, sends
// plain HTTP only where containerd would, and caps what a registry can make
// pullsafe read.
type guard struct {
	next      http.RoundTripper
	userAgent string
	insecure  map[string]bool
	maxBody   int64
}

func newGuard(o *options, next http.RoundTripper) *guard {
	return &guard{next: next, userAgent: o.userAgent, insecure: o.insecure, maxBody: o.maxManifest + maxPingBody}
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.plainHTTPAllowed(req.URL.Host) {
		return nil, errPlainHTTP
	}
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", g.userAgent)
	resp, err := g.next.RoundTrip(req)
	var record tls.RecordHeaderError
	if errors.As(err, &record) {
		// Wrapped, so http.Client does not turn it into an untyped
		// ErrSchemeMismatch: it stays a TLS failure ("does not speak HTTPS").
		return nil, fmt.Errorf("TLS handshake with %s: %w", req.URL.Host, err)
	}
	if err != nil {
		return nil, err
	}
	limit := g.maxBody
	if req.URL.Path == "/v2/" || req.URL.Path == "/v2" {
		limit = maxPingBody
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: limit}
	return resp, nil
}

// plainHTTPAllowed follows containerd: HTTPS unless the host is configured
// insecure, or is localhost (its docker.IsLocalhost: the name localhost or
// a loopback address). go-containerregistry would also fall back to HTTP for
// RFC 1918 addresses and .local names, sending credentials in cleartext.
func (g *guard) plainHTTPAllowed(hostport string) bool {
	if g.insecure[canonicalHost(hostport)] {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// cappedBody fails a read past left bytes instead of reading on.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
