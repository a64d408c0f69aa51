package registry

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// HostsDir is a folder laid out as containerd's config_path
// (/etc/containerd/certs.d): one folder per registry holding hosts.toml,
// and _default/hosts.toml for registries without their own. It is read
// whole at load, so a broken file is an error then, never at a lookup.
type HostsDir struct {
	dir     string
	digest  string
	folders map[string][]Host // by folder name: "docker.io", "reg.corp_5000_", "_default"
}

// Host is one host containerd tries for a registry, in order.
type Host struct {
	Scheme string // "https" or "http"
	// Host is host[:port]; "" is the registry itself (a hosts.toml without
	// server: containerd then asks the registry last, docker.io as
	// registry-1.docker.io).
	Host string
	Path string // API root: "/v2", or what override_path or the URL's path set
	// Pull and Resolve are the capabilities: a host without resolve is not
	// asked for tags, one without pull is not asked at all.
	Pull, Resolve bool
	Header        http.Header
	// TLS is set when hosts.toml gives ca, client or skip_verify.
	TLS *tls.Config
	// Fallback is containerd's HTTP fallback: an http:// host with TLS
	// settings (not on port 80) is tried over HTTPS first.
	Fallback bool
}

// Bounds of a hosts folder.
const (
	MaxHostsDirFolders = 1000
	maxCertFileBytes   = 1 << 20
)

// LoadHostsDir reads every <host>/hosts.toml (and _default) under dir.
// A folder without hosts.toml is read as containerd does: its *.crt files
// are CA certificates, each *.cert (with the *.key of the same name) a
// client certificate. Folders whose names start with "." (a ConfigMap
// volume's ..data) are skipped.
func LoadHostsDir(dir string) (*HostsDir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	h := &HostsDir{dir: dir, digest: HostsDirDigest(dir), folders: map[string][]Host{}}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		folder := filepath.Join(dir, name)
		if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
			continue // containerd looks up folders only
		}
		if len(h.folders) == MaxHostsDirFolders {
			return nil, fmt.Errorf("%s: more than %d registry folders", dir, MaxHostsDirFolders)
		}
		hosts, err := loadFolder(folder)
		if err != nil {
			return nil, err
		}
		h.folders[name] = hosts
	}
	return h, nil
}

func loadFolder(folder string) ([]Host, error) {
	file := filepath.Join(folder, "hosts.toml")
	data, err := readBounded(file, MaxHostsFileBytes)
	var specs []hostSpec
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && len(data) == 0):
		// hosts.go:321-326: no hosts.toml (or an empty one): Docker's
		// certs.d layout, the registry itself with those certificates.
		if specs, err = certFiles(folder); err != nil {
			return nil, fmt.Errorf("%s: %w", folder, err)
		}
	case err != nil:
		return nil, err
	default:
		if specs, err = parseHostsTOML(folder, data); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	out := make([]Host, len(specs))
	for i, s := range specs {
		if out[i], err = s.built(); err != nil {
			return nil, fmt.Errorf("%s: host %q: %w", file, s.host, err)
		}
	}
	return out, nil
}

// built reads the spec's certificate files: hosts.go:171-228.
func (s hostSpec) built() (Host, error) {
	h := Host{Scheme: s.scheme, Host: s.host, Path: s.path, Header: s.header,
		Pull: s.caps&capPull != 0, Resolve: s.caps&capResolve != 0}
	if !s.explicitTLS() {
		return h, nil
	}
	tc := &tls.Config{}
	if s.skipVerify != nil {
		tc.InsecureSkipVerify = *s.skipVerify // #nosec G402 -- the nodes' own hosts.toml says so
	}
	if s.caFiles != nil {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range s.caFiles {
			pem, err := readBounded(f, maxCertFileBytes)
			if err != nil {
				return h, err
			}
			if !pool.AppendCertsFromPEM(pem) {
				return h, fmt.Errorf("ca %s holds no PEM certificate", f)
			}
		}
		tc.RootCAs = pool
	}
	for _, p := range s.clientPairs {
		cert, err := readBounded(p[0], maxCertFileBytes)
		if err != nil {
			return h, err
		}
		key := cert
		if p[1] != "" {
			if key, err = readBounded(p[1], maxCertFileBytes); err != nil {
				return h, err
			}
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return h, fmt.Errorf("client %s: %w", p[0], err)
		}
		tc.Certificates = append(tc.Certificates, pair)
	}
	h.TLS = tc
	if h.Scheme == "http" {
		if _, port, _ := net.SplitHostPort(h.Host); port != "80" {
			h.Scheme, h.Fallback = "https", true
		}
	}
	return h, nil
}

