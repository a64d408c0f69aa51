package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pullsafe/pullsafe/policy"
)

// whyText prints the answer for a person. Everything shown came from the
// cluster or a registry (kubelet messages quote registry responses): each
// string is cleaned and bounded.
func whyText(r *whyResult, w io.Writer, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\033[" + code + "m" + s + "\033[0m"
	}
	obj := clean(r.Object) + " in namespace " + clean(r.Namespace)
	if len(r.Template) > 0 {
		fmt.Fprintf(w, "%s: %s\n", obj, paint("31;1", "new pods would fail to pull:"))
		seen := map[string]bool{}
		for _, f := range r.Template {
			fmt.Fprintf(w, "  [%s] %s\n", f.Rule, clean(f.Line()))
			if f.Fix != "" && !seen[f.Fix] {
				seen[f.Fix] = true
				fmt.Fprintf(w, "  fix: %s\n", clean(f.Fix))
			}
		}
	}
	for _, p := range r.Pods {
		head := "pod/" + clean(p.Name) + " in namespace " + clean(r.Namespace)
		if p.Node != "" {
			head += " on node " + clean(p.Node)
		}
		if !p.Stuck {
			fmt.Fprintf(w, "%s: %s (phase %s)\n", head, paint("32", "not stuck on an image"), clean(p.Phase))
			for _, line := range p.Waiting {
				fmt.Fprintf(w, "  %s\n", clean(line))
			}
			continue
		}
		fmt.Fprintf(w, "%s: stuck pulling %d image(s)\n", head, len(p.Images))
		for _, im := range p.Images {
			state := clean(im.KubeletReason)
			if state == "" {
				state = "failed pulls in events"
			}
			fmt.Fprintf(w, "  %s %s image %s: %s\n", im.Source, quotedClean(im.Container), quotedClean(im.Image), state)
			if im.KubeletMessage != "" {
				fmt.Fprintf(w, "    kubelet: %s\n", clean(im.KubeletMessage))
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
				fmt.Fprintf(w, "    last failed pull, Event by %s%s: %s\n", quotedClean(cmp.Or(im.LastErrorBy, "?")), when, quotedClean(im.LastError))
			}
			switch im.Status {
			case statusFineNow:
				fmt.Fprintf(w, "    %s %s\n", paint("32", "now fine:"), clean(im.Cause))
			case statusCannotTell:
				fmt.Fprintf(w, "    %s %s\n", paint("33", "cannot tell ["+clean(im.Rule)+"]:"), clean(im.Cause))
			default:
				fmt.Fprintf(w, "    %s %s\n", paint("31;1", "cause ["+clean(im.Rule)+"]:"), clean(im.Cause))
			}
			if im.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", clean(im.Fix))
			}
		}
	}
	if r.MorePods > 0 {
		fmt.Fprintf(w, "… %d more stuck pods not shown\n", r.MorePods)
	}
	if len(r.Pods) == 0 && len(r.Template) == 0 {
		fmt.Fprintf(w, "%s: no pod stuck on an image, and new pods would pull\n", obj)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", clean(n))
	}
	return nil
}

// quotedClean shows a name or image as a Go string, bounded: unprintable
// runes escaped, so a hostile name is visible as such.
func quotedClean(s string) string {
	if len(s) > maxShown {
		s = clean(s)
	}
	return strconv.Quote(s)
}

type whyJSONResult struct {
	Namespace  string        `json:"namespace"`
	Object     string        `json:"object"`
	Stuck      bool          `json:"stuck"`
	CauseFound bool          `json:"causeFound"`
	Pods       []whyPod      `json:"pods"`
	MorePods   int           `json:"morePods,omitempty"`
	Template   []jsonFinding `json:"template,omitempty"`
	Notes      []string      `json:"notes,omitempty"`
}

func whyJSON(r *whyResult, w io.Writer) error {
	out := whyJSONResult{Namespace: visible(r.Namespace), Object: visible(r.Object), CauseFound: r.causeFound(), Pods: []whyPod{}, MorePods: r.MorePods}
	for _, p := range r.Pods {
		p.Name, p.Node, p.Phase = visible(p.Name), visible(p.Node), visible(p.Phase)
		out.Stuck = out.Stuck || p.Stuck
		waiting := make([]string, len(p.Waiting))
		for i, s := range p.Waiting {
			waiting[i] = clean(s)
		}
		p.Waiting = waiting
		ims := make([]explanation, len(p.Images))
		for i, im := range p.Images {
			im.Container, im.Image = visible(im.Container), visible(im.Image)
			im.KubeletReason, im.KubeletMessage, im.LastError = clean(im.KubeletReason), clean(im.KubeletMessage), clean(im.LastError)
			im.LastErrorBy = visible(im.LastErrorBy)
			im.Cause, im.Fix, im.Rule = clean(im.Cause), clean(im.Fix), clean(im.Rule)
			ims[i] = im
		}
		p.Images = ims
		out.Pods = append(out.Pods, p)
	}
	for _, f := range r.Template {
		out.Template = append(out.Template, jsonFinding{Rule: f.Rule, Action: f.Action, Container: visible(f.Container), Image: visible(f.Image),
			Cause: clean(f.Cause), Fix: clean(f.Fix), Source: policy.Source(f.Source.String())})
	}
	for _, n := range r.Notes {
		out.Notes = append(out.Notes, clean(n))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
