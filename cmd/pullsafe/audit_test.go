package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
)

// The table names the workload, and what a registry said reaches the
// terminal sanitized: no escape sequences, no line of output faked.
func TestPrintAuditTable(t *testing.T) {
	rep := &audit.Report{Pods: 5, Workloads: 2, Results: []audit.Result{{
		Owner: audit.Owner{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"}, Pods: 3,
		Findings: []policy.Finding{{Rule: policy.RuleNotFound, Action: policy.ActionDeny, Container: "app", Image: "reg/web:v1",
			Cause: "tag v1 not found\x1b[2J\nfix: nothing", Fix: "push the tag"}},
	}}}
	var b bytes.Buffer
	if err := printAudit(rep, "text", &b); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"NAMESPACE  WORKLOAD        PODS  RULE       CONTAINER  IMAGE         CAUSE",
		`shop       deployment/web  3     not-found  "app"      "reg/web:v1"  tag v1 not found fix: nothing`,
		"fix: push the tag",
		"5 running pods of 2 workloads audited, 1 workload would fail to pull",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
}

func TestAuditFlags(t *testing.T) {
	for _, args := range [][]string{{"-o", "yaml"}, {"--requests-per-minute", "601"}, {"extra"}} {
		if _, err := parseAuditFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// An image or container name is quoted with its escapes shown, as why
// shows it, in the table and in JSON: stripping them would show a hostile
// reference as a harmless-looking one.
func TestPrintAuditQuotesImages(t *testing.T) {
	image := "reg/web:v1\x1b[8m\u202e-evil"
	rep := &audit.Report{Pods: 1, Workloads: 1, Results: []audit.Result{{
		Owner: audit.Owner{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"}, Pods: 1,
		Findings: []policy.Finding{{Rule: policy.RuleNotFound, Action: policy.ActionDeny, Container: "app\x07", Image: image, Cause: "not found"}},
	}}}
	for _, tc := range []struct {
		output string
		want   []string
	}{
		{"text", []string{`"app\a"`, `"reg/web:v1\x1b[8m\u202e-evil"`}},
		{"json", []string{`"Container": "app\\a"`, `"Image": "reg/web:v1\\x1b[8m\\u202e-evil"`}},
	} {
		var b bytes.Buffer
		if err := printAudit(rep, tc.output, &b); err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.want {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s output lacks %s:\n%s", tc.output, want, b.String())
			}
		}
	}
	if rep.Results[0].Findings[0].Image != image {
		t.Errorf("the report itself was changed: %q", rep.Results[0].Findings[0].Image)
	}
}