// certFiles is loadCertFiles (hosts.go:622).
func certFiles(folder string) ([]hostSpec, error) {
	entries, err := os.ReadDir(folder)
	if err != nil {
		return nil, err
	}
	s := hostSpec{caps: capAll, path: "/v2"}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ".crt") {
			s.caFiles = append(s.caFiles, filepath.Join(folder, name))
		}
		if strings.HasSuffix(name, ".cert") {
			pair := [2]string{filepath.Join(folder, name), ""}
			if key := filepath.Join(folder, strings.TrimSuffix(name, ".cert")+".key"); fileExists(key) {
				pair[1] = key
			}
			s.clientPairs = append(s.clientPairs, pair)
		}
	}
	return []hostSpec{s}, nil
}

func fileExists(f string) bool { _, err := os.Stat(f); return err == nil }

// readBounded reads a regular file of at most max bytes: a FIFO or
// /dev/zero named in hosts.toml or a credential provider config must not
// hang or fill the process. The size is checked again after reading: the
// file may grow between the stat and the read.
func readBounded(file string, max int64) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > max {
		return nil, fmt.Errorf("%s is not a regular file of at most %d bytes", file, max)
	}
	f, err := os.Open(file) // #nosec G304 -- a path from the operator's configuration
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("unable to read file %q: %w", file, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is not a regular file of at most %d bytes", file, max)
	}
	return data, nil
}

// Hosts returns the hosts containerd tries for registry ("docker.io",
// "reg.corp:5000"), in order, and whether a folder (its own or _default)
// configures it. The folder is found as containerd's hostPaths does:
// "host_port_" first, then "host:port", then "_default".
func (d *HostsDir) Hosts(registry string) ([]Host, bool) {
	if d == nil {
		return nil, false
	}
	registry = hubName(registry)
	for _, name := range []string{portFolder(registry), registry, "_default"} {
		if hs, ok := d.folders[name]; ok {
			return hs, true
		}
	}
	return nil, false
}

// hostNames are the registries and hosts the folder names: configured
// hosts, labelled by name in the metrics like mirrors.
func (d *HostsDir) hostNames() []string {
	if d == nil {
		return nil
	}
	var out []string
	for folder, hosts := range d.folders {
		if folder != "_default" {
			out = append(out, folderHost(folder))
		}
		for _, h := range hosts {
			if h.Host != "" {
				out = append(out, h.Host)
			}
		}
	}
	return out
}

// Dir is the folder the hosts were read from.
func (d *HostsDir) Dir() string { return d.dir }

// Digest identifies what the folder said when it was loaded; see
// HostsDirDigest.
func (d *HostsDir) Digest() string { return d.digest }

// HostsDirDigest hashes the folder names and hosts.toml bytes under dir,
// without reading certificates or building anything: cheap enough to poll,
// so a ConfigMap update of the nodes' hosts (containerd reads them at every
// pull) is seen without a change of pullsafe's own config file. A folder
// that cannot be read hashes as its error.
func HostsDirDigest(dir string) string {
	h := sha256.New()
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Fprintf(h, "error %v", err)
	}
	for i, e := range entries {
		if i == MaxHostsDirFolders+1 {
			break
		}
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := readBounded(filepath.Join(dir, e.Name(), "hosts.toml"), MaxHostsFileBytes)
		fmt.Fprintf(h, "%q %d %v\n", e.Name(), len(data), err)
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// portFolder is containerd's hostDirectory: "host:port" is "host_port_".
func portFolder(host string) string {
	if i := strings.LastIndex(host, ":"); i > 0 {
		return host[:i] + "_" + host[i+1:] + "_"
	}
	return host
}

// folderHost undoes portFolder: "host_port_" is "host:port".
func folderHost(folder string) string {
	if h, ok := strings.CutSuffix(folder, "_"); ok {
		if i := strings.LastIndex(h, "_"); i > 0 && isPort(h[i+1:]) {
			return h[:i] + ":" + h[i+1:]
		}
	}
	return folder
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// hubName is the registry name containerd's CRI looks folders up by: the
// docker reference library's, where index.docker.io (go-containerregistry's
// name for Docker Hub) is docker.io. registry-1.docker.io is not: an image
// spelled with it is looked up in a folder of that name.
func hubName(registry string) string {
	if registry == "index.docker.io" {
		return "docker.io"
	}
	return registry
}
