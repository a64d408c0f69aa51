package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// check runs on your machine: loopback registries are reached unless the
// config refuses them explicitly, as the server does by default.
func TestCheckLoopbackFollowsConfig(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: " + tr.Host + "/team/api:v1}]}\n"
	if out, errOut, code := runCheck(t, pod, "-f", "-"); code != 0 || strings.Contains(out, "loopback") {
		t.Errorf("default: exit %d\n%s%s", code, out, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nregistries: {allowLoopback: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr.Reset()
	out, errOut, _ := runCheck(t, pod, "-f", "-", "--config", cfg)
	if !strings.Contains(out+errOut, "loopback") {
		t.Errorf("allowLoopback: false: the output does not say loopback was refused:\n%s%s", out, errOut)
	}
	if n := tr.Count("", "/v2/"); n != 0 {
		t.Errorf("the loopback registry got %d requests", n)
	}
}
