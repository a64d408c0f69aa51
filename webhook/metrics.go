package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/policy"
)

// Metrics are the admission series. A nil *Metrics records nothing.
type Metrics struct {
	reviews  *prometheus.CounterVec
	findings *prometheus.CounterVec
}

// NewMetrics registers the admission metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullsafe_reviews_total",
			Help: "Admission reviews answered, by webhook (validate/mutate), object kind and decision.",
		}, []string{"webhook", "kind", "decision"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullsafe_decisions_total",
			Help: "Rule findings by rule, effective action (deny/warn) and object kind.",
		}, []string{"rule", "action", "kind"}),
	}
	for _, c := range []prometheus.Collector{m.reviews, m.findings} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) review(mutating bool, kind string, d policy.Decision) {
	if m == nil {
		return
	}
	w := "validate"
	if mutating {
		w = "mutate"
	}
	m.reviews.WithLabelValues(w, kind, string(d)).Inc()
}

func (m *Metrics) recordFindings(kind string, fs []policy.Finding) {
	if m == nil {
		return
	}
	for _, f := range fs {
		m.findings.WithLabelValues(string(f.Rule), string(f.Action), kind).Inc()
	}
}
