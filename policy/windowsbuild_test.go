package policy

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/registry"
)

// Windows builds of containerd/platforms' platform_windows_compat.go.
const (
	rs5         = "10.0.17763" // ltsc2019
	v21H2Server = "10.0.20348" // ltsc2022
	v22H2Win11  = "10.0.22621"
	ltsc2025    = "10.0.26100"
	v25H2       = "10.0.26200" // past the latest LTSC
)

// winNode is a Windows node as the kubelet labels it, running containerd.
func winNode(name, build string) Node {
	n := node(name, "amd64", corev1.LabelOSStable, "windows")
	if build != "" {
		n.Labels[corev1.LabelWindowsBuild] = build
	}
	n.WindowsBuild, n.Runtime = build, "containerd://2.1.4"
	return n
}

func win(osVersion string) v1.Platform {
	return v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: osVersion}
}

// TestBuildRunsAsContainerd is containerd/platforms' Test_PlatformCompat
// (platform_windows_compat_test.go: ltsc2019 and ltsc2022 images on
// RS5, WS2022 and Windows 11 hosts) and the v1.0.0-rc.5 fix (a host past
// the latest LTSC still runs ltsc2022), with image os.version written as
// indexes write it (with the revision).
func TestBuildRunsAsContainerd(t *testing.T) {
	tests := []struct {
		host, image string
		want        bool
	}{
		{rs5, rs5 + ".6054", true},
		{rs5, v21H2Server + ".2700", false},
		{v21H2Server, rs5 + ".6054", false},
		{v21H2Server, v21H2Server + ".2700", true},
		{v22H2Win11, rs5 + ".6054", false},
		{v22H2Win11, v21H2Server + ".2700", true},
		{ltsc2025, v21H2Server + ".2700", true},
		{ltsc2025, ltsc2025 + ".1", true},
		{v25H2, v21H2Server + ".2700", true},
		{v21H2Server, ltsc2025 + ".1", false}, // newer than the host
		{"10.0.19041", "10.0.19041.1", true},  // below 20348: exact build
		{"10.0.19041", rs5 + ".1", false},
		{rs5, "", true},               // the entry states no build
		{"", v21H2Server, true},       // the node's build is unknown
		{rs5, "not a version", false}, // containerd reads it as 0.0.0
	}
	for _, tt := range tests {
		if got := buildRuns(tt.host, tt.image); got != tt.want {
			t.Errorf("buildRuns(%q, %q) = %v, want %v", tt.host, tt.image, got, tt.want)
		}
	}
}

