package diagnose

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// The kubelet's words for a pull that failed, as it writes them into
// containerStatuses[].state.waiting.reason (pkg/kubelet/images/types.go,
// the CRI's crierrors): pullsafe reads them, it never invents them.
var pullReasons = []string{
	"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
	"ImageInspectError", "RegistryUnavailable", "SignatureValidationFailed",
}

// kubeletEvent is the last event the kubelet recorded about pulling one
// image of a pod, from the messages of pkg/kubelet/images/image_manager.go:
// `Failed to pull image %q: %v` (reason Failed), `Back-off pulling image %q`
// (BackOff), `Container image %q is not present with pull policy of Never`
// (ErrImageNeverPull), `Failed to apply default image tag %q: %v` and
// `Failed to inspect image %q: %v` (InspectFailed).
type kubeletEvent struct {
	Reason  string
	Message string
	Count   int32
	Last    time.Time
	// Reporter is the component that wrote the Event (reportingController,
	// else source.component): shown beside its text, which anyone allowed
	// to create Events in the namespace may have written.
	Reporter string
}

// eventClockSkew is how far past this machine's clock an Event may be
// dated and still be read: the clocks of the nodes and of the machine
// running why differ a little. An Event dated later was not written by a
// kubelet with a sane clock, and would otherwise stay "the newest" forever.
const eventClockSkew = 2 * time.Minute

// kubeletEvents keeps the Events the pod's kubelet could have written about
// it: reported by the kubelet (by the pod's node, when the Event names a
// host) and not dated in the future. Events are no evidence of who wrote
// them (any account allowed to create Events can), so what is kept is only
// ever shown as an Event, and node-side causes are read from the container
// statuses alone (nodeSideCause). ignored counts the pull Events left out.
func kubeletEvents(events []corev1.Event, node string, now time.Time) (kept []corev1.Event, ignored int) {
	for _, e := range events {
		if eventTime(&e).After(now.Add(eventClockSkew)) || !fromKubelet(&e, node) {
			if isPullEvent(&e) {
				ignored++
			}
			continue
		}
		kept = append(kept, e)
	}
	return kept, ignored
}

// reporter is the component that says it wrote e.
func reporter(e *corev1.Event) string {
	return cmp.Or(e.ReportingController, e.Source.Component)
}

// fromKubelet reports whether e says it comes from the kubelet of node (any
// kubelet while the pod is not scheduled).
func fromKubelet(e *corev1.Event, node string) bool {
	if reporter(e) != "kubelet" {
		return false
	}
	host := cmp.Or(e.ReportingInstance, e.Source.Host)
	return node == "" || host == "" || host == node
}

// isPullEvent reports whether e's text is one of the kubelet's pull
// messages, for any image.
func isPullEvent(e *corev1.Event) bool {
	return slices.ContainsFunc(pullEventPrefixes, func(p string) bool { return strings.HasPrefix(e.Message, p) })
}

// pullEventPrefixes are the beginnings of those messages, before the
// quoted image.
// "Pulling image %q" and "Successfully pulled image %q ..." (reasons
// Pulling, Pulled) are read too: they say a later try is under way or done.
var pullEventPrefixes = []string{
	"Failed to pull image ", "Back-off pulling image ", "Container image ",
	"Failed to apply default image tag ", "Failed to inspect image ",
	"Pulling image ", "Successfully pulled image ",
}

// stuckImage is one image of a pod the kubelet failed to pull, with what the
// kubelet said.
type stuckImage struct {
	Container policy.Container
	// Reason and Message are the container's waiting state (empty for an
	// image volume, which has no status of its own: its failure shows in
	// events only).
	Reason  string
	Message string
	// LastError is the kubelet's last "Failed to pull image" event (nil
	// when the events are gone: they live an hour by default), Latest its
	// last pull event of any kind.
	LastError *kubeletEvent
	Latest    *kubeletEvent
	// OtherHost is a registry host the kubelet's error names that is
	// neither the image's nor a mirror pullsafe knows (nodeAskedElsewhere).
	OtherHost string
	// PlatformUnchecked says the lookup did not compare the image's
	// platforms with the pod's node (nodes unread, node not matched).
	PlatformUnchecked bool
}

// maxWaiting bounds the "is waiting" lines said for one pod.
const maxWaiting = 20

