package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// TestCheckImageVolumesAndSidecarsSayTheSame: a Pod and a Deployment whose
// image volume's tag does not exist, with a sidecar, get the same words
// from `pullsafe check` as from the webhook, and -o json says what each
// finding is about; --pin pins a good volume's reference in a Pod.
func TestCheckImageVolumesAndSidecarsSayTheSame(t *testing.T) {
	b := newCheckBed(t)
	always := corev1.ContainerRestartPolicyAlways
	spec := func(volume string) corev1.PodSpec {
		return corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "log", Image: b.open.Host + "/team/api:v1.4.9", RestartPolicy: &always}},
			Containers: []corev1.Container{{Name: "api", Image: b.open.Host + "/team/api:v1.4.1", ImagePullPolicy: corev1.PullAlways,
				VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: "/models"}}}},
			Volumes: []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: volume}}}}}
	}
	missing := b.open.Host + "/team/api:v1.4.2"
	objs := []runtime.Object{
		&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: spec(missing)},
		&appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: spec(missing)}}},
	}
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "default"}}).Build()
	h := webhook.NewHandler(policy.NewChecker(cfg, res), webhook.NewClientCluster(c, c), false, "", nil)
	var stdin []string
	for _, obj := range objs {
		data, _ := json.Marshal(obj)
		stdin = append(stdin, string(data))
		gvk := obj.GetObjectKind().GroupVersionKind()
		resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Kind: metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}, Namespace: "shop",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: data}}})
		if resp.Allowed || !strings.Contains(resp.Result.Message, `[not-found] volume "models" image "`+missing+`"`) ||
			!strings.Contains(resp.Result.Message, `[not-found] sidecar container "log"`) {
			t.Fatalf("%s: webhook: %+v", gvk.Kind, resp.Result)
		}
		out, errOut, code := runCheck(t, string(data), "-f", "-", "--namespace", "shop")
		if code != 1 || !strings.Contains(out, indent(resp.Result.Message)) {
			t.Errorf("%s: check (exit %d) and webhook differ.\nwebhook:\n%s\ncheck:\n%s%s", gvk.Kind, code, resp.Result.Message, out, errOut)
		}
	}

	js, _, _ := runCheck(t, strings.Join(stdin, "\n"), "-f", "-", "--namespace", "shop", "-o", "json")
	var results []jsonResult
	if err := json.Unmarshal([]byte(js), &results); err != nil {
		t.Fatalf("-o json: %v\n%s", err, js)
	}
	var got []string
	for _, r := range results {
		for _, f := range r.Findings {
			got = append(got, r.Object+" "+string(f.Rule)+" "+string(f.Source)+" "+f.Container)
		}
	}
	want := []string{"pod/web not-found sidecar container log", "pod/web not-found volume models",
		"deployment/api not-found sidecar container log", "deployment/api not-found volume models"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("JSON findings (-want +got):\n%s", d)
	}

	// A good volume is pinned in the Pod's file.
	good := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: " + b.open.Host + "/team/api:v1.4.1@sha256:" +
		strings.Repeat("0", 64) + ", imagePullPolicy: Never}]\n  volumes:\n  - name: models\n    image: {reference: " + b.open.Host + "/team/api:v1.4.1}\n"
	out, errOut, code := runCheck(t, good, "-f", "-", "--pin")
	if code != 0 || !regexp.MustCompile(`reference: '?127\.0\.0\.1:\d+/team/api:v1\.4\.1@sha256:[0-9a-f]{64}`).MatchString(out) {
		t.Errorf("--pin: exit %d\n%s%s", code, out, errOut)
	}
}
