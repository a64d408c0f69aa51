// Package bed is pullsafe's real test bed: etcd and kube-apiserver (through
// controller-runtime's envtest), kube-controller-manager running the
// workload controllers, two CNCF distribution registries (one open, one
// behind htpasswd), the pullsafe binary registered out of cluster, and
// kubectl. No kubelet runs: Pods stay Pending, which is enough, as
// admission happens when they are created. The end-to-end tests and `make demo` both use it. Binaries are
// built from the Go module proxy by test/tools/build.sh into a cache folder
// outside the repository; nothing here is downloaded at run time.
package bed

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Config is the policy the demo, the e2e suite and the benchmarks run with:
// enforce, with Docker Hub mirrored by the open registry. The registries
// listen on loopback, which pullsafe refuses in a cluster: allowLoopback.
const Config = `apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: enforce
registries:
  mirrors: {docker.io: ["{{OPEN}}"]}
  allowLoopback: true
lookupTimeout: 3s
`

// Controllers are the controllers the bed's kube-controller-manager runs:
// the workload controllers, so that Deployments, Jobs and the rest create
// their ReplicaSets and Pods through admission as in a cluster.
const Controllers = "deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,cronjob-controller"

// DevWebhookConfig is the name pullsafe registers under out of cluster.
const DevWebhookConfig = "pullsafe-dev"

// Private registry credentials (test only).
const (
	PrivateUser = "ci"
	PrivatePass = "pullsafe-e2e"
)

// Options configure a bed.
type Options struct {
	// Config is pullsafe's policy YAML; "{{OPEN}}" and "{{PRIVATE}}" are
	// replaced with the registries' host:port.
	Config string
	// Log receives the output of every process started (nil: discarded).
	Log io.Writer
	// Progress receives a line as each start-up stage begins and ends
	// (test/tools/build.sh's own progress included), and a heartbeat while
	// one runs: on a cold machine building the tools and pullsafe takes
	// minutes (nil: Log).
	Progress io.Writer
	// APIServerFlags are kube-apiserver flags set on top of envtest's
	// (name without dashes: "admission-control-config-file"); nil keeps
	// envtest's.
	APIServerFlags map[string]string
	// PullsafePort is the port the bed's pullsafe serves and registers
	// (https://127.0.0.1:PORT); 0 picks a free one. A test whose API server
	// flags name that address picks it first with FreePort.
	PullsafePort int
	// PullsafeArgs are more `pullsafe serve` flags for the bed's instance.
	PullsafeArgs []string
	// BeforePullsafe, when set, runs once the registries are up and before
	// pullsafe starts: files its flags name can then hold their addresses.
	BeforePullsafe func(*Bed) error
}

// Bed is a running test bed. Stop it when done.
type Bed struct {
	Dir        string
	Tools      string
	Kubeconfig string
	Kubectl    string
	Open       *Process
	Private    *Process
	Pullsafe   *Process
	// ControllerManager runs Controllers with the admin's kubeconfig.
	ControllerManager *Process
	Client            kubernetes.Interface

	// PullsafeBin is the pullsafe binary built from this checkout;
	// PullsafeURL where the bed's instance serves (https://127.0.0.1:PORT).
	PullsafeBin string
	PullsafeURL string

	env        *envtest.Environment
	restConfig *rest.Config
	root       string
	opts       Options
}

