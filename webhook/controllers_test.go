package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
)

func pinTemplates(cfg *policy.Config, _ *[]client.Object) { cfg.Pin.Templates = true }

func replicaSet(namespace, image string, owner *metav1.OwnerReference) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web-5d8f7c"},
		Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: image}}}}}}
	if owner != nil {
		rs.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return rs
}

// TestTemplatesControllersWriteAreNeverPinned: with pin.templates on, the
// ReplicaSet the deployment controller creates from an unpinned Deployment
// (made before pinning was on, in a namespace labelled pin=false, or while
// the mutating webhook failed open) keeps the controller's template. Pinned,
// the controller's template comparison (EqualIgnoreHash) no longer finds it
// and it creates ReplicaSets without end. So does Argo Rollouts for its
// ReplicaSets. A ReplicaSet nobody controls, and a controller's Pod, are
// pinned as before.
func TestTemplatesControllersWriteAreNeverPinned(t *testing.T) {
	b := newBed(t, withNodes("amd64"), pinTemplates)
	image := b.open.Host + "/team/api:v1.4.1"
	yes, no := true, false
	tests := []struct {
		name   string
		obj    runtime.Object
		pinned bool
	}{
		{"replicaset of a deployment", replicaSet("team-a", image,
			&metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d1", Controller: &yes}), false},
		{"replicaset of an argo rollout", replicaSet("team-a", image,
			&metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "web", UID: "r1", Controller: &yes}), false},
		{"replicaset with an owner that does not control it", replicaSet("team-a", image,
			&metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "c1", Controller: &no}), true},
		{"replicaset nobody owns", replicaSet("team-a", image, nil), true},
		{"pod of a replicaset", func() runtime.Object {
			p := pod("team-a", image)
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7c", UID: "rs1", Controller: &yes}}
			return p
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, admissionv1.Create, tt.obj, nil, "")
			if resp := b.mutate.Handle(context.Background(), req); (len(resp.Patches) == 1) != tt.pinned || !resp.Allowed {
				t.Errorf("patches %+v, want pinned %v", resp.Patches, tt.pinned)
			}
			if resp := b.validate.Handle(context.Background(), req); !resp.Allowed {
				t.Errorf("validating denied: %s", resp.Result.Message)
			}
		})
	}
}

// TestMirrorPodIsNeverLookedUp: the kubelet pulls a static Pod's images
// with the node's credentials, before and regardless of its mirror Pod,
// which may name no pull secret (ServiceAccount admission, NodeRestriction).
// A private image there is no finding, and costs no lookup; a Pod whose
// annotation only looks like the mirror's is checked as any Pod.
func TestMirrorPodIsNeverLookedUp(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	yes := true
	mirror := pod("team-a", b.private.Host+"/team/secret:v1")
	mirror.Name = "etcd-node-0"
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "3f2a"}
	mirror.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-0-amd64", UID: "n0", Controller: &yes}}
	mirror.Spec.NodeName = "node-0-amd64"
	b.private.Reset()
	for _, h := range []*Handler{b.validate, b.mutate} {
		if resp := h.Handle(context.Background(), request(t, admissionv1.Create, mirror, nil, "")); !resp.Allowed || len(resp.Warnings) > 0 || len(resp.Patches) > 0 {
			t.Errorf("mirror pod: %+v", resp.AdmissionResponse)
		}
	}
	if n := b.private.Count("", ""); n != 0 {
		t.Errorf("%d registry requests for a mirror pod", n)
	}
	fake := mirror.DeepCopy()
	fake.Annotations = map[string]string{"kubernetes.io/config.MIRROR": "3f2a"}
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, fake, nil, "")); resp.Allowed {
		t.Error("a pod with a look-alike annotation (the kubelet runs it) was admitted without pull secrets")
	}
	// Any tenant may set the annotation: NodeRestriction only binds nodes,
	// and requires every mirror a node creates to be controlled by that
	// Node. A Pod with the annotation but not that owner was not made by a
	// kubelet; an agent that ignores the annotation (virtual-kubelet's
	// PodController runs every Pod bound to its node) pulls its images.
	for name, owners := range map[string][]metav1.OwnerReference{
		"no owner":          nil,
		"another node":      {{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "n1", Controller: &yes}},
		"node not as owner": {{APIVersion: "v1", Kind: "Node", Name: "node-0-amd64", UID: "n0"}},
	} {
		forged := mirror.DeepCopy()
		forged.OwnerReferences = owners
		if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, forged, nil, "")); resp.Allowed {
			t.Errorf("a mirror annotation on a Pod its Node does not control (%s) was admitted without pull secrets", name)
		}
	}
	// NodeRestriction checks a kubelet's owner reference against its Node's
	// UID; a tenant writing the owner by hand does not know it.
	b.cluster.nodeEvent(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-9", UID: "uid-of-node-9",
		Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}, false)
	for uid, allowed := range map[types.UID]bool{"uid-of-node-9": true, "guessed": false} {
		on9 := mirror.DeepCopy()
		on9.Spec.NodeName = "node-9"
		on9.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-9", UID: uid, Controller: &yes}}
		if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, on9, nil, "")); resp.Allowed != allowed {
			t.Errorf("mirror pod owned by node-9 with UID %q: allowed %v, want %v", uid, resp.Allowed, allowed)
		}
	}
}

