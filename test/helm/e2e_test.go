//go:build e2e

package helm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/test/bed"
)

// promOperator is the Prometheus Operator release whose CRDs the API server
// gets; its module zip (from the Go module proxy, cached in GOMODCACHE)
// carries them under example/prometheus-operator-crd.
const promOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

var b *bed.Bed

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	b, err = bed.Start(context.Background(), bed.Options{Config: bed.Config, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the end-to-end test bed did not start: %v\n", err)
		return 1
	}
	defer b.Stop()
	return m.Run()
}

// installCRDs registers the ServiceMonitor and PrometheusRule CRDs.
func installCRDs(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", promOperator).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", promOperator, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", promOperator, err, mod.Error)
	}
	for _, crd := range []string{"servicemonitors", "prometheusrules"} {
		f := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+crd+".yaml")
		// create, not apply: no last-applied annotation (CRDs outgrow its 256 KiB).
		if out, errOut, err := b.Run("", "create", "-f", f); err != nil && !strings.Contains(errOut, "AlreadyExists") {
			t.Fatalf("creating CRD %s: %v\n%s%s", crd, err, out, errOut)
		}
		if out, errOut, err := b.Run("", "wait", "--for=condition=Established", "--timeout=30s", "crd/"+crd+".monitoring.coreos.com"); err != nil {
			t.Fatalf("CRD %s not established: %v\n%s%s", crd, err, out, errOut)
		}
	}
}

// dryRun has the API server validate objs (admission and schema included)
// without storing them. cert-manager's CRDs are not on the bed: its two
// objects are compared with the overlay by TestChartMatchesKustomize only.
func dryRun(t *testing.T, what string, objs []*unstructured.Unstructured) {
	t.Helper()
	var docs []string
	for _, u := range objs {
		if u.GetAPIVersion() == "cert-manager.io/v1" {
			continue
		}
		y, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(y))
	}
	out, errOut, err := b.Run(strings.Join(docs, "---\n"), "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("API server refused %s: %v\n%s%s", what, err, out, errOut)
	}
	if n := strings.Count(out, "(server dry run)"); n != len(docs) {
		t.Errorf("%s: %d of %d objects accepted:\n%s", what, n, len(docs), out)
	}
}

// TestServerDryRun: the real kube-apiserver accepts what `helm install` and
// `kubectl apply -k` would send, ServiceMonitor and PrometheusRule included.
func TestServerDryRun(t *testing.T) {
	if err := b.Namespace(context.Background(), namespace, nil); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	installCRDs(t)
	all := map[string]any{"monitoring": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true},
		"prometheusRule": map[string]any{"enabled": true},
		"dashboard":      map[string]any{"enabled": true}}}
	for name, values := range map[string]map[string]any{
		"chart defaults":     nil,
		"chart, monitoring":  all,
		"chart, enforce":     {"mode": "enforce", "replicas": 3, "priorityClassName": "system-cluster-critical", "image": map[string]any{"repository": "r.example/pullsafe", "tag": "v1", "digest": "sha256:" + strings.Repeat("a", 64)}},
		"chart, certmanager": {"certs": map[string]any{"mode": "cert-manager"}},
		"chart, audit":       {"audit": map[string]any{"enabled": true, "interval": "30m", "requestsPerMinute": 30, "namespaces": []any{"shop"}}},
		"chart, config in the webhooks": {"namespaces": map[string]any{"exclude": []any{"sandbox"}}, "pin": map[string]any{"templates": true},
			"workloads":         []any{map[string]any{"apiGroup": "argoproj.io", "kind": "Rollout", "resource": "rollouts", "podTemplatePath": "spec.template"}},
			"extraVolumes":      []any{map[string]any{"name": "registry-cas", "configMap": map[string]any{"name": "registry-cas"}}},
			"extraVolumeMounts": []any{map[string]any{"name": "registry-cas", "mountPath": "/etc/registry-cas", "readOnly": true}},
			"replicas":          1},
	} {
		t.Run(name, func(t *testing.T) { dryRun(t, name, mustRenderChart(t, values)) })
	}
	t.Run("chart, credential providers", func(t *testing.T) {
		dryRun(t, "chart, credential providers", mustRenderChart(t, providerValues(t, overlayProviderConfig(t), map[string]any{"tokenNamespaces": []any{namespace}})))
	})
	for _, overlay := range []string{"overlays/warn", "overlays/enforce", "overlays/cert-manager", "overlays/monitoring", "overlays/audit", "overlays/credential-providers"} {
		t.Run(overlay, func(t *testing.T) { dryRun(t, overlay, kustomize(t, overlay)) })
	}
}

