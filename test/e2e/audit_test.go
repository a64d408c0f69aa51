//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// TestAuditFindsImageDeletedAfterAdmission: a Deployment admitted while its
// tag existed, whose tag is then deleted from the registry, gets an
// ImageWouldFailToPull Event from the audit of a serve replica within one
// interval (plus the first-pass delay), within its request budget, whose
// count grows at the next pass instead of a second Event appearing; and
// `pullsafe audit` reports it and exits 1. The bed's controllers make the
// ReplicaSets and Pods.
func TestAuditFindsImageDeletedAfterAdmission(t *testing.T) {
	ctx := context.Background()
	reg, err := b.StartRegistry(ctx, "audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	proxy, err := registrytest.NewCountingProxy(reg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	doomed, err := b.Push(reg, "team/web", "v1", bed.Linux("amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(reg, "team/keep", "v1", bed.Linux("amd64")); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"audit-e2e", "audit-e2e-system"} {
		if err := b.Namespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Admitted by the bed's webhook (enforce) while both tags exist.
	if err := b.RunningDeployment(ctx, "audit-e2e", "web", proxy.Addr+"/team/web:v1", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.RunningDeployment(ctx, "audit-e2e", "keep", proxy.Addr+"/team/keep:v1", 2); err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest(http.MethodDelete, "http://"+reg.Addr+"/v2/team/web/manifests/"+doomed.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting team/web:v1: %s", resp.Status)
	}

	// `pullsafe audit`: one pass, no serve needed.
	out, err := exec.Command(b.PullsafeBin, "audit", "--kubeconfig", b.Kubeconfig, "-n", "audit-e2e", "--requests-per-minute", "600").CombinedOutput()
	t.Logf("pullsafe audit\n%s", out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	mustContain(t, string(out), "deployment/web", "not-found", "5 running pods of 2 workloads audited, 1 workload would fail to pull")
	if strings.Contains(string(out), "deployment/keep") {
		t.Error("deployment/keep reported, its image exists")
	}
	js, _ := exec.Command(b.PullsafeBin, "audit", "--kubeconfig", b.Kubeconfig, "-n", "audit-e2e", "--requests-per-minute", "600", "-o", "json").Output()
	var rep struct {
		Results []struct {
			Workload struct{ Kind, Name string } `json:"workload"`
			Pods     int
		}
	}
	if err := json.Unmarshal(js, &rep); err != nil || len(rep.Results) != 1 || rep.Results[0].Workload.Kind != "Deployment" || rep.Results[0].Pods != 3 {
		t.Errorf("-o json: %v %s", err, js)
	}

	// A serve replica with the audit on: warn mode, so that its webhook
	// registration changes nothing for the other tests meanwhile.
	const perMinute = 30
	cfgFile := filepath.Join(t.TempDir(), "audit.yaml")
	cfg := fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: warn\nregistries: {allowLoopback: true}\n"+
		"audit: {enabled: true, interval: 1m, requestsPerMinute: %d, namespaces: [audit-e2e]}\n", perMinute)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	before := proxy.Total()
	started := time.Now()
	p, err := b.RunPullsafe(ctx, "pullsafe-audit", "--config", cfgFile, "--namespace", "audit-e2e-system",
		"--webhook-url", fmt.Sprintf("https://127.0.0.1:%d", port), "--port", fmt.Sprint(port), "--webhook-config-name", "pullsafe-audit-e2e", "--zap-log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	// First pass 30s after the Lease is won, then every interval.
	deadline := started.Add(30*time.Second + time.Minute + 15*time.Second)
	var ev *corev1.Event
	events := func() []corev1.Event {
		list, err := b.Client.CoreV1().Events("audit-e2e").List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": "Deployment", "involvedObject.name": "web", "reason": "ImageWouldFailToPull"}.String()})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	for ev == nil && time.Now().Before(deadline) {
		if list := events(); len(list) > 0 {
			ev = &list[0]
			break
		}
		time.Sleep(time.Second)
	}
	if ev == nil {
		t.Fatal("no ImageWouldFailToPull Event on deployment/web within one interval")
	}
	elapsed := time.Since(started)
	t.Logf("event after %s: %s %s: %s", elapsed.Round(time.Second), ev.Type, ev.Reason, ev.Message)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "pullsafe: deployment/web would fail to pull 1 image(s)") || !strings.Contains(ev.Message, "[not-found]") {
		t.Errorf("event: %s %q", ev.Type, ev.Message)
	}
	lease, err := b.Client.CoordinationV1().Leases("audit-e2e-system").Get(ctx, "pullsafe-audit", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Errorf("audit Lease: %v", err)
	}
	// The budget: at most 1 + perMinute·T requests (burst 1), plus the
	// extra requests of the one lookup in flight when the bucket ran dry.
	spent := proxy.Total() - before
	bound := 1 + int(float64(perMinute)*elapsed.Minutes()) + 2
	t.Logf("registry requests by the audit replica: %d in %s (budget %d/min: at most %d)", spent, elapsed.Round(time.Second), perMinute, bound)
	if spent > bound {
		t.Errorf("%d registry requests in %s at %d/min, want at most %d", spent, elapsed, perMinute, bound)
	}

	// The next pass finds the same: the Event's count grows, no second
	// Event appears.
	deadline = time.Now().Add(time.Minute + 30*time.Second)
	var list []corev1.Event
	for time.Now().Before(deadline) {
		if list = events(); len(list) != 1 || list[0].Count >= 2 {
			break
		}
		time.Sleep(time.Second)
	}
	if len(list) != 1 || list[0].Count != 2 {
		var counts []int32
		for _, e := range list {
			counts = append(counts, e.Count)
		}
		t.Errorf("after a second pass: %d Events on deployment/web with counts %v, want one with count 2", len(list), counts)
	}
}

// TestAuditCLIForbidden: `pullsafe audit` run by a user who may not list
// Pods says so and exits 2 (cannot audit), never 1, which says an image
// would fail to pull.
func TestAuditCLIForbidden(t *testing.T) {
	cfg, err := clientcmd.LoadFromFile(b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = "pullsafe-e2e-nobody"
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(b.PullsafeBin, "audit", "--kubeconfig", kubeconfig).CombinedOutput()
	t.Logf("pullsafe audit as a user without RBAC\n%s", out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("exit %v, want 2", err)
	}
	mustContain(t, string(out), "forbidden", "list")
}
