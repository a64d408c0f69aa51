package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// The monitoring files live in manifests/overlays/monitoring; the chart
// holds copies (Helm and kustomize each read only below their own folder).
var monitoringFiles = []string{"prometheusrule.yaml", "pullsafe.json"}

func TestMonitoringCopiesEqual(t *testing.T) {
	for _, f := range monitoringFiles {
		a, err := os.ReadFile(filepath.Join(root(t), "manifests", "overlays", "monitoring", f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartDir(t), "files", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/pullsafe/files/%s differs from manifests/overlays/monitoring/%s: copy it over", f, f)
		}
	}
}

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// monitoringExprs returns every PromQL expression of the alerts and the
// dashboard panels, by where it is.
func monitoringExprs(t testing.TB) map[string]string {
	t.Helper()
	dir := filepath.Join(root(t), "manifests", "overlays", "monitoring")
	out := map[string]string{}
	raw, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Strict: a misspelt key ("expresion", "anotations") is an error.
	var rule struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &rule); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	raw, err = os.ReadFile(filepath.Join(dir, "pullsafe.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("pullsafe.json is not valid JSON: %v", err)
	}
	// Grafana's variables, as Grafana substitutes them before querying.
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*")
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %q query %d", p.Title, i)] = vars.Replace(tg.Expr)
		}
	}
	return out
}

// metricNames parses expr and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	sort.Strings(names)
	return names, nil
}

// TestMonitoringExpressionsParse: every alert and panel query is valid
// PromQL and selects metrics by name; each alert says what to fix. Whether
// the names are exported is TestMonitoringNamesExportedMetrics (e2e).
func TestMonitoringExpressionsParse(t *testing.T) {
	exprs := monitoringExprs(t)
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
			continue
		}
		for _, n := range names {
			if n == "" {
				t.Errorf("%s: a selector without a metric name", where)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(root(t), "manifests", "overlays", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "Fix:"); n != strings.Count(string(raw), "- alert: ") || n < 6 {
		t.Errorf("%d alerts say \"Fix:\"; every alert's description must name the fix", n)
	}
	var d dashboard
	raw, _ = os.ReadFile(filepath.Join(root(t), "manifests", "overlays", "monitoring", "pullsafe.json"))
	if err := json.Unmarshal(raw, &d); err != nil || d.UID == "" || len(d.Panels) == 0 {
		t.Errorf("dashboard: %v, uid %q, %d panels", err, d.UID, len(d.Panels))
	}
}
