package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// errBlocked marks a connection refused by the network deny list.
var errBlocked = errors.New("address is on the network deny list")

// canonicalHost spells Docker Hub one way, as the kubelet and containerd name
// it, and drops any scheme or trailing slash a user put in the config.
func canonicalHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h = strings.TrimSuffix(h, "/")
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		return "docker.io"
	}
	return h
}

// denyControl checks the address a connection is about to use, after DNS
// resolution, so a registry name that resolves to a metadata endpoint is
// refused however it is spelled.
func denyControl(denied []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse %q", errBlocked, address)
		}
		ip := ap.Addr().Unmap()
		for _, p := range denied {
			if p.Contains(ip) {
				return fmt.Errorf("%w: %s is in %s", errBlocked, ip, p)
			}
		}
		return nil
	}
}

// newBaseTransport returns the transport under authentication: one pooled
// keep-alive transport per TLS configuration, so a CA bundle or an insecure
// registry never changes how other registries are verified.
func newBaseTransport(o *options) http.RoundTripper {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: denyControl(o.denied)}
	dial := dialer.DialContext
	if len(o.hostAliases) > 0 {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := o.hostAliases[addr]; ok {
				addr = a
			}
			return dialer.DialContext(ctx, network, addr)
		}
	}
	mk := func(tc *tls.Config) *http.Transport {
		return &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dial,
			TLSClientConfig:       tc,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
		}
	}
	ht := &hostTransport{def: mk(&tls.Config{MinVersion: tls.VersionTLS12}), byHost: map[string]http.RoundTripper{}}
	for h, pool := range o.caBundles {
		ht.byHost[h] = mk(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool})
	}
	for h := range o.insecure {
		// #nosec G402 -- the operator declared this registry insecure, as on the nodes.
		ht.byHost[h] = mk(&tls.Config{InsecureSkipVerify: true})
	}
	return ht
}

type hostTransport struct {
	def    http.RoundTripper
	byHost map[string]http.RoundTripper
}

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if rt, ok := t.byHost[canonicalHost(req.URL.Host)]; ok {
		return rt.RoundTrip(req)
	}
	return t.def.RoundTrip(req)
}
