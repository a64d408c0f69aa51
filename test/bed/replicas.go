package bed

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/certs"
	"github.com/pullsafe/pullsafe/webhook"
)

// Replicas is the out-of-cluster picture of pullsafe's Deployment behind
// its Service: n `pullsafe serve` processes sharing one serving certificate
// (the same files in each --cert-dir, as a mounted Secret), behind an LB,
// with both webhook configurations pointing at the LB.
type Replicas struct {
	LB   *LB
	CA   *certs.CA
	Name string // of the webhook configurations
	List []*Replica

	b    *Bed
	args []string
}

// Replica is one `pullsafe serve` process and what it keeps across restarts.
type Replica struct {
	Name    string
	Port    int
	Health  int
	CertDir string
	Proc    *Process
}

// ReplicaOptions configure StartReplicas.
type ReplicaOptions struct {
	Name          string        // webhook configuration name
	N             int           // replicas
	ShutdownDelay time.Duration // --shutdown-delay
	ProbeInterval time.Duration // how often the LB polls /readyz
	// Namespaces the configurations select (by kubernetes.io/metadata.name).
	Namespaces []string
}

// StartReplicas starts the replicas and the LB and registers the webhook
// configurations. Stop undoes all of it.
func (b *Bed) StartReplicas(ctx context.Context, o ReplicaOptions) (*Replicas, error) {
	ca, err := certs.NewCA("pullsafe-replicas-ca", time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	lb, err := StartLB(o.ProbeInterval)
	if err != nil {
		return nil, err
	}
	r := &Replicas{LB: lb, CA: ca, Name: o.Name, b: b}
	cfgFile := filepath.Join(b.Dir, "pullsafe.yaml")
	r.args = []string{"--config", cfgFile, "--shutdown-delay", o.ShutdownDelay.String(), "--namespace", "pullsafe-system"}
	for i := range o.N {
		rep := &Replica{Name: fmt.Sprintf("%s-%d", o.Name, i), CertDir: filepath.Join(b.Dir, fmt.Sprintf("%s-%d-certs", o.Name, i))}
		if rep.Port, err = FreePort(); err == nil {
			rep.Health, err = FreePort()
		}
		if err != nil {
			r.Stop(ctx)
			return nil, err
		}
		r.List = append(r.List, rep)
	}
	if err := r.RotateCert(false); err != nil {
		r.Stop(ctx)
		return nil, err
	}
	for _, rep := range r.List {
		if err := r.start(ctx, rep); err != nil {
			r.Stop(ctx)
			return nil, err
		}
		lb.Add(rep.Name, fmt.Sprintf("127.0.0.1:%d", rep.Port), fmt.Sprintf("http://127.0.0.1:%d/readyz", rep.Health))
	}
	if err := r.waitLB(ctx, o.N); err != nil {
		r.Stop(ctx)
		return nil, err
	}
	if err := r.register(ctx, o.Namespaces); err != nil {
		r.Stop(ctx)
		return nil, err
	}
	return r, nil
}

func (r *Replicas) registration() (webhook.Registration, client.Client, error) {
	c, err := client.New(r.b.RestConfig(), client.Options{})
	return webhook.Registration{Name: r.Name, URL: "https://" + r.LB.Addr, CABundle: r.CA.CertPEM}, c, err
}

func (r *Replicas) register(ctx context.Context, namespaces []string) error {
	reg, c, err := r.registration()
	if err != nil {
		return err
	}
	v, m := reg.Configurations()
	// Only the given namespaces: other tests' objects never reach the replicas.
	v.Webhooks[0].NamespaceSelector.MatchExpressions[0].Operator = "In"
	v.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values = namespaces
	m.Webhooks[0].NamespaceSelector = v.Webhooks[0].NamespaceSelector.DeepCopy()
	for _, obj := range []client.Object{v, m} {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("registering %s: %w", r.Name, err)
		}
	}
	return nil
}

// start runs the replica on its own ports (kept across restarts, as a pod's
// IP is kept by its endpoint slot) and waits until it is ready.
func (r *Replicas) start(ctx context.Context, rep *Replica) error {
	args := append([]string{"serve", "--kubeconfig", r.b.Kubeconfig, "--bind-address", "127.0.0.1",
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", rep.Health),
		"--port", fmt.Sprint(rep.Port), "--cert-dir", rep.CertDir, "--zap-log-level", "info"}, r.args...)
	p, err := startProcess(rep.Name, r.b.opts.Log, r.b.PullsafeBin, args...)
	if err != nil {
		return err
	}
	rep.Proc = p
	return waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", rep.Health), 60*time.Second, p)
}

// waitLB waits until n backends are in the LB's rotation.
func (r *Replicas) waitLB(ctx context.Context, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for len(r.LB.Ready()) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %v of %d replicas in the LB's rotation", r.LB.Ready(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Restart does what a rolling update does to one pod: SIGTERM, wait for the
// process to drain and exit, start it again, and wait until the LB sends
// it connections again.
func (r *Replicas) Restart(ctx context.Context, i int) error {
	rep := r.List[i]
	if err := rep.Proc.Terminate(30 * time.Second); err != nil {
		return err
	}
	if err := r.start(ctx, rep); err != nil {
		return err
	}
	return r.waitLB(ctx, len(r.List))
}

// RotateCert issues a new serving certificate for 127.0.0.1 and writes it
// into every replica's --cert-dir, as the kubelet updates a mounted Secret.
// With newCA, a new CA signs it; the configurations first get a bundle of
// the old and new CA, as certs.Manager and cert-manager's CA injector do.
func (r *Replicas) RotateCert(newCA bool) error {
	ca := r.CA
	if newCA {
		var err error
		if ca, err = certs.NewCA("pullsafe-replicas-ca-2", time.Now().Add(-time.Minute), 24*time.Hour); err != nil {
			return err
		}
		if err := r.setCABundle(append(append([]byte(nil), ca.CertPEM...), r.CA.CertPEM...)); err != nil {
			return err
		}
		// The API server picks the configuration change up through its
		// informer; serving the new CA's certificate before would fail TLS.
		time.Sleep(2 * time.Second)
		r.CA = ca
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return err
	}
	for _, rep := range r.List {
		if err := certs.WriteDir(rep.CertDir, certPEM, keyPEM); err != nil {
			return err
		}
	}
	return nil
}

func (r *Replicas) setCABundle(bundle []byte) error {
	ctx := context.Background()
	reg, c, err := r.registration()
	if err != nil {
		return err
	}
	v, m := reg.Configurations()
	for _, obj := range []client.Object{v, m} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = bundle
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = bundle
	}
	for _, obj := range []client.Object{v, m} {
		if err := c.Update(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// Stop removes the configurations, stops the replicas and the LB.
func (r *Replicas) Stop(ctx context.Context) {
	if r == nil {
		return
	}
	if reg, c, err := r.registration(); err == nil {
		_ = reg.Delete(ctx, c)
	}
	for _, rep := range r.List {
		rep.Proc.Stop()
	}
	r.LB.Stop()
}

// Terminate sends SIGTERM, as the kubelet does, and waits up to grace for
// the process to exit; then it is killed and an error returned.
func (p *Process) Terminate(grace time.Duration) error {
	if p == nil || p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		var ee interface{ ExitCode() int }
		if p.err != nil && errors.As(p.err, &ee) && ee.ExitCode() != 0 {
			return fmt.Errorf("%s exited with %v after SIGTERM", p.Name, p.err)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s still running %s after SIGTERM: killed", p.Name, grace)
	}
}
