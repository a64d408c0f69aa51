package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// providerBed is a private registry, a shell-script credential provider
// plugin that answers with its credentials, and the provider config.
func providerBed(t *testing.T, tokenAttributes string) (reg *registrytest.Registry, config, binDir string) {
	t.Helper()
	reg = registrytest.New(t)
	reg.Image("team/api", "v1.4.1", "linux", "amd64")
	reg.SetAuth("basic")
	binDir = t.TempDir()
	answer := fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{%q:{"username":%q,"password":%q}}}`,
		reg.Host, reg.User, reg.Pass)
	if err := os.WriteFile(filepath.Join(binDir, "test-provider"), []byte("#!/bin/sh\ncat >/dev/null\necho '"+answer+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(t.TempDir(), "providers.yaml")
	cfg := fmt.Sprintf("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: test-provider\n  matchImages: [%q]\n  defaultCacheDuration: 1m\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n%s",
		reg.Host, tokenAttributes)
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return reg, config, binDir
}

// TestCheckWithCredentialProvider: with the kubelet's provider flags, an
// image only the plugin's credentials reach is checked for real: a typo in
// the tag is not-found with the nearest tag, not "cannot verify".
func TestCheckWithCredentialProvider(t *testing.T) {
	reg, config, binDir := providerBed(t, "")
	pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop}\nspec:\n  containers:\n  - {name: api, image: %s/team/api:v1.4.2, imagePullPolicy: Always}\n", reg.Host)
	out, _, code := runCheck(t, pod, "-f", "-", "--offline", "--image-credential-provider-config", config, "--image-credential-provider-bin-dir", binDir)
	if code != 1 || !strings.Contains(out, "not-found") || !strings.Contains(out, "v1.4.1") {
		t.Errorf("exit %d, output:\n%s\nwant not-found suggesting v1.4.1", code, out)
	}
	out, _, code = runCheck(t, strings.Replace(pod, "v1.4.2", "v1.4.1", 1), "-f", "-", "--offline", "--image-credential-provider-config", config, "--image-credential-provider-bin-dir", binDir)
	if code != 0 {
		t.Errorf("existing tag: exit %d, output:\n%s", code, out)
	}
	_, errOut, code := runCheck(t, pod, "-f", "-", "--offline", "--image-credential-provider-config", config)
	if code != 2 || !strings.Contains(errOut, "go together") {
		t.Errorf("config without bin dir: exit %d, stderr %s", code, errOut)
	}
}

// TestCheckOfflineProviderTokenCannotVerify: offline there is no API
// server to request the service account's token from: cannot verify,
// saying so, never a denial.
func TestCheckOfflineProviderTokenCannotVerify(t *testing.T) {
	reg, config, binDir := providerBed(t, "  tokenAttributes: {serviceAccountTokenAudience: registry.example, requireServiceAccount: true, cacheType: ServiceAccount}\n")
	in := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop}
spec:
  serviceAccountName: api
  containers:
  - {name: api, image: %s/team/api:v1.4.2, imagePullPolicy: Always}
`, reg.Host)
	out, _, code := runCheck(t, in, "-f", "-", "--offline", "--image-credential-provider-config", config, "--image-credential-provider-bin-dir", binDir)
	if code != 0 || !strings.Contains(out, "cannot verify") || !strings.Contains(out, "credential provider test-provider") ||
		!strings.Contains(out, "service account shop/api") || !strings.Contains(out, "checked offline") {
		t.Errorf("exit %d, output:\n%s\nwant cannot verify naming the provider, the account and offline", code, out)
	}
}
