package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Node is what the platform rule needs of a node.
type Node struct {
	Name   string
	Labels map[string]string
	// Variant is the CPU variant (v7, v8) where it is known. Kubernetes sets
	// no label for it, so for a cluster's nodes it is empty ("unknown", never
	// a mismatch); only `pullsafe check --platforms linux/arm/v7` states one.
	Variant string
	// Runtime is the node's status.nodeInfo.containerRuntimeVersion, e.g.
	// "containerd://2.1.4"; empty when unknown.
	Runtime string
	// UID is the Node object's, which a mirror Pod's owner reference names
	// (ConfirmMirror); empty when unknown.
	UID string
	// WindowsBuild is a Windows node's major.minor.build ("10.0.17763"),
	// which decides the index entries it pulls (windowsbuild.go); empty when
	// unknown or not Windows.
	WindowsBuild string

	obj *corev1.Node // name and labels as the scheduler's matcher takes them, built once
}

// NodeOf keeps what the rules read of a cluster's node. The labels map is
// shared, not copied: informer objects are never mutated.
func NodeOf(n *corev1.Node) Node {
	out := Node{Name: n.Name, Labels: n.Labels, Runtime: n.Status.NodeInfo.ContainerRuntimeVersion, UID: string(n.UID),
		WindowsBuild: WindowsBuildOf(n)}
	out.obj = out.object()
	return out
}

// object is the node for the scheduler's matcher: only what it reads.
func (n Node) object() *corev1.Node {
	if n.obj != nil {
		return n.obj
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}}
}

// Platform is os/arch[/variant] from the node's well-known labels.
func (n Node) Platform() string {
	p := n.Labels[corev1.LabelOSStable] + "/" + n.Labels[corev1.LabelArchStable]
	if n.Variant != "" {
		p += "/" + n.Variant
	}
	return p
}

// Eligible returns the nodes a pod with spec may run on, as the scheduler
// and the kubelet decide it: the scheduler's own required-node-affinity
// matcher (nodeSelector ANDed with requiredDuringScheduling terms, Gt/Lt,
// matchFields on metadata.name), and for a pod with nodeName only that node
// (the kubelet still rejects it there if the affinity does not match).
// Taints are not considered: a toleration can always be added, an
// architecture cannot. Ignoring them only widens the eligible set, and a
// denial needs every eligible node to refuse the image (or, for schema 1,
// to run containerd 2.1+), so a wider set can turn a denial into a
// warning, never the other way.
func Eligible(nodes []Node, spec *corev1.PodSpec) []Node {
	req := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: corev1.PodSpec{NodeSelector: spec.NodeSelector, Affinity: spec.Affinity}})
	eligible := func(n Node) bool {
		if spec.NodeName != "" && n.Name != spec.NodeName {
			return false
		}
		// A term the scheduler cannot parse selects nothing there either.
		ok, err := req.Match(n.object())
		return err == nil && ok
	}
	// Most Pods may run on every node: then the answer is nodes itself,
	// capped against appends, and no Node is copied.
	first := slices.IndexFunc(nodes, func(n Node) bool { return !eligible(n) })
	if first < 0 {
		return nodes[:len(nodes):len(nodes)]
	}
	out := append([]Node(nil), nodes[:first]...)
	for _, n := range nodes[first+1:] {
		if eligible(n) {
			out = append(out, n)
		}
	}
	return out
}

// stated drops platforms that say nothing: an OCI artifact's config or an
// index entry without os/architecture, or a buildx attestation's
// unknown/unknown, is no claim about where it runs, so it must not fail the
// platform rule.
//
// When every platform states something (the usual index), ps itself is
// returned, capped so that an append cannot write into the cached answer
// it came from: every container of every review asks.
func stated(ps []v1.Platform) []v1.Platform {
	says := func(p v1.Platform) bool { return p.OS != "" && p.Architecture != "" && p.OS != "unknown" }
	if !slices.ContainsFunc(ps, func(p v1.Platform) bool { return !says(p) }) {
		return ps[:len(ps):len(ps)]
	}
	var out []v1.Platform
	for _, p := range ps {
		if says(p) {
			out = append(out, p)
		}
	}
	return out
}

// runs reports whether an image offering platforms can run on node n: as
// containerd's platform matcher decides it (platformmatch.go), and on a
// Windows node of known build, its OS version matcher (windowsbuild.go). A
// variant is compared only where both sides state one.
func runs(platforms []v1.Platform, n Node) bool {
	os, arch := n.Labels[corev1.LabelOSStable], n.Labels[corev1.LabelArchStable]
	if os == "" || arch == "" {
		return true // the node does not say what it is: unknown, never a mismatch
	}
	for _, p := range platforms {
		if pulls(p, os, arch, n.Variant) && (normalOS(os) != "windows" || buildRuns(n.WindowsBuild, p.OSVersion)) {
			return true
		}
	}
	return false
}

