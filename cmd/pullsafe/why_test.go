package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseWhyFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    *whyOptions
		wantErr string
	}{
		{args: []string{"pod/x", "-n", "shop"}, want: &whyOptions{localFlags: localFlags{output: "text"}, target: "pod/x", namespace: "shop", namespaceSet: true}},
		{args: []string{"-o", "json", "deployment/web", "--context", "kind"}, want: &whyOptions{localFlags: localFlags{output: "json", kube: kubeFlags{context: "kind"}}, target: "deployment/web"}},
		{args: []string{}, wantErr: "name one pod"},
		{args: []string{"pod/a", "pod/b"}, wantErr: "name one pod"},
		{args: []string{"pod/a", "-o", "yaml"}, wantErr: `-o "yaml"`},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			o, err := parseWhyFlags(tc.args, &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, o, cmp.AllowUnexported(whyOptions{}, localFlags{}, kubeFlags{}, providerFlags{})); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// TestParseWhyFlagsKubectlShorthands: kubectl (pflag) takes -nshop and
// -ojson; people type them after `kubectl pullsafe why`, which passes them
// on verbatim.
func TestParseWhyFlagsKubectlShorthands(t *testing.T) {
	o, err := parseWhyFlags([]string{"pod/x", "-nshop", "-ojson"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if o.namespace != "shop" || !o.namespaceSet || o.output != "json" {
		t.Errorf("%+v", o)
	}
}
