package helm

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
)

// TestChartSchemaAgreesWithPullsafe: values.schema.json refuses a policy
// value at `helm install` exactly when pullsafe's own parser would refuse it
// at start. A false refusal blocks an install pullsafe would run; a false
// acceptance gives pods that never start (a fresh install then fails open).
func TestChartSchemaAgreesWithPullsafe(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"bare zero outage window":       {"outageWindow": "0"},
		"fraction without integer part": {"lookupTimeout": ".5s"},
		"integer with a dot":            {"lookupTimeout": "1.s"},
		"explicit plus":                 {"lookupTimeout": "+2s"},
		"compound":                      {"cache": map[string]any{"tagTTL": "1h30m", "notFoundTTL": "1.5s"}},
		"negative outage window":        {"outageWindow": "-1s"},
		"zero lookup timeout":           {"lookupTimeout": "0s"},
		"zero lookup timeout, bare":     {"lookupTimeout": "0"},
		"zero TTL with a fraction":      {"cache": map[string]any{"tagTTL": "0.0m"}},
		"fractional TTL":                {"cache": map[string]any{"notFoundTTL": "2.5s"}},
		"greek mu":                      {"lookupTimeout": "1500000\u03bcs"},
		"micro sign":                    {"lookupTimeout": "1500000\u00b5s"},
		"no unit":                       {"lookupTimeout": "2"},
		// pullsafe's floors (policy.MinCacheTTL, MinLookupTimeout) and the
		// lookup timeout's ceiling, in the spellings one component can say.
		"sub-second TTL in ms":        {"cache": map[string]any{"tagTTL": "500ms"}},
		"TTL of 999.9ms":              {"cache": map[string]any{"notFoundTTL": "0999.9ms"}},
		"TTL of 1000ms":               {"cache": map[string]any{"tagTTL": "1000ms"}},
		"sub-second TTL in seconds":   {"cache": map[string]any{"notFoundTTL": "0.5s"}},
		"sub-second TTL, leading dot": {"cache": map[string]any{"tagTTL": "+.9s"}},
		"sub-second TTL in us":        {"cache": map[string]any{"tagTTL": "999999us"}},
		"TTL of 1000000us":            {"cache": map[string]any{"tagTTL": "1000000us"}},
		"sub-second TTL in ns":        {"cache": map[string]any{"tagTTL": "999999999ns"}},
		"sub-second TTL in greek mu":  {"cache": map[string]any{"notFoundTTL": "5\u03bcs"}},
		"TTL of 1s":                   {"cache": map[string]any{"tagTTL": "1s"}},
		"TTL of 1.5s":                 {"cache": map[string]any{"tagTTL": "1.5s"}},
		"lookup timeout 99ms":         {"lookupTimeout": "99ms"},
		"lookup timeout 100ms":        {"lookupTimeout": "100ms"},
		"lookup timeout 0.05s":        {"lookupTimeout": "0.05s"},
		"lookup timeout 0.1s":         {"lookupTimeout": "0.1s"},
		"lookup timeout 99999us":      {"lookupTimeout": "99999us"},
		"lookup timeout 30s":          {"lookupTimeout": "30s"},
		"lookup timeout 30.5s":        {"lookupTimeout": "30.5s"},
		"lookup timeout 31s":          {"lookupTimeout": "31s"},
		"lookup timeout 120s":         {"lookupTimeout": "120s"},
		"lookup timeout 1m":           {"lookupTimeout": "1m"},
		"lookup timeout 1h":           {"lookupTimeout": "1h"},
		"tag TTL 24h":                 {"cache": map[string]any{"tagTTL": "24h"}},
		"tag TTL 24.5h":               {"cache": map[string]any{"tagTTL": "24.5h"}},
		"tag TTL 25h":                 {"cache": map[string]any{"tagTTL": "25h"}},
		"not-found TTL 1h":            {"cache": map[string]any{"notFoundTTL": "1h"}},
		"not-found TTL 60m":           {"cache": map[string]any{"notFoundTTL": "60m"}},
		"not-found TTL 1.5h":          {"cache": map[string]any{"notFoundTTL": "1.5h"}},
		"not-found TTL 2h":            {"cache": map[string]any{"notFoundTTL": "2h"}},
		"lookup timeout 0.5m":         {"lookupTimeout": "0.5m"},
		"unknown rule":                {"rules": map[string]any{"mutable-tags": "deny"}},
		"every rule": {"rules": func() map[string]any {
			m := map[string]any{}
			for _, r := range policy.AllRules {
				m[string(r)] = "warn"
			}
			return m
		}()},
		"zero cache size":        {"cache": map[string]any{"size": 0}},
		"workload":               {"workloads": []any{wl(nil)}},
		"workload by pod spec":   {"workloads": []any{wl(map[string]any{"podTemplatePath": nil, "podSpecPath": "spec.pod"})}},
		"workload, no path":      {"workloads": []any{wl(map[string]any{"podTemplatePath": nil})}},
		"workload, both paths":   {"workloads": []any{wl(map[string]any{"podSpecPath": "spec.pod"})}},
		"workload, key typo":     {"workloads": []any{wl(map[string]any{"podTemplatePath": nil, "podTemplatPath": "spec.template"})}},
		"workload, core group":   {"workloads": []any{wl(map[string]any{"apiGroup": ""})}},
		"workload, no resource":  {"workloads": []any{wl(map[string]any{"resource": nil})}},
		"workload, subresource":  {"workloads": []any{wl(map[string]any{"resource": "rollouts/status"})}},
		"workload, group no dot": {"workloads": []any{wl(map[string]any{"apiGroup": "argoproj"})}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := map[string]any{"apiVersion": "pullsafe.io/v1alpha1", "kind": "Config"}
			for k, v := range values {
				cfg[k] = v
			}
			data, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := policy.ParseConfig(data)
			_, _, rerr := renderChart(t, values)
			if rerr != nil && !strings.Contains(rerr.Error(), "values don't meet the specifications of the schema") {
				t.Fatalf("rendering: %v", rerr)
			}
			if (perr == nil) != (rerr == nil) {
				t.Errorf("values %v: pullsafe's parser says %v, the chart's schema says %v", values, perr, rerr)
			}
		})
	}
}

// wl is a valid workloads entry with changes (nil deletes a key).
func wl(change map[string]any) map[string]any {
	w := map[string]any{"apiGroup": "argoproj.io", "kind": "Rollout", "resource": "rollouts", "apiVersions": []any{"v1alpha1"}, "podTemplatePath": "spec.template"}
	for k, v := range change {
		if v == nil {
			delete(w, k)
		} else {
			w[k] = v
		}
	}
	return w
}
