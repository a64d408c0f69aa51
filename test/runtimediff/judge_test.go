package runtimediff

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJudge: what fails the differential and what it only reports. Runs
// without root or containerd.
func TestJudge(t *testing.T) {
	platformDenial := `pod/web would fail to pull 1 image(s): [platform] container "app" image "r/a:v1": offers linux/arm64 only`
	for _, tc := range []struct {
		name        string
		out         outcome
		gaps        map[string]string
		wantProblem string // substring of the one problem, "" for none
		wantFixed   bool
	}{
		{name: "agree deny", out: outcome{name: "c", pullsafe: deny}},
		{name: "agree allow", out: outcome{name: "c", pullsafe: allow, pulled: true}},
		{name: "warn either way", out: outcome{name: "c", pullsafe: warn}},
		{name: "false denial", out: outcome{name: "c", pullsafe: deny, pulled: true, message: "[not-found] x"}, wantProblem: "FALSE DENIAL c"},
		{name: "cannot-run case, platform denial", out: outcome{name: "amd64/image-arm64", pullsafe: deny, pulled: true, message: platformDenial}},
		{name: "cannot-run case, another rule too", out: outcome{name: "amd64/image-arm64", pullsafe: deny, pulled: true,
			message: platformDenial + " [not-found] y"}, wantProblem: "FALSE DENIAL amd64/image-arm64"},
		{name: "another case, platform denial", out: outcome{name: "c", pullsafe: deny, pulled: true, message: platformDenial}, wantProblem: "FALSE DENIAL c"},
		{name: "unlisted gap", out: outcome{name: "c", pullsafe: allow, runtimeErr: "blob unknown"}, wantProblem: "UNLISTED GAP c"},
		{name: "listed gap", out: outcome{name: "c", pullsafe: allow}, gaps: map[string]string{"c": "layers"}},
		{name: "listed gap now denied", out: outcome{name: "c", pullsafe: deny}, gaps: map[string]string{"c": "layers"}, wantFixed: true},
		{name: "listed gap skipped", out: outcome{name: "c", pullsafe: skipped}, gaps: map[string]string{"c": "layers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, fixed := judge([]outcome{tc.out}, tc.gaps)
			switch {
			case tc.wantProblem == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tc.wantProblem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.wantProblem)):
				t.Errorf("problems %q, want one naming %q", problems, tc.wantProblem)
			}
			if got := len(fixed) == 1; got != tc.wantFixed {
				t.Errorf("fixed %q, want fixed: %v", fixed, tc.wantFixed)
			}
		})
	}
}

// TestKnownGapsNameCases: every line of known_gaps.txt parses and names a
// generated case.
func TestKnownGapsNameCases(t *testing.T) {
	gaps, err := readKnownGaps("known_gaps.txt")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range cases() {
		if names[c.name] {
			t.Errorf("two cases named %s", c.name)
		}
		names[c.name] = true
	}
	var unknown []string
	for name := range gaps {
		if !names[name] {
			unknown = append(unknown, name)
		}
	}
	if diff := cmp.Diff([]string(nil), unknown); diff != "" {
		t.Errorf("known_gaps.txt names no such case (-want +got):\n%s", diff)
	}
}
