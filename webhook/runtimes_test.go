package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// runtimeNode is a Node as a kubelet of that runtime reports it.
func runtimeNode(name, runtime string, labels ...string) *corev1.Node {
	l := map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime}}}
}

// TestAdmissionByRuntime: Pods reviewed against Node objects of each
// runtime and Windows build, real registries behind the resolver and
// registries.conf read as CRI-O reads it.
func TestAdmissionByRuntime(t *testing.T) {
	first, second := registrytest.New(t), registrytest.New(t)
	second.Image("team/api", "v1", "linux", "amd64")
	second.Index("team/win", "v1", v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2700"})
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("unqualified-search-registries = [%q, %q]\n", first.Host, second.Host)), 0o600); err != nil {
		t.Fatal(err)
	}
	winImage := second.Host + "/team/win:v1"
	tests := []struct {
		name    string
		nodes   []client.Object
		image   string
		allowed bool
		want    string // in the denial or a warning
	}{
		{"CRI-O 1.34 nodes: an ambiguous short name is denied, naming the candidate that exists",
			[]client.Object{runtimeNode("c1", "cri-o://1.34.1")}, "team/api:v1", false,
			"ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: " + first.Host + ", " + second.Host + ")"},
		{"CRI-O 1.33 nodes try the search registries in order: the second has it",
			[]client.Object{runtimeNode("c1", "cri-o://1.33.2")}, "team/api:v1", true, ""},
		{"containerd and CRI-O nodes, a qualified name both pull: no warning",
			[]client.Object{runtimeNode("d1", "containerd://2.1.4"), runtimeNode("c1", "cri-o://1.34.1")}, second.Host + "/team/api:v1", true, ""},
		{"Windows ltsc2019 nodes: an ltsc2022-only index is denied",
			[]client.Object{runtimeNode("w1", "containerd://2.1.4", corev1.LabelOSStable, "windows", corev1.LabelWindowsBuild, "10.0.17763")}, winImage, false,
			"offers windows 10.0.20348 only; eligible nodes run 10.0.17763"},
		{"Windows ltsc2022 nodes run it",
			[]client.Object{runtimeNode("w1", "containerd://2.1.4", corev1.LabelOSStable, "windows", corev1.LabelWindowsBuild, "10.0.20348")}, winImage, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := policy.ParseConfig([]byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: enforce\nrules: {dockerhub-anonymous: ignore, mutable-tag: ignore}\nregistries:\n  registriesConf: " + conf + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := registry.NewResolver(registry.WithLookupTimeout(2*time.Second), registry.WithAllowLoopback(true))
			if err != nil {
				t.Fatal(err)
			}
			objs := append([]client.Object{ns("team-a", nil), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default"}}}, tt.nodes...)
			c := fake.NewClientBuilder().WithObjects(objs...).Build()
			cluster := NewClientCluster(c, c)
			track(cluster, objs)
			h := NewHandler(policy.NewChecker(cfg, res), cluster, false, "pullsafe-system", nil)
			p := pod("team-a", tt.image)
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
			resp := h.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v: %s %v", resp.Allowed, tt.allowed, resp.Result.Message, resp.Warnings)
			}
			text := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				text += resp.Result.Message
			}
			if !strings.Contains(text, tt.want) {
				t.Errorf("response %q lacks %q", text, tt.want)
			}
			if tt.allowed && len(resp.Warnings) != 0 {
				t.Errorf("warnings: %v", resp.Warnings)
			}
		})
	}
}
