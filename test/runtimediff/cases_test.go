package runtimediff

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	s390x = v1.Platform{OS: "linux", Architecture: "s390x"}
)

// cred is one entry of the case's pull secret (a dockerconfigjson auths key).
type cred struct{ key, user, pass string }

// setup is what a case's build made: the image a Pod names, its pull
// secret, how pullsafe's config says what the node's hosts.toml says.
type setup struct {
	t        *testing.T
	hostsDir string
	image    string
	creds    []cred
	// registries are the lines under pullsafe's `registries:` key (beside
	// allowLoopback).
	registries []string
	// hold runs f when the whole run ends (newRegistry).
	hold func(f func())
	// hostsDirNeeded: pullsafe must read the nodes' hosts directory
	// (registries.hostsDir); the only way to say what the case's hosts.toml says.
	hostsDirNeeded bool
}

// hostsToml writes the node's hosts.toml for host (containerd's
// config_path layout: <host>/hosts.toml). The folder appears whole, by a
// rename from beside the hosts directory: cases run in parallel, and a
// reader of the directory must never see a half-written file.
func (s *setup) hostsToml(host, body string) {
	tmp, err := os.MkdirTemp(filepath.Dir(s.hostsDir), "staging-")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "hosts.toml"), []byte(body), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.hostsDir, host)); err != nil {
		s.t.Fatal(err)
	}
}

// right, wrong and otherPort are pull secret entries for r.
func right(r *caseRegistry) cred { return cred{r.Host, r.User, r.Pass} }
func wrong(r *caseRegistry) cred { return cred{r.Host, r.User, "wrong"} }

// otherPort names r's host with another port: the kubelet's keyring
// requires the port to match, so it never applies.
func otherPort(r *caseRegistry) cred {
	host, _, _ := strings.Cut(r.Host, ":")
	return cred{host + ":1", r.User, r.Pass}
}

// testCase is one registry situation, pulled by a node of platform.
type testCase struct {
	name     string
	platform v1.Platform
	build    func(s *setup)
}

// simple is one registry with options o holding content at team/app:v1
// (push); a TLS one is trusted through its CA, by pullsafe's caBundles and
// the node's hosts.toml alike.
func simple(o regOpts, content string) func(s *setup) *caseRegistry {
	return func(s *setup) *caseRegistry {
		if o.tls {
			o.caDir = filepath.Dir(s.hostsDir)
		}
		r := newRegistry(s, o)
		s.image = r.Host + "/team/app:v1"
		push(s, content, r)
		if o.tls {
			s.registries = append(s.registries, fmt.Sprintf("caBundles: {%q: %q}", r.Host, r.CAFile))
			s.hostsToml(r.Host, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", r.URL, r.URL, r.CAFile))
		}
		return r
	}
}

// push puts the same content at team/app:v1 of each registry (a mirror
// holds the upstream's bytes):
//
//	image-amd64, image-arm64: a single manifest of that platform
//	index: amd64 + arm64 + s390x; index-no-amd64: arm64 + s390x
//	none: nothing (the tag is missing)
func push(s *setup, content string, regs ...*caseRegistry) {
	var img v1.Image
	var idx v1.ImageIndex
	switch content {
	case "image-amd64":
		img = platformImage(s.t, amd64)
	case "image-arm64":
		img = platformImage(s.t, arm64)
	case "index":
		idx, _ = newIndex(s.t, false, amd64, arm64, s390x)
	case "index-no-amd64":
		idx, _ = newIndex(s.t, false, arm64, s390x)
	case "none":
	default:
		s.t.Fatalf("unknown content %q", content)
	}
	for _, r := range regs {
		switch {
		case img != nil:
			r.Write("team/app", "v1", img)
		case idx != nil:
			r.WriteIndex("team/app", "v1", idx)
		}
	}
}

// dockerHubMirror serves Docker Hub to the run's nodes (hosts.toml
// docker.io: server = the mirror), holding library/present:v1 only.
func dockerHubMirror(t *testing.T, hostsDir string) {
	m := newRegistry(&setup{t: t, hostsDir: hostsDir, hold: t.Cleanup}, regOpts{})
	idx, _ := newIndex(t, false, amd64, arm64)
	m.WriteIndex("library/present", "v1", idx)
	dir := filepath.Join(hostsDir, "docker.io")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+m.Host, "http://"+m.Host)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

var statuses = []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusServiceUnavailable}

// faultsOn is every status, then slow, on one kind of request.
func faultsOn(on string) []fault {
	var fs []fault
	for _, st := range statuses {
		fs = append(fs, fault{on: on, status: st})
	}
	return append(fs, fault{on: on, slow: true})
}

