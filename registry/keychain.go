package registry

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// dockerHubKey is the one key that serves Docker Hub images when no other key
// matched, as the kubelet's keyring does ("https://index.docker.io/v1/" is
// stored under it once scheme and /v1/ are stripped).
const dockerHubKey = "index.docker.io"

// Credential is one username/password pair from a pull secret or docker config,
// with where it came from. Only Source and Key ever appear in messages.
type Credential struct {
	Source   string // "namespace/name" of the secret, or the docker config path
	Key      string // the registry key as the kubelet stores it: host[:port][/path]
	Username string
	Password string

	fp string // Fingerprint, computed once where the credential is built
}

// Fingerprint identifies the credential without revealing it: cache entries and
// rate-limit windows are keyed by it, so an answer obtained with one secret is
// never reused for a caller that does not hold the same secret.
func (c Credential) Fingerprint() string {
	if c.fp != "" {
		return c.fp
	}
	if c.Username == "" && c.Password == "" {
		return "anonymous"
	}
	h := sha256.New()
	// Length-prefixed fields: "ab"+"c" and "a"+"bc" must not collide.
	for _, s := range []string{c.Key, c.Username, c.Password} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func (c Credential) String() string { return fmt.Sprintf("%s (key %q)", c.Source, c.Key) }

// SecretProblem says why a pull secret contributed no credentials.
type SecretProblem struct {
	Secret string // "namespace/name"
	Reason string
	// FailsPull is true where the kubelet itself would fail every pull that
	// references the secret (it returns the parse error instead of pulling),
	// false where it silently ignores the secret.
	FailsPull bool
}

func (p SecretProblem) Error() string { return fmt.Sprintf("pull secret %s: %s", p.Secret, p.Reason) }

// Keychain is the kubelet's keyring for one pod: the credentials of its pull
// secrets, matched against image names exactly as the kubelet's
// pkg/credentialprovider BasicDockerKeyring does. The zero value and nil are
// empty keychains (anonymous pulls).
type Keychain struct {
	index    []string // keys, reverse-sorted so longer paths come first
	globs    map[string]glob
	creds    map[string][]Credential
	sources  map[string][]string // source -> keys it holds, for diagnoses
	problems []SecretProblem
	// identity is the pod's, for credential providers that take its
	// service-account token (credprovider.go).
	identity PodIdentity
}

// NewKeychain builds the keychain for secrets of type kubernetes.io/dockerconfigjson
// and kubernetes.io/dockercfg. It never fails: secrets that cannot be used are
// reported by Problems, the usable ones still count.
func NewKeychain(secrets []*corev1.Secret) *Keychain {
	k := &Keychain{}
	for _, s := range secrets {
		if s == nil {
			continue
		}
		src := s.Namespace + "/" + s.Name
		entries, err := parseSecret(s)
		if err != nil {
			k.problems = append(k.problems, *err)
			continue
		}
		k.add(src, entries)
		if len(k.sources[src]) == 0 {
			// Valid, but no key the kubelet can use ({}, or keys that do not
			// parse): the kubelet skips it silently; a diagnosis must not.
			k.problems = append(k.problems, SecretProblem{Secret: src,
				Reason: fmt.Sprintf("holds no registry key the kubelet can use (%d key(s) in it)", len(entries))})
		}
	}
	return k
}

// AddDockerConfig adds the "auths" of a docker config.json (as used by
// `docker login` and by `pullsafe check`), labelled with source.
func (k *Keychain) AddDockerConfig(source string, data []byte) error {
	entries, err := parseDockerConfigJSON(data)
	if err != nil {
		return fmt.Errorf("docker config %s: %w", source, err)
	}
	k.add(source, entries)
	return nil
}

// Problems lists the secrets that contributed nothing, and why.
func (k *Keychain) Problems() []SecretProblem {
	if k == nil {
		return nil
	}
	return k.problems
}

// Sources lists each credential source with the registry keys it holds, for
// messages such as `secret "corp" holds registry.corp.io, not registry.corp.io:5000`.
func (k *Keychain) Sources() map[string][]string {
	if k == nil {
		return nil
	}
	return k.sources
}

func (k *Keychain) add(source string, entries map[string]dockerConfigEntry) {
	if k.creds == nil {
		k.creds = map[string][]Credential{}
		k.sources = map[string][]string{}
		k.globs = map[string]glob{}
	}
	// Map order is random; the kubelet's order within one key follows the
	// order secrets were added, and within a secret it is unspecified. Sort
	// for determinism.
	locs := make([]string, 0, len(entries))
	for loc := range entries {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	for _, loc := range locs {
		key, ok := keyringKey(loc)
		if !ok {
			continue // the kubelet logs and skips keys that do not parse
		}
		g, ok := parseGlob(key)
		if !ok {
			continue
		}
		e := entries[loc]
		c := Credential{Source: source, Key: key, Username: e.Username, Password: e.Password}
		c.fp = c.Fingerprint()
		k.creds[key] = append(k.creds[key], c)
		if !slices.Contains(k.index, key) {
			k.index = append(k.index, key)
			k.globs[key] = g
		}
		if !slices.Contains(k.sources[source], key) {
			k.sources[source] = append(k.sources[source], key)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
}

// keyringKey normalises a docker config key as the kubelet's keyring does:
// scheme dropped, a leading /v1/ or /v2/ path reduced to its remainder.
func keyringKey(loc string) (string, bool) {
	value := loc
	if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
		value = "https://" + value
	}
	parsed, err := url.Parse(value)
	if err != nil {
		return "", false
	}
	path := parsed.Path
	if strings.HasPrefix(path, "/v2/") || strings.HasPrefix(path, "/v1/") {
		path = path[3:]
	}
	if path != "" && path != "/" {
		return parsed.Host + path, true
	}
	return parsed.Host, true
}

// Lookup returns the credentials the kubelet would try, in its order, for an
// image name as the kubelet sees it (registry/repository without tag or
// digest, Docker Hub as "docker.io/library/x"). An empty result means the
// kubelet pulls anonymously; a non-empty one means it never does.
func (k *Keychain) Lookup(image string) []Credential {
	if k == nil || len(k.index) == 0 {
		return nil
	}
	target, ok := parseGlob(image)
	if !ok {
		return nil
	}
	var out []Credential
	for _, key := range k.index {
		if k.globs[key].matches(target) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) > 0 {
		return out
	}
	if isDockerHub(image) {
		return k.creds[dockerHubKey]
	}
	return nil
}

// glob is a schemeless URL split as the kubelet's URLsMatch compares it.
type glob struct {
	labels []string
	port   string
	path   string
}

func parseGlob(s string) (glob, bool) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return glob{}, false
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return glob{labels: strings.Split(host, "."), port: port, path: u.Path}, true
}

// matches is the kubelet's URLsMatch: equal ports, equal number of host
// labels each glob-matched, and the key's path a string prefix of the image's.
func (g glob) matches(t glob) bool {
	if g.port != t.port || len(g.labels) != len(t.labels) || !strings.HasPrefix(t.path, g.path) {
		return false
	}
	for i := range g.labels {
		if ok, err := filepath.Match(g.labels[i], t.labels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// isDockerHub is the kubelet's isDefaultRegistryMatch.
func isDockerHub(image string) bool {
	first, _, found := strings.Cut(image, "/")
	if first == "" {
		return false
	}
	if !found || first == "docker.io" || first == "index.docker.io" {
		return true
	}
	return !strings.ContainsAny(first, ".:")
}

type dockerConfigEntry struct {
	Username string
	Password string
}

// UnmarshalJSON follows the kubelet: "auth" (base64 of user:password, padded
// or not) wins over username/password; identitytoken and registrytoken are
// ignored.
func (e *dockerConfigEntry) UnmarshalJSON(data []byte) error {
	// Email is unused but decoded: the kubelet decodes it too, so a
	// malformed one fails its pull and must be reported here as well.
	var raw struct {
		Username string `json:"username,omitempty"`
		Password string `json:"password,omitempty"`
		Email    string `json:"email,omitempty"`
		Auth     string `json:"auth,omitempty"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	e.Username, e.Password = raw.Username, raw.Password
	if raw.Auth == "" {
		return nil
	}
	enc := base64.RawStdEncoding
	if strings.HasSuffix(strings.TrimSpace(raw.Auth), "=") {
		enc = base64.StdEncoding
	}
	decoded, err := enc.DecodeString(raw.Auth)
	if err != nil {
		return fmt.Errorf("field \"auth\" is not valid base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return fmt.Errorf("field \"auth\" must be base64 of username:password")
	}
	e.Username, e.Password = user, pass
	return nil
}

func parseDockerConfigJSON(data []byte) (map[string]dockerConfigEntry, error) {
	var cfg struct {
		Auths map[string]dockerConfigEntry `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return cfg.Auths, nil
}

func parseDockerCfg(data []byte) (map[string]dockerConfigEntry, error) {
	var cfg map[string]dockerConfigEntry
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return cfg, nil
}

// parseSecret mirrors the kubelet's MakeDockerKeyring: the type decides which
// key is read; a parse error fails the kubelet's pull, a wrong type or a
// missing key makes the kubelet ignore the secret.
func parseSecret(s *corev1.Secret) (map[string]dockerConfigEntry, *SecretProblem) {
	src := s.Namespace + "/" + s.Name
	var (
		key   string
		parse func([]byte) (map[string]dockerConfigEntry, error)
	)
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		key, parse = corev1.DockerConfigJsonKey, parseDockerConfigJSON
	case corev1.SecretTypeDockercfg:
		key, parse = corev1.DockerConfigKey, parseDockerCfg
	default:
		return nil, &SecretProblem{Secret: src, Reason: fmt.Sprintf("type is %q, not %s or %s, so the kubelet ignores it",
			s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)}
	}
	data := s.Data[key]
	if len(data) == 0 {
		return nil, &SecretProblem{Secret: src, Reason: fmt.Sprintf("key %q is missing or empty, so the kubelet ignores it", key)}
	}
	entries, err := parse(data)
	if err != nil {
		return nil, &SecretProblem{Secret: src, Reason: fmt.Sprintf("%s: %v", key, err), FailsPull: true}
	}
	return entries, nil
}
