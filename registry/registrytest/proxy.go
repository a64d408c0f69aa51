package registrytest

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// CountingProxy forwards plain HTTP to a registry and counts the requests
// by method and kind ("HEAD manifests", "GET ping", ...), so a test can
// tell what a client cost the registry.
type CountingProxy struct {
	Addr string // host:port to name images with

	srv    *http.Server
	mu     sync.Mutex
	counts map[string]int
}

// NewCountingProxy forwards to target (host:port) until Close.
func NewCountingProxy(target string) (*CountingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &CountingProxy{Addr: l.Addr().String(), counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.Method+" "+kind(r.URL.Path)]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	return p, nil
}

func kind(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	case strings.Contains(path, "/tags/"):
		return "tags"
	case path == "/v2/":
		return "ping"
	}
	return "other"
}

// Count returns the requests seen of one "METHOD kind", e.g. "HEAD manifests".
func (p *CountingProxy) Count(what string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[what]
}

// Counts returns a copy of every count.
func (p *CountingProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Close stops the proxy.
func (p *CountingProxy) Close() { p.srv.Close() }

// Total returns every request seen so far.
func (p *CountingProxy) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}
