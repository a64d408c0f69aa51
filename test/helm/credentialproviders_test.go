package helm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/registry"
)

// overlayProviderConfig is the CredentialProviderConfig of
// manifests/overlays/credential-providers, as chart values.
func overlayProviderConfig(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "manifests", "overlays", "credential-providers", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func providerValues(t *testing.T, cfg map[string]any, extra map[string]any) map[string]any {
	v := map[string]any{"enabled": true, "config": cfg,
		"pluginVolume": map[string]any{"image": map[string]any{"reference": "registry.example/credential-providers:v1.36.0", "pullPolicy": "IfNotPresent"}}}
	for k, x := range extra {
		v[k] = x
	}
	return map[string]any{"mode": "warn", "credentialProviders": v}
}

func find(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, u := range objs {
		if u.GetKind() == kind && u.GetNamespace() == ns && u.GetName() == name {
			return u
		}
	}
	return nil
}

// TestChartCredentialProviders: the chart renders what the overlay has
// (TestChartMatchesKustomize), the config it renders is one pullsafe and so
// the kubelet accept, and the token RBAC comes only with tokenAttributes,
// bound per namespace where tokenNamespaces says so.
func TestChartCredentialProviders(t *testing.T) {
	cfg := overlayProviderConfig(t)
	objs := mustRenderChart(t, providerValues(t, cfg, nil))
	cm := find(objs, "ConfigMap", namespace, "pullsafe-credential-providers")
	if cm == nil {
		t.Fatal("no ConfigMap pullsafe-credential-providers")
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	if names, err := registry.ParseCredentialProviderConfig([]byte(data)); err != nil || !slices.Equal(names, []string{"ecr-credential-provider"}) {
		t.Errorf("rendered config: providers %v, error %v\n%s", names, err, data)
	}
	if find(objs, "ClusterRoleBinding", "", "pullsafe-serviceaccount-tokens") == nil {
		t.Error("tokenAttributes configured, no token RBAC")
	}

	noTokens := map[string]any{"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig", "providers": []any{map[string]any{
		"name": "ecr-credential-provider", "matchImages": []any{"*.dkr.ecr.*.amazonaws.com"}, "defaultCacheDuration": "12h",
		"apiVersion": "credentialprovider.kubelet.k8s.io/v1"}}}
	for _, u := range mustRenderChart(t, providerValues(t, noTokens, nil)) {
		if u.GetName() == "pullsafe-serviceaccount-tokens" {
			t.Errorf("no provider takes tokens, yet %s is installed", key(u))
		}
	}

	scoped := mustRenderChart(t, providerValues(t, cfg, map[string]any{"tokenNamespaces": []any{"shop", "billing"}}))
	for _, ns := range []string{"shop", "billing"} {
		if find(scoped, "RoleBinding", ns, "pullsafe-serviceaccount-tokens") == nil {
			t.Errorf("tokenNamespaces: no RoleBinding in %s", ns)
		}
	}
	if find(scoped, "ClusterRoleBinding", "", "pullsafe-serviceaccount-tokens") != nil {
		t.Error("tokenNamespaces set, yet the tokens are granted cluster-wide")
	}

	if _, _, err := renderChart(t, map[string]any{"credentialProviders": map[string]any{"enabled": true, "config": cfg}}); err == nil {
		t.Error("enabled without pluginVolume rendered")
	}
}
