package helm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func renderedObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// TestChartCallerAuthentication: networkPolicy.webhookFrom narrows the
// webhook port's sources, and clientAuth reaches pullsafe as
// --client-ca-file/--client-cn with the CA's ConfigMap mounted where the
// flag points.
func TestChartCallerAuthentication(t *testing.T) {
	peers := []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.0.0.0/28"}}}
	objs := mustRenderChart(t, map[string]any{
		"networkPolicy": map[string]any{"webhookFrom": peers},
		"clientAuth":    map[string]any{"caConfigMap": "apiserver-client-ca", "commonNames": []any{"kube-apiserver"}},
	})
	ingress, _, _ := unstructured.NestedSlice(renderedObject(t, objs, "NetworkPolicy", "pullsafe").Object, "spec", "ingress")
	if from := ingress[0].(map[string]any)["from"]; !cmp.Equal(from, peers) {
		t.Errorf("webhook port's from: %v, want %v", from, peers)
	}
	dep := renderedObject(t, objs, "Deployment", "pullsafe")
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	args := strings.Join(argStrings(c["args"]), " ")
	for _, want := range []string{"--client-ca-file=/etc/pullsafe-client-ca/ca.crt", "--client-cn=kube-apiserver"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	mounts := c["volumeMounts"].([]any)
	volumes, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
	wantMount := map[string]any{"name": "client-ca", "mountPath": "/etc/pullsafe-client-ca", "readOnly": true}
	wantVolume := map[string]any{"name": "client-ca", "configMap": map[string]any{"name": "apiserver-client-ca"}}
	if !hasEntry(mounts, wantMount) || !hasEntry(volumes, wantVolume) {
		t.Errorf("CA not mounted:\nmounts %v\nvolumes %v", mounts, volumes)
	}

	// Off by default: no flag, no volume, the webhook port open to all.
	objs = mustRenderChart(t, nil)
	ingress, _, _ = unstructured.NestedSlice(renderedObject(t, objs, "NetworkPolicy", "pullsafe").Object, "spec", "ingress")
	if from, ok := ingress[0].(map[string]any)["from"]; ok {
		t.Errorf("default webhook port from: %v", from)
	}
	containers, _, _ = unstructured.NestedSlice(renderedObject(t, objs, "Deployment", "pullsafe").Object, "spec", "template", "spec", "containers")
	if args := strings.Join(argStrings(containers[0].(map[string]any)["args"]), " "); strings.Contains(args, "--client-") {
		t.Errorf("default args %q", args)
	}

	for name, values := range map[string]map[string]any{
		"empty peer":       {"networkPolicy": map[string]any{"webhookFrom": []any{map[string]any{}}}},
		"key with a slash": {"clientAuth": map[string]any{"caConfigMap": "ca", "caKey": "../ca.crt"}},
		"name with comma":  {"clientAuth": map[string]any{"caConfigMap": "ca", "commonNames": []any{"a,b"}}},
	} {
		if _, _, err := renderChart(t, values); err == nil {
			t.Errorf("%s: rendered; want a schema error", name)
		}
	}
}

func argStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func hasEntry(list []any, want map[string]any) bool {
	for _, v := range list {
		if cmp.Equal(v, any(want)) {
			return true
		}
	}
	return false
}
