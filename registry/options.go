package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Option configures a Resolver.
type Option func(*options) error

type options struct {
	mirrors         map[string][]string
	insecure        map[string]bool
	caBundles       map[string]*x509.CertPool
	hostsDir        *HostsDir              // WithHostsDir
	hostTLS         map[string]*tls.Config // hosts.toml ca, client, skip_verify by host
	denied          []netip.Prefix
	cacheSize       int
	tagTTL          time.Duration
	notFoundTTL     time.Duration
	digestTTL       time.Duration
	lookupTimeout   time.Duration
	maxManifest     int64
	maxTags         int
	defaultBackoff  time.Duration
	outageWindow    time.Duration
	base            http.RoundTripper
	metrics         prometheus.Registerer
	sharedMetrics   *metrics // WithMetricsOf: a predecessor's collectors
	now             func() time.Time
	userAgent       string
	transportTTL    time.Duration
	platformEntries int
	allowLoopback   bool
	proxy           func(*http.Request) (*url.URL, error)
	platformBytes   int64
	platformTTL     time.Duration
	// hostAliases redirect dials of one host:port ("*": any) to another
	// address, which stands in for a remote host: the deny list and the
	// loopback rule are not applied to it. Tests use it to reach a loopback
	// server under a name as if it were elsewhere.
	hostAliases map[string]string
	providers   *CredentialProviders // WithCredentialProviders
}

// DefaultDeniedNetworks are refused after DNS resolution unless overridden:
// link-local (cloud metadata at 169.254.169.254 among them) and AWS's IPv6
// metadata address. A registry name that resolves there is an SSRF attempt,
// not a registry.
var DefaultDeniedNetworks = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		insecure:        map[string]bool{},
		caBundles:       map[string]*x509.CertPool{},
		denied:          DefaultDeniedNetworks,
		cacheSize:       10000,
		tagTTL:          5 * time.Minute,
		notFoundTTL:     30 * time.Second,
		digestTTL:       24 * time.Hour,
		lookupTimeout:   2 * time.Second,
		maxManifest:     4 << 20,
		maxTags:         1000,
		defaultBackoff:  time.Minute,
		outageWindow:    30 * time.Second,
		now:             time.Now,
		userAgent:       "pullsafe",
		proxy:           http.ProxyFromEnvironment,
		transportTTL:    10 * time.Minute,
		platformEntries: 10000,
		platformBytes:   8 << 20,
		platformTTL:     24 * time.Hour,
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	switch {
	case o.cacheSize <= 0:
		return nil, fmt.Errorf("cache size must be positive, got %d", o.cacheSize)
	case o.tagTTL <= 0 || o.notFoundTTL <= 0 || o.digestTTL <= 0:
		return nil, fmt.Errorf("cache TTLs must be positive")
	case o.lookupTimeout <= 0:
		return nil, fmt.Errorf("lookup timeout must be positive, got %s", o.lookupTimeout)
	case o.outageWindow < 0:
		return nil, fmt.Errorf("outage window must not be negative, got %s", o.outageWindow)
	}
	return o, nil
}

// WithMirrors sets the mirrors tried, in order, before a registry itself, as
// containerd's hosts.toml does: {"docker.io": ["mirror.corp.example"]}. Keys and
// values are host[:port]; Docker Hub is "docker.io". A mirror written
// "http://host" is reached over plain HTTP, as containerd does. Default: none.
func WithMirrors(m map[string][]string) Option {
	return func(o *options) error {
		o.mirrors = map[string][]string{}
		for reg, hosts := range m {
			o.mirrors[canonicalHost(reg)] = append([]string(nil), hosts...)
			for _, h := range hosts {
				// containerd's [host."http://..."]: plain HTTP by the operator's choice.
				if strings.HasPrefix(h, "http://") {
					o.insecure[canonicalHost(h)] = true
				}
			}
		}
		return nil
	}
}

// WithInsecure lists registries reached over plain HTTP or with TLS
// verification off, as containerd's insecure registries. Every other host is
// reached over HTTPS only (localhost excepted, as in containerd), whatever
// its address. Default: none.
func WithInsecure(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			o.insecure[canonicalHost(h)] = true
		}
		return nil
	}
}

