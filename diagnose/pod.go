package diagnose

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// explainPod reads the pod's events and, for each stuck image, looks it up
// again with the pod's own pull secrets (an admitted Pod holds its service
// account's already) and its node.
//
// raw is the pod as the API server sent it: its images are read from it
// (policy.ExtractWorkload), its statuses from the typed decoding.
func (e *Explainer) explainPod(ctx context.Context, raw []byte) (Pod, error) {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(raw, pod); err != nil {
		return Pod{}, fmt.Errorf("decoding a pod: %w", err)
	}
	p := Pod{Name: pod.Name, Node: pod.Spec.NodeName, Phase: string(pod.Status.Phase), Images: []Explanation{}}
	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
	if err != nil {
		return p, err
	}
	// As admission (webhook/handler.go): a Node owner of another UID than
	// the node's makes no mirror, so the Pod's own secrets are the ones.
	policy.ConfirmMirror(w, e.nodes)
	evs, err := e.kubeletEventsOf(ctx, pod)
	if err != nil {
		return p, err
	}
	stuck, waiting := stuckImages(pod, w, evs)
	p.Waiting = waiting
	if len(stuck) == 0 {
		return p, nil
	}
	p.Stuck = true
	images, err := e.explainStuck(ctx, pod, w, stuck)
	p.Images = append(p.Images, images...)
	return p, err
}

// kubeletEventsOf reads the pod's events and keeps those its kubelet could
// have written (kubeletEvents); a note counts the pull Events left out.
func (e *Explainer) kubeletEventsOf(ctx context.Context, pod *corev1.Pod) ([]corev1.Event, error) {
	evs, err := e.readEvents(ctx, pod)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if e.now != nil {
		now = e.now
	}
	evs, ignored := kubeletEvents(evs, pod.Spec.NodeName, now())
	if ignored > 0 {
		e.addNote(fmt.Sprintf("%d pull Events of pod %s ignored: dated in the future, or not reported by its node's kubelet", ignored, pod.Name))
	}
	return evs, nil
}

// explainStuck looks the stuck images of pod up again, all in one check,
// and explains each.
func (e *Explainer) explainStuck(ctx context.Context, pod *corev1.Pod, w *policy.Workload, stuck []stuckImage) ([]Explanation, error) {
	// A Pod the kubelet pulls nothing for through the API (policy.Pulled:
	// a mirror Pod) is a static Pod's copy: its node pulls with the node's
	// own credentials, not the Pod's secrets, and pullsafe sees neither.
	nodeCreds := len(policy.Pulled(w, nil)) == 0
	cr, unread := policy.Credentials{Keychain: registry.NewKeychain(nil)}, false
	if !nodeCreds {
		var err error
		if cr, unread, err = e.readCredentials(ctx, w); err != nil {
			return nil, err
		}
	}
	cts := make([]policy.Container, len(stuck))
	for i, s := range stuck {
		cts[i] = s.Container
	}
	v := e.checker.Check(ctx, policy.Input{Workload: w, Containers: cts, Mode: policy.ModeEnforce, Credentials: cr, Nodes: e.nodes})
	for _, n := range v.Notes {
		e.addNote(n)
	}
	out := make([]Explanation, 0, len(stuck))
	for _, s := range stuck {
		s.OtherHost = nodeAskedElsewhere(s, e.mirrors)
		s.PlatformUnchecked = e.nodes == nil || slices.ContainsFunc(v.Notes, func(n string) bool { return strings.HasPrefix(n, "platform not checked") })
		ex := explain(s, findingsFor(v, s.Container), pod.Spec.NodeName, owned(pod))
		out = append(out, withoutPodCredentials(ex, nodeCreds, unread))
	}
	return out, nil
}

// withoutPodCredentials turns a credential cause (unauthorized, not found)
// into "cannot tell" when the lookup could not use the credentials the
// node pulls with: a mirror Pod's node's own (nodeCreds), or the pod's
// secrets this account may not read (unread).
func withoutPodCredentials(ex Explanation, nodeCreds, unread bool) Explanation {
	credential := ex.Status == StatusFails && (ex.Rule == string(policy.RuleUnauthorized) || ex.Rule == string(policy.RuleNotFound))
	if nodeCreds && credential {
		ex.Status = StatusCannotTell
		ex.Cause = "pullsafe cannot tell: a mirror Pod's node pulls its static Pod's images with the node's own credentials, which pullsafe cannot see (an anonymous lookup answered " + ex.Rule + ")"
		ex.Fix = "check the node's credentials for this registry (its container runtime's config, kubelet credential providers), or read the kubelet's error above"
	}
	if unread && credential {
		// Looked up without the pod's secrets: a private image
		// answers 401, or 404 on registries that hide it.
		ex.Status = StatusCannotTell
		ex.Cause = "pullsafe cannot tell: looked up without the pod's pull secrets (this account may not read them): " + ex.Cause
		ex.Fix = "run pullsafe why with an account that may get secrets in this namespace, or read the kubelet's error above"
	}
	return ex
}
