package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

const whyUsage = `Usage: pullsafe why [pod/]NAME|KIND/NAME [-n NAMESPACE] [flags]
       kubectl pullsafe why ...   (the same binary installed as kubectl-pullsafe)

Explains a pod stuck pulling an image (ErrImagePull, ImagePullBackOff,
ErrImageNeverPull, InvalidImageName): reads its container statuses and the
kubelet's events, looks every stuck image up again with the pod's own pull
secrets and its node's platform, and says the cause and the fix. KIND may be
deployment, replicaset, statefulset, daemonset or job: their pods, and their
pod template as new pods would get it.

The cluster: --kubeconfig/--context, else the kubeconfig kubectl would use.

Exit status: 0 nothing is wrong now (not stuck, or the registry now answers
and the kubelet will succeed at its next try); 1 a cause was found (an image
still fails, or would fail for new pods), or pullsafe cannot tell from here
why an image fails; 2 usage or cluster errors.

Flags:
`

type whyOptions struct {
	target       string
	namespace    string
	namespaceSet bool
	output       string
	configFile   string
	kube         kubeFlags
	providers    providerFlags
}

// parseWhyFlags accepts flags before and after the target, as kubectl does
// (kubectl pullsafe why pod/x -n shop).
func parseWhyFlags(args []string, stderr io.Writer) (*whyOptions, error) {
	var o whyOptions
	fs := flag.NewFlagSet("pullsafe why", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, whyUsage); fs.PrintDefaults() }
	for _, n := range []string{"n", "namespace"} {
		fs.StringVar(&o.namespace, n, "", "namespace (default: the kubeconfig context's, else \"default\")")
	}
	fs.StringVar(&o.output, "o", "text", "output: text or json")
	fs.StringVar(&o.configFile, "config", "", "the same policy config file as pullsafe serve, for its registries settings (mirrors, CA bundles)")
	o.kube.bind(fs, "as kubectl: $KUBECONFIG's files, else ~/.kube/config")
	o.providers.bind(fs)
	args = splitShorthands(args)
	var targets []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		targets, args = append(targets, fs.Arg(0)), fs.Args()[1:]
	}
	fs.Visit(func(f *flag.Flag) { o.namespaceSet = o.namespaceSet || f.Name == "n" || f.Name == "namespace" })
	switch {
	case len(targets) != 1:
		return nil, errors.New("name one pod or workload: pullsafe why pod/NAME (or deployment/NAME ...)")
	case o.output != "text" && o.output != "json":
		return nil, fmt.Errorf("-o %q: want text or json", o.output)
	}
	o.target = targets[0]
	return &o, nil
}

