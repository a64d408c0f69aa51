package registrytest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Mode is how a Hostile registry misbehaves.
type Mode int

const (
	// Plain answers /v2/ with 200 and every manifest with 404, whatever the
	// Host header says: dial thousands of names to it.
	Plain Mode = iota
	// Redirect answers /v2/ with 200 and redirects every other request to
	// Target (a zoned IPv6 address, a metadata URL).
	Redirect
	// Realm answers /v2/ with a Bearer challenge whose realm is Target, and
	// issues tokens at /token to anyone.
	Realm
	// BasicAuth answers /v2/ with a Basic challenge, so a client sends its
	// credentials with the next request, in cleartext over plain HTTP.
	BasicAuth
	// EndlessPing answers /v2/ with 200 and a body that never ends.
	EndlessPing
)

// Request is what a Hostile registry or Proxy saw of one request.
type Request struct {
	Method, Host, Path, Authorization, UserAgent string
}

// Hostile is a registry on loopback that attacks its client. It records
// every request and counts the body bytes it wrote.
type Hostile struct {
	Server *httptest.Server
	Host   string // Server's host:port
	Mode   Mode
	Target string // where Redirect and Realm point

	served   atomic.Int64
	mu       sync.Mutex
	requests []Request
}

// NewHostile starts a plain-HTTP hostile registry that stops with the test.
func NewHostile(t testing.TB, mode Mode, target string) *Hostile {
	t.Helper()
	h := &Hostile{Mode: mode, Target: target}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	h.Host = strings.TrimPrefix(h.Server.URL, "http://")
	t.Cleanup(h.Server.Close)
	return h
}

func (h *Hostile) serve(w http.ResponseWriter, r *http.Request) {
	h.record(r)
	ping := r.URL.Path == "/v2/" || r.URL.Path == "/v2"
	switch {
	case h.Mode == Realm && r.URL.Path == "/token":
		h.write(w, http.StatusOK, `{"token":"hostile"}`)
	case h.Mode == Realm && ping:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="hostile"`, h.Target))
		h.write(w, http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED"}]}`)
	case h.Mode == BasicAuth && r.Header.Get("Authorization") == "":
		w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
		h.write(w, http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED"}]}`)
	case h.Mode == EndlessPing && ping:
		h.endless(w)
	case ping:
		h.write(w, http.StatusOK, "{}")
	case h.Mode == Redirect:
		http.Redirect(w, r, h.Target, http.StatusTemporaryRedirect)
	default:
		h.write(w, http.StatusNotFound, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
	}
}

func (h *Hostile) write(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	n, _ := io.WriteString(w, body)
	h.served.Add(int64(n))
}

// endless writes until the client goes away.
func (h *Hostile) endless(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for {
		n, err := w.Write(chunk)
		h.served.Add(int64(n))
		if err != nil {
			return
		}
	}
}

func (h *Hostile) record(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, Request{Method: r.Method, Host: r.Host, Path: r.URL.Path,
		Authorization: r.Header.Get("Authorization"), UserAgent: r.Header.Get("User-Agent")})
}

// Requests returns every request received so far.
func (h *Hostile) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

// Served is the number of body bytes written so far.
func (h *Hostile) Served() int64 { return h.served.Load() }

// Proxy is a forward HTTP proxy on loopback (CONNECT and absolute URLs)
// that records every request and only ever connects to the loopback
// addresses its Routes name: anything else is answered 502.
type Proxy struct {
	Server *httptest.Server
	URL    string
	// Routes maps a requested host:port to the loopback address serving it.
	Routes map[string]string

	mu       sync.Mutex
	requests []Request
}

// NewProxy starts a forward proxy that stops with the test.
func NewProxy(t testing.TB, routes map[string]string) *Proxy {
	t.Helper()
	p := &Proxy{Routes: routes}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.Server.URL
	t.Cleanup(p.Server.Close)
	return p
}

// Requests returns every request the proxy was asked to forward.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if r.Method != http.MethodConnect {
		host = r.URL.Host
	}
	p.mu.Lock()
	p.requests = append(p.requests, Request{Method: r.Method, Host: host, Path: r.URL.Path,
		Authorization: r.Header.Get("Authorization"), UserAgent: r.Header.Get("User-Agent")})
	addr, ok := p.Routes[host]
	p.mu.Unlock()
	if !ok {
		http.Error(w, "no route", http.StatusBadGateway)
		return
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, addr)
		return
	}
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.RequestURI = ""
	out.URL.Host = addr
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) tunnel(w http.ResponseWriter, addr string) {
	up, err := net.Dial("tcp", addr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(up, bufio.NewReader(buf)); up.Close() }()
	_, _ = io.Copy(conn, up)
	conn.Close()
}
