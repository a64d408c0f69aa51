package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metadata is the part of an object's metadata pullsafe reads.
type metadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Looked up by exact key, as the kubelet does: encoding/json would
	// match a struct field's tag case-insensitively, and
	// kubernetes.io/config.MIRROR is a different (valid) annotation that
	// makes no mirror.
	Annotations     map[string]string `json:"annotations"`
	OwnerReferences []OwnerRef        `json:"ownerReferences"`
}

// OwnerRef is the part of an owner reference pullsafe reads.
type OwnerRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller"`
}

// Object is "kind/name", as messages name objects.
func (o OwnerRef) Object() string { return strings.ToLower(o.Kind) + "/" + o.Name }

// describe records on w who controls the object and whether it is a mirror
// Pod bound to nodeName. The API server allows at most one controller
// reference.
func (m *metadata) describe(w *Workload, nodeName string) {
	for i, ref := range m.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			w.Controller = &m.OwnerReferences[i]
			break
		}
	}
	w.Mirror = !w.Template && mirror(m.Annotations, w.Controller, nodeName)
}

// MirrorPod reports whether pod is the API's copy of a static Pod, made by
// its node's kubelet (see Pulled), with the owner checked against nodes as
// ConfirmMirror does: the audit's answer is admission's and check's.
func MirrorPod(pod *corev1.Pod, nodes []Node) bool {
	ctl := metav1.GetControllerOf(pod)
	if ctl == nil {
		return mirror(pod.Annotations, nil, pod.Spec.NodeName)
	}
	owner := &OwnerRef{APIVersion: ctl.APIVersion, Kind: ctl.Kind, Name: ctl.Name, UID: string(ctl.UID), Controller: ctl.Controller}
	return mirror(pod.Annotations, owner, pod.Spec.NodeName) && !refuted(pod.Spec.NodeName, owner.UID, nodes)
}

// ConfirmMirror takes w's mirror standing away when nodes know its node
// under another UID than the one its owner reference names. NodeRestriction
// refuses a kubelet's mirror whose owner UID is not its Node's; a tenant
// writing the owner by hand would have to know it. A node nodes do not show,
// or show without a UID, confirms nothing and refutes nothing: not knowing
// is no reason to look up what the kubelet does not pull.
func ConfirmMirror(w *Workload, nodes []Node) {
	if w.Mirror && refuted(w.Spec.NodeName, w.Controller.UID, nodes) {
		w.Mirror = false
	}
}

// refuted: nodes know the node under another UID than ownerUID.
func refuted(nodeName, ownerUID string, nodes []Node) bool {
	for _, n := range nodes {
		if n.Name == nodeName && n.UID != "" && n.UID != ownerUID {
			return true
		}
	}
	return false
}

// mirror: the annotation kubernetes.io/config.mirror (exactly, as the
// kubelet reads it) on a Pod bound to a node and controlled by that Node.
// Any tenant may write the annotation; NodeRestriction requires every Pod a
// node creates to carry it, to be bound to that node and to be controlled
// by its Node (admitPodCreate), and the kubelet's mirror client sets that
// owner. A Pod with the annotation and not that owner was not made by a
// kubelet: it is checked like any Pod, since an agent that ignores the
// annotation (virtual-kubelet runs every Pod bound to its node) pulls it.
func mirror(annotations map[string]string, ctl *OwnerRef, nodeName string) bool {
	if _, ok := annotations[corev1.MirrorPodAnnotationKey]; !ok || nodeName == "" || ctl == nil {
		return false
	}
	return ctl.APIVersion == "v1" && ctl.Kind == "Node" && ctl.Name == nodeName
}

// WrittenByController reports whether w is a pod template a controller
// wrote from its owner's template: a ReplicaSet of a Deployment (or of an
// Argo Rollout), a Job of a CronJob, a Deployment of an operator.
//
// Such a template is never pinned. The deployment controller finds its
// ReplicaSet by comparing templates (deploymentutil.FindNewReplicaSet:
// EqualIgnoreHash of the ReplicaSet's template and the Deployment's); a
// ReplicaSet whose images pullsafe rewrote matches nothing, so the
// controller creates it again, takes the AlreadyExists for a hash
// collision, bumps status.collisionCount and creates another: ReplicaSets
// without end. Argo Rollouts compares the same way, operators that
// reconcile a Deployment's spec update it back: every controller that owns
// a template it wrote is entitled to find it as it wrote it. The owner's
// template is the one to pin, and the Pods the controller creates are
// pinned as Pods (pin.pods): a controller never compares a Pod's images
// with its template.
func (w *Workload) WrittenByController() bool {
	return w != nil && w.Template && w.Controller != nil
}

// forWorkload is p for w: off, with the owner's template as the advice,
// when a controller wrote w (WrittenByController).
func (p Pinning) forWorkload(w *Workload) Pinning {
	if !w.WrittenByController() {
		return p
	}
	return Pinning{Fix: "pin the digest in " + w.Controller.Object() + "'s template (pullsafe never pins a template its controller wrote)"}
}
