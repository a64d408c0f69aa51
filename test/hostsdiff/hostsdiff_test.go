package hostsdiff

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/google/go-cmp/cmp"

	"github.com/pullsafe/pullsafe/registry"
)

// host is what both readers say of one host, in comparable form.
type host struct {
	Scheme, Host, Path string
	Pull, Resolve      bool
	Header             http.Header
	SkipVerify         bool
	ClientCerts        int
	CustomRoots        bool
}

// containerdHosts is what containerd's CRI gets for registry from dir.
func containerdHosts(t *testing.T, dir, reg string) []host {
	t.Helper()
	// UpdateClient sees each host's own client before the HTTP fallback
	// wraps its transport: the way to read the TLS settings containerd built.
	tlsOf := map[*http.Client]*tls.Config{}
	opts := config.HostOptions{HostDir: config.HostDirFromRoot(dir), UpdateClient: func(c *http.Client) error {
		if tr, ok := c.Transport.(*http.Transport); ok {
			tlsOf[c] = tr.TLSClientConfig
		}
		return nil
	}}
	rhs, err := config.ConfigureHosts(context.Background(), opts)(reg)
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	var out []host
	for _, rh := range rhs {
		h := host{Scheme: rh.Scheme, Host: rh.Host, Path: rh.Path, Header: rh.Header,
			Pull: rh.Capabilities.Has(docker.HostCapabilityPull), Resolve: rh.Capabilities.Has(docker.HostCapabilityResolve)}
		if tc := tlsOf[rh.Client]; tc != nil {
			h.SkipVerify, h.ClientCerts, h.CustomRoots = tc.InsecureSkipVerify, len(tc.Certificates), tc.RootCAs != nil
		}
		out = append(out, h)
	}
	return out
}

// pullsafeHosts is what registries.hostsDir makes of dir for registry, with
// the registry itself spelled as containerd fills it in (hosts.go:101-135).
func pullsafeHosts(t *testing.T, dir, reg string) ([]host, error) {
	t.Helper()
	d, err := registry.LoadHostsDir(dir)
	if err != nil {
		return nil, err
	}
	hs, ok := d.Hosts(reg)
	if !ok {
		hs = []registry.Host{{Path: "/v2", Pull: true, Resolve: true}}
	}
	var out []host
	for _, rh := range hs {
		h := host{Scheme: rh.Scheme, Host: rh.Host, Path: rh.Path, Header: rh.Header, Pull: rh.Pull, Resolve: rh.Resolve}
		if h.Host == "" {
			h.Scheme, h.Host = "https", reg
			if reg == "docker.io" {
				h.Host = "registry-1.docker.io"
			}
		}
		if rh.TLS != nil {
			h.SkipVerify, h.ClientCerts, h.CustomRoots = rh.TLS.InsecureSkipVerify, len(rh.TLS.Certificates), rh.TLS.RootCAs != nil
		}
		out = append(out, h)
	}
	return out, nil
}

func writeFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		f := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The cases the issue names: server, several hosts in order, capabilities,
// override_path, paths, skip_verify, ca, client, headers, plain HTTP (with
// and without TLS settings), _default, host_port_ folders, certs.d layout.
func TestHostsMatchContainerd(t *testing.T) {
	ca, cert, key := testPKI(t)
	tests := []struct {
		name  string
		files map[string]string
		reg   string
	}{
		{"no folder", nil, "quay.io"},
		{"air-gapped docker.io", map[string]string{"docker.io/hosts.toml": `server = "https://mirror.corp.example"`}, "docker.io"},
		{"mirror then docker hub", map[string]string{"docker.io/hosts.toml": "[host.\"https://m1\"]\n[host.\"http://m2:5000\"]\ncapabilities = [\"pull\"]\n"}, "docker.io"},
		{"order and a late header table", map[string]string{"r.io/hosts.toml": "server = \"https://r.io\"\n[host.\"https://b\"]\n[host.\"https://a\"]\n[host.\"https://b\".header]\nx-k = [\"1\", \"2\"]\n"}, "r.io"},
		{"override_path and paths", map[string]string{"r.io/hosts.toml": "[host.\"https://h/v2/proxy\"]\noverride_path = true\n[host.\"https://h2/prefix\"]\n[host.\"https://h3/x/v2\"]\n"}, "r.io"},
		{"capabilities", map[string]string{"r.io/hosts.toml": "server = \"https://s\"\ncapabilities = [\"pull\"]\n[host.\"https://a\"]\ncapabilities = [\"resolve\", \"Push\"]\n"}, "r.io"},
		{"top-level caps without server", map[string]string{"r.io/hosts.toml": "capabilities = [\"pull\"]\n[host.\"https://a\"]\n"}, "r.io"},
		{"skip_verify, ca, client", map[string]string{"r.io/hosts.toml": "[host.\"https://a\"]\nskip_verify = true\n[host.\"https://b\"]\nca = \"ca.pem\"\nclient = [[\"c.pem\", \"k.pem\"]]\n",
			"r.io/ca.pem": ca, "r.io/c.pem": cert, "r.io/k.pem": key}, "r.io"},
		{"plain http, and http with TLS settings", map[string]string{"r.io/hosts.toml": "[host.\"http://a:5000\"]\n[host.\"http://b:5000\"]\nskip_verify = false\n[host.\"http://c:80\"]\nskip_verify = true\n"}, "r.io"},
		{"port folder", map[string]string{"r.io_5000_/hosts.toml": `server = "https://m"`}, "r.io:5000"},
		{"colon folder", map[string]string{"r.io:5000/hosts.toml": `server = "https://m"`}, "r.io:5000"},
		{"_default", map[string]string{"_default/hosts.toml": `server = "https://m"`}, "any.example"},
		{"_default without server", map[string]string{"_default/hosts.toml": "[host.\"https://m\"]\n"}, "any.example"},
		{"own folder beats _default", map[string]string{"_default/hosts.toml": `server = "https://m"`, "r.io/hosts.toml": `server = "https://own"`}, "r.io"},
		{"certs.d layout", map[string]string{"r.io/ca.crt": ca, "r.io/client.cert": cert, "r.io/client.key": key}, "r.io"},
		{"empty hosts.toml", map[string]string{"r.io/hosts.toml": "", "r.io/ca.crt": ca}, "r.io"},
		{"dotted host is not tried", map[string]string{"r.io/hosts.toml": "host.\"https://x\".capabilities = [\"pull\"]\n[host.\"https://y\"]\n"}, "r.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFolder(t, tt.files)
			got, err := pullsafeHosts(t, dir, tt.reg)
			if err != nil {
				t.Fatalf("pullsafe refused what containerd reads: %v", err)
			}
			if diff := cmp.Diff(containerdHosts(t, dir, tt.reg), got); diff != "" {
				t.Errorf("hosts (-containerd +pullsafe):\n%s", diff)
			}
		})
	}
}

// FuzzHostsMatchContainerd: whatever hosts.toml pullsafe accepts, containerd
// reads the same hosts from. (What pullsafe refuses, containerd either
// refuses too or only logs and ignores: pullsafe's load error is the point.)
func FuzzHostsMatchContainerd(f *testing.F) {
	f.Add("server = \"https://m\"\n[host.\"http://a:5000/p\"]\noverride_path = true\ncapabilities = [\"pull\"]\n")
	f.Add("[host.\"https://a\".header]\nx = [\"1\", \"2\"]\n[host.\"https://b\"]\nskip_verify = true\n")
	f.Add("capabilities = [\"resolve\"]\n[host.\"https://a/b/../v2\"]\n")
	f.Fuzz(func(t *testing.T, toml string) {
		dir := writeFolder(t, map[string]string{"r.io/hosts.toml": toml})
		got, err := pullsafeHosts(t, dir, "r.io")
		if err != nil {
			return
		}
		if diff := cmp.Diff(containerdHosts(t, dir, "r.io"), got); diff != "" {
			t.Errorf("hosts (-containerd +pullsafe) for %q:\n%s", toml, diff)
		}
	})
}