// cases generates the differential's cases.
func cases() []testCase {
	var cs []testCase
	add := func(name string, p v1.Platform, build func(s *setup)) {
		cs = append(cs, testCase{name: name, platform: p, build: build})
	}
	only := func(f func(s *setup) *caseRegistry) func(s *setup) { return func(s *setup) { f(s) } }

	// What the image is, for nodes of either platform.
	for _, p := range []v1.Platform{amd64, arm64} {
		pn := p.Architecture
		add(pn+"/index-with-platform", p, only(simple(regOpts{}, "index")))
		add(pn+"/image-amd64", p, only(simple(regOpts{}, "image-amd64")))
		add(pn+"/image-arm64", p, only(simple(regOpts{}, "image-arm64")))
		add(pn+"/index-without-amd64", p, only(simple(regOpts{}, "index-no-amd64")))
		add(pn+"/tag-missing", p, only(simple(regOpts{}, "none")))
	}
	add("content/artifact", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/chart:v1"
		r.Artifact("team/chart", "v1")
	})
	add("content/schema1", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/old/app:v1"
		r.Raw("old/app", "v1", "application/vnd.docker.distribution.manifest.v1+prettyjws",
			[]byte(`{"schemaVersion":1,"name":"old/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`))
	})
	add("content/missing-config-blob", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(configOf(s.t, r.Image("team/app", "v1", amd64)))
	})
	add("content/missing-layer-blob", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Image("team/app", "v1", amd64)))
	})
	add("content/index-missing-layer-of-node-platform", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, amd64, arm64)[0]))
	})
	add("content/index-missing-layer-of-other-platform", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, amd64, arm64)[1]))
	})
	// The node's platform listed twice: containerd pulls the first of
	// equally ranked entries (LimitManifests sorts stably), so only the
	// first entry's layers decide.
	for i, which := range []string{"first", "second"} {
		add("content/index-node-platform-twice-"+which+"-broken", amd64, func(s *setup) {
			r := newRegistry(s, regOpts{})
			s.image = r.Host + "/team/app:v1"
			r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, amd64, amd64)[i]))
		})
	}
	i386 := v1.Platform{OS: "linux", Architecture: "386"}
	add("amd64/index-386-and-arm64", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Index("team/app", "v1", false, i386, arm64)
	})
	add("amd64/index-386-broken-and-arm64", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, i386, arm64)[0]))
	})
	armNoVariant := v1.Platform{OS: "linux", Architecture: "arm64"}
	add("arm64/index-v8-broken-then-no-variant", arm64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, arm64, armNoVariant)[0]))
	})
	add("arm64/index-no-variant-broken-then-v8", arm64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Gone(layerOf(s.t, r.Index("team/app", "v1", false, armNoVariant, arm64)[0]))
	})
	add("content/manifest-digest-mismatch", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		img := r.PaddedImage("team/app", "v1", amd64)
		r.Tamper("v1")
		r.Tamper(digestOf(s.t, img).String())
	})
	add("content/platform-manifest-digest-mismatch", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app:v1"
		r.Tamper(digestOf(s.t, r.Index("team/app", "v1", true, amd64, arm64)[0]).String())
	})
	add("content/by-digest", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{})
		s.image = r.Host + "/team/app@" + digestOf(s.t, r.Image("team/app", "v1", amd64)).String()
	})

	// The registry's answers to each kind of request.
	for _, on := range []string{"ping", "manifests", "blobs"} {
		for _, f := range faultsOn(on) {
			add("upstream/"+f.String(), amd64, only(simple(regOpts{faults: []fault{f}}, "index")))
		}
	}
	// A front (CDN, proxy) whose HEAD on blobs misses what its GET serves:
	// containerd GETs blobs.
	add("upstream/blobs-HEAD-404", amd64, only(simple(regOpts{faults: []fault{{on: "blobs", status: http.StatusNotFound, method: http.MethodHead}}}, "index")))
	for _, f := range faultsOn("token") {
		f := f
		add("token/"+f.String(), amd64, func(s *setup) {
			r := simple(regOpts{auth: "bearer", faults: []fault{f}}, "index")(s)
			s.creds = []cred{right(r)}
		})
	}

	// Credentials, as the kubelet's keyring selects them.
	for _, auth := range []string{"basic", "bearer"} {
		auth := auth
		for _, c := range []struct {
			name  string
			creds func(r *caseRegistry) []cred
		}{
			{"none", func(*caseRegistry) []cred { return nil }},
			{"right", func(r *caseRegistry) []cred { return []cred{right(r)} }},
			{"wrong", func(r *caseRegistry) []cred { return []cred{wrong(r)} }},
			{"other-port", func(r *caseRegistry) []cred { return []cred{otherPort(r)} }},
			// The repository's key is more specific: tried first, then the host's.
			{"wrong-then-right", func(r *caseRegistry) []cred {
				return []cred{{r.Host + "/team/app", r.User, "wrong"}, right(r)}
			}},
			{"right-then-wrong", func(r *caseRegistry) []cred {
				return []cred{{r.Host + "/team/app", r.User, r.Pass}, wrong(r)}
			}},
			{"right-missing-tag", func(r *caseRegistry) []cred { return []cred{right(r)} }},
		} {
			c := c
			content := "index"
			if c.name == "right-missing-tag" {
				content = "none"
			}
			add("auth-"+auth+"/"+c.name, amd64, func(s *setup) {
				r := simple(regOpts{auth: auth}, content)(s)
				s.creds = c.creds(r)
			})
		}
	}

	// TLS without hosts.toml: containerd skips verification for loopback
	// registries on a port other than 443 (config.ConfigureHosts).
	add("tls/untrusted-no-hosts", amd64, func(s *setup) {
		r := newRegistry(s, regOpts{tls: true})
		s.image = r.Host + "/team/app:v1"
		push(s, "index", r)
	})
	add("tls/ca", amd64, only(simple(regOpts{tls: true}, "index")))

	cs = append(cs, mirrorCases()...)
	cs = append(cs, hostsDirCases()...)
	return cs
}

