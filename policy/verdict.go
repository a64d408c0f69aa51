package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pullsafe/pullsafe/registry"
)

// Finding is one rule firing for one container (or image volume).
type Finding struct {
	Rule      Rule
	Action    Action // effective action, after the rule's config and the mode
	Container string // the container's name, or the volume's
	Source    Source // what Container names: a container, sidecar, volume...
	Image     string
	Cause     string // what the registry or cluster said, and what it means
	Fix       string // what to do
}

// Line is the finding as one line: container (or volume), image, cause.
// Everything in it may come from a registry or a user's file, so it is
// sanitized and cut to maxFindingBytes: one finding must never fill a
// terminal.
func (f Finding) Line() string {
	var b strings.Builder
	f.writeLine(&b)
	return b.String()
}

// writeLine appends Line to b: a warning is written in one builder, not
// formatted piece by piece (every review of a cached image writes it).
func (f Finding) writeLine(b *strings.Builder) {
	start := b.Len()
	b.Grow(len(f.Container) + len(f.Image) + len(f.Cause) + 32)
	b.WriteString(f.Source.String())
	b.WriteByte(' ')
	writeQuoted(b, f.Container)
	b.WriteString(" image ")
	writeQuoted(b, f.Image)
	b.WriteString(": ")
	b.WriteString(registry.Sanitize(f.Cause, max(maxFindingBytes-(b.Len()-start), 64)))
}

// Bounds of what reaches a terminal (kubectl prints a denial whole, and
// every warning on its own line; the API server drops warnings past a total
// size).
const (
	maxFindingBytes = 512     // one finding line, one fix, one warning
	maxDenialBytes  = 4 << 10 // the whole denial message
	maxQuotedBytes  = 200     // a container name or an image as written, before quoting
	maxObjectBytes  = 256     // "kind/name" in the header
)

// quoted shows a name or an image as the user wrote it, with anything
// unprintable escaped (\x1b, \u202e) rather than removed: a bad reference
// is then visible as such.
func quoted(s string) string {
	var b strings.Builder
	writeQuoted(&b, s)
	return b.String()
}

