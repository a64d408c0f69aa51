//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pullsafe/pullsafe/test/bed"
)

// TestCredentialProviderServiceAccountToken runs a bed of its own whose
// pullsafe has the kubelet's credential provider flags, with a plugin
// (built here) that gives the private registry's credentials only to
// service account shop/api with audience registry.example, which it reads
// from the token pullsafe requested for the pod's account (KEP-4412). That
// account's Pods are checked for real: a missing tag is not-found with the
// nearest tag, an existing one is admitted. Another account's Pods are
// refused as unauthorized, naming the provider and the account.
func TestCredentialProviderServiceAccountToken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	binDir := filepath.Join(dir, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "test-provider"), "./testdata/credplugin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	config := filepath.Join(dir, "providers.yaml")
	// The registry's address is known once the bed runs: the config names
	// it through a placeholder the test fills in before pullsafe starts.
	port, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := bed.Start(ctx, bed.Options{
		Config: bed.Config, Log: os.Stderr, PullsafePort: port,
		PullsafeArgs: []string{"--image-credential-provider-config", config, "--image-credential-provider-bin-dir", binDir},
		BeforePullsafe: func(b *bed.Bed) error {
			return os.WriteFile(config, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: test-provider
  matchImages: [%q]
  defaultCacheDuration: 0s
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  args: [%q, registry.example, "system:serviceaccount:shop:api", %q]
  env: [{name: PLUGIN_PASSWORD, value: %q}]
  tokenAttributes:
    serviceAccountTokenAudience: registry.example
    requireServiceAccount: true
    cacheType: ServiceAccount
`, b.Private.Addr, b.Private.Addr, bed.PrivateUser, bed.PrivatePass)), 0o644)
		},
	})
	if err != nil {
		t.Fatalf("the credential provider test bed did not start: %v", err)
	}
	t.Cleanup(mb.Stop)
	if _, err := mb.Push(mb.Private, "team/api", "v1.4.1", bed.Linux("amd64")); err != nil {
		t.Fatal(err)
	}
	if err := mb.Namespace(ctx, "shop", nil); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := mb.Run("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api, namespace: shop}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: shop}\n",
		"apply", "-f", "-"); err != nil {
		t.Fatalf("service accounts: %v\n%s%s", err, out, errOut)
	}
	pod := func(name, sa, image string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop}\nspec:\n  serviceAccountName: %s\n  containers:\n  - {name: api, image: %s, imagePullPolicy: Always}\n",
			name, sa, image)
	}
	run := func(manifest string) (string, bool) {
		out, errOut, err := mb.Run(manifest, "apply", "-f", "-")
		t.Logf("kubectl apply\n%s%s", out, errOut)
		return out + errOut, err == nil
	}
	repo := mb.Private.Addr + "/team/api"

	out, ok := run(pod("typo", "api", repo+":v1.4.2"))
	if ok {
		t.Fatal("service account shop/api: a missing tag was admitted")
	}
	mustContain(t, out, "denied the request", "not-found", "did you mean v1.4.1?")

	if out, ok := run(pod("good", "api", repo+":v1.4.1")); !ok {
		t.Fatalf("service account shop/api: an existing tag was refused:\n%s", out)
	}

	out, ok = run(pod("other", "default", repo+":v1.4.1"))
	if ok {
		t.Fatal("service account shop/default: admitted, though the provider gives it no credentials")
	}
	mustContain(t, out, "denied the request", "unauthorized", "credential provider test-provider returned no credentials for service account shop/default")
}
