package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// exampleWorkloads is the README's `workloads` section.
const exampleWorkloads = `
workloads:
- apiGroup: argoproj.io
  kind: Rollout
  resource: rollouts
  apiVersions: [v1alpha1]
  podTemplatePath: spec.template
- apiGroup: apps.kruise.io
  kind: CloneSet
  resource: clonesets
  podTemplatePath: spec.template
- apiGroup: serving.knative.dev
  kind: Service
  resource: services
  apiVersions: [v1]
  podTemplatePath: spec.template
`

const configHead = "apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"

func exampleConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(configHead + exampleWorkloads))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestParseConfigWorkloads(t *testing.T) {
	cfg := exampleConfig(t)
	want := []WorkloadKind{
		{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts", APIVersions: []string{"v1alpha1"}, PodTemplatePath: "spec.template"},
		{APIGroup: "apps.kruise.io", Kind: "CloneSet", Resource: "clonesets", PodTemplatePath: "spec.template"},
		{APIGroup: "serving.knative.dev", Kind: "Service", Resource: "services", APIVersions: []string{"v1"}, PodTemplatePath: "spec.template"},
	}
	if diff := cmp.Diff(want, cfg.Workloads); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	if got := cfg.Workloads[1].Versions(); !cmp.Equal(got, []string{"*"}) {
		t.Errorf("default apiVersions = %v, want [*]", got)
	}
	if def := DefaultConfig(); len(def.Workloads) != 0 {
		t.Errorf("default config has workloads: %v", def.Workloads)
	}
}

func TestParseConfigRejectsBadWorkloads(t *testing.T) {
	entry := func(fields string) string {
		return configHead + "workloads:\n- {" + fields + "}\n"
	}
	ok := "apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podTemplatePath: spec.template"
	many := configHead + "workloads:\n"
	for i := range maxWorkloadKinds + 1 {
		many += fmt.Sprintf("- {apiGroup: g%d.example.com, kind: K, resource: ks, podSpecPath: spec}\n", i)
	}
	tests := []struct{ name, yaml, want string }{
		{"unknown key", entry(ok + ", podTemplatPath: x"), `unknown field "podTemplatPath"`},
		{"no group", entry("kind: Rollout, resource: rollouts, podTemplatePath: spec.template"), "workloads[0]: apiGroup: required"},
		{"core group kind", entry("apiGroup: '', kind: PodTemplate, resource: podtemplates, podTemplatePath: template"), "apiGroup: required"},
		{"group without a dot", entry("apiGroup: argoproj, kind: Rollout, resource: rollouts, podTemplatePath: spec.template"), `apiGroup: "argoproj" is not a CRD group`},
		{"group uppercase", entry("apiGroup: Argoproj.io, kind: Rollout, resource: rollouts, podTemplatePath: spec.template"), `apiGroup: "Argoproj.io"`},
		{"group with version", entry("apiGroup: argoproj.io/v1alpha1, kind: Rollout, resource: rollouts, podTemplatePath: spec.template"), "apiGroup:"},
		{"no kind", entry("apiGroup: argoproj.io, resource: rollouts, podTemplatePath: spec.template"), "workloads[0]: kind:"},
		{"kind with dot", entry("apiGroup: argoproj.io, kind: Roll.out, resource: rollouts, podTemplatePath: spec.template"), `kind: "Roll.out"`},
		{"no resource", entry("apiGroup: argoproj.io, kind: Rollout, podTemplatePath: spec.template"), "resource:"},
		{"resource uppercase", entry("apiGroup: argoproj.io, kind: Rollout, resource: Rollouts, podTemplatePath: spec.template"), `resource: "Rollouts"`},
		{"subresource", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts/scale, podTemplatePath: spec.template"), "no subresources"},
		{"bad version", entry(ok + ", apiVersions: [v1/alpha]"), `apiVersions: "v1/alpha" is not a version`},
		{"star and more", entry(ok + ", apiVersions: ['*', v1]"), `apiVersions: "*" is all versions`},
		{"version twice", entry(ok + ", apiVersions: [v1, v1]"), "listed twice"},
		{"no path", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts"), "podTemplatePath or podSpecPath: one is required"},
		{"both paths", entry(ok + ", podSpecPath: spec.template.spec"), "give only one"},
		{"json pointer", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podTemplatePath: /spec/template"), `podTemplatePath: "/spec/template" is not a dotted path`},
		{"jsonpath", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podSpecPath: '.spec.template.spec'"), "podSpecPath"},
		{"index", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podSpecPath: 'spec.pods[0]'"), "podSpecPath"},
		{"empty segment", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podTemplatePath: spec..template"), "podTemplatePath"},
		{"too deep", entry("apiGroup: argoproj.io, kind: Rollout, resource: rollouts, podTemplatePath: a.b.c.d.e.f.g.h.i.j.k"), "deeper than 10"},
		{"built-in", entry("apiGroup: apps, kind: Deployment, resource: deployments, podTemplatePath: spec.template"), "apps/Deployment is built in"},
		{"built-in core", entry("apiGroup: '', kind: Pod, resource: pods, podSpecPath: spec"), "/Pod is built in"},
		{"duplicate kind", configHead + "workloads:\n- {" + ok + "}\n- {apiGroup: argoproj.io, kind: Rollout, resource: rollouts2, podSpecPath: spec}\n",
			"workloads[1]: argoproj.io/Rollout is already workloads[0]"},
		{"duplicate resource", configHead + "workloads:\n- {" + ok + "}\n- {apiGroup: argoproj.io, kind: Rollout2, resource: rollouts, podSpecPath: spec}\n",
			"workloads[1].resource: argoproj.io/rollouts is already workloads[0]"},
		{"too many", many, "at most 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// The same kind name in two groups, or the same resource in two groups,
	// are distinct kinds.
	twoGroups := configHead + "workloads:\n- {" + ok + "}\n- {apiGroup: rollouts.example.com, kind: Rollout, resource: rollouts, podSpecPath: spec}\n"
	if _, err := ParseConfig([]byte(twoGroups)); err != nil {
		t.Errorf("Rollout in two groups: %v", err)
	}
}

// readFixture reads one object of testdata/workloads.
func readFixture(t *testing.T, name string) Manifest {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "workloads", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := ReadManifests(f, name)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%s: %d manifests, %v", name, len(ms), err)
	}
	return ms[0]
}

func TestExtractWorkloadOfConfiguredKinds(t *testing.T) {
	custom := exampleConfig(t).Workloads
	tests := []struct {
		file string
		want Workload
	}{
		{"rollout.yaml", Workload{Kind: "Rollout", Name: "rollouts-demo", Namespace: "shop", Template: true, Containers: []Container{
			{Name: "rollouts-demo", Image: "argoproj/rollouts-demo:blue", List: "containers", Source: SourceContainer, Path: "/spec/template/spec/containers/0/image"}}}},
		{"cloneset.yaml", Workload{Kind: "CloneSet", Name: "sample-data", Template: true, Containers: []Container{
			{Name: "init", Image: "busybox:1.36", List: "initContainers", Source: SourceInit, Path: "/spec/template/spec/initContainers/0/image"},
			{Name: "nginx", Image: "nginx:alpine", List: "containers", Source: SourceContainer, Path: "/spec/template/spec/containers/0/image"}}}},
		{"knative-service.yaml", Workload{Kind: "Service", Name: "hello", Namespace: "apps", Template: true,
			Spec: corev1.PodSpec{ServiceAccountName: "hello-sa", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
			Containers: []Container{
				{Image: "ghcr.io/knative/helloworld-go:latest", List: "containers", Source: SourceContainer, Path: "/spec/template/spec/containers/0/image"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := readFixture(t, tt.file)
			if !Checked(m.GroupKind(), custom...) {
				t.Errorf("Checked(%v) = false", m.GroupKind())
			}
			if Checked(m.GroupKind()) {
				t.Errorf("Checked(%v) without the config = true", m.GroupKind())
			}
			w, err := ExtractWorkload(m.GroupKind(), m.JSON, custom...)
			if err != nil || w == nil {
				t.Fatalf("ExtractWorkload = %v, %v", w, err)
			}
			if diff := cmp.Diff(&tt.want, w); diff != "" {
				t.Errorf("workload (-want +got):\n%s", diff)
			}
			if w, err := ExtractWorkload(m.GroupKind(), m.JSON); w != nil || err != nil {
				t.Errorf("without the config: %+v, %v (want not checked)", w, err)
			}
		})
	}
}

// TestKindsAreMatchedWithTheirGroup: a CRD named like a built-in kind is
// not read as the built-in one (which made a string-valued spec.template an
// "allowed unchecked" warning, or a check of the wrong field), and a
// configured kind is found only in its own group.
func TestKindsAreMatchedWithTheirGroup(t *testing.T) {
	other := readFixture(t, "other-deployment.yaml")
	if gk := other.GroupKind(); gk != (schema.GroupKind{Group: "deploy.example.com", Kind: "Deployment"}) {
		t.Fatalf("GroupKind = %v", gk)
	}
	if w, err := ExtractWorkload(other.GroupKind(), other.JSON, exampleConfig(t).Workloads...); w != nil || err != nil {
		t.Errorf("deploy.example.com/Deployment read as a workload: %+v, %v", w, err)
	}
	look := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"typo:v0"}]}}}}`)
	if w, _ := ExtractWorkload(schema.GroupKind{Group: "example.com", Kind: "Deployment"}, look); w != nil {
		t.Errorf("example.com/Deployment with a Deployment's shape checked: %+v", w)
	}
	if w, _ := ExtractWorkload(deployment, look); w == nil || len(w.Containers) != 1 {
		t.Errorf("apps/Deployment not checked: %+v", w)
	}
	// OpenKruise's Advanced StatefulSet: checked only once configured.
	sts := readFixture(t, "kruise-statefulset.yaml")
	if w, _ := ExtractWorkload(sts.GroupKind(), sts.JSON); w != nil {
		t.Errorf("apps.kruise.io/StatefulSet read as apps/StatefulSet: %+v", w)
	}
	kruise := []WorkloadKind{{APIGroup: "apps.kruise.io", Kind: "StatefulSet", Resource: "statefulsets", PodTemplatePath: "spec.template"}}
	if w, _ := ExtractWorkload(sts.GroupKind(), sts.JSON, kruise...); w == nil || len(w.Containers) != 1 || w.Containers[0].Image != "nginx:1.27" {
		t.Errorf("configured apps.kruise.io/StatefulSet: %+v", w)
	}
	rollout := schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}
	if w, _ := ExtractWorkload(schema.GroupKind{Group: "example.com", Kind: "Rollout"}, look, exampleConfig(t).Workloads...); w != nil {
		t.Errorf("Rollout of another group read as argoproj.io's: %+v", w)
	}
	if w, _ := ExtractWorkload(rollout, look, exampleConfig(t).Workloads...); w == nil || len(w.Containers) != 1 {
		t.Errorf("argoproj.io/Rollout: %+v", w)
	}
}

func TestManifestGroupKind(t *testing.T) {
	for _, tt := range []struct {
		apiVersion, kind string
		want             schema.GroupKind
	}{
		{"v1", "Pod", schema.GroupKind{Kind: "Pod"}},
		{"apps/v1", "Deployment", deployment},
		{"argoproj.io/v1alpha1", "Rollout", schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}},
		// No apiVersion (kubectl refuses it): read as the built-in kind.
		{"", "Deployment", deployment},
		{"", "CronJob", schema.GroupKind{Group: "batch", Kind: "CronJob"}},
		{"a/b/c", "Deployment", deployment},
		{"", "Rollout", schema.GroupKind{Kind: "Rollout"}},
	} {
		if got := (Manifest{APIVersion: tt.apiVersion, Kind: tt.kind}).GroupKind(); got != tt.want {
			t.Errorf("%q %q: %v, want %v", tt.apiVersion, tt.kind, got, tt.want)
		}
	}
	ms, err := ReadManifests(strings.NewReader(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout"}]}`), "list.json")
	if err != nil || len(ms) != 1 || ms[0].GroupKind().Group != "argoproj.io" {
		t.Errorf("List item: %+v, %v", ms, err)
	}
}

func TestExtractCustomPaths(t *testing.T) {
	runner := []WorkloadKind{
		{APIGroup: "example.com", Kind: "Runner", Resource: "runners", PodSpecPath: "spec.runner.pod"},
		{APIGroup: "example.com", Kind: "Odd", Resource: "odds", PodTemplatePath: "spec.a~b.c-d_e"},
	}
	gk := schema.GroupKind{Group: "example.com", Kind: "Runner"}
	tests := []struct {
		name, json string
		gk         schema.GroupKind
		want       []string // container paths
		err        string
	}{
		{"pod spec path", `{"spec":{"runner":{"pod":{"containers":[{"name":"c","image":"a:1"}]}}}}`, gk, []string{"/spec/runner/pod/containers/0/image"}, ""},
		{"missing on the way", `{"spec":{}}`, gk, nil, ""},
		{"no spec", `{"metadata":{"name":"r"}}`, gk, nil, ""},
		{"null on the way", `{"spec":{"runner":null}}`, gk, nil, ""},
		{"null at the end", `{"spec":{"runner":{"pod":null}}}`, gk, nil, ""},
		{"string on the way", `{"spec":{"runner":"fast"}}`, gk, nil,
			"spec.runner is a string, not an object (config workloads entry example.com/Runner, podSpecPath)"},
		{"array at the end", `{"spec":{"runner":{"pod":[{"containers":[]}]}}}`, gk, nil, "spec.runner.pod is an array, not an object"},
		{"number", `{"spec":7}`, gk, nil, "spec is a number"},
		{"bad containers", `{"spec":{"runner":{"pod":{"containers":"x"}}}}`, gk, nil, "decoding Runner at spec.runner.pod"},
		{"not an object", `[1]`, gk, nil, "decoding Runner"},
		{"escaped pointer", `{"spec":{"a~b":{"c-d_e":{"spec":{"containers":[{"image":"a:1"}]}}}}}`, schema.GroupKind{Group: "example.com", Kind: "Odd"},
			[]string{"/spec/a~0b/c-d_e/spec/containers/0/image"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ExtractWorkload(tt.gk, []byte(tt.json), runner...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || w == nil {
				t.Fatalf("%+v, %v", w, err)
			}
			var got []string
			for _, c := range w.Containers {
				got = append(got, c.Path)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if !w.Template {
				t.Error("a custom kind's pod spec is a template (pinned only with pin.templates)")
			}
		})
	}
	if got := pointer([]string{"a/b", "c~d", "e"}); got != "/a~1b/c~0d/e" {
		t.Errorf("pointer = %q", got)
	}
}

// BenchmarkExtractWorkload compares a built-in kind's typed decode with a
// configured kind's walk, on the same object.
func BenchmarkExtractWorkload(b *testing.B) {
	f, err := os.Open(filepath.Join("testdata", "workloads", "rollout.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	ms, err := ReadManifests(f, "rollout.yaml")
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	custom := []WorkloadKind{{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts", PodTemplatePath: "spec.template"}}
	for _, bb := range []struct {
		name string
		gk   schema.GroupKind
	}{{"deployment", deployment}, {"rollout", ms[0].GroupKind()}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if w, err := ExtractWorkload(bb.gk, ms[0].JSON, custom...); err != nil || len(w.Containers) != 1 {
					b.Fatal(w, err)
				}
			}
		})
	}
}

// TestREADMEWorkloadsExampleParses keeps the README's example valid.
func TestREADMEWorkloadsExampleParses(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\nworkloads:\n")
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("README has no ```yaml block starting with workloads:")
	}
	cfg, err := ParseConfig([]byte(configHead + "workloads:\n" + block))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	var got []string
	for _, k := range cfg.Workloads {
		got = append(got, k.APIGroup+"/"+k.Kind)
	}
	if diff := cmp.Diff([]string{"argoproj.io/Rollout", "apps.kruise.io/CloneSet", "serving.knative.dev/Service"}, got); diff != "" {
		t.Errorf("README example kinds (-want +got):\n%s", diff)
	}
}

// TestExtractCustomIsCaseSensitive: a CRD that preserves unknown fields
// (Argo Rollouts' template does) keeps "Containers" as written, and its
// controller decodes case-sensitively as every Kubernetes client does
// (sigs.k8s.io/json): an image under a misspelt key is never pulled, so it
// is never refused, and never hides the one under the right key.
func TestExtractCustomIsCaseSensitive(t *testing.T) {
	gk := schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}
	ks := []WorkloadKind{{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts", PodTemplatePath: "spec.template"}}
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{`{"spec":{"template":{"spec":{"Containers":[{"name":"c","image":"never:1"}]}}}}`, nil},
		{`{"spec":{"template":{"Spec":{"containers":[{"name":"c","image":"never:1"}]}}}}`, nil},
		{`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"real:1"}],"Containers":[{"name":"c","image":"never:1"}]}}}}`, []string{"real:1"}},
		{`{"spec":{"template":{"spec":{"containers":[{"name":"c","Image":"never:1","image":"real:1","IMAGE":"never:2"}]}}}}`, []string{"real:1"}},
		{`{"spec":{"template":{"spec":{"volumes":[{"name":"v","image":{"Reference":"never:1"}}]}}}}`, nil},
	} {
		w, err := ExtractWorkload(gk, []byte(tc.raw), ks...)
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		var got []string
		for _, c := range w.Containers {
			got = append(got, c.Image)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: images (-want +got):\n%s", tc.raw, diff)
		}
	}
}
