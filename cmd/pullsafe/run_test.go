package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badCfg, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmdoe: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		code    int // 0: success
		wantOut string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"version"}, 0, "dev"},
		{[]string{"help"}, 0, "pullsafe serve"},
		{[]string{"serve", "--help"}, 0, "-webhook-url"},
		{[]string{"serve", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve", "--config", badCfg}, 1, `unknown field "mdoe"`},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, 1, "reading config"},
		{[]string{"serve", "--kubeconfig", filepath.Join(dir, "nope")}, 1, "--kubeconfig"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tt.args, &out, &errOut)
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		all := out.String() + errOut.String()
		if err != nil {
			all += err.Error()
		}
		if code != tt.code || !strings.Contains(all, tt.wantOut) {
			t.Errorf("run(%q): exit %d, output %q; want exit %d containing %q", tt.args, code, all, tt.code, tt.wantOut)
		}
	}
}
