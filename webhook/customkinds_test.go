package webhook

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
)

// withRollouts configures Argo Rollouts' Rollout as a workload kind.
func withRollouts(pinTemplates bool) bedOpt {
	return func(cfg *policy.Config, _ *[]client.Object) {
		cfg.Pin.Templates = pinTemplates
		cfg.Workloads = []policy.WorkloadKind{{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts",
			APIVersions: []string{"v1alpha1"}, PodTemplatePath: "spec.template"}}
	}
}

// rollout is an object shaped like Argo's Rollout, of any apiVersion and
// kind, with a pod template holding spec.
func rollout(t *testing.T, apiVersion, kind string, spec corev1.PodSpec) *unstructured.Unstructured {
	t.Helper()
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var podSpec map[string]any
	if err := json.Unmarshal(specJSON, &podSpec); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": "api", "namespace": "team-a"},
		"spec": map[string]any{"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": 20}}}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "api"}}, "spec": podSpec}}}}
}

// TestCustomKindIsCheckedLikeADeployment: a configured Rollout with a tag
// that does not exist is denied with the Deployment's words; its template
// takes the service account's pull secrets; it is pinned only with
// pin.templates, at the configured path.
func TestCustomKindIsCheckedLikeADeployment(t *testing.T) {
	b := newBed(t, withNodes("amd64"), withRollouts(false))
	bad := corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: b.open.Host + "/team/api:v1.4.2"}}}
	deploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: bad}}}
	dResp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, deploy, nil, ""))
	rResp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, rollout(t, "argoproj.io/v1alpha1", "Rollout", bad), nil, ""))
	if rResp.Allowed || dResp.Allowed {
		t.Fatalf("allowed: rollout %v, deployment %v", rResp.Allowed, dResp.Allowed)
	}
	if want := strings.ReplaceAll(dResp.Result.Message, "deployment/api", "rollout/api"); rResp.Result.Message != want || want == dResp.Result.Message {
		t.Errorf("the Rollout's denial differs from the Deployment's:\n%s\nwant:\n%s", rResp.Result.Message, want)
	}
	if !strings.Contains(rResp.Result.Message, "nearest tags: v1.4.1, v1.4.0") {
		t.Errorf("denial = %s", rResp.Result.Message)
	}

	// Template credentials: the service account's pull secret.
	private := corev1.PodSpec{ServiceAccountName: "builder", Containers: []corev1.Container{{Name: "api", Image: b.private.Host + "/team/secret:v1",
		ImagePullPolicy: corev1.PullAlways}}}
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, rollout(t, "argoproj.io/v1alpha1", "Rollout", private), nil, "")); !resp.Allowed {
		t.Errorf("service account's secret not used: %s", resp.Result.Message)
	}
	noSA := private
	noSA.ServiceAccountName = ""
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, rollout(t, "argoproj.io/v1alpha1", "Rollout", noSA), nil, "")); resp.Allowed {
		t.Error("private image without credentials allowed")
	}

	good := corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: b.open.Host + "/team/api:v1.4.1"}}}
	req := request(t, admissionv1.Create, rollout(t, "argoproj.io/v1alpha1", "Rollout", good), nil, "")
	if resp := b.mutate.Handle(context.Background(), req); len(resp.Patches) != 0 {
		t.Errorf("pin.templates off, yet patched: %+v", resp.Patches)
	}
	pinning := newBed(t, withNodes("amd64"), withRollouts(true))
	req = request(t, admissionv1.Create, rollout(t, "argoproj.io/v1alpha1", "Rollout", corev1.PodSpec{
		Containers: []corev1.Container{{Name: "api", Image: pinning.open.Host + "/team/api:v1.4.1"}}}), nil, "")
	resp := pinning.mutate.Handle(context.Background(), req)
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/template/spec/containers/0/image" {
		t.Fatalf("patches = %+v", resp.Patches)
	}
	patched := applyPatch(t, resp, req.Object.Raw)
	var got unstructured.Unstructured
	if err := got.UnmarshalJSON(patched); err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
	if img := cs[0].(map[string]any)["image"].(string); !regexp.MustCompile(`/team/api:v1\.4\.1@sha256:[0-9a-f]{64}$`).MatchString(img) {
		t.Errorf("pinned image = %q", img)
	}
	if steps, _, _ := unstructured.NestedSlice(got.Object, "spec", "strategy", "canary", "steps"); len(steps) != 1 {
		t.Error("fields pullsafe does not know were lost")
	}
}

// applyPatch applies the response's JSON patch to raw, as the API server does.
func applyPatch(t *testing.T, resp admission.Response, raw []byte) []byte {
	t.Helper()
	patchJSON, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	return patched
}

// TestOtherGroupsAndSubresourcesAreLeftAlone: a CRD named Deployment (or a
// Rollout of another group) is not read as the kind it is named like, and a
// subresource of a configured kind is never looked up.
func TestOtherGroupsAndSubresourcesAreLeftAlone(t *testing.T) {
	b := newBed(t, withNodes("amd64"), withRollouts(false))
	bad := corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: b.open.Host + "/team/api:v1.4.2"}}}
	for _, tt := range []struct {
		name        string
		obj         *unstructured.Unstructured
		subresource string
	}{
		{"Deployment of another group", rollout(t, "deploy.example.com/v1", "Deployment", bad), ""},
		{"Rollout of another group", rollout(t, "example.com/v1", "Rollout", bad), ""},
		{"rollouts/scale", rollout(t, "argoproj.io/v1alpha1", "Rollout", bad), "scale"},
		{"rollouts/status", rollout(t, "argoproj.io/v1alpha1", "Rollout", bad), "status"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, tt.obj, nil, tt.subresource))
			if !resp.Allowed || len(resp.Warnings) != 0 || len(resp.AuditAnnotations) != 0 {
				t.Errorf("allowed %v, warnings %v, annotations %v: want allowed untouched", resp.Allowed, resp.Warnings, resp.AuditAnnotations)
			}
		})
	}
	// A configured path that holds something else than an object: allowed,
	// with a warning naming the path and the config entry.
	odd := rollout(t, "argoproj.io/v1alpha1", "Rollout", bad)
	odd.Object["spec"].(map[string]any)["template"] = "blue"
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, odd, nil, ""))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "spec.template is a string, not an object") ||
		!strings.Contains(resp.Warnings[0], "argoproj.io/Rollout, podTemplatePath") {
		t.Errorf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
}
