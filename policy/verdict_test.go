package policy

import (
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// hostile is what a registry or a manifest file may put in a string that
// ends on someone's terminal.
var hostile = []string{"\x1b[2J", "\x1b]0;title\x07", "\r\n[ok] ALL CLEAR", "\u202e", "\u009b31m"}

func assertPrintable(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r != ' ' && r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("%s holds unprintable %U: %q", what, r, s)
			return
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "[ok]") {
			t.Errorf("%s lets a registry start a line: %q", what, line)
		}
	}
}

func TestMessagesAreSanitized(t *testing.T) {
	evil := strings.Join(hostile, "")
	v := &Verdict{Object: "pod/web" + evil, Mode: ModeEnforce, Notes: []string{"note " + evil},
		Findings: []Finding{
			{Rule: RuleNotFound, Action: ActionDeny, Container: "app" + evil, Image: "r.io/a:v1" + evil,
				Cause: "manifest unknown; nearest tags: v1" + evil, Fix: "did you mean v1" + evil + "?"},
			{Rule: RulePlatform, Action: ActionWarn, Container: "side", Image: "r.io/b:v1",
				Cause: "offers linux/" + evil + " only", Fix: "add nodeSelector kubernetes.io/arch: " + evil},
		}}
	assertPrintable(t, "denial", v.DenialMessage())
	for _, w := range v.Warnings() {
		assertPrintable(t, "warning", w)
		if strings.Contains(w, "\n") {
			t.Errorf("warning spans lines: %q", w)
		}
	}
	for k, a := range v.Annotations() {
		assertPrintable(t, "annotation "+k, a)
	}
}

func TestMessagesAreBounded(t *testing.T) {
	huge := strings.Repeat("linux/amd64, ", 30000) // 380 KB, as one 19,000-entry index produced
	var fs []Finding
	for i := range 200 {
		fs = append(fs, Finding{Rule: RulePlatform, Action: ActionDeny, Container: fmt.Sprintf("c%d", i), Image: "r.io/a:v1",
			Cause: "offers " + huge, Fix: "fix " + huge})
	}
	fs = append(fs, Finding{Rule: RuleMutableTag, Action: ActionWarn, Container: "w", Image: "r.io/w:v1", Cause: huge, Fix: huge})
	v := &Verdict{Object: "pod/big", Mode: ModeEnforce, Findings: fs}
	msg := v.DenialMessage()
	if len(msg) > maxDenialBytes {
		t.Errorf("denial message is %d bytes, want at most %d", len(msg), maxDenialBytes)
	}
	if !strings.Contains(msg, "more findings") {
		t.Errorf("a cut denial message does not say so:\n%s", msg)
	}
	for _, line := range strings.Split(msg, "\n") {
		if len(line) > maxFindingBytes+len("…") {
			t.Errorf("line of %d bytes: %.80q…", len(line), line)
		}
	}
	for _, w := range v.Warnings() {
		if len(w) > maxFindingBytes+len("…") {
			t.Errorf("warning of %d bytes", len(w))
		}
	}
}

func TestDenialHeaderCountsImagesNotFindings(t *testing.T) {
	deny := func(ct, image string, r Rule) Finding {
		return Finding{Rule: r, Action: ActionDeny, Container: ct, Image: image, Cause: "c", Fix: "f"}
	}
	for _, tc := range []struct {
		name     string
		findings []Finding
		want     string
	}{
		{"one image, two denying findings", []Finding{deny("app", "nginx:1", RuleNotFound), deny("app", "nginx:1", RuleDockerHubAnonymous)},
			"pullsafe: pod/web would fail to pull 1 image(s):"},
		{"two containers, same image", []Finding{deny("a", "nginx:1", RuleNotFound), deny("b", "nginx:1", RuleNotFound)},
			"pullsafe: pod/web would fail to pull 2 image(s):"},
		{"warnings do not count", []Finding{deny("a", "x:1", RuleNotFound), {Rule: RuleMutableTag, Action: ActionWarn, Container: "b", Image: "y:1"}},
			"pullsafe: pod/web would fail to pull 1 image(s):"},
		// Worded by rule: "would fail to pull" only where the pull fails.
		{"anonymous Docker Hub is a rate-limit risk, not a failing pull", []Finding{deny("app", "nginx:1.27", RuleDockerHubAnonymous)},
			"pullsafe: pod/web would pull 1 image(s) from Docker Hub anonymously (shared rate limit: pulls fail fleet-wide once it is spent):"},
		{"mutable-tag configured to deny", []Finding{deny("app", "r.io/a:latest", RuleMutableTag)},
			"pullsafe: pod/web uses 1 mutable tag(s) that nodes may resolve to different images:"},
		{"unreachable configured to deny", []Finding{deny("app", "r.io/a:v1", RuleUnreachable), deny("b", "r.io/b:v1", RuleRateLimited)},
			"pullsafe: pod/web has 2 image(s) pullsafe could not verify, and the config denies that:"},
		{"each image under its first reason", []Finding{deny("a", "nginx:1.99", RuleDockerHubAnonymous), deny("a", "nginx:1.99", RuleNotFound),
			deny("b", "redis:7", RuleDockerHubAnonymous), deny("c", "r.io/c:latest", RuleMutableTag)},
			"pullsafe: pod/web would fail to pull 1 image(s); would pull 1 image(s) from Docker Hub anonymously (shared rate limit: pulls fail fleet-wide once it is spent); uses 1 mutable tag(s) that nodes may resolve to different images:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verdict{Object: "pod/web", Findings: tc.findings}
			head, _, _ := strings.Cut(v.DenialMessage(), "\n")
			if diff := cmp.Diff(tc.want, head); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuditAnnotationIsBounded: the findings audit annotation goes into the
// admission response and every audit event; a Pod with thousands of
// containers must not make it megabytes.
func TestAuditAnnotationIsBounded(t *testing.T) {
	var fs []Finding
	for i := range 5000 {
		fs = append(fs, Finding{Rule: RuleNotFound, Action: ActionDeny, Container: fmt.Sprintf("container-%04d-%s", i, strings.Repeat("x", 150)), Image: "r.io/a:v1"})
	}
	a := (&Verdict{Object: "pod/big", Mode: ModeEnforce, Findings: fs}).Annotations()
	if n := len(a["findings"]); n > maxDenialBytes {
		t.Errorf("findings annotation is %d bytes, want at most %d", n, maxDenialBytes)
	}
	if !strings.Contains(a["findings"], "more") || !strings.HasPrefix(a["findings"], "not-found:deny:container-0000") {
		t.Errorf("a cut annotation must keep the first findings and say how many are left out: %.120q…%q", a["findings"], a["findings"][max(0, len(a["findings"])-40):])
	}
	if a["decision"] != "deny" {
		t.Errorf("decision %q", a["decision"])
	}
	var pins []Pin
	for i := range 5000 {
		pins = append(pins, Pin{To: fmt.Sprintf("r.io/team/app-%04d:v1@sha256:%064d", i, i)})
	}
	if n := len((&Verdict{Pins: pins}).PinnedAnnotation()); n > maxDenialBytes {
		t.Errorf("pinned annotation is %d bytes, want at most %d", n, maxDenialBytes)
	}
}
