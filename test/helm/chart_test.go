package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
)

const namespace = "pullsafe-system"

func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chartDir(t testing.TB) string { return filepath.Join(root(t), "charts", "pullsafe") }

// renderChart renders charts/pullsafe as `helm install --dry-run` does
// (client-only: no cluster), values schema included, and returns its objects.
func renderChart(t testing.TB, values map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	return renderChartIn(t, namespace, values)
}

// renderChartIn is renderChart into namespace ns (helm install -n ns).
func renderChartIn(t testing.TB, ns string, values map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &action.Configuration{}
	install := action.NewInstall(cfg)
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "pullsafe", ns
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.3", Major: "1", Minor: "36"}
	rel, err := install.Run(ch, values)
	if err != nil {
		return nil, "", err
	}
	var all strings.Builder
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var objs []*unstructured.Unstructured
	for _, k := range keys {
		all.WriteString("---\n" + manifests[k] + "\n")
		objs = append(objs, decode(t, manifests[k])...)
	}
	return objs, all.String() + rel.Info.Notes, nil
}

func mustRenderChart(t testing.TB, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, _, err := renderChart(t, values)
	if err != nil {
		t.Fatalf("rendering the chart with %v: %v", values, err)
	}
	return objs
}

// kustomize renders manifests/<dir> as `kubectl apply -k` does.
func kustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root(t), "manifests", dir))
	if err != nil {
		t.Fatalf("kustomize build manifests/%s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(y))
}

func decode(t testing.TB, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split("\n"+docs, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// comparable strips what may differ between the chart and kustomize and
// checks the rest on the way: every kustomize label must be on the chart's
// object too (selectors and NetworkPolicies match on them); the policy file
// is compared as pullsafe parses it. What is left must be equal.
func comparable(t *testing.T, objs []*unstructured.Unstructured, labels map[string]map[string]string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, u := range objs {
		u = u.DeepCopy()
		if u.GetKind() == "Namespace" {
			continue // Helm installs into an existing namespace (--create-namespace)
		}
		labels[key(u)] = u.GetLabels()
		unstructured.RemoveNestedField(u.Object, "metadata", "labels")
		if u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-credential-providers" {
			data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("%s: %v", key(u), err)
			}
			u.Object["data"] = cfg
		}
		if u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-config" {
			data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			cfg, err := policy.ParseConfig([]byte(data))
			if err != nil {
				t.Fatalf("pullsafe refuses the config in %s: %v\n%s", key(u), err, data)
			}
			u.Object["data"] = cfg
		}
		if u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-dashboard" {
			unstructured.RemoveNestedField(u.Object, "data") // compared as files: TestMonitoringCopiesEqual
		}
		out[key(u)] = u.Object
	}
	return out
}

// TestChartMatchesKustomize is the one-source-of-truth check: the chart with
// the values named renders the same objects as the kustomize overlay, except
// for Helm's labels and the Namespace object. RBAC rules, webhook rules,
// selectors, failure policy, timeouts, security contexts, probes, ports,
// args, PDB and NetworkPolicy all take part.
func TestChartMatchesKustomize(t *testing.T) {
	for _, tc := range []struct {
		overlay string
		values  map[string]any
	}{
		{"base", nil},
		{"overlays/warn", map[string]any{"mode": "warn"}},
		{"overlays/enforce", map[string]any{"mode": "enforce"}},
		{"overlays/cert-manager", map[string]any{"certs": map[string]any{"mode": "cert-manager"}}},
		{"overlays/audit", map[string]any{"audit": map[string]any{"enabled": true, "interval": "1h", "requestsPerMinute": 60}}},
		{"overlays/credential-providers", providerValues(t, overlayProviderConfig(t), nil)},
		{"overlays/monitoring", map[string]any{"monitoring": map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"prometheusRule": map[string]any{"enabled": true},
			"dashboard":      map[string]any{"enabled": true},
		}}},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			kLabels, cLabels := map[string]map[string]string{}, map[string]map[string]string{}
			want := comparable(t, kustomize(t, tc.overlay), kLabels)
			got := comparable(t, mustRenderChart(t, tc.values), cLabels)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("chart (+) and kustomize build manifests/%s (-) disagree:\n%s", tc.overlay, diff)
			}
			for k, want := range kLabels {
				for l, v := range want {
					if cLabels[k][l] != v {
						t.Errorf("%s: chart label %s=%q, kustomize %q", k, l, cLabels[k][l], v)
					}
				}
			}
		})
	}
}

// TestChartSchemaRefusesBadValues: `helm install` fails on these, before
// anything reaches the cluster.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"unknown mode":          {"mode": "audit"},
		"off unquoted (false)":  {"mode": false},
		"no replicas":           {"replicas": 0},
		"replicas as text":      {"replicas": "2"},
		"unknown top-level key": {"replica": 3},
		"unknown rule action":   {"rules": map[string]any{"mutable-tag": "block"}},
		"unknown pin key":       {"pin": map[string]any{"pod": true}},
		"bad duration":          {"lookupTimeout": "2 seconds"},
		"unknown cert mode":     {"certs": map[string]any{"mode": "vault"}},
		"digest without sha256": {"image": map[string]any{"repository": "r", "digest": "abc"}},
		"arg without dashes":    {"extraArgs": []any{"serve"}},
		"monitoring typo":       {"monitoring": map[string]any{"serviceMonitors": map[string]any{}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := renderChart(t, values); err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Errorf("rendered with %v; want a schema error, got %v", values, err)
			}
		})
	}
}

