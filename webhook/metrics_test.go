package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

func TestMetricsAndDecisionLog(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(b.checker, b.cluster, false, "", m)
	var logged []string
	ctx := log.IntoContext(context.Background(), funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{Verbosity: 1}))
	h.Handle(ctx, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.2"), nil, ""))
	h.Handle(ctx, request(t, admissionv1.Create, pod("relaxed", b.open.Host+"/team/api:v1.4.2"), nil, ""))

	if got := testutil.ToFloat64(m.findings.WithLabelValues("not-found", "deny", "Pod")); got != 1 {
		t.Errorf("pullsafe_decisions_total{not-found,deny,Pod} = %v", got)
	}
	if got := testutil.ToFloat64(m.findings.WithLabelValues("not-found", "warn", "Pod")); got != 1 {
		t.Errorf("pullsafe_decisions_total{not-found,warn,Pod} = %v", got)
	}
	if got := testutil.ToFloat64(m.reviews.WithLabelValues("validate", "Pod", "deny")); got != 1 {
		t.Errorf("pullsafe_reviews_total{validate,Pod,deny} = %v", got)
	}
	if len(logged) != 2 || !strings.Contains(logged[0], `"decision"="deny"`) || !strings.Contains(logged[0], `"findings"="not-found:deny:c0"`) {
		t.Errorf("decision log = %q", logged)
	}
}
