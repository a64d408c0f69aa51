package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/policy"
)

// Namespaces past maxNamespaceSeries share one series: the label set stays
// bounded however many namespaces have findings.
func TestFindingCountsBoundNamespaces(t *testing.T) {
	r := &Report{}
	for i := range 80 {
		n := 1
		if i < 10 {
			n = 3 // the namespaces with most findings keep their own series
		}
		res := Result{Owner: Owner{Kind: "Deployment", Namespace: fmt.Sprintf("ns%02d", i), Name: "web"}}
		for range n {
			res.Findings = append(res.Findings, policy.Finding{Rule: policy.RuleNotFound})
		}
		r.Results = append(r.Results, res)
	}
	got := findingCounts(r)
	namespaces := map[string]bool{}
	for k := range got {
		namespaces[k.namespace] = true
	}
	if len(namespaces) != maxNamespaceSeries+1 {
		t.Errorf("%d namespace label values, want %d", len(namespaces), maxNamespaceSeries+1)
	}
	if got[ruleNamespace{policy.RuleNotFound, "ns03"}] != 3 || got[ruleNamespace{policy.RuleNotFound, "_other"}] != 30 {
		t.Errorf("counts: ns03 %d (want 3), _other %d (want 30)", got[ruleNamespace{policy.RuleNotFound, "ns03"}], got[ruleNamespace{policy.RuleNotFound, "_other"}])
	}
}

// An Auditor whose metrics are registered where another's already are (a
// second server in one process, both on controller-runtime's registry)
// records into the series /metrics shows, not into collectors no registry
// gathers.
func TestMetricsRegisteredTwiceRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.record(&Report{Pods: 7}, nil, time.Unix(1_700_000_000, 0))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, f := range families {
		if f.GetName() == "pullsafe_audit_pods" {
			got = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if got != 7 {
		t.Errorf("pullsafe_audit_pods = %v after the second Metrics recorded a pass of 7 pods, want 7", got)
	}
}