// mirrorCases: a mirror in front of the upstream, as registries.mirrors
// says it and as hosts.toml says it (the upstream stays the last host).
func mirrorCases() []testCase {
	var cs []testCase
	mirrored := func(name string, mo regOpts, mirrorContent, upContent string, upOpts regOpts) {
		cs = append(cs, testCase{name: "mirror/" + name, platform: amd64, build: func(s *setup) {
			up := newRegistry(s, upOpts)
			m := newRegistry(s, mo)
			s.image = up.Host + "/team/app:v1"
			if upContent == mirrorContent {
				push(s, upContent, up, m)
			} else {
				push(s, upContent, up)
				push(s, mirrorContent, m)
			}
			s.registries = append(s.registries, fmt.Sprintf("mirrors: {%q: [%q]}", up.Host, "http://"+m.Host))
			s.hostsToml(up.Host, fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+m.Host))
			if mo.auth != "" {
				// The kubelet matches the image's host, not the mirror's:
				// the secret names the upstream; containerd sends it to every host.
				s.creds = append(s.creds, cred{up.Host, m.User, m.Pass})
			}
		}})
	}
	mirrored("ok", regOpts{}, "index", "none", regOpts{})
	mirrored("missing-upstream-has", regOpts{}, "none", "index", regOpts{})
	mirrored("missing-both", regOpts{}, "none", "none", regOpts{})
	mirrored("missing-upstream-down", regOpts{}, "none", "index", regOpts{faults: []fault{{on: "ping", status: 503}, {on: "manifests", status: 503}}})
	mirrored("without-platform-upstream-has", regOpts{}, "index-no-amd64", "index", regOpts{})
	mirrored("auth-right", regOpts{auth: "basic"}, "index", "none", regOpts{})
	cs = append(cs, testCase{name: "mirror/auth-secret-names-mirror-host", platform: amd64, build: func(s *setup) {
		up, m := newRegistry(s, regOpts{}), newRegistry(s, regOpts{auth: "basic"})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.registries = append(s.registries, fmt.Sprintf("mirrors: {%q: [%q]}", up.Host, "http://"+m.Host))
		s.hostsToml(up.Host, fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+m.Host))
		s.creds = []cred{right(m)}
	}})
	for _, on := range []string{"ping", "token", "manifests", "blobs"} {
		for _, f := range faultsOn(on) {
			mo := regOpts{faults: []fault{f}}
			if on == "token" {
				mo.auth = "bearer"
			}
			mirrored(f.String()+"-upstream-has", mo, "index", "index", regOpts{})
			mirrored(f.String()+"-upstream-missing", mo, "index", "none", regOpts{})
		}
	}
	cs = append(cs, testCase{name: "mirror/down-upstream-has", platform: amd64, build: func(s *setup) {
		up := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", up)
		down := closedHost
		s.registries = append(s.registries, fmt.Sprintf("mirrors: {%q: [%q]}", up.Host, "http://"+down))
		s.hostsToml(up.Host, fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+down))
	}})
	return cs
}

