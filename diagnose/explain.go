// Package diagnose explains a pod stuck pulling an image, as `pullsafe why`
// prints it: it reads the pod's container statuses and its kubelet's
// events, matches them to the pod's images, looks every stuck image up
// again with the pod's own pull secrets and its node's platform
// (policy.Checker), and names the cause and the fix.
//
// The kubelet's words are evidence, read as it writes them (pullReasons,
// the messages of its image manager); a registry's answer now is the other
// half. Where pullsafe cannot see what the node sees, it says "cannot
// tell" rather than guess.
package diagnose

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/pullsafe/pullsafe/policy"
)

// Explainer reads one namespace of a cluster.
type Explainer struct {
	cs      kubernetes.Interface
	checker *policy.Checker
	ns      string
	nodes   []policy.Node
	notes   []string
	// mirrors are the config's registries.mirrors: hosts the kubelet's
	// errors may name that pullsafe asks too.
	mirrors map[string][]string
	// now is the clock Events are dated against; nil: time.Now.
	now func() time.Time
}

// NewExplainer explains the pods of namespace ns with cs, looking images up
// with checker (its config set up by Configure); mirrors are the config's
// registries.mirrors.
func NewExplainer(cs kubernetes.Interface, checker *policy.Checker, ns string, mirrors map[string][]string) *Explainer {
	return &Explainer{cs: cs, checker: checker, ns: ns, mirrors: mirrors}
}

// maxPods bounds the pods of a workload explained one by one: a Deployment
// of 500 stuck replicas has one cause, said ten times at most.
const maxPods = 10

// podPage is the page size for a workload's pods; maxExamined bounds the
// waiting pods whose events are read (pods waiting on something else, such
// as a crash loop, are not stuck on an image but cost a read to tell).
const (
	podPage     = 500
	maxExamined = 5 * maxPods
)

// workloadKinds are the kinds why explains besides Pods, with kubectl's
// names and short names for them.
var workloadKinds = map[string]schema.GroupKind{
	"deployment": {Group: "apps", Kind: "Deployment"}, "deployments": {Group: "apps", Kind: "Deployment"}, "deploy": {Group: "apps", Kind: "Deployment"},
	"replicaset": {Group: "apps", Kind: "ReplicaSet"}, "replicasets": {Group: "apps", Kind: "ReplicaSet"}, "rs": {Group: "apps", Kind: "ReplicaSet"},
	"statefulset": {Group: "apps", Kind: "StatefulSet"}, "statefulsets": {Group: "apps", Kind: "StatefulSet"}, "sts": {Group: "apps", Kind: "StatefulSet"},
	"daemonset": {Group: "apps", Kind: "DaemonSet"}, "daemonsets": {Group: "apps", Kind: "DaemonSet"}, "ds": {Group: "apps", Kind: "DaemonSet"},
	"job": {Group: "batch", Kind: "Job"}, "jobs": {Group: "batch", Kind: "Job"},
}

// Explain answers for target, as kubectl names objects: [pod/]NAME, or
// KIND/NAME for a workload (its stuck pods, and its pod template as new
// pods would get it). An unknown kind is an error before anything is read.
func (e *Explainer) Explain(ctx context.Context, target string) (*Result, error) {
	gk, name, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if e.nodes, err = e.readNodes(ctx); err != nil {
		return nil, err
	}
	out := &Result{Namespace: e.ns}
	if gk.Kind == "Pod" {
		err = e.explainNamedPod(ctx, name, out)
	} else {
		err = e.explainWorkload(ctx, gk, name, out)
	}
	if err != nil {
		return nil, err
	}
	out.Notes = e.notes
	return out, nil
}

// parseTarget reads kubectl's TYPE/NAME (deployment.apps/web too); a bare
// NAME is a pod.
func parseTarget(target string) (schema.GroupKind, string, error) {
	kind, name, ok := strings.Cut(target, "/")
	if !ok {
		kind, name = "pod", target
	}
	kind = strings.ToLower(strings.SplitN(kind, ".", 2)[0])
	if name == "" {
		return schema.GroupKind{}, "", fmt.Errorf("%q: no name", target)
	}
	if kind == "pod" || kind == "pods" || kind == "po" {
		return schema.GroupKind{Kind: "Pod"}, name, nil
	}
	gk, ok := workloadKinds[kind]
	if !ok {
		return schema.GroupKind{}, "", fmt.Errorf("%q: pullsafe why explains pods, deployments, replicasets, statefulsets, daemonsets and jobs", kind)
	}
	return gk, name, nil
}

// explainNamedPod explains one pod, stuck or not: asked about by name, a
// healthy pod is an answer too.
func (e *Explainer) explainNamedPod(ctx context.Context, name string, out *Result) error {
	raw, err := e.cs.CoreV1().RESTClient().Get().Namespace(e.ns).Resource("pods").Name(name).Do(ctx).Raw()
	if err != nil {
		return err
	}
	out.Object = "pod/" + name
	p, err := e.explainPod(ctx, raw)
	if err != nil {
		return err
	}
	out.Pods = []Pod{p}
	return nil
}

