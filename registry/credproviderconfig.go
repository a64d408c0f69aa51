package registry

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kubeletconfig "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"
)

// The kubelet's CredentialProviderConfig (--image-credential-provider-config),
// read and validated as its pkg/credentialprovider/plugin/config.go does:
// a file, or a directory of *.json/*.yaml/*.yml files merged in name order;
// strict decoding (unknown and duplicate fields are errors); every provider
// named once. Bounds are pullsafe's own: the kubelet reads whatever the
// node's owner wrote, pullsafe must not be stopped by a config file.
const (
	maxProviderConfigBytes = 1 << 20
	maxProviderConfigFiles = 100
	maxProviders           = 100
	maxMatchImages         = 1000
)

// Request API versions a provider may speak (apiVersion of each provider).
var providerAPIVersions = []string{
	"credentialprovider.kubelet.k8s.io/v1",
	"credentialprovider.kubelet.k8s.io/v1beta1",
	"credentialprovider.kubelet.k8s.io/v1alpha1",
}

const providerV1 = "credentialprovider.kubelet.k8s.io/v1"

// readProviderConfig reads path (a file or a directory) as the kubelet's
// readCredentialProviderConfig does and validates the result.
func readProviderConfig(path string) ([]kubeletconfig.CredentialProvider, error) {
	if path == "" {
		return nil, fmt.Errorf("credential provider config path is empty")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("unable to access path %q: %w", path, err)
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = providerConfigFiles(path); err != nil {
			return nil, err
		}
	}
	var all []kubeletconfig.CredentialProvider
	for _, f := range files {
		data, err := readBounded(f, maxProviderConfigBytes)
		if err != nil {
			return nil, err
		}
		ps, err := decodeProviderConfig(data)
		if err != nil {
			return nil, fmt.Errorf("error decoding config %q: %w", f, err)
		}
		for _, p := range ps {
			if slices.ContainsFunc(all, func(q kubeletconfig.CredentialProvider) bool { return q.Name == p.Name }) {
				return nil, fmt.Errorf("duplicate provider name %q found in configuration file(s)", p.Name)
			}
			all = append(all, p)
		}
	}
	if err := validateProviders(all); err != nil {
		return nil, fmt.Errorf("credential provider config %s: %w", path, err)
	}
	return all, nil
}

func providerConfigFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name, as the kubelet sorts them
	if err != nil {
		return nil, fmt.Errorf("unable to read directory %q: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".json" || ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	switch {
	case len(files) == 0:
		return nil, fmt.Errorf("no configuration files found in directory %q", dir)
	case len(files) > maxProviderConfigFiles:
		return nil, fmt.Errorf("directory %q holds %d configuration files, more than %d", dir, len(files), maxProviderConfigFiles)
	}
	return files, nil
}

// decodeProviderConfig decodes one file. kubelet.config.k8s.io v1beta1 and
// v1alpha1 have the same fields as v1 but tokenAttributes, which their
// strict decoding refuses as unknown.
func decodeProviderConfig(data []byte) ([]kubeletconfig.CredentialProvider, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, err
	}
	switch tm.APIVersion {
	case "kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1alpha1":
	default:
		return nil, fmt.Errorf("apiVersion %q: want kubelet.config.k8s.io/v1", tm.APIVersion)
	}
	if tm.Kind != "CredentialProviderConfig" {
		return nil, fmt.Errorf("failed to decode %q (wrong Kind)", tm.Kind)
	}
	var cfg kubeletconfig.CredentialProviderConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, err
	}
	if tm.APIVersion != "kubelet.config.k8s.io/v1" {
		for _, p := range cfg.Providers {
			if p.TokenAttributes != nil {
				return nil, fmt.Errorf("unknown field \"providers[].tokenAttributes\" in %s (only kubelet.config.k8s.io/v1 has it)", tm.APIVersion)
			}
		}
	}
	return cfg.Providers, nil
}

