package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// The platform rule judges an image's platforms once per review; each
// container still gets its own finding, and an image of other platforms
// its own verdict.
func TestPlatformVerdictsOncePerImageAndReview(t *testing.T) {
	amd, arm := "registry.corp.io/team/amd:v1", "registry.corp.io/team/arm:v1"
	res := fakeResolver{
		images:    map[string]*registry.Image{amd: img("registry.corp.io/team/amd", "v1", digest1), arm: img("registry.corp.io/team/arm", "v1", digest2)},
		platforms: map[v1.Hash][]v1.Platform{digest1: {linux("amd64")}, digest2: {linux("arm64")}},
	}
	in := podWith([]string{amd, arm, amd, arm})
	for i := range in.Containers {
		in.Containers[i].PullPolicy = corev1.PullAlways
	}
	in.Nodes = []Node{node("a", "amd64"), node("r", "arm64")}
	v := NewChecker(DefaultConfig(), &res).Check(context.Background(), in)
	fix := "add nodeSelector kubernetes.io/arch: "
	want := []Finding{
		{Rule: RulePlatform, Action: ActionWarn, Container: "c0", Source: "", Image: amd, Cause: "offers linux/amd64 only; 1 of 2 eligible nodes (1 linux/arm64) cannot run it", Fix: fix + "amd64"},
		{Rule: RulePlatform, Action: ActionWarn, Container: "c1", Source: "", Image: arm, Cause: "offers linux/arm64 only; 1 of 2 eligible nodes (1 linux/amd64) cannot run it", Fix: fix + "arm64"},
		{Rule: RulePlatform, Action: ActionWarn, Container: "c2", Source: "", Image: amd, Cause: "offers linux/amd64 only; 1 of 2 eligible nodes (1 linux/arm64) cannot run it", Fix: fix + "amd64"},
		{Rule: RulePlatform, Action: ActionWarn, Container: "c3", Source: "", Image: arm, Cause: "offers linux/arm64 only; 1 of 2 eligible nodes (1 linux/amd64) cannot run it", Fix: fix + "arm64"},
	}
	if d := cmp.Diff(want, v.Findings); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
}
