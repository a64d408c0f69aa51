package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A directory is read as kubectl apply -f reads it: its manifest files
// below it in name order, other files ignored; only what decides a verdict
// is kept, core Secrets, ServiceAccounts and Namespaces, not a CRD's kinds
// of those names; with keep, each file's bytes as read.
func TestReadManifestFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"b/pod.yml":      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n",
		"a.yaml":         "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		"c.JSON":         `{"apiVersion": "example.com/v1", "kind": "Namespace", "metadata": {"name": "shop"}}`,
		"d.yaml":         "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
		"notes.txt":      "not a manifest",
		"b/account.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default}\n",
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, kept, err := ReadManifestFiles([]string{dir, "-"}, strings.NewReader("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, strings.TrimPrefix(m.Source, dir+"/")+" "+m.Kind)
	}
	want := []string{"a.yaml Secret", "b/account.yaml ServiceAccount", "b/pod.yml Pod", "d.yaml Namespace", "- Deployment"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("manifests (-want +got):\n%s", d)
	}
	if string(kept[filepath.Join(dir, "a.yaml")]) != files["a.yaml"] || len(kept) != 6 {
		t.Errorf("kept %d files, a.yaml %q; want 6 (every file read, stdin too), a.yaml byte for byte", len(kept), kept[filepath.Join(dir, "a.yaml")])
	}
	if _, _, err := ReadManifestFiles([]string{filepath.Join(dir, "missing")}, nil, false, nil); err == nil {
		t.Error("a missing path is no error")
	}
}

// The input's Namespace sets the labels it names and keeps the cluster's
// others, as kubectl apply does; a namespace the input lacks is the
// cluster's as is.
func TestManifestNamespaceLabels(t *testing.T) {
	ms := []Manifest{{Kind: "Namespace", APIVersion: "v1", JSON: []byte(`{"metadata":{"name":"shop","labels":{"team":"pay"}}}`)},
		{Kind: "Namespace", APIVersion: "example.com/v1", JSON: []byte(`{"metadata":{"name":"crd","labels":{"pullsafe.io/mode":"off"}}}`)}}
	o, err := NewManifestObjects(ms, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]string{LabelMode: "warn", "team": "old"}
	for _, tt := range []struct {
		name string
		live map[string]string
		want map[string]string
	}{
		{"shop", live, map[string]string{LabelMode: "warn", "team": "pay"}},
		{"shop", nil, map[string]string{"team": "pay"}},
		{"crd", live, live},
		{"crd", nil, nil},
	} {
		if d := cmp.Diff(tt.want, o.NamespaceLabels(tt.name, tt.live)); d != "" {
			t.Errorf("%s over %v (-want +got):\n%s", tt.name, tt.live, d)
		}
	}
	if live["team"] != "old" {
		t.Error("the cluster's labels were changed in place")
	}
}

func TestParsePlatforms(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // os/arch/variant of each node
		err  bool
	}{
		{"", nil, false},
		{"linux/amd64, linux/arm64/v8,", []string{"linux/amd64/", "linux/arm64/v8"}, false},
		{"amd64", nil, true},
		{"linux/", nil, true},
		{"linux/arm/v7/x", nil, true},
	} {
		nodes, err := ParsePlatforms(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		var got []string
		for _, n := range nodes {
			got = append(got, n.Labels["kubernetes.io/os"]+"/"+n.Labels["kubernetes.io/arch"]+"/"+n.Variant)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tt.in, d)
		}
	}
}