func TestWindowsBuildOf(t *testing.T) {
	mk := func(os, label, kernel string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{corev1.LabelOSStable: os}}}
		if label != "" {
			n.Labels[corev1.LabelWindowsBuild] = label
		}
		n.Status.NodeInfo.KernelVersion = kernel
		return n
	}
	tests := []struct {
		name string
		node *corev1.Node
		want string
	}{
		{"label", mk("windows", rs5, "10.0.17763.6054"), rs5},
		{"label wins over the kernel version", mk("windows", v21H2Server, "10.0.17763.6054"), v21H2Server},
		{"kernel version without label", mk("windows", "", "10.0.20348.2700"), v21H2Server},
		{"garbage label, kernel version", mk("windows", "ltsc2019", "10.0.17763.1"), rs5},
		{"nothing parseable", mk("windows", "x", "6.1.0-amd64"), ""},
		{"build out of range", mk("windows", "10.0.99999", ""), ""},
		{"linux node", mk("linux", "", "10.0.17763.1"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WindowsBuildOf(tt.node); got != tt.want {
				t.Errorf("WindowsBuildOf = %q, want %q", got, tt.want)
			}
			if got := NodeOf(tt.node).WindowsBuild; got != tt.want {
				t.Errorf("NodeOf().WindowsBuild = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWindowsBuildsThroughChecker: indexes with Windows entries of various
// os.version against nodes of various builds, through the Checker.
func TestWindowsBuildsThroughChecker(t *testing.T) {
	const image = "registry.corp.io/team/winapp:v1"
	index := func(ps ...v1.Platform) fakeResolver {
		i := img("registry.corp.io/team/winapp", "v1", digest1)
		return fakeResolver{images: map[string]*registry.Image{image: i}, platforms: map[v1.Hash][]v1.Platform{i.Digest: ps}}
	}
	fix := func(offers string) string {
		return fmt.Sprintf("use a tag built for the nodes' Windows build (mcr.microsoft.com images: ltsc2019 is 10.0.17763, ltsc2022 10.0.20348, ltsc2025 10.0.26100), build a multi-build index, or add nodeSelector node.kubernetes.io/windows-build: <a build the image runs on> (it offers %s)", offers)
	}
	ct := Container{Image: image, PullPolicy: corev1.PullAlways}
	tests := []fixture{
		{name: "ltsc2022 only on ltsc2019 nodes: denied", ct: ct, nodes: []Node{winNode("w1", rs5), winNode("w2", rs5)},
			res: index(win(v21H2Server + ".2700")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers windows 10.0.20348 only; eligible nodes run 10.0.17763", Fix: fix("10.0.20348")}}}},
		{name: "ltsc2019 only on ltsc2022 nodes: denied", ct: ct, nodes: []Node{winNode("w1", v21H2Server)},
			res: index(win(rs5 + ".6054")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers windows 10.0.17763 only; eligible nodes run 10.0.20348", Fix: fix("10.0.17763")}}}},
		{name: "ltsc2022 on ltsc2022, Windows 11, ltsc2025 and 25H2 nodes", ct: ct,
			nodes: []Node{winNode("w1", v21H2Server), winNode("w2", v22H2Win11), winNode("w3", ltsc2025), winNode("w4", v25H2)},
			res:   index(win(v21H2Server + ".2700"))},
		{name: "multi-build index on both builds", ct: ct, nodes: []Node{winNode("w1", rs5), winNode("w2", v21H2Server)},
			res: index(win(rs5+".6054"), win(v21H2Server+".2700"), linux("amd64"))},
		{name: "some nodes of another build: a warning naming them, and the selector", ct: ct,
			nodes: []Node{winNode("old1", rs5), winNode("new1", v21H2Server), winNode("old2", rs5)},
			res:   index(win(v21H2Server + ".2700")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: "offers windows 10.0.20348 only; 2 of 3 eligible nodes (old1, old2) run 10.0.17763",
				Fix:   "add nodeSelector node.kubernetes.io/windows-build: 10.0.20348"}}}},
		{name: "the selector already narrows to the build", ct: ct,
			spec:  corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelWindowsBuild: v21H2Server}},
			nodes: []Node{winNode("old1", rs5), winNode("new1", v21H2Server)},
			res:   index(win(v21H2Server + ".2700"))},
		// containerd pulls for a runtime handler's own guest platform
		// (GuestPlatform, KEP 4216 image pull per runtime class): a
		// Hyper-V-isolated Pod may run another build than the host's, and
		// pullsafe does not see the handlers' configuration.
		{name: "runtimeClassName (Hyper-V): another build cannot be verified, a warning", ct: ct,
			spec:  corev1.PodSpec{RuntimeClassName: ptr.To("runhcs-wcow-hypervisor")},
			nodes: []Node{winNode("w1", v21H2Server), winNode("w2", v21H2Server)},
			res:   index(win(rs5 + ".6054")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionWarn,
				Cause: "cannot verify the Windows build: offers windows 10.0.17763 only; eligible nodes (w1, w2) run 10.0.20348, and runtimeClassName runhcs-wcow-hypervisor may pull for another build (a Hyper-V runtime handler's guest platform)",
				Fix:   fix("10.0.17763")}}}},
		{name: "runtimeClassName: an architecture no node has is still denied", ct: ct,
			spec:  corev1.PodSpec{RuntimeClassName: ptr.To("runhcs-wcow-hypervisor")},
			nodes: []Node{winNode("w1", v21H2Server)},
			res:   index(v1.Platform{OS: "windows", Architecture: "arm64", OSVersion: v21H2Server + ".2700"}),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers windows/arm64 only; no node it may run on can run it (nodes: 1 windows/amd64 10.0.20348)",
				Fix:   "build a multi-arch image (docker buildx build --platform linux/amd64,linux/arm64) or use one that offers the nodes' platform"}}}},
		{name: "build unknown: never a mismatch", ct: ct, nodes: []Node{winNode("w1", "")},
			res: index(win(v21H2Server + ".2700"))},
		{name: "entries without os.version run anywhere", ct: ct, nodes: []Node{winNode("w1", rs5)},
			res: index(win(""))},
		{name: "linux-only image on Windows nodes keeps the platform wording", ct: ct, nodes: []Node{winNode("w1", rs5)},
			res: index(linux("amd64")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers linux/amd64 only; no node it may run on can run it (nodes: 1 windows/amd64 10.0.17763)",
				Fix:   "build a multi-arch image (docker buildx build --platform linux/amd64,linux/arm64) or use one that offers the nodes' platform"}}}},
		{name: "mixed Linux and Windows nodes, windows image of the wrong build", ct: ct,
			nodes: []Node{node("l1", "amd64"), winNode("w1", rs5)},
			res:   index(win(v21H2Server + ".2700")),
			want: Verdict{Findings: []Finding{{Rule: RulePlatform, Action: ActionDeny,
				Cause: "offers windows/amd64 only; no node it may run on can run it (nodes: 1 linux/amd64, 1 windows/amd64 10.0.17763)",
				Fix:   "build a multi-arch image (docker buildx build --platform linux/amd64,linux/arm64) or use one that offers the nodes' platform"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestNarrowingSkipsUnlabelledValues(t *testing.T) {
	// A Linux node has no windows-build label: "" is no value to select.
	got := narrowing([]Node{node("l", "amd64"), winNode("w", v21H2Server)}, []Node{winNode("o", rs5)})
	if want := "constrain the pod to the nodes that can run it (nodeSelector or required node affinity)"; got != want {
		t.Errorf("narrowing = %q, want %q", got, want)
	}
	if d := cmp.Diff("a, b, c and 2 more", nodeNames([]Node{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}})); d != "" {
		t.Error(d)
	}
}
