package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalStartUp: check, why and audit start alike (localFlags): the
// same shared flags in their help, and the same exit 2 and words for a bad
// -o, a bad --config and half the kubelet's credential-provider flags.
func TestLocalStartUp(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badCfg, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmdoe: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: x}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each command's own required arguments, so the shared flags are
	// what fails.
	commands := map[string][]string{"check": {"check", "-f", manifest, "--offline"}, "why": {"why", "pod/p"}, "audit": {"audit"}}
	for name, base := range commands {
		for _, tc := range []struct {
			extra []string
			code  int
			want  []string
		}{
			{[]string{"--help"}, 0, []string{"Usage: pullsafe " + name, "-config", "-kubeconfig", "-context", "-image-credential-provider-config", "-o string"}},
			{[]string{"-o", "yaml"}, 2, []string{`-o "yaml": want text or json`}},
			{[]string{"--config", badCfg}, 2, []string{`unknown field "mdoe"`}},
			{[]string{"--image-credential-provider-config", manifest}, 2, []string{"--image-credential-provider-config and --image-credential-provider-bin-dir go together"}},
		} {
			args := append(append([]string{}, base...), tc.extra...)
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, &out, &errOut)
			code := 0
			all := out.String() + errOut.String()
			if err != nil {
				code, all = exitCode(err), all+err.Error()
			}
			if code != tc.code {
				t.Errorf("%q: exit %d, want %d (%s)", args, code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("%q: output lacks %q:\n%s", args, w, all)
				}
			}
		}
	}
}

// TestWhyUnknownKindIsUsage: exit 2 for a kind why does not explain, named
// with the cluster, before the cluster is dialled (its server does not
// exist).
func TestWhyUnknownKindIsUsage(t *testing.T) {
	kc := kubeconfigFile(t, "dev", "dev")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"why", "cronjob/nightly", "--kubeconfig", kc}, &out, &errOut)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), `context "dev"`) || !strings.Contains(err.Error(), "pullsafe why explains pods") {
		t.Errorf("err %v (exit %d), want a usage error naming the context", err, exitCode(err))
	}
}
