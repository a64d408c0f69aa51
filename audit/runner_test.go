package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/tools/record"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// A serve replica's pass ends in a Warning Event on the Deployment and in
// metrics by rule and namespace.
func TestRunnerRecordsEventAndMetrics(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	cfg := policy.DefaultConfig()
	cfg.Audit.Enabled = true
	checker := newChecker(t, cfg)
	objs := append(deployment("shop", "gone", reg.Host+"/team/app:v2", 2), deployment("shop", "web", reg.Host+"/team/app:v1", 1)...)
	a := newAuditor(t, objs, checker, newFakeClock().option())
	promReg := prometheus.NewRegistry()
	m, err := audit.NewMetrics(promReg)
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewFakeRecorder(10)
	r := &audit.Runner{Auditor: a, Config: checker.Config, Recorder: rec, Metrics: m}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	var ev string
	select {
	case ev = <-rec.Events:
	case <-time.After(30 * time.Second):
		t.Fatal("no event after a pass")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev, "Warning ImageWouldFailToPull pullsafe: deployment/gone would fail to pull 1 image(s):") || !strings.Contains(ev, "[not-found]") {
		t.Errorf("event %q", ev)
	}
	want := `
# HELP pullsafe_audit_findings Findings of the last audit pass that would fail a pull, by rule and namespace (namespaces beyond 50 summed as _other).
# TYPE pullsafe_audit_findings gauge
pullsafe_audit_findings{namespace="shop",rule="not-found"} 1
# HELP pullsafe_audit_runs_total Audit passes, by result (success, error).
# TYPE pullsafe_audit_runs_total counter
pullsafe_audit_runs_total{result="success"} 1
# HELP pullsafe_audit_pods Running Pods audited by the last successful pass.
# TYPE pullsafe_audit_pods gauge
pullsafe_audit_pods 3
`
	if err := testutil.GatherAndCompare(promReg, strings.NewReader(want), "pullsafe_audit_findings", "pullsafe_audit_runs_total", "pullsafe_audit_pods"); err != nil {
		t.Error(err)
	}
}
