package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/registry"
)

// Config is pullsafe's policy file (apiVersion pullsafe.io/v1alpha1, kind
// Config). Unknown keys are an error at start-up, never at request time.
// Key names are a contract with users: add keys, never rename these.
type Config struct {
	APIVersion    string           `json:"apiVersion"`
	Kind          string           `json:"kind"`
	Mode          Mode             `json:"mode,omitempty"`
	Rules         map[Rule]Action  `json:"rules,omitempty"`
	Pin           PinConfig        `json:"pin"`
	Cache         CacheConfig      `json:"cache"`
	Registries    RegistriesConfig `json:"registries"`
	LookupTimeout Duration         `json:"lookupTimeout,omitempty"`
	// OutageWindow is how long a registry that timed out, refused the
	// connection or answered 5xx is remembered as down ("cannot verify" at
	// once); 0 turns the memory off.
	OutageWindow Duration         `json:"outageWindow"`
	Namespaces   NamespacesConfig `json:"namespaces"`
	// Workloads are kinds beyond the built-in ones whose pod templates (or
	// pod specs) are checked like a Deployment's; see WorkloadKind.
	Workloads []WorkloadKind `json:"workloads,omitempty"`
	// Audit is the audit of running workloads in `pullsafe serve`.
	Audit AuditConfig `json:"audit"`

	// LoadedRegistriesConf is Registries.RegistriesConf as Validate loaded
	// it (nil: none); not a key of the file.
	LoadedRegistriesConf *registry.RegistriesConf `json:"-"`
}

// PinConfig decides where tags are pinned to digests.
type PinConfig struct {
	Pods      bool `json:"pods"`      // pin Pods (default true)
	Templates bool `json:"templates"` // pin workload templates (default false: GitOps drift, controller fights)
	KeepTag   bool `json:"keepTag"`   // repo:tag@digest (default true) rather than repo@digest
}

// CacheConfig sizes the lookup cache.
type CacheConfig struct {
	Size        int      `json:"size,omitempty"`
	TagTTL      Duration `json:"tagTTL,omitempty"`
	NotFoundTTL Duration `json:"notFoundTTL,omitempty"`
}

// RegistriesConfig describes registries as the nodes see them.
type RegistriesConfig struct {
	Mirrors         map[string][]string `json:"mirrors,omitempty"`
	Insecure        []string            `json:"insecure,omitempty"`
	CABundles       map[string]string   `json:"caBundles,omitempty"`
	NodeCredentials []string            `json:"nodeCredentials,omitempty"`
	Skip            []string            `json:"skip,omitempty"`
	DeniedNetworks  []string            `json:"deniedNetworks,omitempty"`

	// HostsDir is a folder laid out as containerd's config_path
	// (<host>/hosts.toml, _default/hosts.toml): the nodes' own registry
	// hosts, read as containerd reads them (registry/hostsdir.go).
	HostsDir string `json:"hostsDir,omitempty"`
	// HostsDigest is what the folder held at load (set by Validate, not
	// read from the file): a config whose hosts changed is another config.
	HostsDigest string `json:"-"`
	// VerifyBlobs: check the platform manifests, config and layer blobs
	// the nodes fetch after the index (PullPath). Default true.
	VerifyBlobs *bool `json:"verifyBlobs,omitempty"`
	// AllowLoopback lets registries, token realms and redirects reach
	// loopback addresses (127.0.0.0/8, ::1). Unset, `pullsafe serve` refuses
	// them (in a pod, loopback is pullsafe itself, never the node that pulls)
	// and `pullsafe check` allows them (it runs on your machine). Set true
	// only out of cluster: development, the test bed.
	AllowLoopback *bool `json:"allowLoopback,omitempty"`
	// RegistriesConf is CRI-O's registries.conf (v2), and RegistriesConfDir
	// its registries.conf.d drop-in folder, as the CRI-O nodes have them:
	// short names and [[registry]] entries on nodes whose runtime is cri-o
	// (crio.go). Empty: CRI-O nodes are judged as containerd nodes.
	RegistriesConf    string `json:"registriesConf,omitempty"`
	RegistriesConfDir string `json:"registriesConfDir,omitempty"`
	// CRIOShortNameMode is crio.conf's [crio.image] short_name_mode on the
	// nodes: "enforcing" (CRI-O 1.34's default; it overrides
	// registries.conf's short-name-mode) or "disabled"; "": each node's
	// default (enforcesShortNames).
	CRIOShortNameMode string `json:"crioShortNameMode,omitempty"`
}