// explainWorkload explains a workload's pod template and its stuck pods.
func (e *Explainer) explainWorkload(ctx context.Context, gk schema.GroupKind, name string, out *Result) error {
	raw, selector, err := e.readWorkload(ctx, gk, name)
	if err != nil {
		return err
	}
	out.Object = strings.ToLower(gk.Kind) + "/" + name
	if err := e.explainTemplate(ctx, gk, raw, out); err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return err
	}
	return e.explainPodsOf(ctx, sel, out)
}

// explainPodsOf explains the stuck pods sel selects, in pages: a workload
// of thousands of pods is never held whole, and only pods with a waiting
// container cost an events read.
func (e *Explainer) explainPodsOf(ctx context.Context, sel labels.Selector, out *Result) error {
	examined, cont := 0, ""
	for {
		items, next, err := e.listPods(ctx, sel, cont, out.Object)
		if err != nil {
			return err
		}
		for _, raw := range items {
			var pod corev1.Pod
			if err := json.Unmarshal(raw, &pod); err != nil {
				return fmt.Errorf("decoding a pod of %s: %w", out.Object, err)
			}
			if !anyWaiting(&pod) {
				continue // nothing waits: not stuck on an image, no events to read
			}
			if len(out.Pods) == maxPods || examined == maxExamined {
				// Counted from their statuses only: no events read, no
				// lookups, however many replicas are stuck.
				if waitingOnPull(&pod) {
					out.MorePods++
				}
				continue
			}
			examined++
			p, err := e.explainPod(ctx, raw)
			if err != nil {
				return err
			}
			if p.Stuck {
				out.Pods = append(out.Pods, p) // a workload's healthy pods are not news
			}
		}
		if cont = next; cont == "" {
			return nil
		}
	}
}

// listPods reads one page of the pods sel selects, each as the API server
// sent it, and the continue token of the next page ("" after the last).
func (e *Explainer) listPods(ctx context.Context, sel labels.Selector, cont, object string) ([]json.RawMessage, string, error) {
	rawList, err := e.cs.CoreV1().RESTClient().Get().Namespace(e.ns).Resource("pods").
		VersionedParams(&metav1.ListOptions{LabelSelector: sel.String(), Limit: podPage, Continue: cont}, metav1.ParameterCodec).Do(ctx).Raw()
	if err != nil {
		return nil, "", err
	}
	var pods struct {
		Metadata struct {
			Continue string `json:"continue"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(rawList, &pods); err != nil {
		return nil, "", fmt.Errorf("decoding the pods of %s: %w", object, err)
	}
	return pods.Items, pods.Metadata.Continue, nil
}

// readWorkload returns the object's JSON as the API server sent it (no
// typed round trip: fields newer than the vendored types stay) and its pod
// selector; a nil one selects no pods (LabelSelectorAsSelector), never the
// whole namespace.
func (e *Explainer) readWorkload(ctx context.Context, gk schema.GroupKind, name string) ([]byte, *metav1.LabelSelector, error) {
	rc := e.cs.AppsV1().RESTClient()
	if gk.Group == "batch" {
		rc = e.cs.BatchV1().RESTClient()
	}
	raw, err := rc.Get().Namespace(e.ns).Resource(strings.ToLower(gk.Kind) + "s").Name(name).Do(ctx).Raw()
	if err != nil {
		return nil, nil, err
	}
	var obj struct {
		Spec struct {
			Selector *metav1.LabelSelector `json:"selector"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, fmt.Errorf("decoding %s/%s: %w", gk.Kind, name, err)
	}
	return raw, obj.Spec.Selector, nil
}

// readNodes returns the cluster's nodes, or nil (platform not checked) when
// this account may not list them.
func (e *Explainer) readNodes(ctx context.Context) ([]policy.Node, error) {
	list, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		e.notes = append(e.notes, "nodes not read (forbidden): platform not checked")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	nodes := make([]policy.Node, 0, len(list.Items))
	for i := range list.Items {
		nodes = append(nodes, policy.NodeOf(&list.Items[i]))
	}
	return nodes, nil
}

// explainTemplate checks a workload's pod template as admission would for
// a new pod: its own pull secrets, else its service account's.
func (e *Explainer) explainTemplate(ctx context.Context, gk schema.GroupKind, raw []byte, out *Result) error {
	w, err := policy.ExtractWorkload(gk, raw)
	if err != nil || w == nil {
		return err
	}
	cr, unread, err := e.readCredentials(ctx, w)
	if err != nil {
		return err
	}
	v := e.checker.Check(ctx, policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce, Credentials: cr, Nodes: e.nodes})
	for _, f := range v.Findings {
		if unread && (f.Rule == policy.RuleUnauthorized || f.Rule == policy.RuleNotFound) {
			continue // looked up without the template's secrets: not a cause
		}
		out.Template = append(out.Template, f)
	}
	return nil
}