// rateLimitProxy forwards to the bed's registry, adding Docker Hub's
// RateLimit-Remaining header, so the rate-limit gauge has a series.
func rateLimitProxy(t *testing.T) string {
	t.Helper()
	target, _ := url.Parse("http://" + b.Open.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		r.Header.Set("RateLimit-Remaining", "97;w=21600")
		return nil
	}
	srv := httptest.NewServer(rp) // 127.0.0.1
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestMonitoringNamesExportedMetrics runs pullsafe with its metrics port
// open, sends it traffic (lookups through a registry, a denial, a failed and
// a good config reload, a fail-open at the API server while it restarts),
// scrapes the real /metrics of pullsafe and kube-apiserver, and checks that
// every metric the alerts and the dashboard name is among them.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	ctx := context.Background()
	if _, err := b.Push(b.Open, "team/api", "v1.4.0", bed.Linux("amd64")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetNodes(ctx, "amd64"); err != nil {
		t.Fatal(err)
	}
	if err := b.Namespace(ctx, "monitoring-e2e", nil); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "pullsafe.yaml")
	cfg := strings.Replace(bed.Config, "{{OPEN}}", rateLimitProxy(t), 1)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsPort, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(b.PullsafeURL)
	// Killed, pullsafe cannot delete its out-of-cluster registration: the
	// API server still calls it and fails open, which its own fail-open
	// counter records.
	if err := syscall.Kill(b.Pullsafe.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Pullsafe.Stop()
	if out, errOut, err := b.Run("", "-n", "monitoring-e2e", "run", "failopen", "--image=docker.io/team/api:v1.4.0", "--dry-run=server"); err != nil {
		t.Fatalf("create while pullsafe is down (fail open expected): %v\n%s%s", err, out, errOut)
	}
	p, err := b.RunPullsafe(ctx, "pullsafe-metrics", "--config", cfgFile, "--webhook-url", b.PullsafeURL,
		"--port", u.Port(), "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	b.Pullsafe = p
	if err := b.WaitRegistered(ctx, bed.DevWebhookConfig); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"docker.io/team/api:v1.4.0", "docker.io/team/api:v1.4.0", "docker.io/team/api:no-such-tag"} {
		b.Run("", "-n", "monitoring-e2e", "run", "check", "--image="+img, "--dry-run=server") // denials expected
	}
	// A failed reload, then a good one.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	for _, step := range []struct{ cfg, want string }{
		{cfg + "bogus: 1\n", `pullsafe_config_reloads_total{result="failure"}`},
		{cfg + "outageWindow: 31s\n", `pullsafe_config_reloads_total{result="success"}`},
	} {
		if err := os.WriteFile(cfgFile, []byte(step.cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		want := step.want
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(scrape(t, metricsURL), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after rewriting the config", want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	exported := metricTypes(scrape(t, metricsURL))
	raw, err := b.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("scraping kube-apiserver /metrics: %v", err)
	}
	for name, typ := range metricTypes(string(raw)) {
		if strings.HasPrefix(name, "apiserver_admission_webhook_") {
			exported[name] = typ
		}
	}
	if !strings.Contains(string(raw), `apiserver_admission_webhook_fail_open_count{name="validate.pullsafe.io"`) {
		t.Errorf("kube-apiserver did not count the fail-open of validate.pullsafe.io")
	}

	exprs := monitoringExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in the rules and the dashboard", len(exprs))
	}
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		for _, n := range names {
			if !isExported(exported, n) {
				t.Errorf("%s names %s, which neither pullsafe nor kube-apiserver exports", where, n)
			}
		}
	}
}

// metricTypes reads "# TYPE name type" lines of the text exposition format.
func metricTypes(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// isExported: name is a series of an exported family (histograms: _bucket,
// _sum, _count of a histogram).
func isExported(families map[string]string, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
			return true
		}
	}
	return false
}
