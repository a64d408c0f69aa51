package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullsafe/pullsafe/diagnose"
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
	localFlags
	target       string
	namespace    string
	namespaceSet bool
}

// parseWhyFlags accepts flags before and after the target, as kubectl does
// (kubectl pullsafe why pod/x -n shop).
func parseWhyFlags(args []string, stderr io.Writer) (*whyOptions, error) {
	var o whyOptions
	fs := o.flagSet("pullsafe why", whyUsage, "the same policy config file as pullsafe serve, for its registries settings (mirrors, CA bundles)",
		"as kubectl: $KUBECONFIG's files, else ~/.kube/config", stderr)
	for _, n := range []string{"n", "namespace"} {
		fs.StringVar(&o.namespace, n, "", "namespace (default: the kubeconfig context's, else \"default\")")
	}
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
	if len(targets) != 1 {
		return nil, errors.New("name one pod or workload: pullsafe why pod/NAME (or deployment/NAME ...)")
	}
	if err := o.validate(); err != nil {
		return nil, err
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

// why explains one pod or workload (package diagnose) and prints the answer.
func why(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseWhyFlags(args, stderr)
	if err != nil {
		return flagsError(err)
	}
	st, err := o.start()
	if err != nil {
		return err
	}
	diagnose.Configure(st.cfg)
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
	checker, err := st.checker()
	if err != nil {
		return err
	}
	out, err := diagnose.NewExplainer(cs, checker, o.namespace, st.cfg.Registries.Mirrors).Explain(ctx, o.target)
	if err != nil {
		// Exit 2 whatever failed (an unknown kind, no such pod, the
		// cluster): 1 says a cause was found.
		return usageError{fmt.Errorf("%s: %w", cl.name, err)}
	}
	if o.output == "json" {
		err = diagnose.WriteJSON(out, stdout)
	} else {
		err = diagnose.WriteText(out, stdout, isTerminal(stdout))
	}
	if err != nil {
		return err
	}
	if out.CauseFound() {
		return errCauseFound
	}
	return nil
}