// TestUpdateRechecksImagesWhenThePullContextChanges: an UPDATE that keeps
// every image but changes what they are pulled with (pull secrets, service
// account) or where (nodeSelector, affinity, nodeName) rolls out Pods that
// pull every image afresh: a change that breaks the pull is refused as a
// new image would be. Changes that move no pull look nothing up.
func TestUpdateRechecksImagesWhenThePullContextChanges(t *testing.T) {
	b := newBed(t, withNodes("amd64", "arm64"))
	private := b.private.Host + "/team/secret:v1" // amd64 only, needs regcred
	amd64Only := b.open.Host + "/team/api:v1.4.1" // amd64 only
	deploy := func(image string, edit func(*corev1.PodSpec)) *appsv1.Deployment {
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				NodeSelector: map[string]string{corev1.LabelArchStable: "amd64"},
				Containers:   []corev1.Container{{Name: "web", Image: image, ImagePullPolicy: corev1.PullAlways}}}}}}
		if edit != nil {
			edit(&d.Spec.Template.Spec)
		}
		return d
	}
	withSecret := func(s *corev1.PodSpec) { s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}} }
	arm64 := corev1.NodeSelectorRequirement{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}
	tests := []struct {
		name      string
		old, upd  runtime.Object
		denied    string // a part of the denial, "" admitted
		noLookups bool
	}{
		{name: "pull secret removed",
			old: deploy(private, withSecret), upd: deploy(private, nil), denied: "unauthorized"},
		{name: "service account changed to one without the secret",
			old: deploy(private, func(s *corev1.PodSpec) { s.ServiceAccountName = "builder" }), upd: deploy(private, nil), denied: "unauthorized"},
		{name: "nodeSelector moved to arm64",
			old: deploy(amd64Only, nil), upd: deploy(amd64Only, func(s *corev1.PodSpec) { s.NodeSelector[corev1.LabelArchStable] = "arm64" }),
			denied: "no node it may run on can run it"},
		{name: "required affinity to arm64",
			old: deploy(amd64Only, nil), upd: deploy(amd64Only, func(s *corev1.PodSpec) {
				s.NodeSelector = nil
				s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{arm64}}}}}}
			}), denied: "no node it may run on can run it"},
		{name: "nodeName set to an arm64 node",
			old: deploy(amd64Only, func(s *corev1.PodSpec) { s.NodeSelector = nil }), upd: deploy(amd64Only, func(s *corev1.PodSpec) {
				s.NodeSelector, s.NodeName = nil, "node-1-arm64"
			}), denied: "no node it may run on can run it"},
		{name: "a secret the pull works with added", old: deploy(private, withSecret),
			upd: deploy(private, func(s *corev1.PodSpec) {
				s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "wronghost"}}
			})},
		{name: "same secrets in another order", old: deploy(private, func(s *corev1.PodSpec) {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "wronghost"}, {Name: "regcred"}}
		}), upd: deploy(private, func(s *corev1.PodSpec) {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "wronghost"}}
		}), noLookups: true},
		{name: "service account named default explicitly", old: deploy(amd64Only, nil),
			upd: deploy(amd64Only, func(s *corev1.PodSpec) { s.ServiceAccountName = "default" }), noLookups: true},
		{name: "tolerations and preferred affinity move no pull", old: deploy(amd64Only, nil),
			upd: deploy(amd64Only, func(s *corev1.PodSpec) {
				s.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
				s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
					{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{arm64}}}}}}
			}), noLookups: true},
		{name: "a scheduling-gated pod's nodeSelector narrowed to arm64", old: gatedPod(amd64Only, nil),
			upd: gatedPod(amd64Only, map[string]string{corev1.LabelArchStable: "arm64"}), denied: "no node it may run on can run it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.open.Reset()
			b.private.Reset()
			resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, tt.upd, tt.old, ""))
			switch {
			case tt.denied == "" && !resp.Allowed:
				t.Errorf("denied: %s", resp.Result.Message)
			case tt.denied != "" && (resp.Allowed || !strings.Contains(resp.Result.Message, tt.denied)):
				t.Errorf("allowed %v, want a denial naming %q: %+v", resp.Allowed, tt.denied, resp.Result)
			}
			if n := b.open.Count("", "") + b.private.Count("", ""); tt.noLookups && n != 0 {
				t.Errorf("%d registry requests for an update that moves no pull", n)
			}
		})
	}
}

// gatedPod is a Pod held by a scheduling gate: the only Pod whose node
// selection the API server lets an UPDATE change (narrow).
func gatedPod(image string, selector map[string]string) *corev1.Pod {
	p := pod("team-a", image)
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/quota"}}
	p.Spec.NodeSelector = selector
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	return p
}

// TestUpdateRecheckPinsNothingUnchanged: with pin.templates on, an UPDATE
// that only removes a pull secret is checked, but no image the user did
// not change is rewritten (a GitOps tool would see drift).
func TestUpdateRecheckPinsNothingUnchanged(t *testing.T) {
	b := newBed(t, withNodes("amd64"), pinTemplates)
	d := func(secrets ...string) *appsv1.Deployment {
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web", Image: b.open.Host + "/team/api:v1.4.1"}}}}}}
		for _, s := range secrets {
			d.Spec.Template.Spec.ImagePullSecrets = append(d.Spec.Template.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		return d
	}
	b.open.Reset()
	if resp := b.mutate.Handle(context.Background(), request(t, admissionv1.Update, d(), d("regcred"), "")); len(resp.Patches) != 0 {
		t.Errorf("unchanged image pinned on UPDATE: %+v", resp.Patches)
	}
	if n := b.open.Count(http.MethodHead, ""); n != 0 {
		t.Errorf("mutating webhook looked up %d unchanged images", n)
	}
}
