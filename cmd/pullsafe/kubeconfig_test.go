package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeconfigFile writes a kubeconfig with one cluster per context, named
// after it, whose server is https://<context>.example:6443 (never dialled:
// these tests only load).
func kubeconfigFile(t *testing.T, current string, contexts ...string) string {
	t.Helper()
	var clusters, ctxs strings.Builder
	for _, c := range contexts {
		clusters.WriteString("- name: " + c + "\n  cluster: {server: https://" + c + ".example:6443}\n")
		ns := ""
		if c == "staging" {
			ns = ", namespace: team-staging"
		}
		ctxs.WriteString("- name: " + c + "\n  context: {cluster: " + c + ", user: u" + ns + "}\n")
	}
	data := "apiVersion: v1\nkind: Config\ncurrent-context: " + current + "\nclusters:\n" + clusters.String() +
		"contexts:\n" + ctxs.String() + "users:\n- name: u\n  user: {token: t}\n"
	f := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCheckClusterChoice: which cluster `pullsafe check` reads, with
// kubectl's precedence: --kubeconfig alone, else $KUBECONFIG's files merged
// (the first file's current-context wins), else ~/.kube/config (the last
// entry of the default rules' precedence), --context over the current
// context; none with --offline or when no kubeconfig file exists.
func TestCheckClusterChoice(t *testing.T) {
	dev := kubeconfigFile(t, "dev", "dev", "staging")
	prod := kubeconfigFile(t, "prod", "prod")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name       string
		flags      kubeFlags
		offline    bool
		precedence []string // $KUBECONFIG's files, or [~/.kube/config]
		want       string   // the server, or "offline"
	}{
		{name: "no kubeconfig anywhere: offline", precedence: []string{missing}, want: "offline"},
		{name: "the file found ($KUBECONFIG or ~/.kube/config): its current context", precedence: []string{missing, dev}, want: "https://dev.example:6443"},
		{name: "merged files: the first file's current-context wins", precedence: []string{prod, dev}, want: "https://prod.example:6443"},
		{name: "--context picks another context", flags: kubeFlags{context: "staging"}, precedence: []string{dev}, want: "https://staging.example:6443"},
		{name: "--context from a later file", flags: kubeFlags{context: "dev"}, precedence: []string{prod, dev}, want: "https://dev.example:6443"},
		{name: "--kubeconfig alone, $KUBECONFIG ignored", flags: kubeFlags{kubeconfig: prod}, precedence: []string{dev}, want: "https://prod.example:6443"},
		{name: "--offline: none, even with a kubeconfig", offline: true, precedence: []string{dev}, want: "offline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := checkCluster(tt.flags, tt.offline, &clientcmd.ClientConfigLoadingRules{Precedence: tt.precedence})
			got := "offline"
			switch {
			case errors.Is(err, errOffline):
			case err != nil:
				t.Fatal(err)
			default:
				got = c.rest.Host
				if !strings.Contains(c.name, "context ") {
					t.Errorf("name %q does not say the context", c.name)
				}
			}
			if got != tt.want {
				t.Errorf("cluster = %s, want %s", got, tt.want)
			}
		})
	}
	if c, err := checkCluster(kubeFlags{context: "staging"}, false, &clientcmd.ClientConfigLoadingRules{Precedence: []string{dev}}); err != nil || c.namespace != "team-staging" {
		t.Errorf("the context's namespace: %v, %v; want team-staging (kubectl apply's default)", c, err)
	}
	if c, err := checkCluster(kubeFlags{}, false, &clientcmd.ClientConfigLoadingRules{Precedence: []string{prod}}); err != nil || c.namespace != "default" {
		t.Errorf("a context naming no namespace: %v, %v; want default", c, err)
	}
	if _, err := checkCluster(kubeFlags{context: "nope"}, false, &clientcmd.ClientConfigLoadingRules{Precedence: []string{dev}}); err == nil ||
		!strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown --context: %v, want an error naming it", err)
	}
}

// TestServeClusterChoice: serve keeps controller-runtime's order: flags,
// else in-cluster when $KUBECONFIG is unset, else the kubeconfig files.
func TestServeClusterChoice(t *testing.T) {
	dev := kubeconfigFile(t, "dev", "dev", "staging")
	pod := func() (*rest.Config, error) { return &rest.Config{Host: "https://in-cluster:443"}, nil }
	notPod := func() (*rest.Config, error) { return nil, rest.ErrNotInCluster }
	tests := []struct {
		name       string
		env        string // $KUBECONFIG
		flags      kubeFlags
		inCluster  func() (*rest.Config, error)
		precedence []string
		want       string // server, or an error fragment
	}{
		{name: "in a pod, nothing given: in-cluster", inCluster: pod, precedence: []string{dev}, want: "https://in-cluster:443"},
		{name: "$KUBECONFIG set: it, not in-cluster", env: dev, inCluster: pod, precedence: []string{dev}, want: "https://dev.example:6443"},
		{name: "--context: the kubeconfig", flags: kubeFlags{context: "staging"}, inCluster: pod, precedence: []string{dev}, want: "https://staging.example:6443"},
		{name: "--kubeconfig", flags: kubeFlags{kubeconfig: dev}, inCluster: pod, want: "https://dev.example:6443"},
		{name: "not in a pod: ~/.kube/config", inCluster: notPod, precedence: []string{dev}, want: "https://dev.example:6443"},
		{name: "not in a pod, no kubeconfig: said", inCluster: notPod, precedence: []string{filepath.Join(t.TempDir(), "none")}, want: "not in a cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(clientcmd.RecommendedConfigPathEnvVar, tt.env)
			rc, err := serveConfig(tt.flags, &clientcmd.ClientConfigLoadingRules{Precedence: tt.precedence}, tt.inCluster)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = rc.Host
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckUnreachableClusterIsExit2: a kubeconfig whose server does not
// answer is a usage error naming the context, not a check without the
// cluster's secrets.
func TestCheckUnreachableClusterIsExit2(t *testing.T) {
	f := filepath.Join(t.TempDir(), "kubeconfig")
	data := "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster: {server: https://127.0.0.1:1}\n" +
		"contexts:\n- name: gone\n  context: {cluster: gone, user: u}\nusers:\n- name: u\n  user: {token: t}\n"
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: registry.invalid/x:v1}]}\n"
	t.Setenv(clientcmd.RecommendedConfigPathEnvVar, f)
	var out, errOut strings.Builder
	err := check(t.Context(), []string{"-f", "-"}, strings.NewReader(pod), &out, &errOut)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `context "gone" (https://127.0.0.1:1)`) || !strings.Contains(err.Error(), "--offline") {
		t.Errorf("exit %v: %v; want exit 2 naming the context and --offline", exitCode(err), err)
	}
	if _, _, code := runCheck(t, pod, "-f", "-", "--offline", "--kubeconfig", f); code != 2 {
		t.Errorf("--offline with --kubeconfig: exit %d, want 2", code)
	}
}