// WithCABundle trusts the PEM certificates in pem, in addition to the system
// roots, for registry host. Default: system roots only.
func WithCABundle(host string, pem []byte) Option {
	return func(o *options) error {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA bundle for %s holds no PEM certificate", host)
		}
		o.caBundles[canonicalHost(host)] = pool
		return nil
	}
}

// WithDeniedNetworks replaces the networks that outbound connections may not
// reach, checked on the resolved address. Default: DefaultDeniedNetworks.
func WithDeniedNetworks(p ...netip.Prefix) Option {
	return func(o *options) error { o.denied = append([]netip.Prefix(nil), p...); return nil }
}

// WithCache sets the size of each answer cache and the TTLs of tag answers and
// of not-found answers. Defaults: 10000, 5m, 30s. Digest answers live 24h.
func WithCache(size int, tagTTL, notFoundTTL time.Duration) Option {
	return func(o *options) error {
		o.cacheSize, o.tagTTL, o.notFoundTTL = size, tagTTL, notFoundTTL
		return nil
	}
}

// WithLookupTimeout bounds one registry lookup (all its requests) even when
// the caller's context allows longer. Default: 2s.
func WithLookupTimeout(d time.Duration) Option {
	return func(o *options) error { o.lookupTimeout = d; return nil }
}

// WithMaxManifestSize refuses manifests and config blobs larger than n bytes.
// Default: 4 MiB.
func WithMaxManifestSize(n int64) Option {
	return func(o *options) error { o.maxManifest = n; return nil }
}

// WithTransport sets the base transport under authentication. Default: a
// keep-alive transport that enforces the network deny list, CA bundles and
// insecure registries. Replacing it drops those protections: tests only. The
// User-Agent, the HTTPS-only rule and the caps on response bodies still apply.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error { o.base = rt; return nil }
}

// WithMetrics registers the resolver's metrics with reg. Default: none.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *options) error { o.metrics = reg; return nil }
}

// WithMetricsOf makes the resolver record into prev's metrics (its
// collectors are already registered) instead of registering its own: for a
// resolver that replaces prev after a config reload, so the series go on
// counting rather than failing to register or starting again from zero.
// A nil prev, or one built without metrics, records nothing. Default: none.
func WithMetricsOf(prev *Resolver) Option {
	return func(o *options) error {
		if prev != nil {
			o.sharedMetrics = prev.metrics
		}
		return nil
	}
}

// WithClock sets the clock of rate-limit windows. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error { o.now = now; return nil }
}

// WithDefaultBackoff is the rate-limit window opened by a 429 without a
// usable Retry-After header. Default: 1m.
func WithDefaultBackoff(d time.Duration) Option {
	return func(o *options) error { o.defaultBackoff = d; return nil }
}

// WithAllowLoopback lets registries, token realms and redirects reach
// loopback addresses (127.0.0.0/8, ::1, and 0.0.0.0/:: which connect there).
// In a pod, loopback is pullsafe itself (metrics and health ports), never the
// node the kubelet pulls on, so the default refuses it: allow it only out of
// cluster (development, tests, `pullsafe check`). Default: false.
func WithAllowLoopback(allow bool) Option {
	return func(o *options) error { o.allowLoopback = allow; return nil }
}

// WithProxy sets how requests find their HTTP proxy; the host a request
// names is checked against the deny list before it is handed to a proxy.
// Default: http.ProxyFromEnvironment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return func(o *options) error { o.proxy = proxy; return nil }
}

// WithUserAgent sets the User-Agent of every request, the /v2/ ping and
// token requests included ("pullsafe/v1.2.0"). Default: "pullsafe".
func WithUserAgent(ua string) Option {
	return func(o *options) error { o.userAgent = ua; return nil }
}

// WithOutageWindow is how long an outage is remembered: a repository (with
// one credential) that timed out or answered 5xx, or a host whose connection
// or /v2/ ping failed (windows.go). Lookups it covers answer "cannot
// verify" at once, and when the window ends one probe asks again. 0 turns
// the memory off. Default: 30s.
func WithOutageWindow(d time.Duration) Option {
	return func(o *options) error { o.outageWindow = d; return nil }
}
