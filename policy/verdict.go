package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Finding is one rule firing for one container.
type Finding struct {
	Rule      Rule
	Action    Action // effective action, after the rule's config and the mode
	Container string
	Image     string
	Cause     string // what the registry or cluster said, and what it means
	Fix       string // what to do
}

// Line is the finding as one line: container, image, cause.
func (f Finding) Line() string {
	return fmt.Sprintf("container %q image %q: %s", f.Container, f.Image, f.Cause)
}

// Pin is a tag to rewrite to the digest that was checked.
type Pin struct {
	Path string // JSON pointer to the image field
	From string
	To   string
}

// Decision summarises a verdict for annotations and metrics.
type Decision string

const (
	DecisionAllow Decision = "allow"
	DecisionWarn  Decision = "warn"
	DecisionDeny  Decision = "deny"
)

// Verdict is pullsafe's answer for one workload.
type Verdict struct {
	Object   string // "deployment/web"
	Mode     Mode
	Findings []Finding
	Pins     []Pin
	Notes    []string // things not checked and why; shown as warnings
}

// Decision is deny if any finding denies, warn if any warns, else allow.
// Notes (what was not checked) are shown but decide nothing.
func (v *Verdict) Decision() Decision {
	d := DecisionAllow
	for _, f := range v.Findings {
		switch f.Action {
		case ActionDeny:
			return DecisionDeny
		case ActionWarn:
			d = DecisionWarn
		}
	}
	return d
}

// DenialMessage lists every denying container, then the fixes, for a
// person at a terminal: kubectl prints it after "admission webhook ... denied
// the request:".
func (v *Verdict) DenialMessage() string {
	var lines, fixes []string
	seen := map[string]bool{}
	for _, f := range v.Findings {
		if f.Action != ActionDeny {
			continue
		}
		lines = append(lines, fmt.Sprintf("[%s] %s", f.Rule, f.Line()))
		if f.Fix != "" && !seen[f.Fix] {
			seen[f.Fix] = true
			fixes = append(fixes, "fix: "+f.Fix)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	head := fmt.Sprintf("pullsafe: %s would fail to pull %d image(s):", v.Object, len(lines))
	return head + "\n" + strings.Join(lines, "\n") + "\n" + strings.Join(fixes, "\n")
}

// maxWarnings bounds what is sent back: the API server drops warnings past a
// total size, and a wall of text helps nobody.
const maxWarnings = 10

// Warnings are one short line each: kubectl prints "Warning: <line>".
func (v *Verdict) Warnings() []string {
	var out []string
	for _, f := range v.Findings {
		if f.Action != ActionWarn {
			continue
		}
		w := fmt.Sprintf("pullsafe [%s] %s", f.Rule, f.Line())
		if f.Fix != "" {
			w += " — " + f.Fix
		}
		out = append(out, w)
	}
	for _, n := range v.Notes {
		out = append(out, "pullsafe: "+n)
	}
	if len(out) > maxWarnings {
		out = append(out[:maxWarnings-1], fmt.Sprintf("pullsafe: %d more warnings not shown", len(out)-maxWarnings+1))
	}
	return out
}

// Annotations are the audit annotations of the response. The API server
// prefixes each key with the webhook's name (validate.pullsafe.io/...).
func (v *Verdict) Annotations() map[string]string {
	a := map[string]string{"decision": string(v.Decision()), "mode": string(v.Mode)}
	var fs []string
	for _, f := range v.Findings {
		fs = append(fs, fmt.Sprintf("%s:%s:%s", f.Rule, f.Action, f.Container))
	}
	if len(fs) > 0 {
		sort.Strings(fs)
		a["findings"] = strings.Join(fs, ",")
	}
	return a
}

// PinnedAnnotation lists the pinned references, for the mutating webhook's
// audit annotation.
func (v *Verdict) PinnedAnnotation() string {
	ps := make([]string, len(v.Pins))
	for i, p := range v.Pins {
		ps[i] = p.To
	}
	return strings.Join(ps, ",")
}
