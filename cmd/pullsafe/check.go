package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

const checkUsage = `Usage: pullsafe check -f FILE|DIR|- [flags]

Runs the webhook's rules on manifests: every image is resolved against its
registry with the pull secrets the kubelet would use (Secrets found in the
input, or in the cluster with --kubeconfig). Reads everything kubectl apply -f
accepts: YAML streams, JSON, List objects, directories (recursively), stdin.

Exit status: 0 nothing would be denied; 1 something would be denied (or warned
about, with --strict); 2 usage or input errors.

Flags:
`

type checkOptions struct {
	files        stringList
	namespace    string
	configFile   string
	kubeconfig   string
	platforms    string
	output       string
	mode         string
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
	fset := flag.NewFlagSet("pullsafe check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, checkUsage); fset.PrintDefaults() }
	fset.Var(&o.files, "f", "manifest file, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fset.StringVar(&o.namespace, "namespace", "default", "namespace for objects that name none")
	fset.StringVar(&o.configFile, "config", "", "the same policy config file as pullsafe serve (default: built-in defaults)")
	fset.StringVar(&o.kubeconfig, "kubeconfig", "", "read pull secrets, service accounts and nodes from this cluster (input Secrets win)")
	fset.StringVar(&o.platforms, "platforms", "", "node platforms for the platform rule, e.g. linux/amd64,linux/arm64 (default: the cluster's nodes with --kubeconfig, else not checked)")
	fset.StringVar(&o.output, "o", "text", "output: text or json")
	fset.StringVar(&o.mode, "mode", "enforce", "answer as the webhook would in this mode: enforce or warn")
	fset.BoolVar(&o.strict, "strict", false, "exit 1 on warnings too")
	fset.BoolVar(&o.dockerConfig, "docker-config", false, "also use credentials from $DOCKER_CONFIG/config.json or ~/.docker/config.json\n(local runs; the kubelet would not have them)")
	fset.BoolVar(&o.pin, "pin", false, "write the manifests back with tags pinned to the digests checked (stdout, or --in-place)")
	fset.BoolVar(&o.inPlace, "in-place", false, "with --pin, rewrite the files instead of printing them")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case len(o.files) == 0:
		return nil, errors.New("no input: give -f FILE, -f DIR or -f -")
	case o.output != "text" && o.output != "json":
		return nil, fmt.Errorf("-o %q: want text or json", o.output)
	case o.mode != string(policy.ModeEnforce) && o.mode != string(policy.ModeWarn):
		return nil, fmt.Errorf("--mode %q: want enforce or warn", o.mode)
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
}

func check(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err}
	}
	cfg, err := policy.LoadConfig(o.configFile)
	if err != nil {
		return usageError{err}
	}
	cfg.Mode = policy.Mode(o.mode)
	manifests, files, err := readInputs(o.files, stdin, o.pin, cfg.Workloads)
	if err != nil {
		return usageError{err}
	}
	cluster, err := newInputCluster(manifests, o)
	if err != nil {
		return usageError{err}
	}
	if cfg.Registries.AllowLoopback == nil {
		cfg.Registries.AllowLoopback = ptr.To(true) // check runs on your machine, not in a pod
	}
	res, err := webhook.NewResolver(cfg, nil, registry.WithUserAgent(webhook.UserAgent(version)))
	if err != nil {
		return usageError{err}
	}
	results, err := checkAll(ctx, policy.NewChecker(cfg, res), cluster, manifests, o, stderr)
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
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
		mu       sync.Mutex
		done     int
		firstErr error
	)
	stop := progress(stderr, len(todo), func() int { mu.Lock(); defer mu.Unlock(); return done })
	defer stop()
	for i := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := checkOne(ctx, checker, cluster, todo[i].w, nodes, o)
			mu.Lock()
			defer mu.Unlock()
			done++
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", todo[i].m.Where(), err)
			}
			todo[i].v = v
		}()
	}
	wg.Wait()
	return todo, firstErr
}

