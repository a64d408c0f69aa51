//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/test/bed"
	"github.com/pullsafe/pullsafe/webhook"
)

// widgetCRD is a Rollout-like custom resource: a pod template at
// spec.template, anything else in spec preserved.
const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
`

const widgetWorkloads = `workloads:
- apiGroup: example.com
  kind: Widget
  resource: widgets
  apiVersions: [v1]
  podTemplatePath: spec.template
`

func widgetYAML(ns, name, image string) string {
	return fmt.Sprintf(`apiVersion: example.com/v1
kind: Widget
metadata: {name: %s, namespace: %s}
spec:
  replicas: 2
  strategy: {canary: {steps: [{setWeight: 20}]}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: api, image: %s}]
`, name, ns, name, image)
}

func deploymentYAML(ns, name, image string) string {
	return deploymentWithPodSpec(ns, name, fmt.Sprintf("      containers: [{name: %s, image: %s}]\n", name, image))
}

// deploymentWithPodSpec is a Deployment whose template's pod spec is podSpec,
// written indented by six spaces.
func deploymentWithPodSpec(ns, name, podSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
`, name, ns, name, name) + podSpec
}

// TestCustomKindIsRefusedAtApply: a CRD registered on the real API server
// and named in the config's workloads is checked like a Deployment: a bad
// template image is refused at `kubectl apply` with the Deployment's words,
// a good one is admitted, and `pullsafe check` on the same file agrees.
func TestCustomKindIsRefusedAtApply(t *testing.T) {
	ctx := context.Background()
	const ns = "widgets-e2e"
	if _, errOut, err := b.Run(widgetCRD, "apply", "-f", "-"); err != nil {
		t.Fatalf("creating the CRD: %s", errOut)
	}
	t.Cleanup(func() { b.Run("", "delete", "crd", "widgets.example.com", "--wait=false") })
	if _, errOut, err := b.Run("", "wait", "--for", "condition=Established", "--timeout", "30s", "crd/widgets.example.com"); err != nil {
		t.Fatalf("CRD not established: %s", errOut)
	}
	if err := b.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	// The served-kind check against the real API server's discovery: the
	// right entry is quiet, a resource typo and an unserved version are named.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		mapper, err := apiutil.NewDynamicRESTMapper(b.RestConfig(), mustHTTPClient(t, b.RestConfig()))
		if err != nil {
			return false, err
		}
		right := policy.WorkloadKind{APIGroup: "example.com", Kind: "Widget", Resource: "widgets", APIVersions: []string{"v1"}, PodTemplatePath: "spec.template"}
		typo, version, kind, group := right, right, right, right
		typo.Resource, version.APIVersions, kind.Kind, group.APIGroup = "widget", []string{"v2"}, "Widgit", "example.org"
		got := webhook.UnservedWorkloads(mapper, []policy.WorkloadKind{right, typo, version, kind, group})
		t.Logf("served-kind check: %q", got)
		return len(got) == 4 && strings.Contains(got[0], `served as resource "widgets", not "widget"`) && strings.Contains(got[1], "served versions [v1]") &&
			strings.Contains(got[2], "(Widgit.example.com): the API server serves no such kind") && strings.Contains(got[3], "(Widget.example.org): the API server serves no such kind"), nil
	}); err != nil {
		t.Fatalf("UnservedWorkloads against the real API server: %v", err)
	}

	// A second pullsafe with the bed's policy plus the workloads section,
	// under its own webhook configurations (removed when it stops).
	cfgFile := filepath.Join(t.TempDir(), "pullsafe.yaml")
	cfg := strings.ReplaceAll(bed.Config, "{{OPEN}}", b.Open.Addr) + widgetWorkloads
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const name = "pullsafe-widgets"
	p, err := b.RunPullsafe(ctx, name, "--config", cfgFile, "--webhook-url", fmt.Sprintf("https://127.0.0.1:%d", port),
		"--port", fmt.Sprint(port), "--webhook-config-name", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// It removes its configurations as it exits; make sure, so no
		// later test is reviewed by a webhook that is gone.
		p.Stop()
		adm := b.Client.AdmissionregistrationV1()
		if err := adm.ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{}); err == nil {
			t.Errorf("%s left its validating webhook configuration behind", name)
		}
		_ = adm.MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	})
	var rules []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v, err := b.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, r := range v.Webhooks[0].Rules {
				rules = append(rules, strings.Join(r.APIGroups, ",")+"/"+strings.Join(r.APIVersions, ",")+"/"+strings.Join(r.Resources, ","))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never registered: %v", name, err)
		}
	}
	if !strings.Contains(strings.Join(rules, " "), "example.com/v1/widgets") {
		t.Fatalf("validating rules lack example.com/v1/widgets: %v", rules)
	}

	img := b.Open.Addr + "/team/api:v1.4.2"
	bad := widgetYAML(ns, "api", img)
	// The API server picks up a new webhook configuration within moments.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, err := b.Run(bad, "apply", "--dry-run=server", "-f", "-"); err != nil {
			break
		}
	}
	out, ok := apply(t, bad)
	if ok {
		t.Fatal("a Widget with a tag that does not exist was admitted")
	}
	mustContain(t, out, `denied the request`, "widget/api", `container "api"`, `image "`+img+`"`, "manifest unknown",
		"nearest tags: v1.4.1, v1.4.0")
	// The same template in a Deployment: the same words but the object's name.
	dOut, ok := apply(t, deploymentYAML(ns, "api", img))
	if ok {
		t.Fatal("Deployment admitted")
	}
	denial := func(s string) string { _, after, _ := strings.Cut(s, "denied the request: "); return after }
	if got, want := denial(out), strings.ReplaceAll(denial(dOut), "deployment/api", "widget/api"); got != want || got == "" {
		t.Errorf("the Widget's denial differs from the Deployment's:\n%s\nwant:\n%s", got, want)
	}

	good := widgetYAML(ns, "good", b.Open.Addr+"/team/api:v1.4.1")
	if out, ok := apply(t, good); !ok {
		t.Fatalf("a good Widget was refused:\n%s", out)
	}

	// UPDATE is checked too: the good Widget's template moved to the bad tag.
	if out, ok := apply(t, widgetYAML(ns, "good", img)); ok || !strings.Contains(out, "widget/good would fail to pull") {
		t.Errorf("an update to a bad tag was not refused:\n%s", out)
	}

	// pullsafe check on the same file, with the same config.
	file := filepath.Join(t.TempDir(), "widgets.yaml")
	if err := os.WriteFile(file, []byte(bad+"---\n"+good), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.PullsafeBin, "check", "-f", file, "--config", cfgFile, "--kubeconfig", b.Kubeconfig)
	checkOut, err := cmd.CombinedOutput()
	t.Logf("pullsafe check\n%s", checkOut)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("pullsafe check: exit %v, want 1", err)
	}
	mustContain(t, string(checkOut), ns+"/widget/api: DENY", "2 workloads checked: 1 would be denied")
	for _, line := range strings.Split(strings.TrimSpace(denial(out)), "\n") {
		if !strings.Contains(string(checkOut), strings.TrimSpace(line)) {
			t.Errorf("pullsafe check lacks the webhook's line %q", line)
		}
	}
}

func mustHTTPClient(t *testing.T, cfg *rest.Config) *http.Client {
	t.Helper()
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
