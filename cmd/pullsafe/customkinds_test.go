package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// widgets is the config of the custom-kind tests: a Rollout-like CRD.
const widgets = `apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: enforce
workloads:
- {apiGroup: example.com, kind: Widget, resource: widgets, apiVersions: [v1], podTemplatePath: spec.template}
`

func widget(name, image string) string {
	return "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: " + name + ", namespace: shop}\n" +
		"spec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers:\n" +
		"      - {name: app, image: " + image + ", imagePullPolicy: Always}\n"
}

// TestCheckAndWebhookAgreeOnCustomKinds: `pullsafe check --config` reads
// the config's workloads as the webhook does: the same denial for a Widget
// with a tag that does not exist, a good one allowed, and a CRD named
// Deployment of another group not checked (nor an error).
func TestCheckAndWebhookAgreeOnCustomKinds(t *testing.T) {
	b := newCheckBed(t)
	cfgFile := filepath.Join(t.TempDir(), "pullsafe.yaml")
	if err := os.WriteFile(cfgFile, []byte(widgets), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := widget("typo", b.open.Host+"/team/api:v1.4.2")
	other := "apiVersion: deploy.example.com/v1\nkind: Deployment\nmetadata: {name: release}\nspec: {template: blue-green}\n"
	stdin := bad + "---\n" + widget("good", b.open.Host+"/team/api:v1.4.1") + "---\n" + other

	out, errOut, code := runCheck(t, stdin, "-f", "-", "--config", cfgFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "shop/widget/typo: DENY") || !strings.Contains(out, "shop/widget/good: ok") ||
		!strings.Contains(out, "2 workloads checked: 1 would be denied, 0 warned, 1 allowed") {
		t.Errorf("check output:\n%s", out)
	}
	// Without the config, Widgets are not workloads: nothing checked.
	if out, errOut, code := runCheck(t, stdin, "-f", "-"); code != 0 || !strings.Contains(out, "0 workloads checked") {
		t.Errorf("without the config: exit %d\n%s%s", code, out, errOut)
	}

	// --pin (with pin.templates) rewrites the image at the configured path.
	pinCfg := filepath.Join(t.TempDir(), "pin.yaml")
	if err := os.WriteFile(pinCfg, []byte(widgets+"pin: {templates: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pinned, errOut, code := runCheck(t, widget("good", b.open.Host+"/team/api:v1.4.1"), "-f", "-", "--config", pinCfg, "--pin")
	if code != 0 || !regexp.MustCompile(`image: '?127\.0\.0\.1:\d+/team/api:v1\.4\.1@sha256:[0-9a-f]{64}`).MatchString(pinned) {
		t.Errorf("--pin: exit %d\n%s%s", code, pinned, errOut)
	}

	cfg, err := policy.ParseConfig([]byte(widgets))
	if err != nil {
		t.Fatal(err)
	}
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}).Build()
	h := webhook.NewHandler(policy.NewChecker(cfg, res), webhook.NewClientCluster(c, c), false, "", nil)
	raw, err := yaml.YAMLToJSON([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, Namespace: "shop",
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}})
	if resp.Allowed {
		t.Fatal("webhook allowed the Widget")
	}
	if !strings.Contains(out, indent(resp.Result.Message)) {
		t.Errorf("check and webhook differ.\nwebhook:\n%s\ncheck:\n%s", resp.Result.Message, out)
	}
	if !strings.Contains(resp.Result.Message, `widget/typo`) || !strings.Contains(resp.Result.Message, "nearest tags: v1.4.1, v1.4.0") {
		t.Errorf("unexpected denial: %s", resp.Result.Message)
	}
}

// TestCheckAllowsUndecodableCustomObject: a Widget whose template path
// holds no object (another version's shape, a CRD this config does not
// fit) is admitted by the webhook with a warning ("allowed unchecked");
// check says the same and goes on with the other objects, not exit 2.
func TestCheckAllowsUndecodableCustomObject(t *testing.T) {
	b := newCheckBed(t)
	cfgFile := filepath.Join(t.TempDir(), "pullsafe.yaml")
	if err := os.WriteFile(cfgFile, []byte(widgets), 0o644); err != nil {
		t.Fatal(err)
	}
	odd := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: odd, namespace: shop}\nspec: {template: blue-green}\n"
	stdin := odd + "---\n" + widget("typo", b.open.Host+"/team/api:v1.4.2")
	out, errOut, code := runCheck(t, stdin, "-f", "-", "--config", cfgFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the typo denied, the odd one allowed)\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "shop/widget/odd: ") || !strings.Contains(out, "spec.template is a string, not an object") ||
		!strings.Contains(out, "allowed unchecked") || !strings.Contains(out, "shop/widget/typo: DENY") {
		t.Errorf("check output:\n%s%s", out, errOut)
	}
	if _, _, code := runCheck(t, odd, "-f", "-", "--config", cfgFile); code != 0 {
		t.Errorf("the odd Widget alone: exit %d, want 0", code)
	}
}
