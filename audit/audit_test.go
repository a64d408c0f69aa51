package audit_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/webhook"
)

// deployment returns a Deployment, its ReplicaSet and n Pods, linked by
// controller ownerReferences as the controllers would link them.
func deployment(ns, name, image string, n int) []client.Object {
	yes := true
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abc", UID: types.UID("uid-rs-" + name),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: &yes}}}}
	objs := []client.Object{d, rs}
	for i := range n {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abc-" + string(rune('a'+i)), UID: types.UID(name + string(rune('a'+i))),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		})
	}
	return objs
}

func newAuditor(t *testing.T, objs []client.Object, checker *policy.Checker, opts ...audit.Option) *audit.Auditor {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
	return audit.New(c, webhook.NewClientCluster(c, c), func() *policy.Checker { return checker }, "pullsafe-system", opts...)
}

func newChecker(t *testing.T, cfg *policy.Config) *policy.Checker {
	t.Helper()
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return policy.NewChecker(cfg, res)
}

func TestPassFindsMissingTagOnDeployment(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	objs := append(deployment("shop", "web", reg.Host+"/team/app:v1", 3), deployment("shop", "gone", reg.Host+"/team/app:v2", 4)...)
	objs = append(objs, deployment("kube-system", "sys", reg.Host+"/team/app:v3", 1)...)
	a := newAuditor(t, objs, newChecker(t, policy.DefaultConfig()), newFakeClock().option())
	r, err := a.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Owner audit.Owner
		Pods  int
		Rules []policy.Rule
	}
	var got []row
	for _, res := range r.Results {
		x := row{Owner: res.Owner, Pods: res.Pods}
		for _, f := range res.Findings {
			x.Rules = append(x.Rules, f.Rule)
		}
		got = append(got, x)
		if !strings.Contains(res.Message, "deployment/gone would fail to pull") {
			t.Errorf("message does not name the workload as admission would: %q", res.Message)
		}
	}
	want := []row{{Owner: audit.Owner{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "gone", UID: "uid-gone"}, Pods: 4,
		Rules: []policy.Rule{policy.RuleNotFound}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if r.Pods != 7 || r.Workloads != 2 {
		t.Errorf("audited %d pods of %d workloads, want 7 of 2 (kube-system skipped)", r.Pods, r.Workloads)
	}
	// Each distinct image once, not once per Pod.
	if n := reg.Count(http.MethodHead, "/manifests/v2"); n != 1 {
		t.Errorf("%d HEADs of app:v2 for 4 pods, want 1", n)
	}
	if n := reg.Count(http.MethodGet, "/manifests/v1"); n != 0 {
		t.Errorf("%d manifest GETs, want HEAD only", n)
	}
}

// fakeClock is a clock whose sleeps advance it at once and are counted.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps int
	onWait func() // called on each sleep, outside the lock
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps++
	f := c.onWait
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return ctx.Err()
}

func (c *fakeClock) option() audit.Option { return audit.WithClock(c.now, c.sleep) }

// The budget holds: over the pass's (fake) time T the registry sees at most
// 1 + perMinute·T/1m requests, plus the extra requests of one lookup.
func TestPassKeepsBudget(t *testing.T) {
	reg := registrytest.New(t)
	var objs []client.Object
	for i := range 20 {
		tag := "t" + string(rune('a'+i))
		reg.Image("team/app", tag, "linux", "amd64")
		objs = append(objs, deployment("shop", "web"+tag, reg.Host+"/team/app:"+tag, 2)...)
	}
	reg.Reset()
	cfg := policy.DefaultConfig()
	cfg.Audit.RequestsPerMinute = 6
	clock := newFakeClock()
	start := clock.now()
	r, err := newAuditor(t, objs, newChecker(t, cfg), clock.option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Failing() {
		t.Fatalf("unexpected findings: %+v", r.Results)
	}
	requests := reg.Count("", "")
	elapsed := clock.now().Sub(start)
	bound := 1 + int(float64(cfg.Audit.RequestsPerMinute)*elapsed.Minutes()) + 2
	if requests < 20 || requests > bound {
		t.Errorf("%d registry requests in %s at %d/min: want 20 (one per image) to %d", requests, elapsed, cfg.Audit.RequestsPerMinute, bound)
	}
	if elapsed < time.Minute {
		t.Errorf("20 lookups at 6/min took %s: the budget did not hold the audit back", elapsed)
	}
}

// Admission goes first: while an admission lookup is in flight the audit
// sends nothing, and it goes on once admission is done.
func TestPassWaitsForAdmission(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	checker := newChecker(t, policy.DefaultConfig())
	stop, admitted := slowAdmission(t, reg, checker)
	clock := newFakeClock()
	var auditWhileAdmission atomic.Int64
	auditWhileAdmission.Store(-1)
	clock.onWait = func() {
		if clock.sleeps == 3 { // read under no lock: only this goroutine sleeps
			auditWhileAdmission.Store(int64(reg.CountPath(http.MethodHead, "/v2/team/app/manifests/v1")))
			stop()
		}
	}
	r, err := newAuditor(t, deployment("shop", "web", reg.Host+"/team/app:v1", 2), checker, clock.option()).Pass(context.Background())
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if v := <-admitted; v.Decision() == policy.DecisionDeny {
		t.Errorf("admission: %v %+v", v.Decision(), v.Findings)
	}
	if n := auditWhileAdmission.Load(); n != 0 {
		t.Errorf("the audit sent %d lookups while an admission lookup was in flight, want 0 (-1: it never waited)", n)
	}
	if n := reg.CountPath(http.MethodHead, "/v2/team/app/manifests/v1"); n != 1 || r.Failing() {
		t.Errorf("after admission: %d audit HEADs, findings %+v; want 1, none", n, r.Results)
	}
}
