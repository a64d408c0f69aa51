package audit_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// Two replicas, one Lease: only the holder audits; when it stops it
// releases the Lease (ReleaseOnCancel), and the other takes over within a
// retry period rather than the lease duration.
func TestRunnerOneLeaderAndHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a retry period (10s)")
	}
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	cfg := policy.DefaultConfig()
	cfg.Audit.Enabled = true
	cs := k8sfake.NewClientset()
	runner := func(id string) (*audit.Runner, *record.FakeRecorder) {
		checker := newChecker(t, cfg)
		rec := record.NewFakeRecorder(100)
		lock := &resourcelock.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: "pullsafe-system", Name: "pullsafe-audit"},
			Client: cs.CoordinationV1(), LockConfig: resourcelock.ResourceLockConfig{Identity: id}}
		return &audit.Runner{Auditor: newAuditor(t, deployment("shop", "gone", reg.Host+"/team/app:v2", 1), checker, newFakeClock().option()),
			Config: checker.Config, Recorder: rec, Lock: lock}, rec
	}
	a, recA := runner("a")
	b, recB := runner("b")
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Start(ctxA) }()
	select {
	case <-recA.Events:
	case <-time.After(30 * time.Second):
		t.Fatal("replica a: no pass")
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan error, 1)
	go func() { doneB <- b.Start(ctxB) }()
	select {
	case ev := <-recB.Events:
		t.Fatalf("replica b audits while a holds the Lease: %s", ev)
	case <-time.After(3 * time.Second):
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-recB.Events:
		t.Logf("b took over %s after a stopped", time.Since(start).Round(time.Second))
	case <-time.After(25 * time.Second):
		t.Fatal("replica b did not take over within a retry period after a released the Lease")
	}
	stopB()
	<-doneB
}
