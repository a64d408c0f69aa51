package policy

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// PullPolicy is the imagePullPolicy the kubelet acts on: the container's
// own, else the API server's default (SetDefaults_Container in
// pkg/apis/core/v1/defaults.go): Always when the kubelet's parser yields the
// tag "latest" (written, or implied by neither tag nor digest), else
// IfNotPresent — so a digest-only reference, and one that does not parse,
// default to IfNotPresent. The one home of this defaulting for the webhook,
// `pullsafe check` and every rule.
func PullPolicy(ct Container) corev1.PullPolicy {
	if ct.PullPolicy != "" {
		return ct.PullPolicy
	}
	if r, err := registry.ParseReference(ct.Image); err == nil && r.Tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// Contacts reports whether the kubelet contacts a registry for ct at all:
// with imagePullPolicy Never it only looks for the image on the node
// (pkg/kubelet/images/image_manager.go), so a registry's answer cannot make
// the pull fail and nothing may be looked up, pinned or reported about it.
func Contacts(ct Container) bool { return PullPolicy(ct) != corev1.PullNever }
