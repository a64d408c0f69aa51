package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pullsafe/pullsafe/registry"
)

// The verdict's texts are written without fmt, in one builder per line
// (verdict.go). This is the rendering they replaced, fmt and all: they must
// never differ, for any finding, however hostileTexts its strings.
func referenceLine(f Finding) string {
	head := f.Source.String() + " " + referenceQuoted(f.Container) + " image " + referenceQuoted(f.Image) + ": "
	return head + registry.Sanitize(f.Cause, max(maxFindingBytes-len(head), 64))
}

func referenceQuoted(s string) string {
	if len(s) > maxQuotedBytes {
		s = registry.Sanitize(s, maxQuotedBytes)
	}
	return strconv.Quote(s)
}

func referenceWarnings(v *Verdict) []string {
	var out []string
	for _, f := range v.Findings {
		if f.Action != ActionWarn {
			continue
		}
		w := fmt.Sprintf("pullsafe [%s] %s", f.Rule, referenceLine(f))
		if f.Fix != "" {
			w += " — " + f.Fix
		}
		out = append(out, registry.Sanitize(w, maxFindingBytes))
	}
	for _, n := range v.Notes {
		out = append(out, registry.Sanitize("pullsafe: "+n, maxFindingBytes))
	}
	if len(out) > maxWarnings {
		out = append(out[:maxWarnings-1], fmt.Sprintf("pullsafe: %d more warnings not shown", len(out)-maxWarnings+1))
	}
	return out
}

func referenceFindings(v *Verdict) string {
	var fs []string
	for _, f := range v.Findings {
		name := registry.Sanitize(f.Container, maxQuotedBytes)
		if short := f.Source.Short(); short != "" {
			name = short + "/" + name
		}
		fs = append(fs, fmt.Sprintf("%s:%s:%s", f.Rule, f.Action, name))
	}
	if len(fs) == 0 {
		return ""
	}
	sort.Strings(fs)
	return joinCapped(fs, maxDenialBytes)
}

// hostileTexts are strings as a registry or a user's file may send them.
var hostileTexts = []string{
	"", "web", "c0", " lead", "trail ", "two  spaces", "tab\there", "new\nline", "cr\rreturn",
	"\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "\x1bP dcs \x1b\\", "\u009b2J", "\u009d osc \u009c",
	"bidi \u202e txet", "del\x7f", "bad \xff\xfe utf8", "nbsp\u00a0x", `quote " and \ backslash`,
	"naïve — ünïcödé …", strings.Repeat("long ", 150), strings.Repeat("x", 700),
	strings.Repeat("é", 120), "registry.example/team/api:v1.4.1", "nginx@sha256:" + strings.Repeat("ab", 32),
	strings.Repeat("\x1b[1m", 40) + "end",
}

func TestVerdictTextsMatchTheirReference(t *testing.T) {
	rules := []Rule{RuleNotFound, RulePlatform, RuleMutableTag, RuleUnreachable, RuleInternal}
	actions := []Action{ActionWarn, ActionDeny, ActionWarn}
	sources := []Source{SourceContainer, SourceInit, SourceSidecar, SourceEphemeral, SourceVolume}
	var all []Finding
	for i, s := range hostileTexts {
		for j, u := range hostileTexts {
			if (i+j)%3 != 0 && i != j {
				continue
			}
			all = append(all, Finding{Rule: rules[(i+j)%len(rules)], Action: actions[(i*j)%len(actions)],
				Source: sources[(i+2*j)%len(sources)], Container: s, Image: u, Cause: hostileTexts[(i+j)%len(hostileTexts)],
				Fix: hostileTexts[(2*i+j)%len(hostileTexts)]})
		}
	}
	for _, f := range all {
		if got, want := f.Line(), referenceLine(f); got != want {
			t.Fatalf("Line of %+v:\n got %q\nwant %q", f, got, want)
		}
		if got, want := quoted(f.Container), referenceQuoted(f.Container); got != want {
			t.Fatalf("quoted(%q) = %q, want %q", f.Container, got, want)
		}
	}
	// Verdicts of 0 to all findings, with and without notes: below, at and
	// past maxWarnings.
	for n := 0; n <= len(all); n += 1 + n/4 {
		for _, notes := range [][]string{nil, {"platform not checked: nodes unknown"}, hostileTexts[:12]} {
			v := &Verdict{Object: "pod/web", Mode: ModeEnforce, Findings: all[:n], Notes: notes}
			if d := cmp.Diff(referenceWarnings(v), v.Warnings()); d != "" {
				t.Fatalf("Warnings of %d findings, %d notes (-reference +got):\n%s", n, len(notes), d)
			}
			if got, want := v.Annotations()["findings"], referenceFindings(v); got != want {
				t.Fatalf("findings annotation of %d findings:\n got %q\nwant %q", n, got, want)
			}
		}
	}
}
