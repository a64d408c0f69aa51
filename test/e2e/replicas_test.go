//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/test/bed"
)

// loadResult is what a steady stream of Pod creates saw.
type loadResult struct {
	created, failed int
	unchecked       int64    // "allowed unchecked" warnings pullsafe sent
	unpinned        int      // created Pods the mutating webhook never saw
	warnings        []string // the first few distinct pullsafe warnings
	failOpen        float64
	longest         time.Duration
	errs            []string
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d created, %d failed, %d unpinned, %d 'allowed unchecked' warnings, API server fail-open count +%g, longest create %s",
		r.created, r.failed, r.unpinned, r.unchecked, r.failOpen, r.longest.Round(time.Millisecond))
}

// failOpenCount sums apiserver_admission_webhook_fail_open_count over
// pullsafe's two webhooks, from kube-apiserver's /metrics.
func failOpenCount(t *testing.T) float64 {
	t.Helper()
	raw, err := b.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("scraping kube-apiserver /metrics: %v", err)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_admission_webhook_fail_open_count{") || !strings.Contains(line, "pullsafe.io") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// createWhile creates Pods in ns at rate per second while during runs (and
// for a second after), at most limit, through its own client (client-go's
// default 5 QPS would be the bottleneck) that counts pullsafe's warnings.
func createWhile(t *testing.T, ns string, rate, limit int, during func() error) loadResult {
	t.Helper()
	var res loadResult
	var unchecked atomic.Int64
	cfg := rest.CopyConfig(b.RestConfig())
	cfg.QPS, cfg.Burst = float32(rate*4), rate*4
	var warnMu sync.Mutex
	cfg.WarningHandler = uncheckedCounter{n: &unchecked, mu: &warnMu, seen: &res.warnings}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	image := b.Open.Addr + "/team/api:v1.4.1"
	before := failOpenCount(t)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		stop = make(chan struct{})
		errc = make(chan error, 1)
	)
	go func() {
		err := during()
		time.Sleep(time.Second)
		errc <- err
		close(stop)
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
load:
	for i := range limit {
		select {
		case <-stop:
			break load
		case <-tick.C:
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: ns},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image, ImagePullPolicy: corev1.PullAlways}}}}
			start := time.Now()
			got, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			res.longest = max(res.longest, took)
			if err != nil {
				res.failed++
				res.errs = append(res.errs, err.Error())
				return
			}
			res.created++
			if !strings.Contains(got.Spec.Containers[0].Image, "@sha256:") {
				res.unpinned++
			}
		}(i)
	}
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatalf("during the load: %v (load so far: %s)", err, res)
	}
	res.unchecked = unchecked.Load()
	res.failOpen = failOpenCount(t) - before
	return res
}

// uncheckedCounter counts pullsafe's warnings that a Pod was admitted
// unchecked (an internal failure, or "cannot verify") and
// keeps the first few of any pullsafe warning, to explain a failure.
type uncheckedCounter struct {
	n    *atomic.Int64
	mu   *sync.Mutex
	seen *[]string
}

func (c uncheckedCounter) HandleWarningHeader(_ int, _ string, text string) {
	if strings.Contains(text, "allowed unchecked") || strings.Contains(text, "allowed it unchecked") {
		c.n.Add(1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(*c.seen) < 5 && !slices.Contains(*c.seen, text) {
		*c.seen = append(*c.seen, text)
	}
}

// withoutDevWebhook removes the bed's own pullsafe registration for the
// test, so only the replicas review (and are counted); it is restored after.
func withoutDevWebhook(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	kc, err := client.New(b.RestConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{&admissionregv1.ValidatingWebhookConfiguration{}, &admissionregv1.MutatingWebhookConfiguration{}} {
		if err := kc.Get(ctx, client.ObjectKey{Name: bed.DevWebhookConfig}, obj); err != nil {
			t.Fatal(err)
		}
		if err := kc.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			obj.SetResourceVersion("")
			obj.SetUID("")
			if err := kc.Create(context.Background(), obj); err != nil {
				t.Errorf("restoring %s: %v", bed.DevWebhookConfig, err)
			}
		})
	}
}

// TestReplicasRestartAndRotateWithoutFailingOpen: two replicas behind a
// load balancer that follows their readiness, Pods created at 50/s through
// the API server. A rolling restart (SIGTERM, drain, start again, one
// replica after the other) and certificate rotations (a new certificate
// from the same CA; then a new CA) must cost no admission: none failed,
// none admitted without a check (the API server's fail-open count,
// pullsafe's "allowed unchecked", a Pod the mutating webhook never pinned).
func TestReplicasRestartAndRotateWithoutFailingOpen(t *testing.T) {
	ctx := context.Background()
	const ns = "replicas-e2e"
	if err := b.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	withoutDevWebhook(t)
	reps, err := b.StartReplicas(ctx, bed.ReplicaOptions{Name: "pullsafe-replicas", N: 2,
		ShutdownDelay: 2 * time.Second, ProbeInterval: 250 * time.Millisecond, Namespaces: []string{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer reps.Stop(ctx)
	// The configurations are in place once a create is pinned.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("warm-%d", i), Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: b.Open.Addr + "/team/api:v1.4.1", ImagePullPolicy: corev1.PullAlways}}}}
		got, err := b.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err == nil && strings.Contains(got.Spec.Containers[0].Image, "@sha256:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replicas never reviewed a create: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	steps := []struct {
		name   string
		during func() error
	}{
		{"rolling restart", func() error {
			for i := range reps.List {
				if err := reps.Restart(ctx, i); err != nil {
					return err
				}
			}
			return nil
		}},
		{"certificate rotation", func() error {
			if err := reps.RotateCert(false); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			return reps.RotateCert(true)
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if err := b.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res := createWhile(t, ns, 50, 2000, step.during)
			t.Logf("%s in %s: %s", step.name, time.Since(start).Round(time.Millisecond), res)
			if res.failed != 0 || res.unchecked != 0 || res.unpinned != 0 || res.failOpen != 0 || res.created == 0 {
				t.Errorf("%s cost admissions: %s; LB could not place %d connection(s); first errors: %q; pullsafe warnings: %q",
					step.name, res, reps.LB.DialFailures.Load(), res.errs[:min(3, len(res.errs))], res.warnings)
			}
		})
	}
}
