//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// setRuntimeNodes replaces the cluster's nodes with these, their
// status.nodeInfo written as a kubelet writes it (the status subresource).
func setRuntimeNodes(t *testing.T, nodes ...*corev1.Node) {
	t.Helper()
	ctx := context.Background()
	api := b.Client.CoreV1().Nodes()
	if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		info := n.Status.NodeInfo
		created, err := api.Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.NodeInfo = info
		if _, err := api.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func kubeletNode(name, runtime, os, build string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelOSStable: os, corev1.LabelArchStable: "amd64"}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime, OperatingSystem: os, Architecture: "amd64"}}}
	if build != "" {
		n.Labels[corev1.LabelWindowsBuild] = build
		n.Status.NodeInfo.KernelVersion = build + ".2700"
	}
	return n
}

// TestRuntimesThroughTheAPIServer: Node objects of each runtime and
// Windows build, created through the API server as kubelets register
// them; Pods applied with kubectl are judged as those nodes' runtimes
// would pull them, with the CRI-O nodes' registries.conf.
func TestRuntimesThroughTheAPIServer(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(func() { _ = b.SetNodes(ctx, "amd64", "arm64") })
	if _, err := b.Push(b.Open, "team/win", "v1", v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2700"},
		v1.Platform{OS: "windows", Architecture: "arm64", OSVersion: "10.0.20348.2700"}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("unqualified-search-registries = [%q, %q]\n", b.Private.Addr, b.Open.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	startReloading(t, "pullsafe-runtimes", `apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: enforce
rules: {mutable-tag: ignore}
registries:
  mirrors: {docker.io: ["{{OPEN}}"]}
  allowLoopback: true
  registriesConf: `+conf+`
lookupTimeout: 3s
`)
	short := "team/api:v1.4.1"

	setRuntimeNodes(t, kubeletNode("crio-1", "cri-o://1.34.1", "linux", ""), kubeletNode("crio-2", "cri-o://1.34.1", "linux", ""))
	manifest := podYAML("platform", "short", "api", short, podOpts{})
	eventually(t, "CRI-O nodes", manifest, func(_ string, ok bool) bool { return !ok })
	out, ok := apply(t, manifest)
	if ok {
		t.Fatal("an ambiguous short name was admitted on CRI-O 1.34 nodes")
	}
	mustContain(t, out, "[short-name]", "ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: "+b.Private.Addr+", "+b.Open.Addr+")",
		"write the full name `"+b.Open.Addr+"/team/api:v1.4.1`")

	setRuntimeNodes(t, kubeletNode("containerd-1", "containerd://2.1.4", "linux", ""), kubeletNode("crio-1", "cri-o://1.34.1", "linux", ""))
	manifest = podYAML("platform", "short-mixed", "api", short, podOpts{})
	eventually(t, "mixed nodes", manifest, func(_ string, ok bool) bool { return ok })
	out, ok = apply(t, manifest)
	if !ok {
		t.Fatalf("refused where the containerd node pulls it:\n%s", out)
	}
	mustContain(t, out, "Warning: pullsafe [short-name]", "on CRI-O nodes crio-1")

	setRuntimeNodes(t, kubeletNode("crio-old", "cri-o://1.33.2", "linux", ""))
	manifest = podYAML("platform", "short-old", "api", short, podOpts{})
	eventually(t, "CRI-O 1.33 nodes", manifest, func(_ string, ok bool) bool { return ok })
	if out, ok = apply(t, manifest); !ok || strings.Contains(out, "short-name") {
		t.Errorf("CRI-O 1.33 tries the search registries in order and pulls from the second: ok=%v\n%s", ok, out)
	}

	win := b.Open.Addr + "/team/win:v1"
	setRuntimeNodes(t, kubeletNode("win-2019", "containerd://2.1.4", "windows", "10.0.17763"))
	manifest = podYAML("platform", "win-old", "app", win, podOpts{})
	eventually(t, "Windows 2019 nodes", manifest, func(_ string, ok bool) bool { return !ok })
	out, ok = apply(t, manifest)
	if ok {
		t.Fatal("an ltsc2022-only image was admitted on ltsc2019 nodes")
	}
	mustContain(t, out, "[platform]", "offers windows 10.0.20348 only; eligible nodes run 10.0.17763")

	setRuntimeNodes(t, kubeletNode("win-2022", "containerd://2.1.4", "windows", "10.0.20348"))
	manifest = podYAML("platform", "win-new", "app", win, podOpts{})
	eventually(t, "Windows 2022 nodes", manifest, func(_ string, ok bool) bool { return ok })
	if out, ok = apply(t, manifest); !ok {
		t.Errorf("refused on ltsc2022 nodes:\n%s", out)
	}
}
