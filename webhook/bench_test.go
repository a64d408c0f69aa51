package webhook

import (
	"fmt"
	"strings"

	"bytes"
	"context"
	"encoding/json"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// BenchmarkReview covers the shapes admission sees, all with cached images:
// one row per decoded kind (the Pod is BenchmarkReviewCachedPod3), UPDATEs
// with and without an image change, and a 30-container Pod.
func BenchmarkReview(b *testing.B) {
	bd := newBed(b, withNodes("amd64", "amd64", "arm64"), withRollouts(false))
	ctx := context.Background()
	api := bd.open.Host + "/team/api:v1.4.1"

	deploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "api", Image: api}, {Name: "side", Image: bd.open.Host + "/multi/app:v1"}}}}}}
	large := pod("team-a")
	for i := range 30 {
		large.Spec.Containers = append(large.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%02d", i), Image: api,
			Env: []corev1.EnvVar{{Name: "PADDING", Value: strings.Repeat("x", 1500)}}})
	}
	cron := &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly"},
		Spec:       batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: deploy.Spec.Template}}}}
	// A configured kind: Argo Rollouts' Rollout, decoded case-sensitively
	// through its configured path.
	ro := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"namespace": "team-a", "name": "api"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "api", "image": api}, map[string]any{"name": "side", "image": bd.open.Host + "/multi/app:v1"}}}}}}}
	old := pod("team-a", api, "nginx:1.27")
	upd := old.DeepCopy()
	upd.Labels = map[string]string{"rev": "2"}
	// An UPDATE that changes one image: only that one is looked up.
	updImage := old.DeepCopy()
	updImage.Spec.Containers[1].Image = bd.open.Host + "/multi/app:v1"

	cases := []struct {
		name string
		req  admission.Request
	}{
		{"Deployment", request(b, admissionv1.Create, deploy, nil, "")},
		{"Pod30Containers", request(b, admissionv1.Create, large, nil, "")},
		{"UpdateNoImageChange", request(b, admissionv1.Update, upd, old, "")},
		{"UpdateImageChange", request(b, admissionv1.Update, updImage, old, "")},
		{"CronJob", request(b, admissionv1.Create, cron, nil, "")},
		{"CustomKindRollout", request(b, admissionv1.Create, ro, nil, "")},
	}
	for _, c := range cases {
		bd.validate.Handle(ctx, c.req) // warm
		b.Run(c.name, func(b *testing.B) {
			b.ReportMetric(float64(len(c.req.Object.Raw)), "object-bytes")
			b.ReportAllocs()
			for b.Loop() {
				if resp := bd.validate.Handle(ctx, c.req); !resp.Allowed {
					b.Fatal(resp.Result)
				}
			}
		})
	}
}

// BenchmarkReviewCachedPod3 is one review of a 3-container Pod whose images
// are all cached: what every pod create of a running workload costs.
func BenchmarkReviewCachedPod3(b *testing.B) {
	bd := newBed(b, withNodes("amd64", "amd64", "arm64"))
	p := pod("team-a", bd.open.Host+"/team/api:v1.4.1", bd.open.Host+"/multi/app:v1", "nginx:1.27")
	req := request(b, admissionv1.Create, p, nil, "")
	ctx := context.Background()
	bd.validate.Handle(ctx, req) // warm the caches

	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if resp := bd.validate.Handle(ctx, req); !resp.Allowed {
				b.Fatal(resp.Result)
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: typeMetaReview, Request: &req.AdmissionRequest})
		h := WithRequestDeadline(NewReviews(bd.validate, logr.Discard()))
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/validate?timeout=10s", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Body.String())
			}
		}
	})
}

var typeMetaReview = metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}
