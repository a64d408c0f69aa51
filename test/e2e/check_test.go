//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCheckAgainstTheCluster: `pullsafe check --kubeconfig` takes pull
// secrets and nodes from the cluster, and agrees with the webhook.
func TestCheckAgainstTheCluster(t *testing.T) {
	if _, errOut, err := b.Run("", "create", "namespace", "ci"); err != nil {
		t.Fatal(errOut)
	}
	if _, errOut, err := b.Run("", "-n", "ci", "create", "secret", "docker-registry", "regcred",
		"--docker-server="+b.Private.Addr, "--docker-username=ci", "--docker-password=pullsafe-e2e"); err != nil {
		t.Fatal(errOut)
	}
	manifest := podYAML("ci", "pay", "pay", b.Private.Addr+"/team/secret:v1", podOpts{secrets: []string{"regcred"}}) +
		"---\n" + podYAML("ci", "typo", "api", b.Open.Addr+"/team/api:v1.4.2", podOpts{}) +
		"---\n" + podYAML("ci", "amd", "app", b.Open.Addr+"/amd/app:v1", podOpts{})

	cmd := exec.Command(b.PullsafeBin, "check", "-f", "-", "--kubeconfig", b.Kubeconfig)
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	t.Logf("pullsafe check --kubeconfig\n%s", out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	s := string(out)
	mustContain(t, s, "ci/pod/typo: DENY", "nearest tags: v1.4.1, v1.4.0", "3 workloads checked: 1 would be denied")
	if strings.Contains(s, "ci/pod/pay") {
		t.Error("the cluster's pull secret was not used for ci/pod/pay")
	}
	// Nodes come from the cluster (amd64 + arm64 here): the amd64-only image
	// is a warning, as the webhook says.
	mustContain(t, s, "ci/pod/amd: WARN", "add nodeSelector kubernetes.io/arch: amd64")
}
