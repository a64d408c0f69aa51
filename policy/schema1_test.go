package policy

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestSchema1ServedByRegistryIsNamed: only what the registry actually
// served decides it. A schema 1 manifest pushed to a real (in-process)
// registry is named, and denied where every eligible node runs containerd 2.1.
func TestSchema1ServedByRegistryIsNamed(t *testing.T) {
	tr := registrytest.New(t)
	const mt = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	body := `{"schemaVersion":1,"name":"old/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`
	req, err := http.NewRequest(http.MethodPut, tr.Server.URL+"/v2/old/app/manifests/v1", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %s", resp.Status)
	}
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	ct := Container{Name: "app", Image: tr.Host + "/old/app:v1", PullPolicy: corev1.PullAlways}
	w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{ct}}
	nodes := []Node{{Name: "a", Labels: node("a", "amd64").Labels, Runtime: "containerd://2.1.0"}}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Nodes: nodes})
	if v.Decision() != DecisionDeny || len(v.Findings) != 1 || v.Findings[0].Rule != RulePlatform ||
		!strings.Contains(v.Findings[0].Cause, "schema 1 image manifests are no longer supported") {
		t.Errorf("verdict %+v, want a platform denial naming schema 1", v)
	}
}

// TestArtifactIsNoPlatformFailure: an image whose config states no
// os/architecture (an OCI artifact) served by a real registry is not a
// platform failure.
func TestArtifactIsNoPlatformFailure(t *testing.T) {
	tr := registrytest.New(t)
	art, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tr.Host + "/art/chart:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, art); err != nil {
		t.Fatal(err)
	}
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	ct := Container{Name: "app", Image: ref.String(), PullPolicy: corev1.PullAlways}
	w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{ct}}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce,
		Nodes: []Node{node("a", "amd64")}})
	if len(v.Findings) != 0 {
		t.Errorf("findings %+v, want none", v.Findings)
	}
	if tr.Count(http.MethodGet, "/blobs/") == 0 {
		t.Error("the config was never read: the test proves nothing")
	}
}
