package audit

import (
	"cmp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/internal/metricset"
	"github.com/pullsafe/pullsafe/policy"
)

// maxNamespaceSeries bounds pullsafe_audit_findings: the namespaces with
// the most findings get a series each, the rest are summed under
// namespace="_other". Never a series per image or workload.
const maxNamespaceSeries = 50

// Metrics are the audit's Prometheus metrics.
type Metrics struct {
	findings    *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	pods        prometheus.Gauge
}

// NewMetrics registers the audit's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	// Shared: a second audit in one process (servers started in one test
	// binary) records into the series already registered.
	s := metricset.Shared(reg)
	m := &Metrics{
		findings: s.GaugeVec("pullsafe_audit_findings",
			"Findings of the last audit pass that would fail a pull, by rule and namespace (namespaces beyond 50 summed as _other).", "rule", "namespace"),
		runs:        s.CounterVec("pullsafe_audit_runs_total", "Audit passes, by result (success, error).", "result"),
		duration:    s.Histogram("pullsafe_audit_duration_seconds", "Duration of an audit pass, budget waits included.", prometheus.ExponentialBuckets(0.1, 4, 10)),
		lastSuccess: s.Gauge("pullsafe_audit_last_success_timestamp_seconds", "When the last successful audit pass ended (Unix time)."),
		pods:        s.Gauge("pullsafe_audit_pods", "Running Pods audited by the last successful pass."),
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// record publishes a pass: its report, or the error that ended it.
func (m *Metrics) record(r *Report, err error, end time.Time) {
	if m == nil {
		return
	}
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		return
	}
	m.runs.WithLabelValues("success").Inc()
	m.duration.Observe(r.Duration.Seconds())
	m.lastSuccess.Set(float64(end.Unix()))
	m.pods.Set(float64(r.Pods))
	m.findings.Reset()
	for k, n := range findingCounts(r) {
		m.findings.WithLabelValues(string(k.rule), k.namespace).Set(float64(n))
	}
}

type ruleNamespace struct {
	rule      policy.Rule
	namespace string
}

// findingCounts counts deny findings by rule and namespace, keeping the
// maxNamespaceSeries namespaces with most findings (ties by name).
func findingCounts(r *Report) map[ruleNamespace]int {
	perNS := map[string]int{}
	for _, res := range r.Results {
		perNS[res.Owner.Namespace] += len(res.Findings)
	}
	names := make([]string, 0, len(perNS))
	for ns := range perNS {
		names = append(names, ns)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(perNS[b]-perNS[a], cmp.Compare(a, b)) })
	kept := map[string]bool{}
	for _, ns := range names[:min(len(names), maxNamespaceSeries)] {
		kept[ns] = true
	}
	out := map[ruleNamespace]int{}
	for _, res := range r.Results {
		ns := res.Owner.Namespace
		if !kept[ns] {
			ns = "_other"
		}
		for _, f := range res.Findings {
			out[ruleNamespace{f.Rule, ns}]++
		}
	}
	return out
}