// hostsDirCases need pullsafe to read hosts.toml (registries.hostsDir):
// server, capabilities, override_path, skip_verify, several hosts.
func hostsDirCases() []testCase {
	var cs []testCase
	hosted := func(name string, build func(s *setup)) {
		cs = append(cs, testCase{name: "hosts/" + name, platform: amd64, build: func(s *setup) {
			s.hostsDirNeeded = true
			build(s)
		}})
	}
	// Air-gapped: the node reaches the registry only through its mirror
	// (server = the mirror); the upstream is never asked.
	airGapped := func(name, mirrorContent string, upFaults []fault) {
		hosted(name, func(s *setup) {
			up := newRegistry(s, regOpts{faults: upFaults})
			m := newRegistry(s, regOpts{})
			s.image = up.Host + "/team/app:v1"
			if mirrorContent == "index" {
				push(s, "index", up, m)
			} else {
				push(s, "index", up)
				push(s, mirrorContent, m)
			}
			s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+m.Host, "http://"+m.Host))
		})
	}
	// The air-gapped cluster: Docker Hub only through a mirror. The
	// mirror (dockerHubMirror, one for the run: hosts.toml is per host)
	// holds library/present only.
	hosted("dockerhub-air-gapped-has", func(s *setup) { s.image = "docker.io/library/present:v1" })
	hosted("dockerhub-air-gapped-missing", func(s *setup) { s.image = "docker.io/library/non-existent-image:v1" })
	airGapped("server-mirror-has", "index", nil)
	airGapped("server-mirror-missing", "none", nil)
	airGapped("server-mirror-missing-upstream-down", "none", []fault{{on: "ping", status: 503}, {on: "manifests", status: 503}})
	airGapped("server-mirror-without-platform", "index-no-amd64", nil)
	hosted("several-hosts-second-has", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m1, m2 := newRegistry(s, regOpts{}), newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m2)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
			"http://"+up.Host, "http://"+m1.Host, "http://"+m2.Host))
	})
	// A pull-only host cannot resolve a tag: the next host resolves it, and
	// the pull-only host serves the content by digest.
	hosted("pull-only-mirror-has-tag-upstream-missing", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\"]\n", "http://"+m.Host))
	})
	hosted("pull-only-mirror-upstream-has", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", up)
		s.hostsToml(up.Host, fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\"]\n", "http://"+m.Host))
	})
	// A resolve-only host answers the tag; its content must come from a
	// host that can pull.
	hosted("resolve-only-mirror-has-upstream-missing", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"resolve\"]\n", "http://"+up.Host, "http://"+m.Host))
	})
	// containerd's fetcher asks every host for blobs, whatever its
	// capabilities: a layer the server lost, kept by a resolve-only host,
	// pulls.
	hosted("resolve-only-mirror-keeps-layer-server-lost", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		idx, imgs := newIndex(s.t, false, amd64, arm64)
		up.WriteIndex("team/app", "v1", idx)
		m.WriteIndex("team/app", "v1", idx)
		up.Gone(layerOf(s.t, imgs[0]))
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"resolve\"]\n", "http://"+up.Host, "http://"+m.Host))
	})
	// A mirror serving other bytes for the platform manifest than its
	// digest, the server the right ones: containerd reads the first host
	// that answers 200 and fails on the digest, it does not try the next.
	hosted("mirror-tampers-platform-manifest-server-good", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		idx, imgs := newIndex(s.t, true, amd64, arm64)
		up.WriteIndex("team/app", "v1", idx)
		m.WriteIndex("team/app", "v1", idx)
		m.Tamper(digestOf(s.t, imgs[0]).String())
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+up.Host, "http://"+m.Host))
	})
	hosted("override-path", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{prefix: "/custom"})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
			"http://"+up.Host, "http://"+m.Host+"/custom/v2"))
	})
	hosted("override-path-missing", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{prefix: "/custom"})
		s.image = up.Host + "/team/app:v1"
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
			"http://"+m.Host+"/custom/v2", "http://"+m.Host+"/custom/v2"))
	})
	hosted("skip-verify-mirror", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{tls: true})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", "http://"+up.Host, m.URL))
	})
	hosted("ca-mirror", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{tls: true, caDir: filepath.Dir(s.hostsDir)})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", "http://"+up.Host, m.URL, m.CAFile))
	})
	hosted("untrusted-mirror-upstream-missing", func(s *setup) {
		up := newRegistry(s, regOpts{})
		m := newRegistry(s, regOpts{tls: true})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", m)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+up.Host, m.URL))
	})
	hosted("plain-http-server", func(s *setup) {
		up := newRegistry(s, regOpts{})
		s.image = up.Host + "/team/app:v1"
		push(s, "index", up)
		s.hostsToml(up.Host, fmt.Sprintf("server = %q\n", "http://"+up.Host))
	})
	return cs
}
