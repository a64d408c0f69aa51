package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// TestChartWebhooksFollowConfig: the chart's webhook rules and
// namespaceSelector are the ones the running pullsafe reconciles them to
// (webhook.RegistrationFor of the rendered config). Otherwise every
// `helm upgrade` puts the chart's back (Helm's three-way merge patches live
// fields that differ from the chart): an excluded namespace is reviewed,
// and in enforce mode refused, until the next resync up to 10 minutes later.
func TestChartWebhooksFollowConfig(t *testing.T) {
	rollout := map[string]any{"apiGroup": "argoproj.io", "kind": "Rollout", "apiVersions": []any{"v1alpha1"}, "resource": "rollouts", "podTemplatePath": "spec.template"}
	anyVersion := map[string]any{"apiGroup": "example.com", "kind": "Thing", "resource": "things", "podSpecPath": "spec.pod"}
	for name, tc := range map[string]struct {
		ns     string
		values map[string]any
	}{
		"defaults":                  {namespace, nil},
		"namespace sorting first":   {"apps", nil},
		"excluded namespaces":       {namespace, map[string]any{"namespaces": map[string]any{"exclude": []any{"sandbox", "a-team", "kube-system"}}}},
		"workloads":                 {namespace, map[string]any{"workloads": []any{rollout, anyVersion}}},
		"pinned templates":          {namespace, map[string]any{"pin": map[string]any{"templates": true}}},
		"pinned templates and kind": {"zz", map[string]any{"pin": map[string]any{"templates": true}, "workloads": []any{rollout}}},
	} {
		t.Run(name, func(t *testing.T) {
			objs, _, err := renderChartIn(t, tc.ns, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			var cfg *policy.Config
			var gotV admissionregv1.ValidatingWebhookConfiguration
			var gotM admissionregv1.MutatingWebhookConfiguration
			for _, u := range objs {
				switch {
				case u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-config":
					data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
					if cfg, err = policy.ParseConfig([]byte(data)); err != nil {
						t.Fatalf("pullsafe refuses the chart's config: %v", err)
					}
				case u.GetKind() == "ValidatingWebhookConfiguration":
					fromUnstructured(t, u, &gotV)
				case u.GetKind() == "MutatingWebhookConfiguration":
					fromUnstructured(t, u, &gotM)
				}
			}
			wantV, wantM := webhook.RegistrationFor(cfg, "pullsafe", tc.ns).Configurations()
			for _, c := range []struct {
				name      string
				got, want owned
			}{
				{"validating", owned{gotV.Webhooks[0].Rules, gotV.Webhooks[0].NamespaceSelector}, owned{wantV.Webhooks[0].Rules, wantV.Webhooks[0].NamespaceSelector}},
				{"mutating", owned{gotM.Webhooks[0].Rules, gotM.Webhooks[0].NamespaceSelector}, owned{wantM.Webhooks[0].Rules, wantM.Webhooks[0].NamespaceSelector}},
			} {
				if diff := cmp.Diff(defaultScope(c.want), defaultScope(c.got)); diff != "" {
					t.Errorf("%s webhook: chart (+) and what pullsafe reconciles (-) differ:\n%s", c.name, diff)
				}
			}
		})
	}
}

// owned is what the reconciler keeps: rules and namespaceSelector.
type owned struct {
	Rules    []admissionregv1.RuleWithOperations
	Selector *metav1.LabelSelector
}

// defaultScope spells the scope the API server defaults, as the reconciler
// compares rules.
func defaultScope(o owned) owned {
	for i := range o.Rules {
		o.Rules[i].Scope = ptr.To(ptr.Deref(o.Rules[i].Scope, admissionregv1.AllScopes))
	}
	return o
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

// TestChartFollowsReleaseNamespace: installed with -n other, nothing the
// chart renders names pullsafe-system: RBAC subjects, the webhooks'
// service and excluded namespace, certificate SANs and CA injection, and
// the namespace the alerts' fixes tell you to look in.
func TestChartFollowsReleaseNamespace(t *testing.T) {
	for _, certs := range []string{"secret", "cert-manager"} {
		_, out, err := renderChartIn(t, "platform-webhooks", map[string]any{
			"certs": map[string]any{"mode": certs},
			"monitoring": map[string]any{
				"serviceMonitor": map[string]any{"enabled": true},
				"prometheusRule": map[string]any{"enabled": true},
				"dashboard":      map[string]any{"enabled": true},
			}})
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(out, "\n") {
			if strings.Contains(line, namespace) {
				t.Errorf("certs %s: line %d names %s:\n%s", certs, i+1, namespace, line)
			}
		}
	}
}

// TestChartMountsRegistryCAs: registries.caBundles names files pullsafe
// reads at start (it refuses to start when one is missing), so the chart
// must be able to mount them: extraVolumes and extraVolumeMounts.
func TestChartMountsRegistryCAs(t *testing.T) {
	objs, _, err := renderChartIn(t, namespace, map[string]any{
		"registries":        map[string]any{"caBundles": map[string]any{"registry.corp.example": "/etc/registry-cas/corp.pem"}},
		"extraVolumes":      []any{map[string]any{"name": "registry-cas", "configMap": map[string]any{"name": "registry-cas"}}},
		"extraVolumeMounts": []any{map[string]any{"name": "registry-cas", "mountPath": "/etc/registry-cas", "readOnly": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		fromUnstructured(t, u, &d)
		pod := d.Spec.Template.Spec
		mounted := slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == "registry-cas" && m.MountPath == "/etc/registry-cas"
		})
		volume := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "registry-cas" && v.ConfigMap != nil })
		if !mounted || !volume {
			t.Errorf("volume registry-cas mounted %v, in the pod %v", mounted, volume)
		}
		return
	}
	t.Fatal("no Deployment")
}

// TestChartUpgradeKeepsCABundle replays what `helm upgrade` sends for the
// webhook configurations (Helm 3's three-way strategic merge patch of the
// previous release's manifest, the new one and the live object): the
// caBundle injected at run time (pullsafe --cert-secret, cert-manager's
// cainjector) is not in the chart, and must survive, or every call fails
// TLS and is admitted unchecked until the next injection.
func TestChartUpgradeKeepsCABundle(t *testing.T) {
	render := func(values map[string]any) map[string][]byte {
		out := map[string][]byte{}
		for _, u := range mustRenderChart(t, values) {
			if strings.HasSuffix(u.GetKind(), "WebhookConfiguration") {
				b, err := u.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				out[u.GetKind()] = b
			}
		}
		return out
	}
	before := render(nil)
	after := render(map[string]any{"namespaces": map[string]any{"exclude": []any{"sandbox"}}, "pin": map[string]any{"templates": true}})
	ca := []byte("-----BEGIN CERTIFICATE-----")
	for kind, obj := range map[string]runtime.Object{
		"ValidatingWebhookConfiguration": &admissionregv1.ValidatingWebhookConfiguration{},
		"MutatingWebhookConfiguration":   &admissionregv1.MutatingWebhookConfiguration{},
	} {
		t.Run(kind, func(t *testing.T) {
			// Live: the old release plus the injected CA.
			live := map[string]any{}
			if err := json.Unmarshal(before[kind], &live); err != nil {
				t.Fatal(err)
			}
			for _, w := range live["webhooks"].([]any) {
				w.(map[string]any)["clientConfig"].(map[string]any)["caBundle"] = ca
			}
			current, _ := json.Marshal(live)
			meta, err := strategicpatch.NewPatchMetaFromStruct(obj)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := strategicpatch.CreateThreeWayMergePatch(before[kind], after[kind], current, meta, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := strategicpatch.StrategicMergePatchUsingLookupPatchMeta(current, patch, meta)
			if err != nil {
				t.Fatal(err)
			}
			var gotObj, wantObj unstructured.Unstructured
			if err := gotObj.UnmarshalJSON(got); err != nil {
				t.Fatal(err)
			}
			if err := wantObj.UnmarshalJSON(after[kind]); err != nil {
				t.Fatal(err)
			}
			gw, _, _ := unstructured.NestedSlice(gotObj.Object, "webhooks")
			ww, _, _ := unstructured.NestedSlice(wantObj.Object, "webhooks")
			if len(gw) != 1 || len(ww) != 1 {
				t.Fatalf("webhooks: %d after the patch, %d in the chart", len(gw), len(ww))
			}
			g, w := gw[0].(map[string]any), ww[0].(map[string]any)
			if b, _, _ := unstructured.NestedString(g, "clientConfig", "caBundle"); b == "" {
				t.Errorf("helm upgrade drops the injected caBundle:\n%s", patch)
			}
			for _, f := range []string{"rules", "namespaceSelector"} {
				if diff := cmp.Diff(w[f], g[f]); diff != "" {
					t.Errorf("%s after the upgrade (+) is not the chart's (-):\n%s", f, diff)
				}
			}
		})
	}
}

// TestChartPDBNeverBlocksDrains: a PodDisruptionBudget that keeps every
// replica (minAvailable 1 with replicas 1) refuses every eviction, and
// `kubectl drain` of that node waits forever.
func TestChartPDBNeverBlocksDrains(t *testing.T) {
	for _, replicas := range []int{1, 2, 3} {
		for _, u := range mustRenderChart(t, map[string]any{"replicas": replicas}) {
			if u.GetKind() != "PodDisruptionBudget" {
				continue
			}
			v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "minAvailable")
			if min, ok := v.(float64); !ok || min >= float64(replicas) {
				t.Errorf("replicas %d: PodDisruptionBudget minAvailable %v allows no eviction", replicas, v)
			}
		}
	}
}

// TestChartMountsNodeHosts: nodeHosts mounts the nodes' containerd hosts
// folder from a ConfigMap, each key at its <host>/hosts.toml path (a key
// cannot hold "/"), and points registries.hostsDir at it.
func TestChartMountsNodeHosts(t *testing.T) {
	objs, _, err := renderChartIn(t, namespace, map[string]any{
		"nodeHosts": map[string]any{"configMap": "containerd-hosts", "items": []any{
			map[string]any{"key": "docker.io", "path": "docker.io/hosts.toml"},
			map[string]any{"key": "default", "path": "_default/hosts.toml"},
		}},
		"registries": map[string]any{"insecure": []any{"registry.local:5000"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sawConfig, sawMount bool
	for _, u := range objs {
		switch u.GetKind() {
		case "ConfigMap":
			cfg, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			if u.GetName() == "pullsafe-config" {
				sawConfig = strings.Contains(cfg, "hostsDir: /etc/pullsafe-hosts") && strings.Contains(cfg, "registry.local:5000")
			}
		case "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, u, &d)
			pod := d.Spec.Template.Spec
			mounted := slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == "node-hosts" && m.MountPath == "/etc/pullsafe-hosts"
			})
			volume := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
				return v.Name == "node-hosts" && v.ConfigMap != nil && v.ConfigMap.Name == "containerd-hosts" &&
					len(v.ConfigMap.Items) == 2 && v.ConfigMap.Items[0].Path == "docker.io/hosts.toml"
			})
			sawMount = mounted && volume
		}
	}
	if !sawConfig || !sawMount {
		t.Errorf("config sets hostsDir and keeps the other registries keys: %v; folder mounted: %v", sawConfig, sawMount)
	}
	if _, _, err := renderChartIn(t, namespace, map[string]any{"nodeHosts": map[string]any{"configMap": "c",
		"items": []any{map[string]any{"key": "k", "path": "../etc/hosts.toml"}}}}); err == nil {
		t.Error("an item path out of the folder rendered")
	}
}

// TestKustomizeNodeHostsComponent: the component mounts the generated
// ConfigMap's keys at <host>/hosts.toml under /etc/pullsafe-hosts, and what
// it mounts is a hosts folder pullsafe loads.
func TestKustomizeNodeHostsComponent(t *testing.T) {
	dir := filepath.Join(root(t), "manifests", "overlays", "node-hosts-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\ncomponents: [../../components/node-hosts]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	var data map[string]string
	var vol *corev1.Volume
	for _, u := range kustomize(t, "overlays/node-hosts-test") {
		switch {
		case u.GetKind() == "ConfigMap" && strings.HasPrefix(u.GetName(), "pullsafe-node-hosts"):
			data, _, _ = unstructured.NestedStringMap(u.Object, "data")
		case u.GetKind() == "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, u, &d)
			for i, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == "node-hosts" {
					vol = &d.Spec.Template.Spec.Volumes[i]
				}
			}
		}
	}
	if vol == nil || vol.ConfigMap == nil || !strings.HasPrefix(vol.ConfigMap.Name, "pullsafe-node-hosts") {
		t.Fatalf("node-hosts volume = %+v", vol)
	}
	hosts := t.TempDir()
	for _, it := range vol.ConfigMap.Items {
		f := filepath.Join(hosts, it.Path)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(data[it.Key]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := registry.LoadHostsDir(hosts)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := h.Hosts("docker.io"); !ok || len(got) != 1 || got[0].Host != "mirror.corp.example" {
		t.Errorf("docker.io hosts = %+v", got)
	}
}
