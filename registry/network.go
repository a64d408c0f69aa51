package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// errBlocked marks a connection refused by the network deny list.
var errBlocked = errors.New("address is on the network deny list")

// loopbackWhy is said with every loopback refusal: in a pod, loopback is
// pullsafe's own metrics and health ports, never the node that pulls.
const loopbackWhy = "loopback is pullsafe's own pod, never the node that pulls (registries.allowLoopback allows it out of cluster)"

// blockedError is a refusal by the network policy, with a message short
// enough to be quoted whole: which address, and why.
type blockedError struct{ msg string }

func (e *blockedError) Error() string        { return errBlocked.Error() + ": " + e.msg }
func (e *blockedError) Is(target error) bool { return target == errBlocked }

// blockedMessage is what a person is told of a refusal: the address and the
// reason, without the URL and dial noise around it.
func blockedMessage(err error) string {
	var b *blockedError
	if errors.As(err, &b) {
		return "refused " + b.msg
	}
	return err.Error()
}

// canonicalHost spells Docker Hub one way, as the kubelet and containerd name
// it, and drops any scheme or trailing slash a user put in the config. Case
// and ":443" are kept: it keys what containerd matches as written (mirrors,
// the insecure list), where "myreg:443" is another registry than "myreg".
// RegistryHost, which folds both, keys only what is shared per registry
// (lookup slots, the audit's budget), never answers or credentials.
func canonicalHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h = strings.TrimSuffix(h, "/")
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		return "docker.io"
	}
	return h
}

// netPolicy is where outbound connections may go.
type netPolicy struct {
	denied        []netip.Prefix
	allowLoopback bool
}

// check refuses an address on the deny list, or on loopback unless allowed.
// A zone ("fe80::1%eth0") is dropped first: netip.Prefix.Contains is false
// for every zoned address, which would let fe80::/10 through.
func (p netPolicy) check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	// 0.0.0.0 and :: connect to the local host on Linux.
	if !p.allowLoopback && (ip.IsLoopback() || ip.IsUnspecified()) {
		return &blockedError{fmt.Sprintf("%s: %s", ip, loopbackWhy)}
	}
	for _, d := range p.denied {
		if d.Contains(ip) {
			return &blockedError{fmt.Sprintf("%s: it is in the denied network %s", ip, d)}
		}
	}
	return nil
}

// denyControl checks the address a connection is about to use, after DNS
// resolution, so a registry name that resolves to a metadata endpoint is
// refused however it is spelled.
func denyControl(p netPolicy) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse %q", errBlocked, address)
		}
		return p.check(ap.Addr())
	}
}

// network dials registries: the deny list on every connection, and on the
// host a request names before it goes to an HTTP proxy (the dialer then only
// sees the proxy's address).
type network struct {
	policy  netPolicy
	dialer  *net.Dialer
	aliases map[string]string
}

// checkHost resolves host[:port] and checks every address. It runs before a
// request is handed to a proxy. A name that does not resolve here is
// refused: the proxy would resolve it out of pullsafe's sight.
func (n *network) checkHost(ctx context.Context, hostport string) error {
	if _, ok := n.alias(hostport); ok {
		return nil // a test's stand-in for a remote host
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return n.policy.check(ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s to check it before the proxy: %w", errBlocked, host, err)
	}
	for _, ip := range ips {
		if err := n.policy.check(ip); err != nil {
			return err
		}
	}
	return nil
}

// proxy wraps a proxy function: a request that goes to a proxy has its own
// host checked first, redirects and token realms included.
func (n *network) proxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		u, err := next(req)
		if err != nil || u == nil {
			return u, err
		}
		if err := n.checkHost(req.Context(), req.URL.Host); err != nil {
			return nil, err
		}
		return u, nil
	}
}

// alias returns the address a test maps host:port to ("*" maps all).
func (n *network) alias(hostport string) (string, bool) {
	if a, ok := n.aliases[hostport]; ok {
		return a, true
	}
	a, ok := n.aliases["*"]
	return a, ok
}

// dial connects through the deny list. An aliased host stands in for a
// remote one in tests: it is dialled without the checks.
func (n *network) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a, ok := n.alias(addr); ok {
		plain := *n.dialer
		plain.Control = nil
		return plain.DialContext(ctx, network, a)
	}
	return n.dialer.DialContext(ctx, network, addr)
}

// maxResponseHeader caps the headers of every registry response (net/http's
// default is 1 MiB): a registry's WWW-Authenticate, Location or any other
// header is held while the response is read, by every lookup at once.
const maxResponseHeader = 64 << 10

// newBaseTransport returns the transport under authentication: one pooled
// keep-alive transport per TLS configuration, so a CA bundle or an insecure
// registry never changes how other registries are verified.
func newBaseTransport(o *options) http.RoundTripper {
	pol := netPolicy{denied: o.denied, allowLoopback: o.allowLoopback}
	n := &network{policy: pol, aliases: o.hostAliases,
		dialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: denyControl(pol)}}
	proxy := n.proxy(o.proxy)
	mk := func(tc *tls.Config, maxIdle int) *http.Transport {
		return &http.Transport{
			Proxy:                  proxy,
			DialContext:            n.dial,
			TLSClientConfig:        tc,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           maxIdle,
			MaxIdleConnsPerHost:    16,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  10 * time.Second,
			MaxResponseHeaderBytes: maxResponseHeader,
		}
	}
	// Idle connections: 100 overall on the shared transport, whatever the
	// number of hosts users name; one host's worth on a per-host one.
	ht := &hostTransport{def: mk(&tls.Config{MinVersion: tls.VersionTLS12}, 100), byHost: map[string]http.RoundTripper{}}
	for h, pool := range o.caBundles {
		ht.byHost[h] = mk(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, 16)
	}
	for h := range o.insecure {
		// #nosec G402 -- the operator declared this registry insecure, as on the nodes.
		ht.byHost[h] = mk(&tls.Config{InsecureSkipVerify: true}, 16)
	}
	for h, tc := range o.hostTLS {
		// hosts.toml's own TLS settings for the host, as on the nodes.
		c := tc.Clone()
		c.MinVersion = tls.VersionTLS12
		ht.byHost[h] = mk(c, 16)
	}
	return ht
}

type hostTransport struct {
	def    http.RoundTripper
	byHost map[string]http.RoundTripper
}

// CloseIdleConnections closes every pool's idle connections.
func (t *hostTransport) CloseIdleConnections() {
	for _, rt := range append([]http.RoundTripper{t.def}, slices.Collect(maps.Values(t.byHost))...) {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if rt, ok := t.byHost[canonicalHost(req.URL.Host)]; ok {
		return rt.RoundTrip(req)
	}
	return t.def.RoundTrip(req)
}
