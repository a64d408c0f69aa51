package registry

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/pelletier/go-toml/v2"
	tomlu "github.com/pelletier/go-toml/v2/unstable"
	"golang.org/x/net/http/httpguts"
)

// This file reads one hosts.toml as containerd v2.4.2 does
// (core/remotes/docker/config/hosts.go: parseHostsFile, parseHostConfig,
// getSortedHosts), with the same TOML library. Where containerd would
// quietly fall back (a file it cannot decode, an unknown capability) or fail
// every pull later (a header net/http refuses), the folder is refused at
// load instead, naming the file: the operator fixes it once rather than
// pullsafe guessing what the nodes do.

// Bounds of one hosts.toml: a folder mounted from a ConfigMap is user input.
const (
	MaxHostsFileBytes = 64 << 10
	MaxHostsPerFile   = 16 // [host."..."] tables, the server not counted
	MaxHostHeaders    = 32 // header names per host
	maxHeaderBytes    = 8 << 10
	maxField          = 120 // of a value quoted in an error
)

// Capabilities of a host (containerd's docker.HostCapabilities).
const (
	capPull = 1 << iota
	capResolve
	capPush
	capReferrers
	capAll = capPull | capResolve | capPush | capReferrers
)

// hostSpec is one host of a hosts.toml, before its files are read.
type hostSpec struct {
	scheme, host, path string // host "" : the file names no server (the registry itself)
	caps               int
	caFiles            []string
	clientPairs        [][2]string // cert, key ("" : the key is in the cert file)
	skipVerify         *bool
	header             http.Header
}

// explicitTLS is containerd's explicitTLSFromHost (hosts.go:171).
func (s hostSpec) explicitTLS() bool {
	return s.caFiles != nil || s.clientPairs != nil || s.skipVerify != nil
}

type hostFields struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	hostFields
	Server string                `toml:"server"`
	Host   map[string]hostFields `toml:"host"`
}

// parseHostsTOML returns the hosts of one hosts.toml in the order containerd
// tries them: the [host."..."] tables as they appear, then the server (or,
// with no server, an entry with an empty host: the registry itself). folder
// makes relative ca and client paths absolute, as containerd's makeAbsPath.
func parseHostsTOML(folder string, data []byte) ([]hostSpec, error) {
	if len(data) > MaxHostsFileBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", len(data), MaxHostsFileBytes)
	}
	order, err := hostOrder(data)
	if err != nil {
		return nil, err
	}
	var f hostsFile
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f); err != nil {
		return nil, fmt.Errorf("not TOML containerd can read: %s", Sanitize(err.Error(), maxField))
	}
	if len(order) > MaxHostsPerFile {
		return nil, fmt.Errorf("%d [host] tables, at most %d", len(order), MaxHostsPerFile)
	}
	var out []hostSpec
	for _, h := range order {
		s, err := hostOf(h, folder, f.Host[h])
		if err != nil {
			return nil, fmt.Errorf("[host.%q]: %w", h, err)
		}
		out = append(out, s)
	}
	s, err := hostOf(f.Server, folder, f.hostFields)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", f.Server, err)
	}
	if s.host == "" {
		// hosts.go:134-135: the implicit server keeps the top-level TLS
		// and header settings, but always every capability and /v2.
		s.caps, s.path = capAll, "/v2"
	}
	return append(out, s), nil
}

// hostOrder lists the [host."..."] tables in file order, as getSortedHosts
// (hosts.go:551): only table headers count, a table right after its own
// host's ([host."a".header]) is not a new host, and a host written only as
// dotted keys or inline is not tried at all.
func hostOrder(data []byte) ([]string, error) {
	var p tomlu.Parser
	p.Reset(data)
	var order []string
	last := ""
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != tomlu.Table {
			continue
		}
		var parts []string
		for it := e.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) < 2 || parts[0] != "host" || parts[1] == last {
			continue
		}
		last = parts[1]
		order = append(order, last)
		if len(order) > MaxHostsPerFile {
			break
		}
	}
	return order, nil
}

