package policy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Pulled returns the containers of w whose image the kubelet would pull
// for this object: the one answer to that question, for admission and the
// audit alike. status is a running Pod's (nil at admission, when nothing
// has started yet).
//
//   - A mirror Pod (Workload.Mirror), the API's copy of a static Pod: none.
//     The kubelet runs a static Pod from the manifest on its node and pulls
//     its images with the node's own credentials (the node's config.json,
//     its credential providers), before and regardless of the mirror: the
//     ServiceAccount admission plugin and NodeRestriction forbid a mirror
//     to name secrets or a service account, so the mirror shows nothing the
//     pull depends on. The kubelet never runs an API Pod as a mirror either
//     (HandlePodAdditions skips a mirror without its static Pod, and the
//     orphan is deleted). Denying one only makes the kubelet retry creating
//     it, and hides a running Pod from the API. Only a Pod its Node
//     controls is one (controlled.go, mirror): the annotation alone is any
//     tenant's to write, and virtual-kubelet runs such a Pod.
//   - Ephemeral containers the kubelet has started: it never restarts them
//     (core/v1 EphemeralContainer), and a workload's next Pods do not have
//     them.
//   - In a bare Pod (no controller owns it; it never moves to another
//     node), started containers whose pull policy is not Always: the
//     kubelet restarts them from the image it holds (in use, so never
//     garbage-collected); only a new Pod on another node, which a
//     controller would create, pulls again.
//
// Every other container is pulled (again): a controller's Pod may be
// replaced on any node.
func Pulled(w *Workload, status *corev1.PodStatus) []Container {
	if w.Mirror {
		return nil
	}
	if w.Template || status == nil {
		return w.Containers
	}
	started := startedContainers(status)
	bare := w.Controller == nil
	return slices.DeleteFunc(slices.Clone(w.Containers), func(c Container) bool {
		if !started[c.List+"/"+c.Name] {
			return false
		}
		return c.Source == SourceEphemeral || bare && c.Source != SourceVolume && PullPolicy(c) != corev1.PullAlways
	})
}

// startedContainers are the containers of status the kubelet has started,
// keyed list + "/" + name.
func startedContainers(status *corev1.PodStatus) map[string]bool {
	started := map[string]bool{}
	for _, l := range []struct {
		list string
		sts  []corev1.ContainerStatus
	}{{"ephemeralContainers", status.EphemeralContainerStatuses}, {"containers", status.ContainerStatuses},
		{"initContainers", status.InitContainerStatuses}} {
		for _, st := range l.sts {
			// ImageID: the image is on the node (a crash-looping container
			// waits with it); an ephemeral container that ran may not say.
			// Unless it waits on a pull: the kubelet keeps the previous
			// container's ImageID in the status while it pulls again (an
			// image changed in place, or gone from the node).
			if w := st.State.Waiting; w != nil && waitsOnPull[w.Reason] {
				continue
			}
			if st.ImageID != "" || l.list == "ephemeralContainers" && st.State.Waiting == nil {
				started[l.list+"/"+st.Name] = true
			}
		}
	}
	return started
}

// waitsOnPull are the reasons a container waits for its image
// (pkg/kubelet/images/types.go).
var waitsOnPull = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "ImageInspectError": true, "InvalidImageName": true}
