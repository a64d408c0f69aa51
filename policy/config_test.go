package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestParseConfigDefaultsAndOverrides(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: enforce
rules:
  unreachable: deny
pin: {pods: false, templates: true, keepTag: false}
cache: {size: 10, tagTTL: 1m, notFoundTTL: 5s}
registries:
  mirrors: {docker.io: [mirror.corp.example]}
  insecure: [registry.local:5000]
  nodeCredentials: ["*.dkr.ecr.*.amazonaws.com"]
  skip: ["registry.k8s.io/*"]
  deniedNetworks: [169.254.0.0/16, fd00:ec2::254/128]
lookupTimeout: 3s
outageWindow: 12s
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeEnforce || cfg.Rules[RuleUnreachable] != ActionDeny || cfg.Rules[RuleNotFound] != ActionDeny ||
		cfg.Rules[RuleMutableTag] != ActionWarn {
		t.Errorf("rules = %v (unset rules must keep their defaults)", cfg.Rules)
	}
	if cfg.Pin.Pods || !cfg.Pin.Templates || cfg.Pin.KeepTag || cfg.Cache.TagTTL.Duration != time.Minute ||
		cfg.LookupTimeout.Duration != 3*time.Second || cfg.OutageWindow.Duration != 12*time.Second || len(cfg.DeniedPrefixes()) != 2 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestParseConfigRejectsBadInputAtStartup(t *testing.T) {
	head := "apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"
	tests := []struct{ yaml, want string }{
		{head + "mdoe: warn\n", `unknown field "mdoe"`},
		{head + "mode: block\n", `mode: "block" is not one of`},
		{head + "rules: {not-fond: deny}\n", `unknown rule "not-fond"`},
		{head + "rules: {not-found: block}\n", `rules.not-found: "block"`},
		{head + "lookupTimeout: soon\n", `lookupTimeout: "soon" is not a duration`},
		{head + "cache: {tagTTL: 5}\n", `cache.tagTTL: 5 is not a duration`},
		{head + "outageWindow: [1s]\n", `outageWindow: ["1s"] is not a duration`},
		{head + "cache: {notFoundTTL: \"\"}\n", `cache.notFoundTTL: "" is not a duration`},
		{head + "lookupTimeout: 5m\n", "outside"},
		{head + "outageWindow: -1s\n", "outageWindow"},
		{head + "outageWindow: 1h\n", "outageWindow"},
		{head + "cache: {size: 0}\n", "cache.size: 0 is outside [1, 100000]"},
		{head + "cache: {size: 100001}\n", "cache.size"},
		{head + "cache: {tagTTL: 50ns}\n", "cache.tagTTL: 50ns is outside [1s, 24h0m0s]"},
		{head + "cache: {tagTTL: 200ns}\n", "cache.tagTTL"},
		{head + "cache: {tagTTL: 999ms}\n", "cache.tagTTL"},
		{head + "cache: {tagTTL: 25h}\n", "cache.tagTTL"},
		{head + "cache: {notFoundTTL: 500ms}\n", "cache.notFoundTTL"},
		{head + "cache: {notFoundTTL: 2h}\n", "cache.notFoundTTL"},
		{head + "lookupTimeout: 1ns\n", "lookupTimeout"},
		{head + "outageWindow: 1ns\n", "outageWindow: 1ns is outside [1s, 10m0s]"},
		{head + "registries: {mirrors: {docker.io: [harbor.corp/dockerhub]}}\n",
			`registries.mirrors.docker.io[0]: "harbor.corp/dockerhub": has a path (/dockerhub)`},
		{head + "registries: {mirrors: {docker.io: [\"https://harbor.corp/dockerhub/\"]}}\n", "override_path = true"},
		{head + "registries: {mirrors: {\"*\": [mirror.corp.example]}}\n", `"*" is not a registry`},
		{head + "registries: {mirrors: {docker.io: [\"*\"]}}\n", "is a pattern"},
		{head + "registries: {mirrors: {docker.io/library: [mirror.corp.example]}}\n", `key "docker.io/library": has a path`},
		{head + "registries: {mirrors: {docker.io: [\"\"]}}\n", "is not a host[:port]"},
		{head + "registries: {mirrors: {docker.io: [\"a b\"]}}\n", "is not a host[:port]"},
		{head + "registries: {deniedNetworks: [not-a-cidr]}\n", "deniedNetworks"},
		{head + "registries: {caBundles: {r.io: /does/not/exist.pem}}\n", "caBundles.r.io"},
		{head + "registries: {skip: ['[']}\n", "bad pattern"},
		{head + "registries: {caBundles: {r.io: /dev/zero}}\n", "caBundles.r.io: /dev/zero is not a regular file"},
		{"apiVersion: v1\nkind: Config\n", "apiVersion/kind"},
		{head + "mode: warn\nmode: enforce\n", "already set"},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want it to contain %q", tt.yaml, err, tt.want)
		}
	}
}

