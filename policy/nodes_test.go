package policy

import (
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, arch string, extra ...string) Node {
	l := map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return Node{Name: name, Labels: l}
}

func TestEligible(t *testing.T) {
	nodes := []Node{node("a1", "amd64", "pool", "gpu", "cores", "8"), node("a2", "amd64", "cores", "64"), node("r1", "arm64", "pool", "gpu")}
	req := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, vals ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want []string
	}{
		{"everything", corev1.PodSpec{}, []string{"a1", "a2", "r1"}},
		{"nodeSelector", corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelArchStable: "arm64"}}, []string{"r1"}},
		{"nodeName", corev1.PodSpec{NodeName: "a2"}, []string{"a2"}},
		{"affinity In", corev1.PodSpec{Affinity: req(expr("pool", corev1.NodeSelectorOpIn, "gpu"))}, []string{"a1", "r1"}},
		{"affinity NotIn", corev1.PodSpec{Affinity: req(expr(corev1.LabelArchStable, corev1.NodeSelectorOpNotIn, "arm64"))}, []string{"a1", "a2"}},
		{"affinity DoesNotExist", corev1.PodSpec{Affinity: req(expr("pool", corev1.NodeSelectorOpDoesNotExist))}, []string{"a2"}},
		{"terms are ORed", corev1.PodSpec{Affinity: req(expr("pool", corev1.NodeSelectorOpDoesNotExist),
			expr(corev1.LabelArchStable, corev1.NodeSelectorOpIn, "arm64"))}, []string{"a2", "r1"}},
		{"selector and affinity ANDed", corev1.PodSpec{NodeSelector: map[string]string{"pool": "gpu"},
			Affinity: req(expr(corev1.LabelArchStable, corev1.NodeSelectorOpIn, "amd64"))}, []string{"a1"}},
		{"empty term matches nothing", corev1.PodSpec{Affinity: req(corev1.NodeSelectorTerm{})}, nil},
		// The scheduler's matcher: Gt/Lt compare integers, matchFields select by name.
		{"affinity Gt", corev1.PodSpec{Affinity: req(expr("cores", corev1.NodeSelectorOpGt, "16"))}, []string{"a2"}},
		{"affinity Lt", corev1.PodSpec{Affinity: req(expr("cores", corev1.NodeSelectorOpLt, "16"))}, []string{"a1"}},
		{"affinity Gt not an integer", corev1.PodSpec{Affinity: req(expr("cores", corev1.NodeSelectorOpGt, "many"))}, nil},
		{"matchFields metadata.name", corev1.PodSpec{Affinity: req(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"r1"}}}})}, []string{"r1"}},
		{"nodeName and a selector it fails", corev1.PodSpec{NodeName: "a2", NodeSelector: map[string]string{"pool": "gpu"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, n := range Eligible(nodes, &tt.spec) {
				got = append(got, n.Name)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestRuns(t *testing.T) {
	arm := node("r", "arm64")
	armV8 := node("r8", "arm64")
	armV8.Variant = "v8"
	if !runs([]v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}}, arm) {
		t.Error("variant on one side only must match")
	}
	if runs([]v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v7"}}, armV8) {
		t.Error("different variants must not match")
	}
	// Kubernetes sets no variant label: one that claims to be is not read.
	if !runs([]v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v7"}}, node("r", "arm64", "kubernetes.io/arch-variant", "v8")) {
		t.Error("a kubernetes.io/arch-variant label must not decide anything")
	}
	if runs([]v1.Platform{{OS: "windows", Architecture: "arm64"}}, arm) {
		t.Error("os must match")
	}
}

// BenchmarkEligible: 5000 nodes through the scheduler's matcher, as one
// review of a pod with a nodeSelector and a required affinity costs.
func BenchmarkEligible(b *testing.B) {
	nodes := make([]Node, 5000)
	for i := range nodes {
		arch := "amd64"
		if i%3 == 0 {
			arch = "arm64"
		}
		nodes[i] = NodeOf(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i),
			Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch, "pool": fmt.Sprint(i % 4)}}})
	}
	spec := corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelOSStable: "linux"}, Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"1", "2"}}}}}}}}}
	b.ReportAllocs()
	for b.Loop() {
		if len(Eligible(nodes, &spec)) != 2500 {
			b.Fatal("wrong count")
		}
	}
}

