package registry

import (
	"strings"
	"testing"
)

// FuzzProviderResponse: a plugin's stdout is hostile. No panic; an answer
// is accepted only with the configured apiVersion and a known cacheKeyType,
// and an error never quotes the credentials it may hold.
func FuzzProviderResponse(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"6h","auth":{"*.dkr.ecr.*.amazonaws.com":{"username":"AWS","password":"secret"}}}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","auth":{"a":{"username":"u","password":"secret"}},"auth":{}}`))
	f.Add([]byte(`{"apiVersion":"a/b/c"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseProviderResponse(data, providerV1)
		if err != nil {
			if strings.Contains(err.Error(), "secret") && !strings.Contains(err.Error(), "CredentialProviderResponse") {
				t.Fatalf("error quotes the response: %v", err)
			}
			return
		}
		switch r.cacheKeyType {
		case "Image", "Registry", "Global":
		default:
			t.Fatalf("accepted cacheKeyType %q", r.cacheKeyType)
		}
	})
}

// FuzzProviderConfig: the config file is the platform team's, but no
// value in it may crash pullsafe; what validates builds providers.
func FuzzProviderConfig(f *testing.F) {
	f.Add([]byte(providerConfig("ecr-credential-provider", "*.dkr.ecr.*.amazonaws.com", "  tokenAttributes:\n    serviceAccountTokenAudience: sts.amazonaws.com\n    requireServiceAccount: true\n    cacheType: ServiceAccount\n")))
	f.Add([]byte(providerConfig("p", "[::1]:5000/x", "  env: [{name: A, value: b}]\n")))
	f.Add([]byte("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: [{}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := ParseCredentialProviderConfig(data)
		if err != nil {
			return
		}
		ps, err := decodeProviderConfig(data)
		if err != nil || len(ps) != len(names) {
			t.Fatalf("validated config decodes differently: %v", err)
		}
		cp := newCredentialProviders(ps, t.TempDir(), nil, nil)
		for _, p := range cp.providers {
			p.matches("registry.example/x")
		}
	})
}
