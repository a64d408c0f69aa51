package registry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	kubeletconfig "k8s.io/kubelet/config/v1"
)

// The kubelet's image credential provider plugins
// (pkg/credentialprovider/plugin/plugin.go in kubelet 1.36): which plugin
// answers for an image, what it is asked, how long its answer is kept and
// under which key. What pullsafe adds are bounds: a plugin's answer is read
// up to maxProviderOutput bytes, it runs no longer than the lookup deadline,
// and its cached answers are a bounded LRU. Whatever goes wrong with a plugin
// is "cannot verify" naming it (ProviderOutcome.Problem), never a denial.
const (
	// maxProviderOutput bounds a plugin's stdout: ECR's answer is ~3 KiB,
	// auth-provider-gcp's a few entries of ~2 KiB.
	maxProviderOutput = 64 << 10
	// maxProviderCache bounds each provider's cached answers (each at most
	// maxProviderOutput bytes of strings).
	maxProviderCache = 512
	globalCacheKey   = "<global>"
)

// ServiceAccountFunc reads a service account: (nil, nil) when it does not
// exist, an error when that cannot be known.
type ServiceAccountFunc func(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)

// TokenFunc requests a token for sa with one audience (the TokenRequest
// API). The registry package never talks to the API server itself.
type TokenFunc func(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error)

// PodIdentity is who pulls an image: the pod's namespace and service
// account, with the functions that read the account and request its token.
// A nil function means the caller cannot do it (offline: no API server);
// a provider that needs it then cannot be verified.
type PodIdentity struct {
	Namespace         string
	ServiceAccount    string // "" where the pod has none (the kubelet's static pods)
	GetServiceAccount ServiceAccountFunc
	Token             TokenFunc
}

// ProviderOutcome is what one credential provider that matched an image
// gave: credentials, none, or a problem that leaves the pull unknown.
type ProviderOutcome struct {
	Provider       string
	ServiceAccount string // "namespace/name" where the provider got its token, else ""
	Credentials    int    // credentials it contributed for the image
	// Problem says why its credentials cannot be known (the plugin is
	// missing, hangs, prints garbage, the token cannot be requested): a
	// refusal without them proves nothing.
	Problem string
}

// Note is the outcome in words for a message, "" when it contributed
// credentials.
func (o ProviderOutcome) Note() string {
	switch {
	case o.Problem != "":
		return o.Problem
	case o.Credentials > 0:
		return ""
	case o.ServiceAccount != "":
		return fmt.Sprintf("credential provider %s returned no credentials for service account %s", o.Provider, o.ServiceAccount)
	}
	return fmt.Sprintf("credential provider %s returned no credentials for this image", o.Provider)
}

// CredentialProviders are the plugins of one CredentialProviderConfig. Safe
// for concurrent use; build one per process and hand it to every resolver
// (WithCredentialProviders), so cached answers survive config reloads.
type CredentialProviders struct {
	providers []*credentialProvider
}

// LoadCredentialProviders reads the kubelet's --image-credential-provider-config
// (a file or directory) with plugins in binDir
// (--image-credential-provider-bin-dir). The config must be valid, as the
// kubelet requires; a plugin missing from binDir is not an error here: its
// images are "cannot verify" until it is there (the volume holding the
// plugins may be mounted after pullsafe starts).
func LoadCredentialProviders(configPath, binDir string) (*CredentialProviders, error) {
	ps, err := readProviderConfig(configPath)
	if err != nil {
		return nil, err
	}
	return newCredentialProviders(ps, binDir, time.Now, os.Environ), nil
}

func newCredentialProviders(ps []kubeletconfig.CredentialProvider, binDir string, now func() time.Time, environ func() []string) *CredentialProviders {
	cp := &CredentialProviders{}
	for _, p := range ps {
		var env []string
		for _, e := range p.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		cp.providers = append(cp.providers, &credentialProvider{
			name: p.Name, apiVersion: p.APIVersion, bin: filepath.Join(binDir, p.Name),
			args: slices.Clone(p.Args), env: env, environ: environ,
			globs: matchGlobs(p.MatchImages), defaultCache: p.DefaultCacheDuration.Duration,
			token: p.TokenAttributes, now: now,
			cache: newTTLCache[string, providerEntry](maxProviderCache, nil, 0),
		})
	}
	return cp
}