// splitShorthands spells kubectl's joined short flags (-nshop, -ojson:
// pflag takes them) as the flag package reads them (-n shop).
func splitShorthands(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && (a[1] == 'n' || a[1] == 'o') && a[2] != '=' && !strings.HasPrefix(a, "-namespace") {
			out = append(out, a[:2], a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

// errCauseFound makes the process exit 1 without an extra message.
var errCauseFound = errors.New("")

// whyPod is one pod's answer.
type whyPod struct {
	Name  string `json:"name"`
	Node  string `json:"node,omitempty"`
	Phase string `json:"phase"`
	// Stuck is false for a pod whose images were all pulled; Waiting then
	// says what its containers wait for instead.
	Stuck   bool          `json:"stuck"`
	Waiting []string      `json:"waiting,omitempty"`
	Images  []explanation `json:"images"`
}

// whyResult is the whole answer for one target.
type whyResult struct {
	Namespace string   `json:"namespace"`
	Object    string   `json:"object"`
	Pods      []whyPod `json:"pods"`
	// MorePods counts the stuck pods not shown (maxPods).
	MorePods int `json:"morePods,omitempty"`
	// Template holds what new pods of a workload would fail on.
	Template []policy.Finding `json:"-"`
	Notes    []string         `json:"notes,omitempty"`
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

// maxEvents is the page size of a pod's events, maxEventPages the pages
// read: the kubelet aggregates repeats into one event with a count, so a
// pod has few, but a pod of many containers (or a noisy writer) may not.
const (
	maxEvents     = 500
	maxEventPages = 4
)

func why(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseWhyFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err}
	}
	cfg, err := loadLocalConfig(o.configFile)
	if err != nil {
		return usageError{err}
	}
	whyConfig(cfg)
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if !o.kube.given() && !kubeconfigExists(rules) {
		return usageError{errors.New("no kubeconfig: give --kubeconfig, set $KUBECONFIG or create ~/.kube/config")}
	}
	cl, err := o.kube.load(rules)
	if err != nil {
		return usageError{err}
	}
	if !o.namespaceSet {
		o.namespace = cl.namespace
	}
	cs, err := kubernetes.NewForConfig(cl.rest)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", cl.name, err)}
	}
	providers, err := o.providers.load()
	if err != nil {
		return usageError{err}
	}
	res, err := localResolver(cfg, registry.WithCredentialProviders(providers))
	if err != nil {
		return usageError{err}
	}
	e := &whyExplainer{cs: cs, checker: policy.NewChecker(cfg, res), ns: o.namespace, mirrors: cfg.Registries.Mirrors}
	out, err := e.explainTarget(ctx, o.target)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", cl.name, err)}
	}
	if o.output == "json" {
		err = whyJSON(out, stdout)
	} else {
		err = whyText(out, stdout, isTerminal(stdout))
	}
	if err != nil {
		return err
	}
	if out.causeFound() {
		return errCauseFound
	}
	return nil
}

func (r *whyResult) causeFound() bool {
	if len(r.Template) > 0 {
		return true
	}
	for _, p := range r.Pods {
		for _, im := range p.Images {
			if im.Status == statusFails || im.Status == statusCannotTell {
				return true
			}
		}
	}
	return false
}

// whyExplainer reads one namespace of a cluster.
type whyExplainer struct {
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

// workloadKinds are the kinds why explains besides Pods, with kubectl's
// names and short names for them.
var workloadKinds = map[string]schema.GroupKind{
	"deployment": {Group: "apps", Kind: "Deployment"}, "deployments": {Group: "apps", Kind: "Deployment"}, "deploy": {Group: "apps", Kind: "Deployment"},
	"replicaset": {Group: "apps", Kind: "ReplicaSet"}, "replicasets": {Group: "apps", Kind: "ReplicaSet"}, "rs": {Group: "apps", Kind: "ReplicaSet"},
	"statefulset": {Group: "apps", Kind: "StatefulSet"}, "statefulsets": {Group: "apps", Kind: "StatefulSet"}, "sts": {Group: "apps", Kind: "StatefulSet"},
	"daemonset": {Group: "apps", Kind: "DaemonSet"}, "daemonsets": {Group: "apps", Kind: "DaemonSet"}, "ds": {Group: "apps", Kind: "DaemonSet"},
	"job": {Group: "batch", Kind: "Job"}, "jobs": {Group: "batch", Kind: "Job"},
}

func (e *whyExplainer) explainTarget(ctx context.Context, target string) (*whyResult, error) {
	kind, name, ok := strings.Cut(target, "/")
	if !ok {
		kind, name = "pod", target
	}
	kind = strings.ToLower(strings.SplitN(kind, ".", 2)[0]) // deployment.apps/web as kubectl writes it
	if name == "" {
		return nil, fmt.Errorf("%q: no name", target)
	}
	gk, ok := workloadKinds[kind]
	isPod := kind == "pod" || kind == "pods" || kind == "po"
	if !ok && !isPod {
		return nil, usageError{fmt.Errorf("%q: pullsafe why explains pods, deployments, replicasets, statefulsets, daemonsets and jobs", kind)}
	}
	nodes, err := e.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	e.nodes = nodes
	out := &whyResult{Namespace: e.ns}
	if isPod {
		raw, err := e.cs.CoreV1().RESTClient().Get().Namespace(e.ns).Resource("pods").Name(name).Do(ctx).Raw()
		if err != nil {
			return nil, err
		}
		out.Object = "pod/" + name
		p, err := e.explainPod(ctx, raw)
		if err != nil {
			return nil, err
		}
		out.Pods = []whyPod{p}
		out.Notes = e.notes
		return out, nil
	}
	raw, selector, err := e.readWorkload(ctx, gk, name)
	if err != nil {
		return nil, err
	}
	out.Object = strings.ToLower(gk.Kind) + "/" + name
	if err := e.explainTemplate(ctx, gk, raw, out); err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, err
	}
	// Read in pages: a workload of thousands of pods is never held whole,
	// and only pods with a waiting container cost an events read.
	examined, cont := 0, ""
	for {
		rawList, err := e.cs.CoreV1().RESTClient().Get().Namespace(e.ns).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: sel.String(), Limit: podPage, Continue: cont}, metav1.ParameterCodec).Do(ctx).Raw()
		if err != nil {
			return nil, err
		}
		var pods struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(rawList, &pods); err != nil {
			return nil, fmt.Errorf("decoding the pods of %s: %w", out.Object, err)
		}
		for _, raw := range pods.Items {
			var pod corev1.Pod
			if err := json.Unmarshal(raw, &pod); err != nil {
				return nil, fmt.Errorf("decoding a pod of %s: %w", out.Object, err)
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
				return nil, err
			}
			if p.Stuck {
				out.Pods = append(out.Pods, p) // a workload's healthy pods are not news
			}
		}
		if cont = pods.Metadata.Continue; cont == "" {
			break
		}
	}
	out.Notes = e.notes
	return out, nil
}