// validateProviders is the kubelet's validateCredentialProviderConfig with
// the KubeletServiceAccountTokenForCredentialProviders gate on (its default
// since 1.34), plus pullsafe's bounds.
func validateProviders(ps []kubeletconfig.CredentialProvider) error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(ps) == 0 {
		bad("providers: at least 1 item in plugins is required")
	}
	if len(ps) > maxProviders {
		bad("providers: %d providers, more than %d", len(ps), maxProviders)
	}
	for i, p := range ps {
		at := fmt.Sprintf("providers[%q]", p.Name)
		if slices.ContainsFunc(ps[:i], func(q kubeletconfig.CredentialProvider) bool { return q.Name == p.Name }) {
			bad("%s.name: duplicate provider name", at)
		}
		switch {
		case p.Name == "":
			bad("providers.name: must not be empty")
		case strings.ContainsAny(p.Name, "/ "), p.Name == ".", p.Name == "..":
			bad("%s.name: must not contain '/' or spaces, nor be '.' or '..'", at)
		}
		if !slices.Contains(providerAPIVersions, p.APIVersion) {
			bad("%s.apiVersion: %q is not one of %s", at, p.APIVersion, strings.Join(providerAPIVersions, ", "))
		}
		if len(p.MatchImages) == 0 {
			bad("%s.matchImages: at least 1 item in matchImages is required", at)
		}
		if len(p.MatchImages) > maxMatchImages {
			bad("%s.matchImages: %d patterns, more than %d", at, len(p.MatchImages), maxMatchImages)
		}
		for _, m := range p.MatchImages {
			if _, ok := parseGlob(m); !ok {
				bad("%s.matchImages: %q is not a valid match image", at, m)
			}
		}
		if p.DefaultCacheDuration == nil {
			bad("%s.defaultCacheDuration: required", at)
		} else if p.DefaultCacheDuration.Duration < 0 {
			bad("%s.defaultCacheDuration: must be greater than or equal to 0", at)
		}
		if p.TokenAttributes != nil {
			errs = append(errs, validateTokenAttributes(at+".tokenAttributes", p)...)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func validateTokenAttributes(at string, p kubeletconfig.CredentialProvider) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	t := p.TokenAttributes
	if t.ServiceAccountTokenAudience == "" {
		bad("%s.serviceAccountTokenAudience: required", at)
	}
	if t.RequireServiceAccount == nil {
		bad("%s.requireServiceAccount: required", at)
	}
	if p.APIVersion != providerV1 {
		bad("%s: only supported for %s API version", at, providerV1)
	}
	if t.RequireServiceAccount != nil && !*t.RequireServiceAccount && len(t.RequiredServiceAccountAnnotationKeys) > 0 {
		bad("%s.requiredServiceAccountAnnotationKeys: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set", at)
	}
	for _, set := range []struct {
		field string
		keys  []string
	}{{"requiredServiceAccountAnnotationKeys", t.RequiredServiceAccountAnnotationKeys}, {"optionalServiceAccountAnnotationKeys", t.OptionalServiceAccountAnnotationKeys}} {
		for i, k := range set.keys {
			// QualifiedName, case aside, as the API server validates annotation keys.
			for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
				bad("%s.%s: %q: %s", at, set.field, k, msg)
			}
			if slices.Contains(set.keys[:i], k) {
				bad("%s.%s: duplicate %q", at, set.field, k)
			}
		}
	}
	for _, k := range t.RequiredServiceAccountAnnotationKeys {
		if slices.Contains(t.OptionalServiceAccountAnnotationKeys, k) {
			bad("%s: annotation key %q cannot be both required and optional", at, k)
		}
	}
	switch t.CacheType {
	case kubeletconfig.ServiceAccountServiceAccountTokenCacheType, kubeletconfig.TokenServiceAccountTokenCacheType:
	case "":
		bad("%s.cacheType: required when tokenAttributes is specified (ServiceAccount or Token)", at)
	default:
		bad("%s.cacheType: %q is not ServiceAccount or Token", at, t.CacheType)
	}
	return errs
}

// ParseCredentialProviderConfig decodes and validates one
// CredentialProviderConfig document as the kubelet does, and returns the
// provider names in order. `pullsafe check` and the fuzz target use it.
func ParseCredentialProviderConfig(data []byte) ([]string, error) {
	if len(data) > maxProviderConfigBytes {
		return nil, fmt.Errorf("config is larger than %d bytes", maxProviderConfigBytes)
	}
	ps, err := decodeProviderConfig(bytes.Clone(data))
	if err != nil {
		return nil, err
	}
	if err := validateProviders(ps); err != nil {
		return nil, err
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names, nil
}
