//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pullsafe/pullsafe/test/bed"
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

// TestCheckUsesTheKubeconfigKubectlWould: with no --kubeconfig, check reads
// the cluster $KUBECONFIG names (a list, merged as kubectl merges it), takes
// a Pod's service account's pull secrets from it (the ServiceAccount
// admission plugin copies them into Pods that list none) and the
// namespace's pullsafe.io/mode label; --offline uses no cluster.
func TestCheckUsesTheKubeconfigKubectlWould(t *testing.T) {
	ctx := context.Background()
	if err := b.Namespace(ctx, "ci-sa", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Namespace(ctx, "ci-relaxed", map[string]string{"pullsafe.io/mode": "warn"}); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := b.Run("", "-n", "ci-sa", "create", "secret", "docker-registry", "regcred",
		"--docker-server="+b.Private.Addr, "--docker-username="+bed.PrivateUser, "--docker-password="+bed.PrivatePass); err != nil {
		t.Fatal(errOut)
	}
	sa := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: ci-sa}\nimagePullSecrets: [{name: regcred}]\n"
	if _, errOut, err := b.Run(sa, "apply", "-f", "-"); err != nil {
		t.Fatal(errOut)
	}
	manifest := "apiVersion: v1\nkind: Pod\nmetadata: {name: pay, namespace: ci-sa}\nspec:\n  serviceAccountName: builder\n" +
		"  containers: [{name: pay, image: " + b.Private.Addr + "/team/secret:v1, imagePullPolicy: Always}]\n---\n" +
		// Applying the Namespace keeps the label set on it in the cluster.
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: ci-relaxed, labels: {team: ci}}\n---\n" +
		podYAML("ci-relaxed", "typo", "api", b.Open.Addr+"/team/api:v1.4.2", podOpts{})
	check := func(args ...string) (string, string, int) {
		cmd := exec.Command(b.PullsafeBin, append([]string{"check", "-f", "-"}, args...)...)
		cmd.Stdin = strings.NewReader(manifest)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(),
			"KUBECONFIG="+filepath.Join(t.TempDir(), "absent")+string(filepath.ListSeparator)+b.Kubeconfig)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("pullsafe check %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		return out.String(), errOut.String(), code
	}
	out, errOut, code := check()
	if code != 0 {
		t.Errorf("exit %d, want 0: the service account's secret lets pay pull, ci-relaxed only warns", code)
	}
	mustContain(t, errOut, "pullsafe: reading pull secrets, service accounts, namespaces and nodes from context ")
	mustContain(t, out, "ci-relaxed/pod/typo: WARN", "2 workloads checked: 0 would be denied, 1 warned, 1 allowed")

	// --context picks a context of a later $KUBECONFIG file, and its
	// namespace is where objects that name none go, as with kubectl apply.
	raw, err := clientcmd.LoadFromFile(b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	extra := clientcmdapi.NewConfig()
	for name, c := range raw.Contexts {
		c = c.DeepCopy()
		c.Namespace = "ci-sa"
		extra.Contexts["ci-sa-ctx"] = c
		extra.CurrentContext = name // the first file's current context: not this one
	}
	extraFile := filepath.Join(t.TempDir(), "extra")
	if err := clientcmd.WriteToFile(*extra, extraFile); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.PullsafeBin, "check", "-f", "-", "--context", "ci-sa-ctx")
	cmd.Stdin = strings.NewReader(strings.Replace(manifest, "namespace: ci-sa}", "}", 1))
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "KUBECONFIG="+extraFile+string(filepath.ListSeparator)+b.Kubeconfig)
	ctxOut, err := cmd.CombinedOutput()
	t.Logf("pullsafe check --context ci-sa-ctx: %v\n%s", err, ctxOut)
	if err != nil || !strings.Contains(string(ctxOut), `from context "ci-sa-ctx"`) {
		t.Errorf("--context: %v, want exit 0 naming ci-sa-ctx (pay in the context's namespace ci-sa gets builder's secret)", err)
	}

	// Offline, builder (not in the input) is unknown, not absent: pay is
	// "cannot verify"; without the namespace label typo is denied.
	out, _, code = check("--offline")
	if code != 1 {
		t.Errorf("--offline: exit %d, want 1 (no namespace label)", code)
	}
	mustContain(t, out, "ci-sa/pod/pay: WARN", `service account "builder" of namespace "ci-sa", whose imagePullSecrets the pods get, is not in the input`,
		"checked offline (no cluster)", "ci-relaxed/pod/typo: DENY")
}

// TestCheckWithANamespacedCIAccount: a CI account that may read secrets and
// service accounts in its namespace, but not namespaces (cluster-wide),
// still gets an answer: the namespace's labels are said to be unread and
// the config's mode applies.
func TestCheckWithANamespacedCIAccount(t *testing.T) {
	ctx := context.Background()
	if err := b.Namespace(ctx, "ci-bot", nil); err != nil {
		t.Fatal(err)
	}
	rbac := "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: check, namespace: ci-bot}\n" +
		"rules: [{apiGroups: [\"\"], resources: [secrets, serviceaccounts], verbs: [get]}]\n---\n" +
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: check, namespace: ci-bot}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: check}\nsubjects: [{kind: User, name: ci-bot}]\n"
	if _, errOut, err := b.Run(rbac, "apply", "-f", "-"); err != nil {
		t.Fatal(errOut)
	}
	kubeconfig, err := b.User("ci-bot")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.PullsafeBin, "check", "-f", "-", "--kubeconfig", kubeconfig, "--platforms", "linux/amd64")
	cmd.Stdin = strings.NewReader(podYAML("ci-bot", "typo", "api", b.Open.Addr+"/team/api:v1.4.2", podOpts{}))
	out, err := cmd.CombinedOutput()
	t.Logf("pullsafe check as ci-bot\n%s", out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (the typo denied)", err)
	}
	mustContain(t, string(out), "ci-bot/pod/typo: DENY", "namespace ci-bot's labels not read (forbidden)")
}