func TestOutageWindowDefault(t *testing.T) {
	if d := DefaultConfig().OutageWindow.Duration; d != 30*time.Second {
		t.Errorf("outageWindow default = %s, want 30s", d)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"registry.k8s.io/*", "registry.k8s.io/ingress-nginx/controller", true},
		{"registry.k8s.io/*", "registry.k8s.io/pause", true},
		{"registry.k8s.io/*", "registry.k8s.io.evil.com/pause", false},
		{"*.corp.io/*", "a.corp.io/x/y", true},
		{"docker.io/library/nginx", "docker.io/library/nginx", true},
		{"docker.io/library/*", "docker.io/bitnami/nginx", false},
		{"127.0.0.1:*/team/*", "127.0.0.1:5000/team/a/b", true},
		{"127.0.0.1:*/team/*", "127.0.0.1:5000/teams/a", false},
		{"registry.k8s.io/*", "registry.k8s.io", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
}

func TestAllowLoopbackIsUnsetByDefault(t *testing.T) {
	if DefaultConfig().Registries.AllowLoopback != nil {
		t.Error("allowLoopback has a default: each command decides (serve refuses, check allows)")
	}
	cfg, err := ParseConfig([]byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nregistries: {allowLoopback: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registries.AllowLoopback == nil || *cfg.Registries.AllowLoopback {
		t.Errorf("allowLoopback = %v, want explicit false", cfg.Registries.AllowLoopback)
	}
}

// TestConfigDurationsRoundTrip: durations are written as they are read
// ("2s"), so a config printed back is a config that loads.
func TestConfigDurationsRoundTrip(t *testing.T) {
	data, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lookupTimeout: 2s\n", "outageWindow: 30s\n", "tagTTL: 5m0s\n", "notFoundTTL: 30s\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, data)
		}
	}
	back, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultConfig(), back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestModeOffUnquoted: `mode: off` unquoted is YAML 1.1's false to
// sigs.k8s.io/yaml; it must mean off (the README's spelling), and `on` (true)
// must stay an error, not some mode.
func TestModeOffUnquoted(t *testing.T) {
	for _, tt := range []struct {
		yaml    string
		want    Mode
		wantErr bool
	}{
		{"mode: off", ModeOff, false},
		{`mode: "off"`, ModeOff, false},
		{"mode: Off", ModeOff, false},
		{"mode: on", "", true},
		{"mode: 1", "", true},
	} {
		cfg, err := ParseConfig([]byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\n" + tt.yaml + "\n"))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, want error %v", tt.yaml, err, tt.wantErr)
			continue
		}
		if err == nil && cfg.Mode != tt.want {
			t.Errorf("%s: mode %q, want %q", tt.yaml, cfg.Mode, tt.want)
		}
	}
}

// Mirrors as containerd's hosts.toml spells them are accepted.
func TestParseConfigAcceptsMirrorHosts(t *testing.T) {
	head := "apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"
	for _, m := range []string{"mirror.corp.example", "https://mirror.corp.example/", "http://mirror.local:5000", "[fd00::1]:5000"} {
		if _, err := ParseConfig([]byte(head + "registries: {mirrors: {docker.io: [\"" + m + "\"], \"registry.corp:5000\": [\"" + m + "\"]}}\n")); err != nil {
			t.Errorf("mirror %q: %v", m, err)
		}
	}
	if _, err := ParseConfig([]byte(head + "outageWindow: 0s\n")); err != nil {
		t.Errorf("outageWindow 0 (off): %v", err)
	}
}