// readWorkload returns the object's JSON as the API server sent it (no
// typed round trip: fields newer than the vendored types stay) and its pod
// selector; a nil one selects no pods (LabelSelectorAsSelector), never the
// whole namespace.
func (e *whyExplainer) readWorkload(ctx context.Context, gk schema.GroupKind, name string) ([]byte, *metav1.LabelSelector, error) {
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
func (e *whyExplainer) readNodes(ctx context.Context) ([]policy.Node, error) {
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
func (e *whyExplainer) explainTemplate(ctx context.Context, gk schema.GroupKind, raw []byte, out *whyResult) error {
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

// explainPod reads the pod's events and, for each stuck image, looks it up
// again with the pod's own pull secrets (an admitted Pod holds its service
// account's already) and its node.
//
// raw is the pod as the API server sent it: its images are read from it
// (policy.ExtractWorkload), its statuses from the typed decoding.
func (e *whyExplainer) explainPod(ctx context.Context, raw []byte) (whyPod, error) {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(raw, pod); err != nil {
		return whyPod{}, fmt.Errorf("decoding a pod: %w", err)
	}
	p := whyPod{Name: pod.Name, Node: pod.Spec.NodeName, Phase: string(pod.Status.Phase), Images: []explanation{}}
	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
	if err != nil {
		return p, err
	}
	// As admission (webhook/handler.go): a Node owner of another UID than
	// the node's makes no mirror, so the Pod's own secrets are the ones.
	policy.ConfirmMirror(w, e.nodes)
	evs, err := e.readEvents(ctx, pod)
	if err != nil {
		return p, err
	}
	now := time.Now
	if e.now != nil {
		now = e.now
	}
	evs, ignored := kubeletEvents(evs, pod.Spec.NodeName, now())
	if ignored > 0 {
		e.addNote(fmt.Sprintf("%d pull Events of pod %s ignored: dated in the future, or not reported by its node's kubelet", ignored, pod.Name))
	}
	stuck, waiting := stuckImages(pod, w, evs)
	p.Waiting = waiting
	if len(stuck) == 0 {
		return p, nil
	}
	p.Stuck = true
	// A Pod the kubelet pulls nothing for through the API (policy.Pulled:
	// a mirror Pod) is a static Pod's copy: its node pulls with the node's
	// own credentials, not the Pod's secrets, and pullsafe sees neither.
	nodeCreds := len(policy.Pulled(w, nil)) == 0
	cr, unread := policy.Credentials{Keychain: registry.NewKeychain(nil)}, false
	if !nodeCreds {
		if cr, unread, err = e.readCredentials(ctx, w); err != nil {
			return p, err
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
	for _, s := range stuck {
		s.OtherHost = nodeAskedElsewhere(s, e.mirrors)
		s.PlatformUnchecked = e.nodes == nil || slices.ContainsFunc(v.Notes, func(n string) bool { return strings.HasPrefix(n, "platform not checked") })
		ex := explain(s, findingsFor(v, s.Container), pod.Spec.NodeName, owned(pod))
		credential := ex.Status == statusFails && (ex.Rule == string(policy.RuleUnauthorized) || ex.Rule == string(policy.RuleNotFound))
		if nodeCreds && credential {
			ex.Status = statusCannotTell
			ex.Cause = "pullsafe cannot tell: a mirror Pod's node pulls its static Pod's images with the node's own credentials, which pullsafe cannot see (an anonymous lookup answered " + ex.Rule + ")"
			ex.Fix = "check the node's credentials for this registry (its container runtime's config, kubelet credential providers), or read the kubelet's error above"
		}
		if unread && credential {
			// Looked up without the pod's secrets: a private image
			// answers 401, or 404 on registries that hide it.
			ex.Status = statusCannotTell
			ex.Cause = "pullsafe cannot tell: looked up without the pod's pull secrets (this account may not read them): " + ex.Cause
			ex.Fix = "run pullsafe why with an account that may get secrets in this namespace, or read the kubelet's error above"
		}
		p.Images = append(p.Images, ex)
	}
	return p, nil
}

// readCredentials reads w's pull secrets; unread says this account may not
// get secrets or service accounts (the "view" ClusterRole cannot): the
// lookup then runs without them, and a note says so.
func (e *whyExplainer) readCredentials(ctx context.Context, w *policy.Workload) (cr policy.Credentials, unread bool, err error) {
	cr, err = policy.ReadCredentials(ctx, secretReader{e.cs}, w, policy.Admitted)
	if apierrors.IsForbidden(err) {
		e.addNote("pull secrets not read (forbidden): images were looked up without them; credential causes are not named")
		return policy.Credentials{Keychain: registry.NewKeychain(nil)}, true, nil
	}
	return cr, false, err
}

// readEvents reads the pod's events in pages of maxEvents, at most
// maxEventPages of them: the API server orders events by name, not time, so
// the kubelet's newest word may be on any page.
func (e *whyExplainer) readEvents(ctx context.Context, pod *corev1.Pod) ([]corev1.Event, error) {
	var out []corev1.Event
	opts := metav1.ListOptions{FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)),
		fields.OneTermEqualSelector("involvedObject.kind", "Pod")).String(), Limit: maxEvents}
	for range maxEventPages {
		evs, err := e.cs.CoreV1().Events(e.ns).List(ctx, opts)
		if apierrors.IsForbidden(err) {
			e.addNote("events not read (forbidden): the kubelet's last errors are not shown")
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, evs.Items...)
		if opts.Continue = evs.Continue; opts.Continue == "" {
			return out, nil
		}
	}
	e.addNote(fmt.Sprintf("more than %d events for pod %s: the rest not read", maxEvents*maxEventPages, pod.Name))
	return out, nil
}

func (e *whyExplainer) addNote(n string) {
	if !slices.Contains(e.notes, n) {
		e.notes = append(e.notes, n)
	}
}

// secretReader reads pull secrets and service accounts with a clientset.
type secretReader struct{ cs kubernetes.Interface }

func (r secretReader) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	s, err := r.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

func (r secretReader) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	sa, err := r.cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return sa, err
}
