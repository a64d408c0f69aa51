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
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

const checkUsage = `Usage: pullsafe check -f FILE|DIR|- [flags]

Runs the webhook's rules on manifests: every image is resolved against its
registry with the pull secrets the kubelet would use (Secrets and
ServiceAccounts in the input, then the cluster's). Reads everything kubectl
apply -f accepts: YAML streams, JSON, List objects, directories
(recursively), stdin.

The cluster: --kubeconfig/--context, else the kubeconfig kubectl would use
($KUBECONFIG's files, else ~/.kube/config) when such a file exists; none with
--offline. An unreachable cluster is exit 2.

Exit status: 0 nothing would be denied; 1 something would be denied (or warned
about, with --strict); 2 usage or input errors.

Flags:
`

type checkOptions struct {
	localFlags
	files        stringList
	namespace    string
	namespaceSet bool // --namespace given: it wins over the kubeconfig context's
	offline      bool
	platforms    string
	mode         string
	ownNamespace string
	strict       bool
	dockerConfig bool
	pin          bool
	inPlace      bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseCheckFlags(args []string, stderr io.Writer) (*checkOptions, error) {
	var o checkOptions
	fset := o.flagSet("pullsafe check", checkUsage, "the same policy config file as pullsafe serve (default: built-in defaults)",
		"as kubectl: $KUBECONFIG's files, else ~/.kube/config, when one exists; none with --offline", stderr)
	fset.Var(&o.files, "f", "manifest file, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fset.StringVar(&o.namespace, "namespace", "default", "namespace for objects that name none (default: the kubeconfig context's, as kubectl apply, else \"default\")")
	fset.BoolVar(&o.offline, "offline", false, "use no cluster, even when a kubeconfig exists")
	fset.StringVar(&o.platforms, "platforms", "", "node platforms for the platform rule, e.g. linux/amd64,linux/arm64 (default: the cluster's nodes, else not checked)")
	fset.StringVar(&o.mode, "mode", "", "the cluster's default mode, as the config's mode: enforce, warn or off (nothing checked);\nnamespace labels pullsafe.io/mode still override it (default: the --config file's mode; enforce without --config)")
	fset.StringVar(&o.ownNamespace, "pullsafe-namespace", "pullsafe-system", "pullsafe's own namespace (serve's --namespace): never checked, like kube-system and kube-node-lease")
	fset.BoolVar(&o.strict, "strict", false, "exit 1 on warnings too")
	fset.BoolVar(&o.dockerConfig, "docker-config", false, "also use credentials from $DOCKER_CONFIG/config.json or ~/.docker/config.json\n(local runs; the kubelet would not have them)")
	fset.BoolVar(&o.pin, "pin", false, "write the manifests back with tags pinned to the digests checked (stdout, or --in-place);\nevery kind checked, templates too, whatever the config's pin settings (they govern the webhook)")
	fset.BoolVar(&o.inPlace, "in-place", false, "with --pin, rewrite the files instead of printing them")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	fset.Visit(func(f *flag.Flag) { o.namespaceSet = o.namespaceSet || f.Name == "namespace" })
	if len(o.files) == 0 {
		return nil, errors.New("no input: give -f FILE, -f DIR or -f -")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	switch {
	case o.mode != "" && o.mode != string(policy.ModeEnforce) && o.mode != string(policy.ModeWarn) && o.mode != string(policy.ModeOff):
		return nil, fmt.Errorf("--mode %q: want enforce, warn or off", o.mode)
	case o.offline && o.kube.given():
		return nil, errors.New("--offline cannot be combined with --kubeconfig or --context")
	case o.inPlace && !o.pin:
		return nil, errors.New("--in-place needs --pin")
	case o.pin && o.inPlace && slices.Contains(o.files, "-"):
		return nil, errors.New("--in-place cannot rewrite stdin")
	}
	return &o, nil
}

// checked is one object's result.
type checked struct {
	m policy.Manifest
	w *policy.Workload
	v *policy.Verdict
	// skipped says why the object was not checked (an excluded namespace,
	// mode off): the webhook would admit it untouched.
	skipped string
	// undecodable: an object of a configured kind whose pod template
	// could not be read; the webhook admits it with this warning.
	undecodable string
}

func check(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseCheckFlags(args, stderr)
	if err != nil {
		return flagsError(err)
	}
	st, err := o.start()
	if err != nil {
		return err
	}
	cfg := st.cfg
	switch {
	case o.mode != "":
		cfg.Mode = policy.Mode(o.mode)
	case o.configFile == "":
		// No config: answer as a cluster that enforces, the question a
		// pre-flight check asks (the built-in default is warn).
		cfg.Mode = policy.ModeEnforce
	}
	manifests, files, err := policy.ReadManifestFiles(o.files, stdin, o.pin, cfg.Workloads)
	if err != nil {
		return usageError{err}
	}
	cluster, err := newInputCluster(ctx, manifests, o, clientcmd.NewDefaultClientConfigLoadingRules(), stderr)
	if err != nil {
		return usageError{err}
	}
	if err := withTokens(cluster.live, st.providers, cluster.rest); err != nil {
		return usageError{err}
	}
	checker, err := st.checker()
	if err != nil {
		return err
	}
	results, err := checkAll(ctx, checker, cluster, manifests, o, stderr)
	if err != nil {
		return err
	}
	if o.pin {
		if err := writePinned(files, results, o.inPlace, stdout); err != nil {
			return err
		}
	} else if err := report(results, o.output, stdout); err != nil {
		return err
	}
	return verdictExit(results, o.strict)
}

// errWouldDeny makes the process exit 1 without an extra message.
var errWouldDeny = errors.New("")

func verdictExit(results []checked, strict bool) error {
	for _, r := range results {
		d := r.v.Decision()
		if d == policy.DecisionDeny || (strict && d == policy.DecisionWarn) {
			return errWouldDeny
		}
	}
	return nil
}

// checkAll checks every workload, eight at a time, and says on stderr what
// it is doing when that takes more than a second.
func checkAll(ctx context.Context, checker *policy.Checker, cluster *inputCluster, ms []policy.Manifest, o *checkOptions, stderr io.Writer) ([]checked, error) {
	var todo []checked
	for _, m := range ms {
		w, err := policy.ExtractWorkload(m.GroupKind(), m.JSON, checker.Config().Workloads...)
		if err != nil && !policy.Checked(m.GroupKind()) {
			// A configured kind's object this config does not fit (another
			// version's shape): the API server stores it and the webhook
			// admits it unchecked with a warning (its failOpen); so does check.
			c := undecodable(m, err)
			if c.w.Namespace == "" {
				c.w.Namespace = o.namespace
			}
			todo = append(todo, c)
			continue
		}
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", m.Where(), err)}
		}
		if w == nil {
			continue // not a workload
		}
		if w.Namespace == "" {
			w.Namespace = o.namespace
		}
		todo = append(todo, checked{m: m, w: w})
	}
	nodes, err := cluster.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	var done atomic.Int64
	stop := progress(stderr, len(todo), func() int { return int(done.Load()) })
	defer stop()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range todo {
		g.Go(func() error {
			defer done.Add(1)
			if err := checkOne(ctx, checker, cluster, &todo[i], nodes, o); err != nil {
				return fmt.Errorf("%s: %w", todo[i].m.Where(), err)
			}
			return nil
		})
	}
	return todo, g.Wait()
}

// checkOne answers for one object as the webhook would: not at all in an
// excluded namespace or in mode off, else with the namespace's settings
// (labels from the input or the cluster) and the pull secrets a Pod made
// from this manifest would have.
func checkOne(ctx context.Context, checker *policy.Checker, cluster *inputCluster, r *checked, nodes []policy.Node, o *checkOptions) error {
	cfg := checker.Config()
	w := r.w
	r.v = &policy.Verdict{Object: w.Object(), Mode: policy.ModeOff}
	if r.skipped = cfg.Excluded(w.Namespace, o.ownNamespace); r.skipped != "" {
		if w.Namespace == o.ownNamespace {
			r.skipped += " (--pullsafe-namespace)"
		}
		return nil
	}
	// As admission: what the kubelet pulls for this object (policy.Pulled),
	// and nothing looked up, read or pinned when that is nothing.
	// ConfirmMirror as admission does: a Node owner of another UID than the
	// node's makes no mirror, and the Pod is checked.
	policy.ConfirmMirror(w, nodes)
	containers := policy.Pulled(w, nil)
	if w.Mirror {
		r.skipped = "mirror Pod of a static Pod (its node pulls the images with the node's own credentials, not the Pod's)"
		return nil
	}
	labels, s, err := namespaceSettings(ctx, cfg, cluster, w)
	if err != nil {
		return err
	}
	if r.undecodable != "" && s.Mode != policy.ModeOff {
		r.v = &policy.Verdict{Object: w.Object(), Mode: s.Mode, Notes: append([]string{r.undecodable}, s.Problems...)}
		return nil
	}
	if s.Mode == policy.ModeOff {
		r.skipped = offReason(labels, o)
		return nil
	}
	if o.pin {
		s.Pin = policy.PinAll() // --pin writes the files: every kind, whatever pin.pods/templates say
	}
	cr, err := policy.ReadCredentials(ctx, cluster, w, policy.AsWritten)
	if err != nil {
		return err
	}
	if o.dockerConfig {
		if err := addDockerConfig(cr.Keychain); err != nil {
			return err
		}
	}
	r.v = checker.Check(ctx, policy.Input{Workload: w, Containers: containers, Mode: s.Mode,
		Pin: s.Pin, Credentials: cr, Nodes: nodes})
	r.v.Notes = append(r.v.Notes, s.Problems...)
	return nil
}

// namespaceSettings are the settings of w's namespace, from its labels
// (the input's over the cluster's).
func namespaceSettings(ctx context.Context, cfg *policy.Config, cluster *inputCluster, w *policy.Workload) (map[string]string, policy.Settings, error) {
	labels, err := cluster.NamespaceLabels(ctx, w.Namespace)
	var notes []string
	if apierrors.IsForbidden(err) {
		// Reading a namespace is a cluster-wide permission a CI account
		// often lacks; its secrets may still be readable. Said, not fatal.
		notes, err = []string{"namespace " + w.Namespace + "'s labels not read (forbidden): the config's mode and pinning apply"}, nil
	}
	if err != nil {
		return nil, policy.Settings{}, fmt.Errorf("cannot read namespace %q: %w", w.Namespace, err)
	}
	s := cfg.Settings(labels, w.Template)
	s.Problems = append(notes, s.Problems...)
	return labels, s, nil
}

// offReason says which setting turned the mode off.
func offReason(labels map[string]string, o *checkOptions) string {
	switch {
	case labels[policy.LabelMode] == string(policy.ModeOff):
		return "mode off (namespace label " + policy.LabelMode + "=off)"
	case o.mode != "":
		return "mode off (--mode off)"
	}
	return "mode off (the config's mode)"
}

// progress prints "checked N of M objects" on stderr once a second after
// the first second, until stop is called.
func progress(w io.Writer, total int, done func() int) (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		printed := false
		for {
			select {
			case <-quit:
				if printed {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
				fmt.Fprintf(w, "\rpullsafe: checked %d of %d objects…", done(), total)
				printed = true
			}
		}
	}()
	// stop returns once the line is finished: nothing is written to w
	// after it.
	return func() { once.Do(func() { close(quit); <-exited }) }
}

// inputCluster answers the webhook's Cluster questions from the input files,
// then from a real cluster (checkCluster) when there is one.
type inputCluster struct {
	// objects are the input's Secrets, ServiceAccounts and Namespaces, then
	// the cluster's; offline, what the input lacks is unknown.
	objects   *policy.ManifestObjects
	platforms []policy.Node   // --platforms
	live      webhook.Cluster // nil without a cluster
	rest      *rest.Config    // live's, for service-account tokens
}

func newInputCluster(ctx context.Context, ms []policy.Manifest, o *checkOptions, rules *clientcmd.ClientConfigLoadingRules, stderr io.Writer) (*inputCluster, error) {
	platforms, err := policy.ParsePlatforms(o.platforms)
	if err != nil {
		return nil, fmt.Errorf("--platforms: %w", err)
	}
	c := &inputCluster{platforms: platforms}
	cl, err := checkCluster(o.kube, o.offline, rules)
	switch {
	case errors.Is(err, errOffline):
	case err != nil:
		return nil, err
	default:
		if c.live, err = liveCluster(ctx, cl); err != nil {
			return nil, err
		}
		c.rest = cl.rest
		// Said every time: which cluster's secrets and nodes were used is
		// part of the answer.
		fmt.Fprintf(stderr, "pullsafe: reading pull secrets, service accounts, namespaces and nodes from %s\n", registry.Shown(cl.name))
		if !o.namespaceSet {
			o.namespace = cl.namespace // kubectl apply's default: the context's namespace
		}
	}
	var next policy.SecretReader
	if c.live != nil {
		next = c.live
	}
	if c.objects, err = policy.NewManifestObjects(ms, o.namespace, next); err != nil {
		return nil, err
	}
	return c, nil
}

// clusterProbeTimeout bounds the first request to the cluster: an
// unreachable cluster is a clear error, not a hang.
const clusterProbeTimeout = 15 * time.Second

// liveCluster connects to cl and asks its version, so an unreachable
// cluster is an error naming it before any object is checked.
func liveCluster(ctx context.Context, cl *cluster) (webhook.Cluster, error) {
	rc := rest.CopyConfig(cl.rest)
	rc.Timeout = clusterProbeTimeout
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.name, err)
	}
	if _, err := dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("cluster of %s unreachable: %w (use --offline to check without a cluster)", cl.name, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	kc, err := client.New(cl.rest, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.name, err)
	}
	return webhook.NewClientCluster(kc, kc), nil
}

func (c *inputCluster) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return c.objects.Secret(ctx, ns, name)
}

