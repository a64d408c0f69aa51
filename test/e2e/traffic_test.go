//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// warningLog collects the admission warnings the API server relays.
type warningLog struct {
	mu  sync.Mutex
	got []string
}

func (w *warningLog) HandleWarningHeader(code int, _ string, text string) {
	if code == 299 {
		w.mu.Lock()
		w.got = append(w.got, text)
		w.mu.Unlock()
	}
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

// warningClient is a clientset whose warnings land in the returned log.
func warningClient(t *testing.T) (kubernetes.Interface, *warningLog) {
	t.Helper()
	log := &warningLog{}
	cfg := rest.CopyConfig(b.RestConfig())
	cfg.WarningHandler = log
	cfg.QPS, cfg.Burst = 500, 500
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, log
}

func pod(ns, name, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}}}}
}

// A rollout of 100 Pods of a new image, created through kube-apiserver: the
// mutating webhook resolves the tag and pins it, the validating webhook
// checks the pinned digest. One HEAD reaches the registry for all of it.
func TestRolloutCostsOneHeadPerImage(t *testing.T) {
	ctx := context.Background()
	if _, err := b.Push(b.Open, "rollout/app", "v1", bed.Linux("amd64"), bed.Linux("arm64")); err != nil {
		t.Fatal(err)
	}
	proxy, err := registrytest.NewCountingProxy(b.Open.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	if err := b.Namespace(ctx, "rollout", nil); err != nil {
		t.Fatal(err)
	}
	cs, _ := warningClient(t)
	image := proxy.Addr + "/rollout/app:v1"
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	sem := make(chan struct{}, 10) // a ReplicaSet controller's burst
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := cs.CoreV1().Pods("rollout").Create(ctx, pod("rollout", fmt.Sprintf("app-%d", i), image), metav1.CreateOptions{})
			if err == nil && !strings.HasPrefix(p.Spec.Containers[0].Image, image+"@sha256:") {
				err = fmt.Errorf("%s not pinned: %s", p.Name, p.Spec.Containers[0].Image)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := proxy.Counts()
	t.Logf("registry requests for the rollout: %v", c)
	if n := c["HEAD manifests"]; n != 1 {
		t.Errorf("100 Pods through both webhooks: %d HEAD requests, want 1 per (image, credential)", n)
	}
	// The index for the platform rule, and for the pull path the manifest
	// of each platform the bed's nodes pull (amd64, arm64), once each.
	if n := c["GET manifests"]; n > 3 {
		t.Errorf("%d manifest GETs, want at most 3 (the platform rule's index, the pull path's 2 platform manifests)", n)
	}
	if n := c["HEAD blobs"]; n > 4 {
		t.Errorf("%d blob HEADs, want at most 4 (config and layer of 2 platforms, once per digest)", n)
	}
}

// A registry that accepts connections and never answers: the first create
// waits one lookup timeout, the next ones are answered from memory, the
// dead registry sees at most one lookup per outage window, and once it is
// back (and the window has ended) the next create is checked for real.
func TestRegistryOutageCostsOneTimeout(t *testing.T) {
	const window = 30 * time.Second // the default outageWindow (bed.Config sets none)
	ctx := context.Background()
	bh, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	if err := b.Namespace(ctx, "outage", nil); err != nil {
		t.Fatal(err)
	}
	cs, warnings := warningClient(t)
	create := func(name, image string) (*corev1.Pod, []string) {
		t.Helper()
		p, err := cs.CoreV1().Pods("outage").Create(ctx, pod("outage", name, image), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v (an outage must fail open)", name, err)
		}
		return p, warnings.take()
	}
	var unreachable, remembered int
	var firstDone time.Time
	for i := range 20 {
		_, ws := create(fmt.Sprintf("down-%d", i), fmt.Sprintf("%s/team/app:v%d", bh.Addr, i))
		if i == 0 {
			firstDone = time.Now()
		}
		joined := strings.Join(ws, "\n")
		if strings.Contains(joined, "[unreachable]") {
			unreachable++
		}
		if strings.Contains(joined, "remembered: unreachable for the last") {
			remembered++
		}
		if i < 2 {
			t.Logf("create %d warnings: %q", i, ws)
		}
	}
	conns := bh.Connections()
	t.Logf("20 creates: %d warned unreachable, %d answered from memory, %d connections to the dead registry", unreachable, remembered, conns)
	if unreachable != 20 {
		t.Errorf("%d of 20 creates warned [unreachable], want all (cannot verify, allowed)", unreachable)
	}
	if remembered < 19 {
		t.Errorf("%d of the 19 creates after the first answered from memory", remembered)
	}
	// One lookup per window: go-containerregistry pings a loopback registry
	// over HTTPS and, 300 ms later, HTTP too, so one lookup may open two.
	if conns == 0 || conns > 2 {
		t.Errorf("%d connections reached the dead registry during one window, want one lookup's (1 or 2)", conns)
	}

	// The registry comes back at the same address.
	real, err := b.StartRegistry(ctx, "back")
	if err != nil {
		t.Fatal(err)
	}
	defer real.Stop()
	d, err := b.Push(real, "team/app", "v99", bed.Linux("amd64"), bed.Linux("arm64"))
	if err != nil {
		t.Fatal(err)
	}
	bh.Forward(real.Addr)
	time.Sleep(time.Until(firstDone.Add(window + time.Second)))
	p, ws := create("back", bh.Addr+"/team/app:v99")
	if got, want := p.Spec.Containers[0].Image, bh.Addr+"/team/app:v99@"+d.String(); got != want || len(ws) != 0 {
		t.Errorf("after the registry is back: image %s, warnings %q; want %s checked and pinned, no warning", got, ws, want)
	}
}
