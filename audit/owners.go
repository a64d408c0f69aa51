package audit

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner is the workload a running Pod belongs to: the top of its
// controller chain as far as pullsafe follows it (ReplicaSet → Deployment,
// Job → CronJob), the controller itself otherwise (StatefulSet, DaemonSet,
// a custom kind), or the Pod when it has none.
type Owner struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid,omitempty"`
}

// String is "deployment/web", as admission messages name objects.
func (o Owner) String() string { return strings.ToLower(o.Kind) + "/" + o.Name }

// object is the owner as an object an Event can be recorded on.
func (o Owner) object() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: o.APIVersion, Kind: o.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name, UID: o.UID}}
}

// parents are the controllers whose own controller is followed, and the
// kind of owner looked for.
var parents = map[schema.GroupKind]schema.GroupKind{
	{Group: "apps", Kind: "ReplicaSet"}: {Group: "apps", Kind: "Deployment"},
	{Group: "batch", Kind: "Job"}:       {Group: "batch", Kind: "CronJob"},
}

// owners resolves Pods to their Owner, reading each intermediate
// controller once a pass (metadata only: get on replicasets and jobs).
type owners struct {
	reader client.Reader
	seen   map[Owner]Owner
}

func (o *owners) of(ctx context.Context, pod *corev1.Pod) Owner {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Owner{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	}
	ctl := Owner{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name, UID: ref.UID}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ctl
	}
	if _, ok := parents[gv.WithKind(ref.Kind).GroupKind()]; !ok {
		return ctl
	}
	if top, ok := o.seen[ctl]; ok {
		return top
	}
	top := ctl
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gv.WithKind(ref.Kind))
	// Not readable (gone, or no RBAC): the controller itself is the owner.
	if o.reader.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}, m) == nil {
		if up := metav1.GetControllerOf(m); up != nil {
			if ugv, err := schema.ParseGroupVersion(up.APIVersion); err == nil && ugv.WithKind(up.Kind).GroupKind() == parents[gv.WithKind(ref.Kind).GroupKind()] {
				top = Owner{APIVersion: up.APIVersion, Kind: up.Kind, Namespace: pod.Namespace, Name: up.Name, UID: up.UID}
			}
		}
	}
	o.seen[ctl] = top
	return top
}
