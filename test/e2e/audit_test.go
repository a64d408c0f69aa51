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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// TestAuditFindsImageDeletedAfterAdmission: a Deployment admitted while its
// tag existed, whose tag is then deleted from the registry, gets an
// ImageWouldFailToPull Event from the audit of a serve replica within one
// interval (plus the first-pass delay), within its request budget; and
// `pullsafe audit` reports it and exits 1. No controller-manager runs in the
// bed, so the test creates the ReplicaSet and Pods as the controllers would.
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
	runningDeployment(t, ctx, "audit-e2e", "web", proxy.Addr+"/team/web:v1", 3)
	runningDeployment(t, ctx, "audit-e2e", "keep", proxy.Addr+"/team/keep:v1", 2)

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
	before := proxyTotal(proxy)
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
	for ev == nil && time.Now().Before(deadline) {
		list, err := b.Client.CoreV1().Events("audit-e2e").List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": "Deployment", "involvedObject.name": "web", "reason": "ImageWouldFailToPull"}.String()})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) > 0 {
			ev = &list.Items[0]
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
	spent := proxyTotal(proxy) - before
	bound := 1 + int(float64(perMinute)*elapsed.Minutes()) + 2
	t.Logf("registry requests by the audit replica: %d in %s (budget %d/min: at most %d)", spent, elapsed.Round(time.Second), perMinute, bound)
	if spent > bound {
		t.Errorf("%d registry requests in %s at %d/min, want at most %d", spent, elapsed, perMinute, bound)
	}
}

func proxyTotal(p *registrytest.CountingProxy) int {
	n := 0
	for _, c := range p.Counts() {
		n += c
	}
	return n
}

// runningDeployment creates a Deployment, its ReplicaSet and n Pods linked
// by controller ownerReferences, as the controllers would.
func runningDeployment(t *testing.T, ctx context.Context, ns, name, image string, n int) {
	t.Helper()
	yes := true
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	d, err := b.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := b.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-7d4b9",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", rs.Name, i), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Spec: tmpl.Spec}
		if _, err := b.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