// Names lists the providers in the config's order.
func (cp *CredentialProviders) Names() []string {
	if cp == nil {
		return nil
	}
	var out []string
	for _, p := range cp.providers {
		out = append(out, p.name)
	}
	return out
}

// NeedTokens reports whether a provider requests service-account tokens
// (tokenAttributes): only then does pullsafe need the RBAC to create them.
func (cp *CredentialProviders) NeedTokens() bool {
	return cp != nil && slices.ContainsFunc(cp.providers, func(p *credentialProvider) bool { return p.token != nil })
}

// Lookup runs every provider whose matchImages match image (the kubelet's
// image name: repository without tag or digest) and returns the credentials
// the kubelet's external provider keyring would return, in its order: the
// providers' answers merged into one keyring, matched against the image.
// timeout bounds each plugin run; a caller whose ctx ends first returns
// without the answer (an outcome with a Problem).
func (cp *CredentialProviders) Lookup(ctx context.Context, image string, id PodIdentity, timeout time.Duration) ([]Credential, []ProviderOutcome) {
	if cp == nil {
		return nil, nil
	}
	kc := &Keychain{}
	var outcomes []ProviderOutcome
	for _, p := range cp.providers {
		if !p.matches(image) {
			continue
		}
		cfg, out := p.provide(ctx, image, id, timeout)
		kc.add(out.source(), cfg)
		outcomes = append(outcomes, out)
	}
	creds := kc.Lookup(image)
	for i := range outcomes {
		for _, c := range creds {
			if c.Source == outcomes[i].source() {
				outcomes[i].Credentials++
			}
		}
	}
	return creds, outcomes
}

// identity is who pulls image as far as the providers' answers depend on
// it: the pod's namespace and service account where a provider that takes
// its token matches image, "" where no answer depends on the pod (every
// namespace gets the same credentials for image, as on the node).
func (cp *CredentialProviders) identity(image string, id PodIdentity) string {
	if cp == nil || id.ServiceAccount == "" {
		return ""
	}
	for _, p := range cp.providers {
		if p.token != nil && p.matches(image) {
			return lengthPrefixed(id.Namespace, id.ServiceAccount)
		}
	}
	return ""
}

func (o ProviderOutcome) source() string {
	if o.ServiceAccount != "" {
		return "credential provider " + o.Provider + " for service account " + o.ServiceAccount
	}
	return "credential provider " + o.Provider
}

type credentialProvider struct {
	name, apiVersion, bin string
	args, env             []string
	environ               func() []string
	globs                 []glob // matchImages, parsed
	defaultCache          time.Duration
	token                 *kubeletconfig.ServiceAccountTokenAttributes
	now                   func() time.Time
	cache                 *ttlCache[string, providerEntry]
	flights               singleflight.Group
}

type providerEntry struct {
	auth    map[string]dockerConfigEntry
	expires time.Time
}

// matches is the kubelet's isImageAllowed.
func (p *credentialProvider) matches(image string) bool {
	target, ok := parseGlob(image)
	if !ok {
		return false
	}
	for _, g := range p.globs {
		if g.matches(target) {
			return true
		}
	}
	return false
}

// provide is the kubelet's pluginProvider.provide for one image and pod.
func (p *credentialProvider) provide(ctx context.Context, image string, id PodIdentity, timeout time.Duration) (map[string]dockerConfigEntry, ProviderOutcome) {
	out := ProviderOutcome{Provider: p.name}
	var req providerRequest
	saKey := ""
	if p.token != nil {
		if id.ServiceAccount == "" && *p.token.RequireServiceAccount {
			out.Problem = fmt.Sprintf("credential provider %s requires a service account and the pod has none", p.name)
			return nil, out
		}
		if id.ServiceAccount != "" {
			out.ServiceAccount = id.Namespace + "/" + id.ServiceAccount
			var problem string
			req, saKey, problem = p.serviceAccountRequest(ctx, id)
			if problem != "" {
				out.Problem = problem
				return nil, out
			}
		}
	}
	req.image = image
	if auth, ok := p.cached(image, saKey); ok {
		return auth, out
	}
	flight := image
	if req.token != "" || len(req.annotations) > 0 {
		flight = lengthPrefixed(append([]string{image, hashOf(req.token)}, flatten(req.annotations)...)...)
	}
	ch := p.flights.DoChan(flight, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return p.run(rctx, req, timeout)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		out.Problem = fmt.Sprintf("credential provider %s gave no answer before the admission deadline", p.name)
		return nil, out
	}
	if res.Err != nil {
		out.Problem = res.Err.Error()
		return nil, out
	}
	resp := res.Val.(*providerResponse)
	if req.token != "" && p.token.CacheType != kubeletconfig.TokenServiceAccountTokenCacheType {
		for _, a := range resp.auth {
			if a.Password == req.token {
				out.Problem = fmt.Sprintf("credential provider %s returned the service account token as the password, which the kubelet refuses unless cacheType is Token", p.name)
				return nil, out
			}
		}
	}
	p.store(image, saKey, resp)
	return resp.auth, out
}