// narrowing is the fix for "only some eligible nodes can run it": a
// selector on kubernetes.io/os and/or kubernetes.io/arch with the values of
// the nodes that can run the image (so a value both the image and an
// eligible node have), for each label where some node that cannot run it
// has another value. Empty when labels cannot tell the two groups apart.
func narrowing(can, cannot []Node) string {
	// Built in one Builder, with the values on the stack: the platform rule
	// says this for every image only some nodes run.
	var b strings.Builder
	b.Grow(160) // two selectors of a few values: one allocation
	var buf [8]string
	for _, key := range [...]string{corev1.LabelOSStable, corev1.LabelArchStable, corev1.LabelWindowsBuild} {
		vals := buf[:0]
		for _, n := range can {
			if v := n.Labels[key]; !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
		}
		// A node without the label (the build of a Linux node) cannot be
		// selected by a value of it.
		if slices.Contains(vals, "") || !slices.ContainsFunc(cannot, func(n Node) bool { return !slices.Contains(vals, n.Labels[key]) }) {
			continue
		}
		slices.Sort(vals)
		if b.Len() == 0 {
			b.WriteString("add ")
		} else {
			b.WriteString(" and ")
		}
		if len(vals) == 1 {
			b.WriteString("nodeSelector ")
			b.WriteString(key)
			b.WriteString(": ")
			b.WriteString(vals[0])
			continue
		}
		b.WriteString("required node affinity ")
		b.WriteString(key)
		b.WriteString(" In (")
		for i, v := range vals {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v)
		}
		b.WriteByte(')')
	}
	if b.Len() == 0 {
		return "constrain the pod to the nodes that can run it (nodeSelector or required node affinity)"
	}
	return b.String()
}

// refusesSchema1 reports whether the node runs containerd 2.1 or later,
// which no longer has the code to pull a Docker schema 1 manifest. 2.0 only
// disables it by default (CONTAINERD_ENABLE_DEPRECATED_PULL_SCHEMA_1_IMAGE=1
// re-enables it), which pullsafe cannot see, so 2.0 is not known to refuse.
func (n Node) refusesSchema1() bool {
	return n.runtimeAtLeast("containerd://", 2, 1)
}

// runtimeAtLeast reports whether the node's containerRuntimeVersion is
// scheme (e.g. "cri-o://") at major.minor or later ("v2.1.3", "1.34.1-dev",
// "1.34.1-3.rhaos4.21"). A version it cannot read is not at least
// anything: what a runtime would refuse is only claimed when known.
func (n Node) runtimeAtLeast(scheme string, major, minor int) bool {
	v, ok := strings.CutPrefix(n.Runtime, scheme)
	if !ok {
		return false
	}
	maj, rest, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	mnr, _, _ := strings.Cut(rest, ".")
	mnr, _, _ = strings.Cut(mnr, "-")
	ma, err1 := strconv.Atoi(maj)
	mi, err2 := strconv.Atoi(mnr)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// platformList is "linux/amd64, linux/arm64/v8" for messages.
func platformList(ps []v1.Platform) string {
	// Every entry is written once into text and sorted as substrings of
	// it: an index of a dozen platforms costs two allocations, not one per
	// platform.
	var text strings.Builder
	var buf [16]string
	ends := make([]int, 0, len(buf))
	size := 0
	for _, p := range ps {
		size += len(p.OS) + len(p.Architecture) + len(p.Variant) + 2
	}
	text.Grow(size)
	for _, p := range ps {
		text.WriteString(p.OS)
		text.WriteByte('/')
		text.WriteString(p.Architecture)
		if p.Variant != "" {
			text.WriteByte('/')
			text.WriteString(p.Variant)
		}
		ends = append(ends, text.Len())
	}
	all := text.String()
	s := buf[:0]
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		if x := all[start:end]; !slices.Contains(s, x) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// nodeSummary is "3 linux/arm64" or "2 linux/amd64, 1 windows/amd64
// 10.0.17763".
func nodeSummary(nodes []Node) string {
	count := map[string]int{}
	for _, n := range nodes {
		k := n.Platform()
		if n.WindowsBuild != "" {
			k += " " + n.WindowsBuild
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	size := 0
	for k := range count {
		keys = append(keys, k)
		size += len(k) + 8
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(size)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(count[k]))
		b.WriteByte(' ')
		b.WriteString(k)
	}
	return b.String()
}

// ParsePlatforms reads a comma-separated list of os/arch[/variant]
// ("linux/amd64,linux/arm64/v8") as the nodes of a cluster that has
// exactly those platforms: what the platform rule asks about when no
// cluster's nodes can be read.
func ParsePlatforms(list string) ([]Node, error) {
	var nodes []Node
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("%q is not os/arch[/variant]", p)
		}
		n := Node{Name: p, Labels: map[string]string{corev1.LabelOSStable: parts[0], corev1.LabelArchStable: parts[1]}}
		if len(parts) == 3 {
			n.Variant = parts[2]
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