// Start brings the whole bed up. On error (or when ctx ends, Ctrl-C) every
// process already started is stopped before it returns.
func Start(ctx context.Context, o Options) (*Bed, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = o.Log
	}
	// envtest logs through controller-runtime's logger; route it to Log.
	ctrllog.SetLogger(zap.New(zap.WriteTo(o.Log)))
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	b := &Bed{root: root, opts: o}
	if err := b.start(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

func (b *Bed) start(ctx context.Context) error {
	var err error
	if b.Dir, err = os.MkdirTemp("", "pullsafe-bed-"); err != nil {
		return err
	}
	// No stage: build.sh says itself what it builds, with its own heartbeat.
	if b.Tools, err = BuildTools(ctx, b.root, b.opts.Progress); err != nil {
		return err
	}
	b.Kubectl = filepath.Join(b.Tools, "kubectl")
	if k := os.Getenv("PULLSAFE_KUBECTL"); k != "" {
		b.Kubectl = k
	}
	if err := b.stage("etcd + kube-apiserver", b.startAPIServer); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := b.stage("kube-controller-manager", func() error { return b.startControllerManager(ctx) }); err != nil {
		return err
	}
	err = b.stage("two registries", func() (err error) {
		if b.Open, err = b.startRegistry(ctx, "open", false); err != nil {
			return err
		}
		b.Private, err = b.startRegistry(ctx, "private", true)
		return err
	})
	if err != nil {
		return err
	}
	if b.opts.BeforePullsafe != nil {
		if err := b.opts.BeforePullsafe(b); err != nil {
			return err
		}
	}
	return b.stage("pullsafe (go build ./cmd/pullsafe, then serve)", func() error { return b.StartPullsafe(ctx) })
}

// heartbeatEvery is how often stage says a long stage is still running.
const heartbeatEvery = 30 * time.Second

// stage runs f, telling Progress when it starts and ends and, every
// heartbeatEvery, that it is still running: a newcomer's first run must not
// sit silent for minutes.
func (b *Bed) stage(name string, f func() error) error {
	w, start := b.opts.Progress, time.Now()
	fmt.Fprintf(w, "   starting: %s ...\n", name)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "   ... still %s (%s)\n", name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := f()
	close(done)
	if err == nil {
		fmt.Fprintf(w, "   %s: ready in %s\n", name, time.Since(start).Round(time.Second))
	}
	return err
}

// BuildTools runs test/tools/build.sh (a no-op once the binaries are cached)
// for the named sets ("bed", the default: kube-apiserver,
// kube-controller-manager, etcd, kubectl, registry; "runtime": containerd,
// and linux/arm64's where qemu-aarch64-static can run it) and returns the
// folder holding them. Its progress goes to log. A failure here is a test
// failure, never a skip.
func BuildTools(ctx context.Context, root string, log io.Writer, sets ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "test", "tools", "build.sh"), sets...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the test bed binaries (test/tools/build.sh %s): %w", strings.Join(sets, " "), err)
	}
	dir := strings.TrimSpace(out.String())
	var want []string
	if len(sets) == 0 || slices.Contains(sets, "bed") {
		want = append(want, "kube-apiserver", "kube-controller-manager", "etcd", "kubectl", "registry")
	}
	if slices.Contains(sets, "runtime") {
		want = append(want, "containerd")
		// build.sh's own rule: the arm64 node exists where qemu can run it.
		if _, err := exec.LookPath("qemu-aarch64-static"); err == nil && runtime.GOARCH == "amd64" {
			want = append(want, "containerd-linux-arm64")
		}
	}
	for _, bin := range want {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("test bed binary %s missing from %s after build: %w", bin, dir, err)
		}
	}
	return dir, nil
}

func (b *Bed) startAPIServer() error {
	b.env = &envtest.Environment{BinaryAssetsDirectory: b.Tools}
	for name, value := range b.opts.APIServerFlags {
		b.env.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	cfg, err := b.env.Start()
	if err != nil {
		return fmt.Errorf("starting etcd + kube-apiserver: %w", err)
	}
	user, err := b.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	b.Kubeconfig = filepath.Join(b.Dir, "kubeconfig")
	if err := os.WriteFile(b.Kubeconfig, kc, 0o600); err != nil {
		return err
	}
	b.restConfig = user.Config()
	b.Client, err = kubernetes.NewForConfig(b.restConfig)
	return err
}

// startControllerManager runs kube-controller-manager's workload
// controllers against the bed's API server as the admin (no service
// account per controller: the bed runs no token controller), without
// leader election, serving its health on a free loopback port.
func (b *Bed) startControllerManager(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	p, err := startProcess("kube-controller-manager", b.opts.Log, filepath.Join(b.Tools, "kube-controller-manager"),
		"--kubeconfig", b.Kubeconfig, "--controllers", Controllers, "--leader-elect=false",
		"--use-service-account-credentials=false", "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port))
	if err != nil {
		return err
	}
	b.ControllerManager = p
	// /healthz is served without authentication (its default
	// --authorization-always-allow-paths), on a self-signed certificate.
	return waitHTTP(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), 60*time.Second, p)
}

// RestConfig is the admin's client configuration.
func (b *Bed) RestConfig() *rest.Config { return b.restConfig }

// StartRegistry runs one more open registry; the caller stops it.
func (b *Bed) StartRegistry(ctx context.Context, name string) (*Process, error) {
	return b.startRegistry(ctx, name, false)
}

// startRegistry runs distribution on a free loopback port, in memory.
func (b *Bed) startRegistry(ctx context.Context, name string, auth bool) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Deletes enabled: the audit e2e removes a tag after admission.
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {inmemory: {}, delete: {enabled: true}}\nhttp: {addr: %q, secret: e2e}\n", addr)
	if auth {
		hash, err := bcrypt.GenerateFromPassword([]byte(PrivatePass), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(b.Dir, name+".htpasswd")
		if err := os.WriteFile(htpasswd, []byte(PrivateUser+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("auth: {htpasswd: {realm: pullsafe-e2e, path: %q}}\n", htpasswd)
	}
	file := filepath.Join(b.Dir, name+"-registry.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := startProcess(name+"-registry", b.opts.Log, filepath.Join(b.Tools, "registry"), "serve", file)
	if err != nil {
		return nil, err
	}
	p.Addr = addr
	return p, waitHTTP(ctx, "http://"+addr+"/v2/", 20*time.Second, nil)
}

// StartPullsafe builds pullsafe from this checkout and runs `pullsafe serve`
// out of cluster, registered with the API server by URL.
func (b *Bed) StartPullsafe(ctx context.Context) error {
	b.PullsafeBin = filepath.Join(b.Dir, "pullsafe")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.PullsafeBin, "./cmd/pullsafe")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pullsafe: %v\n%s", err, out)
	}
	cfgFile := filepath.Join(b.Dir, "pullsafe.yaml")
	cfg := strings.NewReplacer("{{OPEN}}", b.Open.Addr, "{{PRIVATE}}", b.Private.Addr).Replace(b.opts.Config)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	var err error
	port := b.opts.PullsafePort
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return err
		}
	}
	b.PullsafeURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	args := append([]string{"--config", cfgFile, "--webhook-url", b.PullsafeURL, "--port", fmt.Sprint(port)}, b.opts.PullsafeArgs...)
	if b.Pullsafe, err = b.RunPullsafe(ctx, "pullsafe", args...); err != nil {
		return err
	}
	// Ready means serving; wait for the registration it then makes.
	return b.WaitRegistered(ctx, DevWebhookConfig)
}