// NamespacesConfig lists namespaces pullsafe never looks at, besides
// kube-system, kube-node-lease and its own.
type NamespacesConfig struct {
	Exclude []string `json:"exclude,omitempty"`
}

// Duration is a time.Duration written as "2s" in YAML: Kubernetes'
// metav1.Duration (the same spelling, time.ParseDuration's), kept under
// this name so the config's Go types read as before.
type Duration = metav1.Duration

// durationError names the key of a duration that does not parse, and what
// it holds: metav1.Duration's own error ("time: invalid duration") names
// neither. It walks cfgType's JSON keys, so a new Duration field is covered
// without being listed here.
func durationError(raw map[string]any, cfgType reflect.Type, prefix string) error {
	for i := range cfgType.NumField() {
		f := cfgType.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		v, ok := raw[name]
		if !ok || name == "" {
			continue
		}
		switch {
		case f.Type == reflect.TypeFor[Duration]():
			if s, isString := v.(string); !isString || !parses(s) {
				shown, _ := json.Marshal(v)
				return fmt.Errorf("%s%s: %s is not a duration such as 30s, 5m or 1h30m", prefix, name, shown)
			}
		case f.Type.Kind() == reflect.Struct:
			if m, ok := v.(map[string]any); ok {
				if err := durationError(m, f.Type, prefix+name+"."); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func parses(duration string) bool {
	_, err := time.ParseDuration(duration)
	return err == nil
}

// DefaultConfig is the configuration used where no file is given, and the
// base every file is laid over.
func DefaultConfig() *Config {
	rules := map[Rule]Action{}
	for _, r := range AllRules {
		rules[r] = r.DefaultAction()
	}
	return &Config{
		APIVersion:    "pullsafe.io/v1alpha1",
		Kind:          "Config",
		Mode:          ModeWarn,
		Rules:         rules,
		Pin:           PinConfig{Pods: true, Templates: false, KeepTag: true},
		Cache:         CacheConfig{Size: 10000, TagTTL: Duration{Duration: 5 * time.Minute}, NotFoundTTL: Duration{Duration: 30 * time.Second}},
		Registries:    RegistriesConfig{DeniedNetworks: defaultDenied()},
		LookupTimeout: Duration{Duration: 2 * time.Second},
		OutageWindow:  Duration{Duration: 30 * time.Second},
		Audit:         defaultAudit(),
	}
}

// defaultDenied spells the registry package's default deny list for the config.
func defaultDenied() []string {
	out := make([]string, len(registry.DefaultDeniedNetworks))
	for i, p := range registry.DefaultDeniedNetworks {
		out[i] = p.String()
	}
	return out
}

// LoadConfig reads and validates a config file; "" gives the defaults.
func LoadConfig(file string) (*Config, error) {
	if file == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return cfg, nil
}

// ParseConfig decodes strictly (unknown or duplicate keys fail) over the
// defaults and validates. A rule left out keeps its default action.
func ParseConfig(data []byte) (*Config, error) {
	cfg := DefaultConfig()
	defaults := cfg.Rules
	cfg.Rules = nil
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		var raw map[string]any
		if yaml.Unmarshal(data, &raw) == nil {
			if derr := durationError(raw, reflect.TypeFor[Config](), ""); derr != nil {
				return nil, derr
			}
		}
		return nil, err
	}
	for r, a := range defaults {
		if _, ok := cfg.Rules[r]; !ok {
			if cfg.Rules == nil {
				cfg.Rules = map[Rule]Action{}
			}
			cfg.Rules[r] = a
		}
	}
	return cfg, cfg.Validate()
}

// Validate reports the first problem with a clear path to the key.
func (c *Config) Validate() error {
	if c.APIVersion != "pullsafe.io/v1alpha1" || c.Kind != "Config" {
		return fmt.Errorf("apiVersion/kind must be pullsafe.io/v1alpha1/Config, got %s/%s", c.APIVersion, c.Kind)
	}
	if !c.Mode.valid() {
		return fmt.Errorf("mode: %q is not one of enforce, warn, off", c.Mode)
	}
	for r, a := range c.Rules {
		if !r.known() {
			return fmt.Errorf("rules: unknown rule %q (known: %s)", r, joinRules())
		}
		if !a.valid() {
			return fmt.Errorf("rules.%s: %q is not one of deny, warn, ignore", r, a)
		}
	}
	if err := c.validateBounds(); err != nil {
		return err
	}
	if err := validateMirrors(c.Registries.Mirrors); err != nil {
		return err
	}
	if err := c.Registries.validateHostsDir(); err != nil {
		return err
	}
	for _, n := range c.Registries.DeniedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("registries.deniedNetworks: %q: %w", n, err)
		}
	}
	for _, p := range append(append([]string{}, c.Registries.Skip...), c.Registries.NodeCredentials...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("registries: bad pattern %q: %w", p, err)
		}
	}
	if err := validateWorkloads(c.Workloads); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	if err := c.loadRegistriesConf(); err != nil {
		return err
	}
	for host, file := range c.Registries.CABundles {
		// Read whole at every resolver build: /dev/zero or a FIFO named
		// here would never end.
		fi, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("registries.caBundles.%s: %w", host, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() > MaxCABundleBytes {
			return fmt.Errorf("registries.caBundles.%s: %s is not a regular file of at most %d bytes", host, file, MaxCABundleBytes)
		}
	}
	return nil
}

// Bounds of every duration and size in the file. A value outside them is
// an error like any other (at start, or a reload that is kept out): no
// value may crash the process or spin it. golang-lru's expirable cache,
// for one, panicked on a TTL under 100ns (a ticker of TTL/100) and spun a
// core under a microsecond.
const (
	MinCacheTTL         = time.Second
	MaxTagTTL           = 24 * time.Hour
	MaxNotFoundTTL      = time.Hour
	MaxCacheSize        = 100_000 // entries per answer cache
	MinLookupTimeout    = 100 * time.Millisecond
	MaxLookupTimeout    = 30 * time.Second
	MinOutageWindow     = time.Second // or 0: off
	MaxOutageWindow     = 10 * time.Minute
	MaxMirrorsPerHost   = 16
	MaxRegistryEntries  = 1000 // each of mirrors, insecure, caBundles, nodeCredentials, skip, deniedNetworks
	MaxNamespaceEntries = 1000 // namespaces.exclude, audit.namespaces
	MaxCABundleBytes    = 1 << 20
)

// validateBounds checks every duration and size against its bounds.
func (c *Config) validateBounds() error {
	type bound struct {
		key         string
		d, min, max time.Duration
	}
	durations := []bound{
		{"cache.tagTTL", c.Cache.TagTTL.Duration, MinCacheTTL, MaxTagTTL},
		{"cache.notFoundTTL", c.Cache.NotFoundTTL.Duration, MinCacheTTL, MaxNotFoundTTL},
		{"lookupTimeout", c.LookupTimeout.Duration, MinLookupTimeout, MaxLookupTimeout},
	}
	if c.OutageWindow.Duration != 0 {
		durations = append(durations, bound{"outageWindow", c.OutageWindow.Duration, MinOutageWindow, MaxOutageWindow})
	}
	for _, b := range durations {
		if b.d < b.min || b.d > b.max {
			return fmt.Errorf("%s: %s is outside [%s, %s]", b.key, b.d, b.min, b.max)
		}
	}
	if c.Cache.Size < 1 || c.Cache.Size > MaxCacheSize {
		return fmt.Errorf("cache.size: %d is outside [1, %d]", c.Cache.Size, MaxCacheSize)
	}
	r := c.Registries
	for key, n := range map[string]int{"registries.mirrors": len(r.Mirrors), "registries.insecure": len(r.Insecure),
		"registries.caBundles": len(r.CABundles), "registries.nodeCredentials": len(r.NodeCredentials),
		"registries.skip": len(r.Skip), "registries.deniedNetworks": len(r.DeniedNetworks)} {
		if n > MaxRegistryEntries {
			return fmt.Errorf("%s: %d entries, at most %d", key, n, MaxRegistryEntries)
		}
	}
	for key, n := range map[string]int{"namespaces.exclude": len(c.Namespaces.Exclude), "audit.namespaces": len(c.Audit.Namespaces)} {
		if n > MaxNamespaceEntries {
			return fmt.Errorf("%s: %d entries, at most %d", key, n, MaxNamespaceEntries)
		}
	}
	return nil
}

// validateMirrors accepts what registries.mirrors can mean: a registry
// host[:port] mapped to mirror hosts, each host[:port] with an optional
// http:// or https:// (containerd's [host."https://mirror"] in the
// registry's hosts.toml). Anything else used to become an unusable
// endpoint whose failure made every not-found "cannot verify": denials
// silently off for that registry.
func validateMirrors(m map[string][]string) error {
	for reg, hosts := range m {
		if reg == "*" || reg == "_default" {
			return fmt.Errorf("registries.mirrors: %q is not a registry: a mirror for every registry (containerd's _default "+
				"hosts directory) cannot be expressed here; list each registry it serves, e.g. docker.io: [mirror.corp.example]", reg)
		}
		if err := mirrorHost(reg, false); err != nil {
			return fmt.Errorf("registries.mirrors: key %q: %w", reg, err)
		}
		if len(hosts) > MaxMirrorsPerHost {
			return fmt.Errorf("registries.mirrors.%s: %d mirrors, at most %d", reg, len(hosts), MaxMirrorsPerHost)
		}
		for i, h := range hosts {
			if err := mirrorHost(h, true); err != nil {
				return fmt.Errorf("registries.mirrors.%s[%d]: %q: %w", reg, i, h, err)
			}
		}
	}
	return nil
}

// mirrorHost checks one host[:port], with a scheme where allowed.
func mirrorHost(s string, scheme bool) error {
	h := s
	if scheme {
		h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	}
	h = strings.TrimSuffix(h, "/")
	if i := strings.Index(h, "/"); i >= 0 {
		return fmt.Errorf("has a path (%s): a mirror here is a host[:port], as containerd's [host.\"https://%s\"]; "+
			"a mirror that serves the registry under a path (hosts.toml: [host.\"https://%s/v2%s\"] with override_path = true) "+
			"cannot be expressed in registries.mirrors: leave it out and pullsafe asks the registry itself",
			h[i:], h[:i], h[:i], h[i:])
	}
	if strings.Contains(h, "*") {
		return fmt.Errorf("is a pattern, not a host[:port]")
	}
	if _, err := name.NewRegistry(h, name.StrictValidation); h == "" || err != nil || strings.ContainsAny(h, " \t") {
		return fmt.Errorf("is not a host[:port]")
	}
	return nil
}

// DeniedPrefixes parses Registries.DeniedNetworks (validated already).
func (c *Config) DeniedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range c.Registries.DeniedNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p)
		}
	}
	return out
}
