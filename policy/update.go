package policy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Recheck returns the containers of w to look up on an UPDATE from old:
// every one when the pull context changed (PullContextChanged), else only
// those whose image is new (ChangedImages). A Deployment whose pull secret
// was removed, whose service account changed, or whose nodeSelector moved
// it to arm64 rolls out new Pods that pull every image afresh, with the new
// credentials on the new nodes, as they would pull a new image.
//
// Only verdicts use it: a pin rewrites an image, and an UPDATE that does not
// change an image never has it rewritten (ChangedImages).
func Recheck(w, old *Workload) []Container {
	if old == nil || PullContextChanged(w, old) {
		return w.Containers
	}
	return ChangedImages(w, old)
}

// PullContextChanged reports whether what the kubelet pulls w's images with
// differs from old: the credentials (imagePullSecrets, and for a template
// the service account whose secrets it takes) or the nodes it may run on
// (nodeName, nodeSelector, required node affinity: what Eligible reads).
// Tolerations and preferred affinity change no eligible node (Eligible).
//
// On a Pod the API server lets only the node selection change, and only
// narrow, while the Pod is held by scheduling gates (ValidatePodUpdate);
// secrets and the service account are immutable, so for Pods this is the
// gated case.
func PullContextChanged(w, old *Workload) bool {
	n, o := &w.Spec, &old.Spec
	if !slices.Equal(secretNames(n.ImagePullSecrets), secretNames(o.ImagePullSecrets)) ||
		serviceAccountOf(n.ServiceAccountName) != serviceAccountOf(o.ServiceAccountName) ||
		n.NodeName != o.NodeName || !equality.Semantic.DeepEqual(n.NodeSelector, o.NodeSelector) {
		return true
	}
	return !equality.Semantic.DeepEqual(requiredAffinity(n.Affinity), requiredAffinity(o.Affinity))
}

// serviceAccountOf is the service account a pod spec runs as: the API
// server defaults an empty name to "default".
func serviceAccountOf(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// secretNames are the names refs lists, sorted and once each: the kubelet
// tries every matching credential in turn, so order and repeats change no
// pull. A reference without a name is skipped, as the kubelet
// (getPullSecretsForPod) and ReadCredentials skip it.
func secretNames(refs []corev1.LocalObjectReference) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		if r.Name != "" {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// requiredAffinity is the node affinity the scheduler must honour; the
// preferred terms only rank nodes.
func requiredAffinity(a *corev1.Affinity) *corev1.NodeSelector {
	if a == nil || a.NodeAffinity == nil {
		return nil
	}
	return a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}