// hostOf is parseHostConfig (hosts.go:424).
func hostOf(server, folder string, c hostFields) (hostSpec, error) {
	var s hostSpec
	if server != "" {
		if !strings.HasPrefix(server, "http") {
			server = "https://" + server
		}
		u, err := url.Parse(server)
		if err != nil {
			return s, fmt.Errorf("not a URL: %s", Sanitize(err.Error(), maxField))
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return s, fmt.Errorf("scheme %q: containerd only speaks http and https", Sanitize(u.Scheme, maxField))
		}
		if _, err := name.NewRegistry(u.Host, name.StrictValidation); u.Host == "" || err != nil || !validPort(u.Host) {
			return s, fmt.Errorf("names no host[:port] containerd could reach")
		}
		s.scheme, s.host = u.Scheme, u.Host
		switch {
		case u.Path != "":
			s.path = path.Clean(u.Path)
			if !strings.HasSuffix(s.path, "/v2") && !c.OverridePath {
				s.path += "/v2"
			}
		case !c.OverridePath:
			s.path = "/v2"
		}
	}
	s.skipVerify = c.SkipVerify
	if len(c.Capabilities) == 0 {
		s.caps = capAll
	}
	for _, name := range c.Capabilities {
		bit, ok := map[string]int{"pull": capPull, "resolve": capResolve, "push": capPush, "referrers": capReferrers}[strings.ToLower(name)]
		if !ok {
			return s, fmt.Errorf("unknown capability %q (containerd knows pull, resolve, push, referrers)", Sanitize(name, maxField))
		}
		s.caps |= bit
	}
	var err error
	if s.caFiles, err = caFiles(c.CA, folder); err != nil {
		return s, err
	}
	if s.clientPairs, err = clientPairs(c.Client, folder); err != nil {
		return s, err
	}
	if s.header, err = headerOf(c.Header); err != nil {
		return s, err
	}
	if c.DialTimeout != "" {
		if _, err := time.ParseDuration(c.DialTimeout); err != nil {
			return s, fmt.Errorf("dial_timeout %q is not a duration", Sanitize(c.DialTimeout, maxField))
		}
	}
	return s, nil
}

// validPort refuses "host:" with an empty or non-numeric port, which
// url.Parse lets through ("ftp://s" becomes https://ftp://s, host "ftp:").
func validPort(hostport string) bool {
	h, p, err := net.SplitHostPort(hostport)
	return err != nil || (h != "" && isPort(p))
}

func caFiles(v any, folder string) ([]string, error) {
	switch ca := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{absIn(folder, ca)}, nil
	case []any:
		out, err := stringList(ca)
		for i := range out {
			out[i] = absIn(folder, out[i])
		}
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("ca is a %T, not a file or a list of files", v)
}

func clientPairs(v any, folder string) ([][2]string, error) {
	switch c := v.(type) {
	case nil:
		return nil, nil
	case string:
		return [][2]string{{absIn(folder, c), ""}}, nil
	case []any:
		var out [][2]string
		for _, p := range c {
			switch p := p.(type) {
			case string:
				out = append(out, [2]string{absIn(folder, p), ""})
			case []any:
				s, err := stringList(p)
				if err != nil || len(s) != 2 {
					return nil, fmt.Errorf("client: a pair is [cert, key]")
				}
				out = append(out, [2]string{absIn(folder, s[0]), absIn(folder, s[1])})
			default:
				return nil, fmt.Errorf("client: %T is not a file or a [cert, key] pair", p)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("client is a %T, not a file or a list", v)
}

// headerOf is hosts.toml's [header]: a string or a list of strings per
// name, kept as written (containerd does not canonicalize the names).
// Names and values net/http would refuse fail here, not at every request.
func headerOf(m map[string]any) (http.Header, error) {
	if m == nil {
		return nil, nil
	}
	if len(m) > MaxHostHeaders {
		return nil, fmt.Errorf("%d headers, at most %d", len(m), MaxHostHeaders)
	}
	h, size := http.Header{}, 0
	for k, v := range m {
		var vals []string
		switch v := v.(type) {
		case string:
			vals = []string{v}
		case []any:
			var err error
			if vals, err = stringList(v); err != nil {
				return nil, fmt.Errorf("header %q: %w", Sanitize(k, maxField), err)
			}
		default:
			return nil, fmt.Errorf("header %q is a %T, not a string or a list of strings", Sanitize(k, maxField), v)
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("header name %q is not a valid HTTP header name", Sanitize(k, maxField))
		}
		for _, s := range vals {
			if !httpguts.ValidHeaderFieldValue(s) {
				return nil, fmt.Errorf("header %q has a value that is not valid in HTTP", k)
			}
			size += len(k) + len(s)
		}
		h[k] = vals
	}
	if size > maxHeaderBytes {
		return nil, fmt.Errorf("headers of %d bytes, at most %d", size, maxHeaderBytes)
	}
	return h, nil
}

func stringList(vs []any) ([]string, error) {
	out := make([]string, len(vs))
	for i, v := range vs {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%T is not a string", v)
		}
		out[i] = s
	}
	return out, nil
}

func absIn(folder, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(folder, p)
}
