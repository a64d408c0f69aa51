package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/internal/metricset"
	"github.com/pullsafe/pullsafe/policy"
)

// Metrics are the admission series. A nil *Metrics records nothing.
type Metrics struct {
	reviews  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	findings *prometheus.CounterVec
	// Config reloads, named as Prometheus names its own.
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadOKSecond prometheus.Gauge
}

// NewMetrics registers the admission metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	s := metricset.New(reg)
	m := &Metrics{
		reviews: s.CounterVec("pullsafe_reviews_total",
			"Admission reviews answered, by webhook (validate/mutate), object kind and decision.", "webhook", "kind", "decision"),
		// The API server's own webhook histogram (apiserver_admission_webhook_admission_duration_seconds)
		// includes the network; this one is pullsafe's share. Buckets from
		// a cached review (~100µs) to the 10s webhook timeout.
		duration: s.HistogramVec("pullsafe_admission_review_duration_seconds",
			"Time to answer an admission review, by webhook (validate/mutate) and object kind.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "webhook", "kind"),
		findings: s.CounterVec("pullsafe_decisions_total",
			"Rule findings by rule, effective action (deny/warn) and object kind.", "rule", "action", "kind"),
		reloads: s.CounterVec("pullsafe_config_reloads_total",
			"Attempts to apply a changed --config file, by result (success/failure).", "result"),
		reloadOK: s.Gauge("pullsafe_config_last_reload_successful",
			"1 while the --config file in effect is the newest one; 0 while a newer one is invalid and the old one is kept."),
		reloadOKSecond: s.Gauge("pullsafe_config_last_reload_success_timestamp_seconds",
			"Unix time the config in effect was loaded."),
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) review(mutating bool, kind string, d policy.Decision) {
	if m == nil {
		return
	}
	m.reviews.WithLabelValues(webhookLabel(mutating), kind, string(d)).Inc()
}

// observe records the time since start of one review; deferred at its start.
func (m *Metrics) observe(mutating bool, kind string, start time.Time) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(webhookLabel(mutating), kind).Observe(time.Since(start).Seconds())
}

// webhookLabel is the webhook label value: validate or mutate.
func webhookLabel(mutating bool) string {
	if mutating {
		return "mutate"
	}
	return "validate"
}

func (m *Metrics) recordFindings(kind string, fs []policy.Finding) {
	if m == nil {
		return
	}
	for _, f := range fs {
		m.findings.WithLabelValues(string(f.Rule), string(f.Action), kind).Inc()
	}
}

// loaded records the config in effect: at start (counted as no reload) or
// after a reload.
func (m *Metrics) loaded(at time.Time, reloaded bool) {
	if m == nil {
		return
	}
	if reloaded {
		m.reloads.WithLabelValues("success").Inc()
	}
	m.reloadOK.Set(1)
	m.reloadOKSecond.Set(float64(at.Unix()))
}

// reloadFailed records a changed file that was not applied.
func (m *Metrics) reloadFailed() {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.reloadOK.Set(0)
}