// WaitRegistered waits up to 30s for an out-of-cluster pullsafe, ready
// already, to register its webhook configurations named name.
func (b *Bed) WaitRegistered(ctx context.Context, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pullsafe never registered its webhook configurations %s: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RunPullsafe runs `pullsafe serve` with args against the bed's API server
// and waits until it is ready. Its health port is chosen here.
func (b *Bed) RunPullsafe(ctx context.Context, name string, args ...string) (*Process, error) {
	health, err := FreePort()
	if err != nil {
		return nil, err
	}
	all := append([]string{"serve", "--kubeconfig", b.Kubeconfig, "--bind-address", "127.0.0.1",
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", health),
		"--shutdown-delay", "0s", "--zap-log-level", "error"}, args...)
	p, err := startProcess(name, b.opts.Log, b.PullsafeBin, all...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", health), 60*time.Second, p); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Root is the repository's top folder.
func (b *Bed) Root() string { return b.root }

// Run runs kubectl with the bed's kubeconfig and stdin, returning stdout,
// stderr (where kubectl prints "Warning: ...") and the error.
func (b *Bed) Run(stdin string, args ...string) (string, string, error) {
	cmd := exec.Command(b.Kubectl, append([]string{"--kubeconfig", b.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// Namespace creates a namespace with labels.
func (b *Bed) Namespace(ctx context.Context, name string, labels map[string]string) error {
	_, err := b.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	return err
}

// SetNodes replaces the cluster's nodes with one per architecture given.
func (b *Bed) SetNodes(ctx context.Context, archs ...string) error {
	nodes := b.Client.CoreV1().Nodes()
	if err := nodes.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	for i, a := range archs {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d-%s", i, a),
			Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: a}}}
		if _, err := nodes.Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops everything started, in reverse order, and removes the work
// dir. Safe on a partly started or nil bed.
func (b *Bed) Stop() {
	if b == nil {
		return
	}
	for _, p := range []*Process{b.Pullsafe, b.Private, b.Open, b.ControllerManager} {
		p.Stop()
	}
	if b.env != nil {
		_ = b.env.Stop()
	}
	if b.Dir != "" {
		os.RemoveAll(b.Dir)
	}
}

// Process is a child process of the bed.
type Process struct {
	Name string
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(name string, log io.Writer, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	// Killed with the test process even if it dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// distribution v3 exports traces to localhost:4318 by default; nothing
	// listens there, and every failed export is a log line.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	w := &prefixWriter{prefix: "[" + name + "] ", w: log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after 10 s; nil-safe, idempotent.
func (p *Process) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls u until it answers below 500 (401 counts: a registry with
// auth is up), p exits, or timeout passes. An https u is a loopback
// component's self-signed endpoint: its certificate is not verified.
func waitHTTP(ctx context.Context, u string, timeout time.Duration, p *Process) error {
	deadline := time.Now().Add(timeout)
	client := http.DefaultClient
	if strings.HasPrefix(u, "https://") {
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before it was ready: %v", p.Name, p.err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", u, timeout, last)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/pullsafe/pullsafe\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the pullsafe repository")
		}
		dir = parent
	}
}

// prefixWriter prefixes each line with the process name.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