func (c *inputCluster) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	return c.objects.ServiceAccount(ctx, ns, name)
}

// NamespaceLabels are the cluster's labels of the namespace as applying
// the input leaves them (policy.ManifestObjects.NamespaceLabels).
func (c *inputCluster) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	if c.live == nil {
		return c.objects.NamespaceLabels(name, nil), nil
	}
	live, err := c.live.NamespaceLabels(ctx, name)
	if err != nil {
		return c.objects.NamespaceLabels(name, nil), err // the input's, for a caller that carries on (forbidden)
	}
	return c.objects.NamespaceLabels(name, live), nil
}

func (c *inputCluster) Nodes(ctx context.Context) ([]policy.Node, error) {
	if len(c.platforms) > 0 {
		return c.platforms, nil
	}
	if c.live != nil {
		return c.live.Nodes(ctx)
	}
	return nil, nil
}

// undecodable is an object of a configured kind whose pod template could not
// be read, named by its metadata, with the webhook's warning.
func undecodable(m policy.Manifest, err error) checked {
	var obj struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(m.JSON, &obj) // best effort: the name is for the report only
	w := &policy.Workload{Kind: m.Kind, Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace, Template: true}
	return checked{m: m, w: w, undecodable: fmt.Sprintf("cannot decode the %s: %v; allowed unchecked", m.Kind, err)}
}