// serviceAccountRequest reads the account, its annotations and a token as
// the kubelet's serviceAccountProvider does, and the cache key part they
// make. problem is set where the provider cannot be run: the kubelet would
// skip it (a required annotation missing) or fail it, and which one pullsafe
// cannot always know, so the image cannot be verified.
func (p *credentialProvider) serviceAccountRequest(ctx context.Context, id PodIdentity) (req providerRequest, saKey, problem string) {
	who := id.Namespace + "/" + id.ServiceAccount
	if id.GetServiceAccount == nil {
		return req, "", fmt.Sprintf("credential provider %s needs service account %s, which cannot be read (checked offline)", p.name, who)
	}
	sa, err := id.GetServiceAccount(ctx, id.Namespace, id.ServiceAccount)
	switch {
	case err != nil:
		return req, "", fmt.Sprintf("credential provider %s needs service account %s: %s", p.name, who, Sanitize(err.Error(), maxMessage))
	case sa == nil:
		return req, "", fmt.Sprintf("credential provider %s needs service account %s, which does not exist yet", p.name, who)
	}
	ann := map[string]string{}
	for _, k := range p.token.RequiredServiceAccountAnnotationKeys {
		v, ok := sa.Annotations[k]
		if !ok {
			return req, "", fmt.Sprintf("credential provider %s is skipped: service account %s lacks the required annotation %s", p.name, who, k)
		}
		ann[k] = v
	}
	for _, k := range p.token.OptionalServiceAccountAnnotationKeys {
		if v, ok := sa.Annotations[k]; ok {
			ann[k] = v
		}
	}
	if id.Token == nil {
		return req, "", fmt.Sprintf("credential provider %s needs a token of service account %s (audience %s), and no API server was asked (checked offline)",
			p.name, who, p.token.ServiceAccountTokenAudience)
	}
	tok, err := id.Token(ctx, sa, p.token.ServiceAccountTokenAudience)
	if err != nil || tok == "" {
		why := "an empty token"
		if err != nil {
			why = Sanitize(err.Error(), maxMessage)
		}
		return req, "", fmt.Sprintf("credential provider %s: no token of service account %s for audience %s: %s", p.name, who, p.token.ServiceAccountTokenAudience, why)
	}
	parts := append([]string{id.Namespace, id.ServiceAccount, string(sa.UID)}, flatten(ann)...)
	if p.token.CacheType == kubeletconfig.TokenServiceAccountTokenCacheType {
		parts = append(parts, "token", hashOf(tok))
	}
	return providerRequest{token: tok, annotations: ann}, lengthPrefixed(parts...), ""
}

// cached looks the answer up under the image, its registry and the global
// key, in the kubelet's order.
func (p *credentialProvider) cached(image, saKey string) (map[string]dockerConfigEntry, bool) {
	for _, base := range []string{image, registryOf(image), globalCacheKey} {
		k := lengthPrefixed(base, saKey)
		e, ok := p.cache.Get(k)
		if !ok {
			continue
		}
		if !p.now().Before(e.expires) {
			p.cache.Remove(k)
			continue
		}
		return e.auth, true
	}
	return nil, false
}

// store keeps an answer as the plugin asked: under the image, its registry
// or one global key, for cacheDuration (0: not at all), or the config's
// defaultCacheDuration when the plugin names none.
func (p *credentialProvider) store(image, saKey string, resp *providerResponse) {
	d := p.defaultCache
	if resp.cacheDuration != nil {
		d = *resp.cacheDuration
	}
	if d <= 0 {
		return
	}
	base := image
	switch resp.cacheKeyType {
	case "Registry":
		base = registryOf(image)
	case "Global":
		base = globalCacheKey
	}
	p.cache.Add(lengthPrefixed(base, saKey), providerEntry{auth: resp.auth, expires: p.now().Add(d)})
}

