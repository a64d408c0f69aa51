package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// report prints results grouped by object: the same denial and warning text
// the webhook sends, so CI and the cluster read alike.
func report(results []checked, output string, w io.Writer) error {
	if output == "json" {
		return reportJSON(results, w)
	}
	color := isTerminal(w)
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\033[" + code + "m" + s + "\033[0m"
	}
	counts := map[policy.Decision]int{}
	skipped := 0
	for _, r := range results {
		if r.skipped != "" {
			// Never silent: an object check did not look at is named.
			skipped++
			fmt.Fprintf(w, "%s: %s/%s: skipped: %s\n", registry.Shown(r.m.Where()), registry.Shown(r.w.Namespace), registry.Shown(r.v.Object), registry.Shown(r.skipped))
			continue
		}
		d := r.v.Decision()
		counts[d]++
		if d == policy.DecisionAllow && len(r.v.Notes) == 0 {
			continue
		}
		label := map[policy.Decision]string{policy.DecisionDeny: paint("31;1", "DENY"), policy.DecisionWarn: paint("33", "WARN"),
			policy.DecisionAllow: "ok"}[d]
		// File names and namespaces come from the user's files: as
		// untrusted as the registry's words the verdict already cleaned.
		fmt.Fprintf(w, "%s: %s/%s: %s\n", registry.Shown(r.m.Where()), registry.Shown(r.w.Namespace), registry.Shown(r.v.Object), label)
		if msg := r.v.DenialMessage(); msg != "" {
			fmt.Fprintln(w, indent(msg))
		}
		for _, line := range r.v.Warnings() {
			fmt.Fprintln(w, indent(line))
		}
	}
	fmt.Fprintf(w, "%d workloads checked: %d would be denied, %d warned, %d allowed", len(results)-skipped,
		counts[policy.DecisionDeny], counts[policy.DecisionWarn], counts[policy.DecisionAllow])
	if skipped > 0 {
		fmt.Fprintf(w, "; %d skipped (admitted unchecked by the webhook)", skipped)
	}
	fmt.Fprintln(w)
	return nil
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

type jsonResult struct {
	Source    string          `json:"source"`
	Document  int             `json:"document"`
	Item      int             `json:"item,omitempty"`
	Namespace string          `json:"namespace"`
	Object    string          `json:"object"`
	Decision  policy.Decision `json:"decision"`
	// Skipped says why the object was not checked (the webhook admits it
	// untouched: decision allow, no findings).
	Skipped  string               `json:"skipped,omitempty"`
	Findings []policy.FindingJSON `json:"findings"`
	Notes    []string             `json:"notes,omitempty"`
	Pins     []policy.Pin         `json:"pins,omitempty"`
}

func reportJSON(results []checked, w io.Writer) error {
	out := make([]jsonResult, 0, len(results))
	for _, r := range results {
		// Source, namespace and object come from the user's files: kept
		// as values, with anything unprintable escaped like container and
		// image (JSON itself would pass C1 controls and bidi overrides).
		jr := jsonResult{Source: registry.Visible(r.m.Source), Document: r.m.Doc, Item: r.m.Item, Namespace: registry.Visible(r.w.Namespace),
			Object: registry.Visible(r.v.Object), Decision: r.v.Decision(), Skipped: registry.Shown(r.skipped), Findings: []policy.FindingJSON{}, Notes: slices.Clone(r.v.Notes), Pins: r.v.Pins}
		for i, n := range jr.Notes {
			jr.Notes[i] = registry.Shown(n)
		}
		for _, f := range r.v.Findings {
			jr.Findings = append(jr.Findings, f.JSON())
		}
		out = append(out, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// isTerminal: colour only on a terminal, and not with NO_COLOR.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == ""
}

// addDockerConfig adds the user's docker login credentials, where present.
func addDockerConfig(kc *registry.Keychain) error {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(home, ".docker")
	}
	file := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return kc.AddDockerConfig(file, data)
}
