package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// WithHostsDir makes the resolver ask, for every registry the folder
// configures, the hosts its hosts.toml lists, as containerd does: in order,
// only those whose capabilities allow the lookup, with their scheme, API
// path, TLS settings and headers; upstream only where the file names no
// server. TLS settings are per host:port, so one host given different ones
// by two files is refused. Default: none (registries.mirrors, if set).
func WithHostsDir(d *HostsDir) Option {
	return func(o *options) error {
		o.hostsDir = d
		if d == nil {
			return nil
		}
		for folder, hosts := range d.folders {
			for _, h := range hosts {
				key := canonicalHost(h.Host)
				if h.Host == "" {
					// The registry itself, with the file's top-level TLS
					// settings (or its certs.d files). _default's apply to
					// every registry: not expressible per host, left out.
					if folder == "_default" {
						continue
					}
					key = canonicalHost(folderHost(folder))
				}
				if h.Scheme == "http" || h.Fallback {
					o.insecure[key] = true
				}
				if h.TLS == nil {
					continue
				}
				if prev, ok := o.hostTLS[key]; ok && !sameTLS(prev, h.TLS) {
					return fmt.Errorf("hosts folder %s: host %s has different ca, client or skip_verify in two hosts.toml files", d.dir, h.Host)
				}
				if o.hostTLS == nil {
					o.hostTLS = map[string]*tls.Config{}
				}
				o.hostTLS[key] = h.TLS
			}
		}
		return nil
	}
}

func sameTLS(a, b *tls.Config) bool {
	return a.InsecureSkipVerify == b.InsecureSkipVerify && reflect.DeepEqual(a.Certificates, b.Certificates) &&
		(a.RootCAs == b.RootCAs || (a.RootCAs != nil && b.RootCAs != nil && a.RootCAs.Equal(b.RootCAs)))
}

// dirEndpoints turns a registry's hosts into endpoints. A host that is the
// registry itself (no server, or a server naming it) is asked as the
// registry; any other host is a mirror. containerd's CRI hands the kubelet's
// credential to every host (ParseAuth: the kubelet sets no ServerAddress),
// so mirrors named in hosts.toml are asked with it too.
func (r *Resolver) dirEndpoints(repo name.Repository, hosts []Host) []endpoint {
	reg := repo.RegistryStr()
	out := make([]endpoint, 0, len(hosts))
	for _, h := range hosts {
		var ep endpoint
		if h.Host == "" || canonicalHost(h.Host) == canonicalHost(reg) {
			ep = r.endpoint(reg, repo.RepositoryStr())
		} else {
			ep = r.endpoint(h.Host, repo.RepositoryStr())
			ep.mirror, ep.withCreds = true, true
		}
		ep.caps = 0
		if h.Pull {
			ep.caps |= capPull
		}
		if h.Resolve {
			ep.caps |= capResolve
		}
		if h.Path != "/v2" {
			ep.path = h.Path
		}
		ep.header = h.Header
		out = append(out, ep)
	}
	return out
}

// usable keeps the endpoints containerd's resolver would ask for ref
// (resolver.go:258-282): pull for a digest, pull and resolve for a tag.
// With none left containerd fails every pull ("no resolve hosts: not
// found"), which is the nodes' verdict too.
func usable(eps []endpoint, ref name.Reference) ([]endpoint, error) {
	want, what := capPull|capResolve, "pull and resolve"
	if _, ok := ref.(name.Digest); ok {
		want, what = capPull, "pull"
	}
	var out []endpoint
	for _, ep := range eps {
		if ep.caps&want == want {
			out = append(out, ep)
		}
	}
	if len(out) == 0 {
		return nil, &Error{Reason: NotFound, Flavour: FlavourNoHosts, Image: ref.String(), Registry: ref.Context().RegistryStr(),
			Message: "no host in the nodes' hosts.toml for this registry has the capabilities " + what +
				" (containerd fails every pull: no resolve hosts)"}
	}
	return out, nil
}

// hostRequests carries one endpoint's API path and headers to the
// transport, for every request of a lookup on it (the ping and token
// requests included: containerd sends hosts.toml headers to the token
// server too, through its authorizer).
type hostRequests struct {
	host, path string
	header     http.Header
}

type hostRequestsKey struct{}

// withEndpoint tags ctx with ep's path and headers where it has any.
func withEndpoint(ctx context.Context, ep endpoint) context.Context {
	if ep.path == "" && len(ep.header) == 0 {
		return ctx
	}
	return context.WithValue(ctx, hostRequestsKey{}, hostRequests{host: ep.host, path: ep.path, header: ep.header})
}

// endpointRequests rewrites a request made under withEndpoint: "/v2/..."
// on the endpoint's host becomes path + "/...", as containerd builds its
// URLs from the host's path, and the hosts.toml headers are added. The
// bare /v2/ ping is left alone: containerd sends none, and pullsafe's is
// only advice (a 404 teaches nothing).
type endpointRequests struct{ next http.RoundTripper }

func (t endpointRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	hr, ok := req.Context().Value(hostRequestsKey{}).(hostRequests)
	if !ok {
		return t.next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	strip := strippedOnRedirect(req)
	for k, vs := range hr.header {
		if strip && sensitiveHeader(k) {
			continue
		}
		req.Header[k] = append(req.Header[k], vs...)
	}
	if hr.path != "" && req.URL.Host == hr.host && strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
		req.URL.Path = hr.path + strings.TrimPrefix(req.URL.Path, "/v2")
		req.URL.RawPath = ""
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections passes on to the transport below.
func (t endpointRequests) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// strippedOnRedirect reports a request that follows a redirect to which
// Go's client (and so containerd, whose hosts.toml headers are the
// request's own) no longer copies credentials: some request of the chain
// went to a host that is neither the first one's domain nor a subdomain of
// it (net/http shouldCopyHeaderOnRedirect). A CDN a blob is redirected to
// must not get a static credential a hosts.toml header carries.
func strippedOnRedirect(req *http.Request) bool {
	var chain []*http.Request
	for q := req; q != nil; {
		chain = append(chain, q)
		if q.Response == nil {
			break
		}
		q = q.Response.Request
	}
	first := chain[len(chain)-1].URL.Hostname()
	for _, q := range chain[:len(chain)-1] {
		if !domainOrSubdomain(q.URL.Hostname(), first) {
			return true
		}
	}
	return false
}

func domainOrSubdomain(sub, parent string) bool {
	sub, parent = strings.ToLower(sub), strings.ToLower(parent)
	if sub == parent {
		return true
	}
	// An IP address is no domain: only an exact match.
	if strings.ContainsAny(sub, ":") || net.ParseIP(sub) != nil {
		return false
	}
	return strings.HasSuffix(sub, "."+parent)
}

// sensitiveHeader is what Go's client drops on such a redirect.
func sensitiveHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate":
		return true
	}
	return false
}