// TestRunsAsContainerd: an image platform is runnable where containerd's
// default matcher (platforms.Only, after platforms.Normalize) pulls it: an
// amd64 node also takes 386, an arm64 node also takes arm/v8..v5, an arm/vN
// node takes arm/v(N-1)..v5, and the spellings aarch64, x86_64, armhf and
// upper case are the canonical ones. Anything else would deny an image the
// kubelet pulls.
func TestRunsAsContainerd(t *testing.T) {
	withVariant := func(n Node, v string) Node { n.Variant = v; return n }
	amd, arm64, arm := node("a", "amd64"), node("r", "arm64"), node("m", "arm")
	tests := []struct {
		name  string
		image v1.Platform
		node  Node
		want  bool
	}{
		{"386 on amd64", v1.Platform{OS: "linux", Architecture: "386"}, amd, true},
		{"arm/v7 on arm64", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, arm64, true},
		{"arm on arm64/v8", v1.Platform{OS: "linux", Architecture: "arm"}, withVariant(arm64, "v8"), true},
		{"aarch64 on arm64", v1.Platform{OS: "linux", Architecture: "aarch64"}, arm64, true},
		{"x86_64 on amd64", v1.Platform{OS: "Linux", Architecture: "x86_64"}, amd, true},
		{"AMD64 on amd64", v1.Platform{OS: "linux", Architecture: "AMD64"}, amd, true},
		{"armhf on arm", v1.Platform{OS: "linux", Architecture: "armhf"}, arm, true},
		{"arm64/v8 on arm64/v8", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "8"}, withVariant(arm64, "v8"), true},
		{"arm/v6 on arm/v7", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, withVariant(arm, "v7"), true},
		{"amd64/v2 on amd64/v3", v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}, withVariant(amd, "v3"), true},
		// A node whose labels do not say (a virtual kubelet, labels removed)
		// is unknown, never a mismatch.
		{"no arch label", v1.Platform{OS: "linux", Architecture: "amd64"}, Node{Name: "v", Labels: map[string]string{corev1.LabelOSStable: "linux"}}, true},
		{"no labels", v1.Platform{OS: "linux", Architecture: "amd64"}, Node{Name: "v"}, true},
		// What containerd refuses stays refused.
		{"arm/v7 on arm/v6", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, withVariant(arm, "v6"), false},
		{"amd64 on 386", v1.Platform{OS: "linux", Architecture: "amd64"}, node("i", "386"), false},
		{"arm64 on arm", v1.Platform{OS: "linux", Architecture: "arm64"}, arm, false},
		{"amd64 on arm64", v1.Platform{OS: "linux", Architecture: "amd64"}, arm64, false},
		{"arm64 on amd64", v1.Platform{OS: "linux", Architecture: "arm64"}, amd, false},
		{"386 on arm64", v1.Platform{OS: "linux", Architecture: "386"}, arm64, false},
		{"arm64/v8.2 on arm64/v8", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8.2"}, withVariant(arm64, "v8"), false},
		{"windows/386 on linux/amd64", v1.Platform{OS: "windows", Architecture: "386"}, amd, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runs([]v1.Platform{tt.image}, tt.node); got != tt.want {
				t.Errorf("runs(%+v, %s variant %q) = %v, want %v", tt.image, tt.node.Platform(), tt.node.Variant, got, tt.want)
			}
		})
	}
}

// TestRefusesSchema1: containerd 2.1 removed schema 1 pulls; 2.0 only
// disables them by default (CONTAINERD_ENABLE_DEPRECATED_PULL_SCHEMA_1_IMAGE=1
// re-enables them for the CRI's local pull), so a 2.0 node may still pull
// one and must not make a denial; other runtimes and unparsable versions
// are unknown.
func TestRefusesSchema1(t *testing.T) {
	for rt, want := range map[string]bool{
		"containerd://2.1.4": true, "containerd://v2.1.0": true, "containerd://2.2.0-rc.1": true, "containerd://3.0.0": true,
		"containerd://2.10.1": true, "containerd://2.0.5": false, "containerd://2.0.0": false, "containerd://2": false,
		"containerd://1.7.22": false, "containerd://1.7.22-k3s1": false, "cri-o://1.30.0": false, "docker://27.0.1": false,
		"": false, "containerd://": false, "containerd://x.1": false, "containerd://2.x": false,
	} {
		if got := (Node{Runtime: rt}).refusesSchema1(); got != want {
			t.Errorf("%q: refusesSchema1 = %v, want %v", rt, got, want)
		}
	}
}