// TestChartConfigIsPullsafes: every policy value reaches config.yaml, which
// pullsafe's own parser accepts and reads back as given.
func TestChartConfigIsPullsafes(t *testing.T) {
	values := map[string]any{
		"mode":          "off",
		"rules":         map[string]any{"mutable-tag": "deny", "platform": "ignore"},
		"pin":           map[string]any{"pods": false, "templates": true, "keepTag": false},
		"cache":         map[string]any{"size": 100, "tagTTL": "1m0s", "notFoundTTL": "5s"},
		"registries":    map[string]any{"mirrors": map[string]any{"docker.io": []any{"mirror.example.com"}}, "insecure": []any{"build.local:5000"}, "skip": []any{"scratch.local"}, "nodeCredentials": []any{"123.dkr.ecr.us-east-1.amazonaws.com"}, "deniedNetworks": []any{"10.0.0.0/8"}},
		"lookupTimeout": "3s",
		"outageWindow":  "0s",
		"namespaces":    map[string]any{"exclude": []any{"sandbox"}},
		"workloads":     []any{map[string]any{"apiGroup": "argoproj.io", "kind": "Rollout", "apiVersions": []any{"v1alpha1"}, "resource": "rollouts", "podTemplatePath": "spec.template"}},
	}
	var data string
	for _, u := range mustRenderChart(t, values) {
		if u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-credential-providers" {
			data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("%s: %v", key(u), err)
			}
			u.Object["data"] = cfg
		}
		if u.GetKind() == "ConfigMap" && u.GetName() == "pullsafe-config" {
			data, _, _ = unstructured.NestedString(u.Object, "data", "config.yaml")
		}
	}
	cfg, err := policy.ParseConfig([]byte(data))
	if err != nil {
		t.Fatalf("pullsafe refuses the chart's config: %v\n%s", err, data)
	}
	got, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var gotMap map[string]any
	if err := yaml.Unmarshal(got, &gotMap); err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		w, _ := yaml.Marshal(want)
		g, _ := yaml.Marshal(pick(gotMap[k], want))
		if !bytes.Equal(w, g) {
			t.Errorf("config %s = %s, want %s", k, g, w)
		}
	}
}

// pick keeps of got only the keys want has (the parsed config adds defaults).
func pick(got, want any) any {
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		out := map[string]any{}
		for k := range w {
			out[k] = pick(g[k], w[k])
		}
		return out
	case []any:
		g, _ := got.([]any)
		out := make([]any, 0, len(g))
		for i := range g {
			if i < len(w) {
				out = append(out, pick(g[i], w[i]))
			}
		}
		return out
	}
	return got
}

// TestChartValuesCoverConfig fails when pullsafe's config gains a key that
// the chart cannot set: the schema (additionalProperties false) would refuse
// it, and the config template would drop it.
func TestChartValuesCoverConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := yaml.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(chartDir(t), "templates", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeFor[policy.Config]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if name == "apiVersion" || name == "kind" || name == "" || name == "-" { // "-": not a key of the file
			continue
		}
		if _, ok := schema.Properties[name]; !ok {
			t.Errorf("config key %s has no chart value in values.schema.json", name)
		}
		if !strings.Contains(string(tmpl), `"`+name+`"`) {
			t.Errorf("config key %s is not rendered by templates/config.yaml", name)
		}
	}
}

// TestChartLint runs `helm lint --strict` through the SDK, with the default
// values and with every optional part on.
func TestChartLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults": nil,
		"everything on": {"certs": map[string]any{"mode": "cert-manager"}, "monitoring": map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"prometheusRule": map[string]any{"enabled": true},
			"dashboard":      map[string]any{"enabled": true}}},
	} {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict, lint.Namespace = true, namespace
			res := lint.Run([]string{chartDir(t)}, values)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("helm lint: %v", err)
			}
		})
	}
}

// TestChartNotes: NOTES.txt names the next step for the mode installed.
func TestChartNotes(t *testing.T) {
	for mode, want := range map[string]string{
		"warn":    "pullsafe.io/mode=enforce",
		"enforce": "pullsafe.io/mode=warn",
		"off":     "mode is off",
	} {
		_, out, err := renderChart(t, map[string]any{"mode": mode})
		if err != nil {
			t.Fatal(err)
		}
		// pullsafe-certs (the CA's private key) is made by pullsafe, not by
		// Helm: helm uninstall leaves it behind.
		for _, w := range []string{"--dry-run=server", want, "delete validatingwebhookconfiguration,mutatingwebhookconfiguration pullsafe",
			"delete secret pullsafe-certs"} {
			if !strings.Contains(out, w) {
				t.Errorf("mode %s: NOTES.txt does not say %q", mode, w)
			}
		}
	}
}