func checkOne(ctx context.Context, checker *policy.Checker, cluster *inputCluster, w *policy.Workload, nodes []policy.Node, o *checkOptions) (*policy.Verdict, error) {
	cr, err := webhook.Credentials(ctx, cluster, w)
	if err != nil {
		return nil, err
	}
	if o.dockerConfig {
		if err := addDockerConfig(cr.Keychain); err != nil {
			return nil, err
		}
	}
	cfg := checker.Config()
	pin := cfg.Pin.Pods && (!w.Template || cfg.Pin.Templates)
	return checker.Check(ctx, policy.Input{Workload: w, Containers: w.Containers, Mode: cfg.Mode,
		Pin: pin || o.pin, Credentials: cr, Nodes: nodes}), nil
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

// readInputs reads every -f as a stream, document by document, keeping only
// what check uses (workloads, Secrets, ServiceAccounts), so a file of any
// size is read whole or refused, never cut short. With keep (for --pin) it
// also returns each file's bytes.
func readInputs(paths []string, stdin io.Reader, keep bool, custom []policy.WorkloadKind) ([]policy.Manifest, map[string][]byte, error) {
	var out []policy.Manifest
	files := map[string][]byte{}
	read := func(name string, r io.Reader) error {
		var data bytes.Buffer
		if keep {
			r = io.TeeReader(r, &data)
		}
		mr := policy.NewManifestReader(r, name)
		for {
			m, err := mr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if m.Kind == "Secret" || m.Kind == "ServiceAccount" || policy.Checked(m.GroupKind(), custom...) {
				out = append(out, m)
			}
		}
		if keep {
			files[name] = data.Bytes()
		}
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			if err := read("-", stdin); err != nil {
				return nil, nil, err
			}
			continue
		}
		var names []string
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := strings.ToLower(filepath.Ext(path))
			if !d.IsDir() && (path == p || ext == ".yaml" || ext == ".yml" || ext == ".json") {
				names = append(names, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		sort.Strings(names)
		for _, n := range names {
			f, err := os.Open(n)
			if err != nil {
				return nil, nil, err
			}
			err = read(n, f)
			f.Close()
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return out, files, nil
}

// inputCluster answers the webhook's Cluster questions from the input files,
// then from a real cluster when --kubeconfig is given.
type inputCluster struct {
	secrets   map[string]*corev1.Secret
	accounts  map[string]*corev1.ServiceAccount
	platforms []policy.Node
	live      webhook.Cluster // nil without --kubeconfig
}

func newInputCluster(ms []policy.Manifest, o *checkOptions) (*inputCluster, error) {
	c := &inputCluster{secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{}}
	for _, m := range ms {
		switch m.Kind {
		case "Secret":
			var s corev1.Secret
			if err := json.Unmarshal(m.JSON, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			c.secrets[nsOr(s.Namespace, o.namespace)+"/"+s.Name] = decodeStringData(&s)
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			if err := json.Unmarshal(m.JSON, &sa); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			c.accounts[nsOr(sa.Namespace, o.namespace)+"/"+sa.Name] = &sa
		}
	}
	for _, p := range strings.Split(o.platforms, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("--platforms: %q is not os/arch[/variant]", p)
		}
		n := policy.Node{Name: p, Labels: map[string]string{corev1.LabelOSStable: parts[0], corev1.LabelArchStable: parts[1]}}
		if len(parts) == 3 {
			n.Variant = parts[2]
		}
		c.platforms = append(c.platforms, n)
	}
	if o.kubeconfig != "" {
		rc, err := restConfig(o.kubeconfig)
		if err != nil {
			return nil, err
		}
		scheme := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			return nil, err
		}
		kc, err := client.New(rc, client.Options{Scheme: scheme})
		if err != nil {
			return nil, err
		}
		c.live = webhook.NewClientCluster(kc, kc)
	}
	return c, nil
}

// decodeStringData folds stringData into data, as the API server would.
func decodeStringData(s *corev1.Secret) *corev1.Secret {
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	return s
}

func nsOr(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

func (c *inputCluster) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := c.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	if c.live != nil {
		return c.live.Secret(ctx, ns, name)
	}
	return nil, nil
}

func (c *inputCluster) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if sa, ok := c.accounts[ns+"/"+name]; ok {
		return sa, nil
	}
	if c.live != nil {
		return c.live.ServiceAccount(ctx, ns, name)
	}
	return nil, nil
}

func (c *inputCluster) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return nil, nil
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
