package webhook

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
)

// TestReviewDurationHistogram: every answered review is observed once, by
// webhook and kind, as the API server's apiserver_admission_webhook_* and
// Kyverno's admission review histograms are.
func TestReviewDurationHistogram(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	validate := NewHandler(b.checker, b.cluster, false, "", m)
	mutate := NewHandler(b.checker, b.cluster, true, "", m)
	req := request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.2"), nil, "")
	validate.Handle(context.Background(), req)
	validate.Handle(context.Background(), req)
	mutate.Handle(context.Background(), req)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "pullsafe_admission_review_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["webhook"]+"/"+l["kind"]] = s.GetHistogram().GetSampleCount()
		}
	}
	if got["validate/Pod"] != 2 || got["mutate/Pod"] != 1 || len(got) != 2 {
		t.Errorf("pullsafe_admission_review_duration_seconds counts = %v, want validate/Pod 2, mutate/Pod 1", got)
	}
}
