package diagnose

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// WriteText prints the answer for a person, coloured when color is set.
// Everything shown came from the cluster or a registry (kubelet messages
// quote registry responses): each string is cleaned and bounded.
func WriteText(r *Result, w io.Writer, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\033[" + code + "m" + s + "\033[0m"
	}
	obj := registry.Shown(r.Object) + " in namespace " + registry.Shown(r.Namespace)
	writeTemplate(w, obj, r.Template, paint)
	for _, p := range r.Pods {
		writePod(w, r.Namespace, p, paint)
	}
	if r.MorePods > 0 {
		fmt.Fprintf(w, "… %d more stuck pods not shown\n", r.MorePods)
	}
	if len(r.Pods) == 0 && len(r.Template) == 0 {
		fmt.Fprintf(w, "%s: no pod stuck on an image, and new pods would pull\n", obj)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", registry.Shown(n))
	}
	return nil
}

// writeTemplate prints what new pods of a workload would fail on, each fix
// once.
func writeTemplate(w io.Writer, obj string, template []policy.Finding, paint func(code, s string) string) {
	if len(template) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %s\n", obj, paint("31;1", "new pods would fail to pull:"))
	seen := map[string]bool{}
	for _, f := range template {
		fmt.Fprintf(w, "  [%s] %s\n", f.Rule, registry.Shown(f.Line()))
		if f.Fix != "" && !seen[f.Fix] {
			seen[f.Fix] = true
			fmt.Fprintf(w, "  fix: %s\n", registry.Shown(f.Fix))
		}
	}
}

// writePod prints one pod: what its containers wait for when it is not
// stuck on an image, else each stuck image.
func writePod(w io.Writer, ns string, p Pod, paint func(code, s string) string) {
	head := "pod/" + registry.Shown(p.Name) + " in namespace " + registry.Shown(ns)
	if p.Node != "" {
		head += " on node " + registry.Shown(p.Node)
	}
	if !p.Stuck {
		fmt.Fprintf(w, "%s: %s (phase %s)\n", head, paint("32", "not stuck on an image"), registry.Shown(p.Phase))
		for _, line := range p.Waiting {
			fmt.Fprintf(w, "  %s\n", registry.Shown(line))
		}
		return
	}
	fmt.Fprintf(w, "%s: stuck pulling %d image(s)\n", head, len(p.Images))
	for _, im := range p.Images {
		writeImage(w, im, paint)
	}
}

// writeImage prints one stuck image: the kubelet's words, then pullsafe's.
func writeImage(w io.Writer, im Explanation, paint func(code, s string) string) {
	state := registry.Shown(im.KubeletReason)
	if state == "" {
		state = "failed pulls in events"
	}
	fmt.Fprintf(w, "  %s %s image %s: %s\n", im.Source, registry.QuotedShown(im.Container), registry.QuotedShown(im.Image), state)
	if im.KubeletMessage != "" {
		fmt.Fprintf(w, "    kubelet: %s\n", registry.Shown(im.KubeletMessage))
	}
	if im.LastError != "" {
		when := ""
		if im.LastErrorAt != nil {
			when = " at " + im.LastErrorAt.Format(time.RFC3339)
		}
		if im.LastErrorCount > 1 {
			when += fmt.Sprintf(", %d times", im.LastErrorCount)
		}
		// An Event's text, quoted: anyone allowed to create Events
		// may have written it, and it must not read as pullsafe's.
		fmt.Fprintf(w, "    last failed pull, Event by %s%s: %s\n", registry.QuotedShown(cmp.Or(im.LastErrorBy, "?")), when, registry.QuotedShown(im.LastError))
	}
	switch im.Status {
	case StatusFineNow:
		fmt.Fprintf(w, "    %s %s\n", paint("32", "now fine:"), registry.Shown(im.Cause))
	case StatusCannotTell:
		fmt.Fprintf(w, "    %s %s\n", paint("33", "cannot tell ["+registry.Shown(im.Rule)+"]:"), registry.Shown(im.Cause))
	default:
		fmt.Fprintf(w, "    %s %s\n", paint("31;1", "cause ["+registry.Shown(im.Rule)+"]:"), registry.Shown(im.Cause))
	}
	if im.Fix != "" {
		fmt.Fprintf(w, "    fix: %s\n", registry.Shown(im.Fix))
	}
}

// jsonResult is the JSON answer: Result, cleaned, with what a script
// branches on (stuck, causeFound) said once.
type jsonResult struct {
	Namespace  string               `json:"namespace"`
	Object     string               `json:"object"`
	Stuck      bool                 `json:"stuck"`
	CauseFound bool                 `json:"CauseFound"`
	Pods       []Pod                `json:"pods"`
	MorePods   int                  `json:"morePods,omitempty"`
	Template   []policy.FindingJSON `json:"template,omitempty"`
	Notes      []string             `json:"notes,omitempty"`
}

// WriteJSON prints the answer as indented JSON: strings a person reads
// cleaned as in the text, names and images kept with anything unprintable
// escaped (registry.Visible).
func WriteJSON(r *Result, w io.Writer) error {
	out := jsonResult{Namespace: registry.Visible(r.Namespace), Object: registry.Visible(r.Object), CauseFound: r.CauseFound(), Pods: []Pod{}, MorePods: r.MorePods}
	for _, p := range r.Pods {
		p.Name, p.Node, p.Phase = registry.Visible(p.Name), registry.Visible(p.Node), registry.Visible(p.Phase)
		out.Stuck = out.Stuck || p.Stuck
		waiting := make([]string, len(p.Waiting))
		for i, s := range p.Waiting {
			waiting[i] = registry.Shown(s)
		}
		p.Waiting = waiting
		ims := make([]Explanation, len(p.Images))
		for i, im := range p.Images {
			im.Container, im.Image = registry.Visible(im.Container), registry.Visible(im.Image)
			im.KubeletReason, im.KubeletMessage, im.LastError = registry.Shown(im.KubeletReason), registry.Shown(im.KubeletMessage), registry.Shown(im.LastError)
			im.LastErrorBy = registry.Visible(im.LastErrorBy)
			im.Cause, im.Fix, im.Rule = registry.Shown(im.Cause), registry.Shown(im.Fix), registry.Shown(im.Rule)
			ims[i] = im
		}
		p.Images = ims
		out.Pods = append(out.Pods, p)
	}
	for _, f := range r.Template {
		out.Template = append(out.Template, f.JSON())
	}
	for _, n := range r.Notes {
		out.Notes = append(out.Notes, registry.Shown(n))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
