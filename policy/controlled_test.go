package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/registry"
)

// TestControllerAndMirrorAreRead: who controls an object and whether a Pod
// is a mirror come from its metadata, for built-in and configured kinds,
// exactly as the API server and the kubelet read them.
func TestControllerAndMirrorAreRead(t *testing.T) {
	const (
		ctl     = `"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x"},{"apiVersion":"apps/v1","kind":"Deployment","name":"web","controller":true}]`
		notCtl  = `"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","controller":false}]`
		mirror  = `"annotations":{"kubernetes.io/config.mirror":"abc"},"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"u","controller":true}]`
		forged  = `"annotations":{"kubernetes.io/config.mirror":"abc"}`
		byOther = `"annotations":{"kubernetes.io/config.mirror":"abc"},"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n2","uid":"u","controller":true}]`
		onNode  = `{"nodeName":"n1","containers":[{"name":"c","image":"a:1"}]}`
		upper   = `"annotations":{"kubernetes.io/config.MIRROR":"abc"}`
		podSpec = `{"containers":[{"name":"c","image":"a:1"}]}`
	)
	rs := schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}
	rollout := schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}
	tests := []struct {
		name       string
		gk         schema.GroupKind
		meta, spec string
		controller string // OwnerRef.Object(), "" none
		written    bool
		mirror     bool
	}{
		{"replicaset of a deployment", rs, ctl, `{"template":{"spec":` + podSpec + `}}`, "deployment/web", true, false},
		{"replicaset with a non-controller owner", rs, notCtl, `{"template":{"spec":` + podSpec + `}}`, "", false, false},
		{"replicaset nobody owns", rs, `"name":"rs"`, `{"template":{"spec":` + podSpec + `}}`, "", false, false},
		{"configured kind with a controller", rollout, ctl, `{"template":{"spec":` + podSpec + `}}`, "deployment/web", true, false},
		{"pod of a replicaset: pinned as a pod", pod, ctl, podSpec, "deployment/web", false, false},
		// As NodeRestriction lets a kubelet create it: bound to its node,
		// controlled by its Node.
		{"mirror pod", pod, mirror, onNode, "node/n1", false, true},
		// Anyone may write the annotation; only a kubelet makes the owner.
		{"mirror annotation without its node as controller", pod, forged, onNode, "", false, false},
		{"mirror annotation, another node as controller", pod, byOther, onNode, "node/n2", false, false},
		// Annotation keys are case-sensitive: this one makes no mirror,
		// and the kubelet runs the Pod like any other.
		{"not the mirror annotation", pod, upper, podSpec, "", false, false},
		{"a deployment says it is a mirror: no pod is", deployment, forged, `{"template":{"spec":` + podSpec + `}}`, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ExtractWorkload(tt.gk, []byte(`{"metadata":{`+tt.meta+`},"spec":`+tt.spec+`}`), fuzzWorkloads...)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if w.Controller != nil {
				got = w.Controller.Object()
			}
			if got != tt.controller || w.WrittenByController() != tt.written || w.Mirror != tt.mirror {
				t.Errorf("controller %q, written by controller %v, mirror %v; want %q, %v, %v",
					got, w.WrittenByController(), w.Mirror, tt.controller, tt.written, tt.mirror)
			}
		})
	}
}

// TestTemplateWrittenByAControllerIsNeverPinned: a ReplicaSet the
// deployment controller wrote keeps its template as written, even with
// pinning on (else the controller no longer finds it and creates
// ReplicaSets without end); the mutable-tag advice names the template to
// pin. The same ReplicaSet without an owner, and a Pod with one, are pinned.
func TestTemplateWrittenByAControllerIsNeverPinned(t *testing.T) {
	const image = "registry.corp.io/team/api:v1"
	res := &fakeResolver{images: map[string]*registry.Image{image: img("registry.corp.io/team/api", "v1", digest1)},
		platforms: map[v1.Hash][]v1.Platform{digest1: {linux("amd64")}}}
	yes := true
	byDeployment := &OwnerRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Controller: &yes}
	tests := []struct {
		name       string
		kind       string
		template   bool
		controller *OwnerRef
		pinned     bool
		fix        string // the mutable-tag finding's, when not pinned
	}{
		{"replicaset of a deployment", "ReplicaSet", true, byDeployment, false,
			"pin the digest in deployment/web's template (pullsafe never pins a template its controller wrote)"},
		{"replicaset nobody owns", "ReplicaSet", true, nil, true, ""},
		{"pod of a replicaset", "Pod", false, &OwnerRef{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: &yes}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := Container{Name: "api", Image: image, List: "containers", Path: "/spec/template/spec/containers/0/image",
				PullPolicy: corev1.PullIfNotPresent}
			w := &Workload{Kind: tt.kind, Name: "web", Namespace: "shop", Template: tt.template, Controller: tt.controller, Containers: []Container{ct}}
			v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers,
				Mode: ModeEnforce, Pin: PinAll(), Nodes: []Node{node("n1", "amd64")}})
			if got := len(v.Pins) == 1; got != tt.pinned {
				t.Fatalf("pinned %v (pins %+v), want %v", got, v.Pins, tt.pinned)
			}
			var fixes []string
			for _, f := range v.Findings {
				if f.Rule == RuleMutableTag {
					fixes = append(fixes, f.Fix)
				}
			}
			var want []string
			if tt.fix != "" {
				want = []string{tt.fix}
			}
			if d := cmp.Diff(want, fixes); d != "" {
				t.Errorf("mutable-tag advice (-want +got):\n%s", d)
			}
		})
	}
}
