package policy

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestMessagePiecesText pins the text of the platform rule's message pieces,
// now written into one Builder each (issue 24): the same words, separators
// and order as the joins they replaced.
func TestMessagePiecesText(t *testing.T) {
	node := func(os, arch string) Node {
		return Node{Name: os + "-" + arch, Labels: map[string]string{corev1.LabelOSStable: os, corev1.LabelArchStable: arch}}
	}
	for _, tc := range []struct {
		name        string
		can, cannot []Node
		want        string
	}{
		{"two labels", []Node{node("linux", "amd64")}, []Node{node("windows", "arm64")},
			"add nodeSelector kubernetes.io/os: linux and nodeSelector kubernetes.io/arch: amd64"},
		{"several values", []Node{node("linux", "arm64"), node("linux", "amd64"), node("linux", "arm64")}, []Node{node("linux", "s390x")},
			"add required node affinity kubernetes.io/arch In (amd64, arm64)"},
		{"labels cannot tell", []Node{node("linux", "amd64")}, []Node{node("linux", "amd64")},
			"constrain the pod to the nodes that can run it (nodeSelector or required node affinity)"},
	} {
		if got := narrowing(tc.can, tc.cannot); got != tc.want {
			t.Errorf("narrowing %s = %q, want %q", tc.name, got, tc.want)
		}
	}

	ps := []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "amd64", OSVersion: "x"}, {OS: "linux", Architecture: "386"}}
	if got, want := platformList(ps), "linux/386, linux/amd64, linux/arm64/v8"; got != want {
		t.Errorf("platformList = %q, want %q", got, want)
	}
	if got := platformList(nil); got != "" {
		t.Errorf("platformList(nil) = %q, want empty", got)
	}

	nodes := []Node{node("linux", "amd64"), node("linux", "arm64"), node("linux", "amd64")}
	win := node("windows", "amd64")
	win.WindowsBuild = "10.0.17763"
	if got, want := nodeSummary(append(nodes, win)), "2 linux/amd64, 1 linux/arm64, 1 windows/amd64 10.0.17763"; got != want {
		t.Errorf("nodeSummary = %q, want %q", got, want)
	}

	// stated hands back its input when nothing is dropped, capped: an
	// append must not write into the cached answer behind it.
	all := ps[:2:4]
	got := stated(all)
	if len(got) != 2 || cap(got) != 2 {
		t.Fatalf("stated kept %d (cap %d), want 2 (cap 2)", len(got), cap(got))
	}
	_ = append(got, v1.Platform{OS: "plan9"})
	if ps[2].OS != "linux" {
		t.Errorf("an append to stated's answer wrote into its input: %+v", ps[2])
	}
}
