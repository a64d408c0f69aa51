package registrytest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TokenProviderFiles writes a kubelet CredentialProviderConfig with
// tokenAttributes for tr's host and its plugin, a shell script that answers
// tr's credentials only when the request carries the token of service
// account "puller" (the token text "token-puller"), and no credentials
// otherwise. It returns the config file and the plugin folder, as the
// kubelet's --image-credential-provider-config and -bin-dir take them.
func (tr *Registry) TokenProviderFiles(t testing.TB) (config, binDir string) {
	t.Helper()
	binDir = t.TempDir()
	answer := func(auth string) string {
		return fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"0s","auth":{%s}}`, auth)
	}
	script := fmt.Sprintf("#!/bin/sh\nif grep -q token-puller; then echo '%s'; else echo '%s'; fi\n",
		answer(fmt.Sprintf(`%q:{"username":%q,"password":%q}`, tr.Host, tr.User, tr.Pass)), answer(""))
	if err := os.WriteFile(filepath.Join(binDir, "p"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: p
  matchImages: [%q]
  defaultCacheDuration: 0s
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  tokenAttributes:
    serviceAccountTokenAudience: registry.example
    requireServiceAccount: true
    cacheType: ServiceAccount
`, tr.Host)), 0o644); err != nil {
		t.Fatal(err)
	}
	return config, binDir
}
