package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

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
		h := WithRequestDeadline(&admission.Webhook{Handler: bd.validate})
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
