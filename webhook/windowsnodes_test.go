package webhook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullsafe/pullsafe/policy"
)

// windowsNode is a Windows node as its kubelet reports it; build "" leaves
// the windows-build label out (only status.nodeInfo.kernelVersion says it).
func windowsNode(name, build, kernel string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1",
		Labels: map[string]string{corev1.LabelOSStable: "windows", corev1.LabelArchStable: "amd64"}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://2.1.4", KernelVersion: kernel,
			OSImage: "Windows Server 2022 Datacenter", OperatingSystem: "windows", Architecture: "amd64"}}}
	if build != "" {
		n.Labels[corev1.LabelWindowsBuild] = build
	}
	return n
}

// TestWindowsBuildMarksSnapshotStale: a Windows node's build reaches the
// node snapshot from the label or, without it, from the kernel version the
// slimmed cache object keeps; an OS upgrade (a new build) is seen by the
// next review, a heartbeat (a new revision of the same build) rebuilds
// nothing.
func TestWindowsBuildMarksSnapshotStale(t *testing.T) {
	slim := func(n *corev1.Node) *corev1.Node {
		o, err := slimNode(n)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*corev1.Node)
	}
	c := trackedCluster()
	c.nodeEvent(slim(windowsNode("labelled", "10.0.17763", "10.0.17763.6054")), false)
	c.nodeEvent(slim(windowsNode("unlabelled", "", "10.0.17763.6054")), false)
	builds := func() []string {
		got, _ := c.state.nodeList()
		var out []string
		for _, n := range got {
			out = append(out, n.Name+"="+n.WindowsBuild)
		}
		return out
	}
	if d := cmp.Diff([]string{"labelled=10.0.17763", "unlabelled=10.0.17763"}, builds()); d != "" {
		t.Fatalf("builds (-want +got):\n%s", d)
	}
	c.nodeEvent(slim(windowsNode("unlabelled", "", "10.0.17763.6060")), false) // a cumulative update: same build
	if builds(); c.state.rebuilds != 1 {
		t.Errorf("a new revision of the same build rebuilt the snapshot (%d rebuilds)", c.state.rebuilds)
	}
	c.nodeEvent(slim(windowsNode("unlabelled", "", "10.0.20348.2700")), false) // reinstalled as Windows Server 2022
	if d := cmp.Diff([]string{"labelled=10.0.17763", "unlabelled=10.0.20348"}, builds()); d != "" {
		t.Errorf("after the upgrade (-want +got):\n%s", d)
	}
	if c.state.rebuilds != 2 {
		t.Errorf("%d rebuilds, want 2", c.state.rebuilds)
	}
	// A Linux node keeps no kernel version: it says nothing pullsafe reads.
	linux := fatNode(1)
	if got := slim(linux).Status.NodeInfo.KernelVersion; got != "" {
		t.Errorf("linux node keeps kernel version %q", got)
	}
	if got := policy.NodeOf(slim(windowsNode("w", "", "10.0.20348.2700"))).WindowsBuild; got != "10.0.20348" {
		t.Errorf("slimmed Windows node's build = %q", got)
	}
}
