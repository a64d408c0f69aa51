package policy

import (
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
)

// Node is what the platform rule needs of a node.
type Node struct {
	Name   string
	Labels map[string]string
}

// Platform is os/arch[/variant] from the node's well-known labels.
func (n Node) Platform() string {
	p := n.Labels[corev1.LabelOSStable] + "/" + n.Labels[corev1.LabelArchStable]
	if v := n.Labels["kubernetes.io/arch-variant"]; v != "" {
		p += "/" + v
	}
	return p
}

// Eligible returns the nodes spec may be scheduled to: its nodeName, else
// those its nodeSelector and required node affinity select. Taints are not
// considered: a toleration can always be added, an architecture cannot.
func Eligible(nodes []Node, spec *corev1.PodSpec) []Node {
	var out []Node
	for _, n := range nodes {
		if spec.NodeName != "" {
			if n.Name == spec.NodeName {
				out = append(out, n)
			}
			continue
		}
		if selects(spec.NodeSelector, n) && affinityAllows(spec.Affinity, n) {
			out = append(out, n)
		}
	}
	return out
}

func selects(sel map[string]string, n Node) bool {
	for k, v := range sel {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

// affinityAllows evaluates requiredDuringSchedulingIgnoredDuringExecution:
// terms are ORed, expressions within a term ANDed. An unknown operator
// selects nothing, as the scheduler rejects it.
func affinityAllows(a *corev1.Affinity, n Node) bool {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for _, t := range terms {
		if termMatches(t, n) {
			return true
		}
	}
	return false
}

func termMatches(t corev1.NodeSelectorTerm, n Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false // an empty term matches no objects
	}
	for _, e := range t.MatchExpressions {
		if !exprMatches(e, n.Labels) {
			return false
		}
	}
	for _, e := range t.MatchFields {
		if !exprMatches(e, map[string]string{"metadata.name": n.Name}) {
			return false
		}
	}
	return true
}

func exprMatches(e corev1.NodeSelectorRequirement, labels map[string]string) bool {
	v, has := labels[e.Key]
	in := func() bool {
		for _, x := range e.Values {
			if x == v {
				return true
			}
		}
		return false
	}
	switch e.Operator {
	case corev1.NodeSelectorOpIn:
		return has && in()
	case corev1.NodeSelectorOpNotIn:
		return !has || !in()
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	}
	return false // Gt/Lt on os/arch labels make no sense; be conservative
}

// runs reports whether an image offering platforms can run on node n.
// A variant is compared only where both sides state one.
func runs(platforms []v1.Platform, n Node) bool {
	os, arch, variant := n.Labels[corev1.LabelOSStable], n.Labels[corev1.LabelArchStable], n.Labels["kubernetes.io/arch-variant"]
	for _, p := range platforms {
		if p.OS == os && p.Architecture == arch && (p.Variant == "" || variant == "" || p.Variant == variant) {
			return true
		}
	}
	return false
}

// platformList is "linux/amd64, linux/arm64/v8" for messages.
func platformList(ps []v1.Platform) string {
	seen := map[string]bool{}
	var s []string
	for _, p := range ps {
		x := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			x += "/" + p.Variant
		}
		if !seen[x] {
			seen[x] = true
			s = append(s, x)
		}
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// nodeSummary is "3 linux/arm64" or "2 linux/amd64, 1 linux/arm64".
func nodeSummary(nodes []Node) string {
	count := map[string]int{}
	for _, n := range nodes {
		count[n.Platform()]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	return strings.Join(parts, ", ")
}