// writeQuoted appends quoted(s) to b.
func writeQuoted(b *strings.Builder, s string) {
	if len(s) > maxQuotedBytes {
		s = registry.Sanitize(s, maxQuotedBytes)
	}
	var buf [128]byte
	b.Write(strconv.AppendQuote(buf[:0], s))
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
// the request:". The header (denialHeader) counts the distinct (container,
// image) pairs denied, not findings: one image may break two rules. The
// message stays under maxDenialBytes, saying how many findings were left out.
func (v *Verdict) DenialMessage() string {
	var lines, fixes []string
	seen := map[string]bool{}
	denied := map[[3]string]denial{}
	for _, f := range v.Findings {
		if f.Action != ActionDeny {
			continue
		}
		k := [3]string{string(f.Source), f.Container, f.Image}
		if d, ok := denied[k]; !ok || denialOf(f.Rule) < d {
			denied[k] = denialOf(f.Rule)
		}
		lines = append(lines, registry.Sanitize("["+string(f.Rule)+"] "+f.Line(), maxFindingBytes))
		if f.Fix != "" && !seen[f.Fix] {
			seen[f.Fix] = true
			fixes = append(fixes, registry.Sanitize("fix: "+f.Fix, maxFindingBytes))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pullsafe: %s %s:", registry.Sanitize(v.Object, maxObjectBytes), denialHeader(denied))
	// Findings first, leaving a quarter of the space for the fixes.
	fixRoom := min(len(strings.Join(fixes, "\n"))+1, maxDenialBytes/4)
	writeCapped(&b, lines, maxDenialBytes-fixRoom, "findings")
	if len(fixes) == 0 {
		b.WriteString("\n") // as before the cap: an empty fix section
	}
	writeCapped(&b, fixes, maxDenialBytes, "fixes")
	return b.String()
}

// denial is why an image is denied, in the order the header names them.
type denial int

const (
	denialFails   denial = iota // the kubelet's pull would fail (Rule.FailsPull)
	denialHub                   // dockerhub-anonymous: a shared rate limit
	denialMutable               // mutable-tag: nodes may run different bits
	denialUnknown               // unreachable, rate-limited: not verified
)

func denialOf(r Rule) denial {
	switch {
	case r.FailsPull():
		return denialFails
	case r == RuleDockerHubAnonymous:
		return denialHub
	case r == RuleMutableTag:
		return denialMutable
	}
	return denialUnknown
}

// denialHeader says what is wrong with the denied images, worded by rule:
// "would fail to pull" only for images whose pull would fail. An image
// breaking several rules is counted once, under the first of them.
func denialHeader(denied map[[3]string]denial) string {
	counts := map[denial]int{}
	for _, d := range denied {
		counts[d]++
	}
	words := map[denial]string{
		denialFails:   "would fail to pull %d image(s)",
		denialHub:     "would pull %d image(s) from Docker Hub anonymously (shared rate limit: pulls fail fleet-wide once it is spent)",
		denialMutable: "uses %d mutable tag(s) that nodes may resolve to different images",
		denialUnknown: "has %d image(s) pullsafe could not verify, and the config denies that",
	}
	var parts []string
	for d := denialFails; d <= denialUnknown; d++ {
		if counts[d] > 0 {
			parts = append(parts, fmt.Sprintf(words[d], counts[d]))
		}
	}
	return strings.Join(parts, "; ")
}

// writeCapped appends items, one per line, while b stays within limit,
// then "… N more <what>" for the rest.
func writeCapped(b *strings.Builder, items []string, limit int, what string) {
	const more = len("\n… 99999 more findings")
	for i, it := range items {
		if b.Len()+1+len(it)+more > limit && !(i == len(items)-1 && b.Len()+1+len(it) <= limit) {
			fmt.Fprintf(b, "\n… %d more %s", len(items)-i, what)
			return
		}
		b.WriteString("\n")
		b.WriteString(it)
	}
}

// maxWarnings bounds what is sent back: the API server drops warnings past a
// total size, and a wall of text helps nobody.
const maxWarnings = 10

// Warnings are one short line each: kubectl prints "Warning: <line>".
// Past maxWarnings, the last line counts the rest, which are not written.
func (v *Verdict) Warnings() []string {
	n := len(v.Notes)
	for _, f := range v.Findings {
		if f.Action == ActionWarn {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	shown := n
	if n > maxWarnings {
		shown = maxWarnings - 1
	}
	out := make([]string, 0, min(n, maxWarnings))
	for _, f := range v.Findings {
		if len(out) == shown {
			break
		}
		if f.Action == ActionWarn {
			out = append(out, f.warning())
		}
	}
	for _, note := range v.Notes {
		if len(out) == shown {
			break
		}
		out = append(out, registry.Sanitize("pullsafe: "+note, maxFindingBytes))
	}
	if n > maxWarnings {
		out = append(out, "pullsafe: "+strconv.Itoa(n-maxWarnings+1)+" more warnings not shown")
	}
	return out
}

// warning is a warning finding's line: "pullsafe [rule] <Line> — <fix>".
func (f Finding) warning() string {
	var b strings.Builder
	b.Grow(len(f.Container) + len(f.Image) + len(f.Cause) + len(f.Fix) + 64)
	b.WriteString("pullsafe [")
	b.WriteString(string(f.Rule))
	b.WriteString("] ")
	f.writeLine(&b)
	if f.Fix != "" {
		b.WriteString(" — ")
		b.WriteString(f.Fix)
	}
	return registry.Sanitize(b.String(), maxFindingBytes)
}

// Annotations are the audit annotations of the response. The API server
// prefixes each key with the webhook's name (validate.pullsafe.io/...).
func (v *Verdict) Annotations() map[string]string {
	a := map[string]string{"decision": string(v.Decision()), "mode": string(v.Mode)}
	// Every entry is written into one text and sorted as substrings of it:
	// a 30-container Pod's findings cost two allocations, not thirty.
	var text strings.Builder
	size := 0
	for _, f := range v.Findings {
		size += len(f.Rule) + len(f.Action) + len(f.Container) + 16
	}
	text.Grow(size)
	var endsBuf [16]int
	ends := endsBuf[:0]
	for _, f := range v.Findings {
		text.WriteString(string(f.Rule))
		text.WriteByte(':')
		text.WriteString(string(f.Action))
		text.WriteByte(':')
		if short := f.Source.Short(); short != "" {
			text.WriteString(short) // volume/models: not a container's name
			text.WriteByte('/')
		}
		text.WriteString(registry.Sanitize(f.Container, maxQuotedBytes))
		ends = append(ends, text.Len())
	}
	all := text.String()
	fs := make([]string, len(ends))
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		fs[i] = all[start:end]
	}
	if len(fs) > 0 {
		sort.Strings(fs)
		a["findings"] = joinCapped(fs, maxDenialBytes)
	}
	return a
}

// joinCapped joins items with "," within limit bytes, then ",… N more":
// an audit annotation is in the response and in every audit event.
func joinCapped(items []string, limit int) string {
	const more = len(",… 99999 more")
	var b strings.Builder
	for i, it := range items {
		sep := 0
		if i > 0 {
			sep = 1
		}
		if b.Len()+sep+len(it)+more > limit && !(i == len(items)-1 && b.Len()+sep+len(it) <= limit) {
			fmt.Fprintf(&b, ",… %d more", len(items)-i)
			break
		}
		if sep == 1 {
			b.WriteByte(',')
		}
		b.WriteString(it)
	}
	return b.String()
}

// PinnedAnnotation lists the pinned references, for the mutating webhook's
// audit annotation.
func (v *Verdict) PinnedAnnotation() string {
	ps := make([]string, len(v.Pins))
	for i, p := range v.Pins {
		ps[i] = p.To
	}
	return joinCapped(ps, maxDenialBytes)
}