// registryOf is the kubelet's parseRegistry: the first path segment.
func registryOf(image string) string {
	r, _, _ := strings.Cut(image, "/")
	return r
}

// lengthPrefixed joins strings so that no two lists give the same key, as
// the kubelet's cryptobyte cache keys do.
func lengthPrefixed(parts ...string) string {
	var b []byte
	for _, s := range parts {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b)
}

// flatten lists a map's keys and values in key order.
func flatten(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []string{fmt.Sprint(len(keys))}
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

func hashOf(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))
}

// errPluginMissing marks a plugin binary that is not there (or not
// executable): the platform team's volume, not the image, is at fault.
var errPluginMissing = errors.New("plugin missing")

// lookPlugin is the kubelet's exec.LookPath on the plugin's path.
func (p *credentialProvider) lookPlugin() (string, error) {
	bin, err := exec.LookPath(p.bin)
	if err == nil {
		return bin, nil
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("%w: credential provider %s: plugin %s does not exist (--image-credential-provider-bin-dir)", errPluginMissing, p.name, p.bin)
	}
	return "", fmt.Errorf("%w: credential provider %s: plugin %s cannot be run: %s", errPluginMissing, p.name, p.bin, Sanitize(err.Error(), maxMessage))
}

// SetIdentity records who pulls with this keychain, for the credential
// providers that take the pod's service-account token.
func (k *Keychain) SetIdentity(id PodIdentity) {
	if k != nil {
		k.identity = id
	}
}

// Identity is the pod's identity SetIdentity recorded (empty for nil).
func (k *Keychain) Identity() PodIdentity {
	if k == nil {
		return PodIdentity{}
	}
	return k.identity
}

// PullIdentity is what, beyond image and the pull secrets in kc, the
// credentials for image depend on: the pod's namespace and service account
// where a credential provider that takes its token matches image, else "".
// Two lookups of image with the same pull secrets are the same lookup only
// if their PullIdentity is the same: one service account's answer is not
// another's.
func (r *Resolver) PullIdentity(image string, kc *Keychain) string {
	repo, err := KubeletName(image)
	if err != nil {
		return ""
	}
	return r.o.providers.identity(repo, kc.Identity())
}

// WithCredentialProviders makes the resolver ask the kubelet's credential
// provider plugins for the images they match, after the pull secrets, as
// the kubelet's union keyring does. Default: none.
func WithCredentialProviders(cp *CredentialProviders) Option {
	return func(o *options) error { o.providers = cp; return nil }
}

// withProviders records the providers' outcomes on a failed lookup. Where
// one of them could not be run, a refusal (or a repository hidden from the
// credentials at hand) proves nothing: the kubelet may get credentials from
// it. That is "cannot verify", naming the provider. A missing tag or digest
// stays what it is: no credential makes it exist.
func withProviders(e *Error, outs []ProviderOutcome) *Error {
	if len(outs) == 0 {
		return e
	}
	e.Providers = outs
	if e.Reason != Unauthorized && (e.Reason != NotFound || e.Flavour != FlavourRepository) {
		return e
	}
	for _, o := range outs {
		if o.Problem != "" {
			c := *e
			c.Reason, c.Flavour, c.Message = Unreachable, FlavourProvider, o.Problem
			return &c
		}
	}
	return e
}

// PullCredentials are the credentials the kubelet tries for image (its
// name as the kubelet matches it), in its order: its union keyring puts
// the pod's pull secrets first, then the node's keyring with the
// credential providers' answers (image_manager.go, MakeDockerKeyring).
func PullCredentials(ctx context.Context, image string, kc *Keychain, cp *CredentialProviders, timeout time.Duration) ([]Credential, []ProviderOutcome) {
	creds := kc.Lookup(image)
	provided, outcomes := cp.Lookup(ctx, image, kc.Identity(), timeout)
	return append(slices.Clip(creds), provided...), outcomes
}

// matchGlobs parses matchImages; validation refused those that do not parse.
func matchGlobs(ms []string) []glob {
	var out []glob
	for _, m := range ms {
		if g, ok := parseGlob(m); ok {
			out = append(out, g)
		}
	}
	return out
}