// stuckImages lists the images of pod the kubelet is failing to pull, from
// its container statuses and its events; w is the pod as policy extracted
// it (containers and image volumes). waiting says, for a pod not stuck on
// an image, what its containers are waiting for instead.
func stuckImages(pod *corev1.Pod, w *policy.Workload, events []corev1.Event) (stuck []stuckImage, waiting []string) {
	statuses := map[string]corev1.ContainerStatus{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			statuses[s.Name] = s
		}
	}
	anyWaiting := false
	for _, s := range statuses {
		if s.State.Waiting != nil {
			anyWaiting = true
			if !slices.Contains(pullReasons, s.State.Waiting.Reason) {
				waiting = append(waiting, "container "+strconv.Quote(s.Name)+" is waiting: "+s.State.Waiting.Reason)
			}
		}
	}
	slices.Sort(waiting)
	if n := len(waiting); n > maxWaiting {
		waiting = append(waiting[:maxWaiting], strconv.Itoa(n-maxWaiting)+" more containers are waiting")
	}
	for _, ct := range w.Containers {
		si := stuckImage{Container: ct}
		si.LastError, si.Latest = lastPullEvents(events, ct.Image)
		if ct.Source == policy.SourceVolume {
			// A volume has no status: the pod is stuck on it when the
			// kubelet's last word about its image was a failure and some
			// container is still waiting to be created.
			if si.Latest == nil || !anyWaiting || !failed(si.Latest) {
				continue
			}
			stuck = append(stuck, si)
			continue
		}
		s, ok := statuses[ct.Name]
		if !ok || s.State.Waiting == nil || !slices.Contains(pullReasons, s.State.Waiting.Reason) {
			continue
		}
		si.Reason, si.Message = s.State.Waiting.Reason, s.State.Waiting.Message
		stuck = append(stuck, si)
	}
	return stuck, waiting
}

// failed reports whether a pull event says the pull did not happen.
func failed(e *kubeletEvent) bool {
	return e.Reason != "Pulling" && e.Reason != "Pulled"
}

// lastPullEvents returns the newest "Failed to pull image" event naming
// image and the newest pull event of any kind naming it. The kubelet quotes
// the image with %q, as strconv.Quote does: as written (older kubelets) or
// with ":latest" appended when it has no tag or digest (applyDefaultImageTag
// runs first, and newer kubelets name that result).
func lastPullEvents(events []corev1.Event, image string) (lastError, latest *kubeletEvent) {
	names := []string{strconv.Quote(image)}
	if last := image[strings.LastIndex(image, "/")+1:]; !strings.ContainsAny(last, ":@") {
		names = append(names, strconv.Quote(image+":latest"))
	}
	for i := range events {
		e := &events[i]
		var prefix string
		for _, p := range pullEventPrefixes {
			for _, q := range names {
				if strings.HasPrefix(e.Message, p+q) {
					prefix = p
				}
			}
		}
		if prefix == "" {
			continue
		}
		ke := &kubeletEvent{Reason: e.Reason, Message: e.Message, Count: e.Count, Last: eventTime(e), Reporter: reporter(e)}
		if latest == nil || !ke.Last.Before(latest.Last) {
			latest = ke
		}
		if prefix == "Failed to pull image " && (lastError == nil || !ke.Last.Before(lastError.Last)) {
			lastError = ke
		}
	}
	return lastError, latest
}

// eventTime is when an event last happened, whichever API wrote it: the
// core/v1 lastTimestamp, or events.k8s.io's series and eventTime.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// waitingOnPull reports whether a container of pod waits with a pull reason.
func waitingOnPull(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			if s.State.Waiting != nil && slices.Contains(pullReasons, s.State.Waiting.Reason) {
				return true
			}
		}
	}
	return false
}

// anyWaiting reports whether a container of pod waits, for any reason: a
// pod without one is stuck on no image (an image volume's failure keeps
// its containers waiting too).
func anyWaiting(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			if s.State.Waiting != nil {
				return true
			}
		}
	}
	return false
}

// nodeAskedElsewhere returns a host the node's runtime asked, as its error
// names it (containerd: Head "https://HOST/v2/..."), that is neither the
// image's registry nor one of mirrors (the config's registries.mirrors):
// a mirror configured on the nodes only, whose answers pullsafe never saw.
func nodeAskedElsewhere(si stuckImage, mirrors map[string][]string) string {
	ref, err := registry.ParseReference(si.Container.Image)
	if err != nil {
		return ""
	}
	known := map[string]bool{ref.Host(): true}
	for reg, hosts := range mirrors {
		if mirrorKey(reg) == mirrorKey(ref.Domain) || (reg == "*" && len(hosts) > 0) {
			for _, h := range hosts {
				known[registry.RegistryHost(h)] = true
			}
		}
	}
	text := si.Message
	if si.LastError != nil {
		text += " " + si.LastError.Message
	}
	for _, scheme := range []string{"https://", "http://"} {
		for rest := text; ; {
			i := strings.Index(rest, scheme)
			if i < 0 {
				break
			}
			rest = rest[i+len(scheme):]
			host, path, ok := strings.Cut(rest, "/")
			if !ok || !strings.HasPrefix(path, "v2/") || strings.ContainsAny(host, " \"'") {
				continue
			}
			if h := registry.RegistryHost(host); !known[h] {
				return h
			}
		}
	}
	return ""
}

// mirrorKey is a registries.mirrors key, or an image's registry, as the
// resolver matches them: case and Docker Hub's names folded, but a port
// kept as written. Unlike an endpoint the node asked (RegistryHost, where
// :443 is the URL's default port), "myreg:443" and "myreg" are two
// registries to the resolver and to containerd (whose hosts dir for
// myreg:443 is myreg_443_ or myreg:443, never myreg's): a mirror of the
// other spelling is not asked for this image.
func mirrorKey(h string) string {
	h = strings.ToLower(h)
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		return "docker.io"
	}
	return h
}
