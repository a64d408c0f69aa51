package policy

import (
	"context"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestIndexEntryWithoutPlatformIsNoDenial: containerd keeps an index entry
// that has no platform and reads its config to decide (images.Manifest), so
// an index of linux/s390x plus such an entry may well serve amd64 nodes. A
// real registry serves it; the rule cannot know, so it must not deny.
func TestIndexEntryWithoutPlatformIsNoDenial(t *testing.T) {
	tr := registrytest.New(t)
	amd := tr.ImageDescriptor("mixed/app", "amd", "linux", "amd64")
	s390 := tr.ImageDescriptor("mixed/app", "s390", "linux", "s390x")
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"` + string(s390.MediaType) + `","digest":"` + s390.Digest.String() + `","size":` + itoa(s390.Size) + `,"platform":{"os":"linux","architecture":"s390x"}},` +
		`{"mediaType":"` + string(amd.MediaType) + `","digest":"` + amd.Digest.String() + `","size":` + itoa(amd.Size) + `}]}`
	tr.RawManifest("mixed/app", "v1", "application/vnd.oci.image.index.v1+json", []byte(idx))
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	ct := Container{Name: "app", Image: tr.Host + "/mixed/app:v1", PullPolicy: corev1.PullAlways}
	w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{ct}}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce,
		Nodes: []Node{node("a", "amd64")}})
	if v.Decision() == DecisionDeny {
		t.Errorf("denied: %s", v.DenialMessage())
	}
	if !strings.Contains(strings.Join(v.Notes, "\n"), "states no platform") {
		t.Errorf("notes %q, want one saying the platform was not checked", v.Notes)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
