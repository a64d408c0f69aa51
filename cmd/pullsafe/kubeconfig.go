package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags are kubectl's --kubeconfig and --context, shared by serve and
// check.
type kubeFlags struct {
	kubeconfig string
	context    string
}

// bind adds the flags; def says what is used without them.
func (k *kubeFlags) bind(fs *flag.FlagSet, def string) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: "+def+")")
	fs.StringVar(&k.context, "context", "", "kubeconfig context to use (default: the kubeconfig's current-context)")
}

// given reports whether the user named a cluster on the command line.
func (k kubeFlags) given() bool { return k.kubeconfig != "" || k.context != "" }

// cluster is a loaded client configuration and what to call it in messages.
type cluster struct {
	rest *rest.Config
	// name says where it came from: `context "kind-dev" (https://127.0.0.1:6443)`.
	name string
	// namespace is the context's namespace ("default" when it names none):
	// kubectl apply puts objects that name none there.
	namespace string
}

// load reads a client configuration with client-go's standard loading rules,
// kubectl's: --kubeconfig alone when given, else the files of $KUBECONFIG
// merged (rules.Precedence), else ~/.kube/config; --context overrides the
// current context.
func (k kubeFlags) load(rules *clientcmd.ClientConfigLoadingRules) (*cluster, error) {
	r := *rules
	r.ExplicitPath = k.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&r, &clientcmd.ConfigOverrides{CurrentContext: k.context})
	raw, err := cc.RawConfig()
	if err != nil {
		if k.kubeconfig != "" {
			return nil, fmt.Errorf("--kubeconfig %s: %w", k.kubeconfig, err)
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	name := k.context
	if name == "" {
		name = raw.CurrentContext
	}
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", name, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", name, err)
	}
	return &cluster{rest: rc, name: fmt.Sprintf("context %q (%s)", name, rc.Host), namespace: ns}, nil
}

// kubeconfigExists reports whether any file the loading rules would read
// exists: without one, client-go would fall back to an empty configuration
// (localhost:8080), which is never what a user meant.
func kubeconfigExists(rules *clientcmd.ClientConfigLoadingRules) bool {
	for _, f := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// serveConfig is serve's client configuration, in controller-runtime's
// order (config.GetConfig): --kubeconfig (or --context) with the standard
// loading rules; else, when $KUBECONFIG is unset, the in-cluster
// configuration if pullsafe runs in a pod; else $KUBECONFIG's files or
// ~/.kube/config.
func serveConfig(k kubeFlags, rules *clientcmd.ClientConfigLoadingRules, inCluster func() (*rest.Config, error)) (*rest.Config, error) {
	if !k.given() && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		rc, err := inCluster()
		if err == nil {
			return rc, nil
		}
		if !kubeconfigExists(rules) {
			return nil, fmt.Errorf("not in a cluster (%w) and no kubeconfig: give --kubeconfig, set $KUBECONFIG or create ~/.kube/config", err)
		}
	}
	c, err := k.load(rules)
	if err != nil {
		return nil, err
	}
	return c.rest, nil
}

// errOffline is checkCluster's answer when check runs without a cluster.
var errOffline = errors.New("offline")

// checkCluster is the cluster `pullsafe check` reads, chosen so a CI job
// knows which: with --offline none; with --kubeconfig or --context that
// one; else the one a kubeconfig file names ($KUBECONFIG's files, else
// ~/.kube/config), when such a file exists; else none (errOffline).
func checkCluster(k kubeFlags, offline bool, rules *clientcmd.ClientConfigLoadingRules) (*cluster, error) {
	if offline || (!k.given() && !kubeconfigExists(rules)) {
		return nil, errOffline
	}
	return k.load(rules)
}
