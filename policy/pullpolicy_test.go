package policy

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestPullPolicyDefaults is the API server's SetDefaults_Container.
func TestPullPolicyDefaults(t *testing.T) {
	tests := []struct {
		image string
		set   corev1.PullPolicy
		want  corev1.PullPolicy
	}{
		{"nginx", "", corev1.PullAlways},
		{"nginx:latest", "", corev1.PullAlways},
		{"registry.corp.io:5000/team/api", "", corev1.PullAlways},
		{"nginx:1.27", "", corev1.PullIfNotPresent},
		{"nginx@" + digest1.String(), "", corev1.PullIfNotPresent},
		{"nginx:latest@" + digest1.String(), "", corev1.PullAlways},
		{"team//api", "", corev1.PullIfNotPresent},
		{"nginx", corev1.PullNever, corev1.PullNever},
		{"nginx:1.27", corev1.PullAlways, corev1.PullAlways},
	}
	for _, tt := range tests {
		if got := PullPolicy(Container{Image: tt.image, PullPolicy: tt.set}); got != tt.want {
			t.Errorf("PullPolicy(%q, %q) = %s, want %s", tt.image, tt.set, got, tt.want)
		}
	}
}

// TestPullNeverContactsNoRegistry: with imagePullPolicy Never the kubelet
// never asks a registry, so neither does pullsafe — a tag that does not exist
// is allowed, unpinned, with no request at all reaching the registry.
func TestPullNeverContactsNoRegistry(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	ct := Container{Name: "app", Image: tr.Host + "/team/api:does-not-exist", PullPolicy: corev1.PullNever, List: "containers", Path: "/spec/containers/0/image"}
	w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{ct}}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Pin: PinAll(),
		Nodes: []Node{node("n", "amd64")}})
	if v.Decision() != DecisionAllow || len(v.Findings) != 0 || len(v.Pins) != 0 {
		t.Errorf("verdict %+v, want allowed, no findings, no pins", v)
	}
	if n := tr.Count("", ""); n != 0 {
		t.Errorf("%d requests reached the registry, want 0", n)
	}
	// The same pod with the default policy is looked up and denied: the
	// registry above is really there.
	ct.PullPolicy = ""
	v = NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: []Container{ct}, Mode: ModeEnforce, Nodes: []Node{node("n", "amd64")}})
	if v.Decision() != DecisionDeny || tr.Count("", "") == 0 {
		t.Errorf("IfNotPresent: verdict %+v after %d requests, want a not-found denial", v, tr.Count("", ""))
	}
}
