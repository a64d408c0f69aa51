package webhook

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestSecretCreatedAfterDenialWorksNextApply: a pod denied because its pull
// secret is missing is admitted on the very next review once the secret
// exists — the absence was not cached.
func TestSecretCreatedAfterDenialWorksNextApply(t *testing.T) {
	b := newBed(t)
	p := pod("team-a", b.private.Host+"/team/secret:v1")
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "late"}}
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `"late" referenced by the pod do not exist`) {
		t.Fatalf("before the secret exists: %+v", resp.Result)
	}
	c := b.cluster.direct.(client.Client)
	if err := c.Create(context.Background(), pullSecret("team-a", "late", b.private.Host, b.private.User, b.private.Pass)); err != nil {
		t.Fatal(err)
	}
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); !resp.Allowed {
		t.Errorf("the next review after creating the secret: %+v", resp.Result)
	}
}

// TestSecretCorrectedAfterDenialWorksNextApply: a pod denied because its
// pull secret holds a wrong password is admitted on the very next review
// once the secret is corrected — the kubelet watches the secrets its pods
// use, so a stale copy here would be a false denial.
func TestSecretCorrectedAfterDenialWorksNextApply(t *testing.T) {
	b := newBed(t)
	p := pod("team-a", b.private.Host+"/team/secret:v1")
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "stale"}}
	c := b.cluster.direct.(client.Client)
	s := pullSecret("team-a", "stale", b.private.Host, b.private.User, "wrong-password")
	if err := c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[unauthorized]") {
		t.Fatalf("with the wrong password: %+v", resp.Result)
	}
	fixed := pullSecret("team-a", "stale", b.private.Host, b.private.User, b.private.Pass)
	fixed.ResourceVersion = ""
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(s), s); err != nil {
		t.Fatal(err)
	}
	s.Data = fixed.Data
	if err := c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); !resp.Allowed {
		t.Errorf("the next review after correcting the secret: %+v", resp.Result)
	}
}

// TestConcurrentSecretReadsShareOneGet: while one GET of a secret is in
// flight, every other review naming it waits for that answer instead of
// sending its own; and an absence is asked again next time, not remembered.
func TestConcurrentSecretReadsShareOneGet(t *testing.T) {
	var gets atomic.Int32
	inFlight, release := make(chan struct{}, 100), make(chan struct{})
	fc := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets.Add(1)
			inFlight <- struct{}{}
			<-release
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	c := NewClientCluster(fc, fc)
	var started, done sync.WaitGroup
	for range 20 {
		started.Add(1)
		done.Go(func() {
			started.Done()
			if s, err := c.Secret(context.Background(), "team-a", "absent"); s != nil || err != nil {
				t.Errorf("absent secret: %v, %v", s, err)
			}
		})
	}
	started.Wait()
	<-inFlight
	// Give the other 19 every chance to send their own GET: without
	// coalescing they would all be blocked in Get by now.
	for range 100 {
		runtime.Gosched()
	}
	time.Sleep(20 * time.Millisecond)
	if n := gets.Load(); n != 1 {
		t.Errorf("%d GETs in flight for one secret, want 1", n)
	}
	close(release)
	done.Wait()
	before := gets.Load()
	if s, _ := c.Secret(context.Background(), "team-a", "absent"); s != nil || gets.Load() != before+1 {
		t.Errorf("absence was cached: %d GETs after %d", gets.Load(), before)
	}
}

// TestPanickingSecretGetFailsOpen: a panic inside the shared GET (a client
// bug, a hostile object's conversion) must reach the caller as an error; the
// singleflight would otherwise re-panic it in a goroutine of its own, where
// no recover reaches, and take the process down with every review in flight.
func TestPanickingSecretGetFailsOpen(t *testing.T) {
	fc := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			panic("boom")
		}}).Build()
	c := NewClientCluster(fc, fc)
	var done sync.WaitGroup
	for range 5 {
		done.Go(func() {
			if s, err := c.Secret(context.Background(), "team-a", "x"); s != nil || err == nil || !strings.Contains(err.Error(), "boom") {
				t.Errorf("panicking GET: %v, %v; want an error naming the panic", s, err)
			}
		})
	}
	done.Wait()
}
