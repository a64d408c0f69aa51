package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
)

var pinnedDigest = regexp.MustCompile(`@sha256:[0-9a-f]{64}`)

// TestCheckPinByteForByte: --pin changes nothing but the pinned image
// values. Documents without pins, the separators around them (CRLF, "---
// # comment", trailing spaces, a leading and a trailing "---") and the rest
// of a pinned document come back byte for byte.
func TestCheckPinByteForByte(t *testing.T) {
	b := newCheckBed(t)
	img := b.open.Host + "/team/api:v1.4.1"
	for _, tt := range []struct {
		name, in string
		pins     int
	}{
		{"CRLF stream", strings.ReplaceAll(`--- # first: a pod
apiVersion: v1
kind: Pod
metadata:
  name: a   # trailing comment
spec:
  containers:
  - name: c
    image: IMG
    imagePullPolicy: IfNotPresent
---   
# no pins: a ConfigMap between two pinned documents
apiVersion: v1
kind: ConfigMap
metadata: {name: untouched}
data:
  weird:    "spacing is kept"
--- # a List of Pods
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {containers: [{name: c, image: IMG}, {name: d, image: "IMG"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: c}
  spec:
    initContainers:
    - {name: i, image: 'IMG'}
    containers:
    -   name:   c
        image:   IMG    # pinned here
---
`, "\n", "\r\n"), 5},
		{"LF, no final newline", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: IMG", 1},
		{"block scalar: the document is re-encoded, CRLF kept", "kind: ConfigMap\r\napiVersion: v1\r\nmetadata: {name: x}\r\n---\r\napiVersion: v1\r\nkind: Pod\r\nmetadata: {name: a}\r\nspec:\r\n  containers:\r\n  - name: c\r\n    image: >-\r\n      IMG\r\n---\r\n", 1},
		{"an alias pinned with its anchor", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  initContainers:\n  - {name: i, image: &img IMG}\n  containers:\n  - {name: c, image: *img}\n", 1},
		{"JSON keeps its formatting", `{"apiVersion": "v1", "kind": "Pod",
	"metadata": {"name": "a"},
	"spec": {"containers": [{"name": "c", "image": "IMG"}]}}
`, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.ReplaceAll(tt.in, "IMG", img)
			file := filepath.Join(t.TempDir(), "in.yaml")
			if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCheck(t, "", "-f", file, "--pin")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if n := len(pinnedDigest.FindAllString(out, -1)); n != tt.pins {
				t.Errorf("%d images pinned, want %d:\n%s", n, tt.pins, out)
			}
			got := pinnedDigest.ReplaceAllString(out, "")
			if strings.Contains(tt.name, "re-encoded") {
				// Only the pinned document may change, and it keeps CRLF.
				docs, err := policy.SplitYAML(strings.NewReader(got))
				if err != nil || len(docs) != 3 {
					t.Fatalf("%d documents, %v", len(docs), err)
				}
				if !strings.HasPrefix(got, "kind: ConfigMap\r\napiVersion: v1\r\nmetadata: {name: x}\r\n---\r\n") || !strings.HasSuffix(got, "\r\n---\r\n") {
					t.Errorf("untouched documents changed:\n%q", got)
				}
				if lf := strings.Count(string(docs[1].Body), "\n"); lf != strings.Count(string(docs[1].Body), "\r\n") {
					t.Errorf("re-encoded document lost its CRLF line endings: %q", docs[1].Body)
				}
				want, _ := yaml.YAMLToJSON([]byte(in[strings.Index(in, "---")+5:]))
				if j, _ := yaml.YAMLToJSON(docs[1].Body); !bytes.Equal(j, want) {
					t.Errorf("re-encoded document means %s, want %s", j, want)
				}
				return
			}
			if diff := cmp.Diff(in, got); diff != "" {
				t.Errorf("--pin changed more than the image values (-in +out without digests):\n%s", diff)
			}
		})
	}
}

// TestCheckPinRefusesDirectives: a "%YAML" directive before "---" makes
// kubectl fail on the file (it splits at "---" and parses the directive
// alone); check says so and --pin writes nothing.
func TestCheckPinRefusesDirectives(t *testing.T) {
	file := filepath.Join(t.TempDir(), "in.yaml")
	in := "%YAML 1.2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
	if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCheck(t, "", "-f", file, "--pin")
	if code != 2 || out != "" || !strings.Contains(errOut, "in.yaml: document 1: ") || !strings.Contains(errOut, "directive") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 naming document 1 and the directive", code, out, errOut)
	}
}

// FuzzPinFile pins every "image" value of any YAML stream. Documents
// without pins and every separator come back byte for byte, and a pinned
// document means what the JSON patch of the original means.
func FuzzPinFile(f *testing.F) {
	f.Add([]byte("--- # c\r\nkind: Pod\r\nspec: {containers: [{image: 'a:1'}]}\r\n---   \r\nkind: X\r\n---"))
	f.Add([]byte("kind: List\nitems:\n- spec:\n    containers:\n    - image: \"b\" # c\n      name: x\n---\nimage: >-\n  c\n"))
	f.Add([]byte("a: &x {image: d}\nb: *x\nimage: !!str e\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := policy.SplitYAML(bytes.NewReader(data))
		if err != nil {
			return
		}
		pins := map[int][]policy.Pin{}
		for i, d := range docs {
			var root yaml3.Node
			if yaml3.Unmarshal(d.Body, &root) != nil {
				continue
			}
			var ps []policy.Pin
			imagePins(&root, "", &ps)
			if _, err := patchedJSON(d.Body, ps); err == nil && len(ps) > 0 {
				pins[i+1] = ps
			}
		}
		out, err := pinFile(data, pins)
		if err != nil {
			return
		}
		got, err := policy.SplitYAML(bytes.NewReader(out))
		if err != nil || len(got) != len(docs) {
			t.Fatalf("output splits into %d documents (%v), input %d:\n%q", len(got), err, len(docs), out)
		}
		for i, d := range docs {
			if !bytes.Equal(got[i].Separator, d.Separator) {
				t.Fatalf("document %d: separator %q, want %q", i+1, got[i].Separator, d.Separator)
			}
			if pins[i+1] == nil {
				if !bytes.Equal(got[i].Body, d.Body) {
					t.Fatalf("document %d without pins changed: %q, want %q", i+1, got[i].Body, d.Body)
				}
				continue
			}
			want, _ := patchedJSON(d.Body, pins[i+1])
			if j, err := yaml.YAMLToJSON(got[i].Body); err != nil || !jsonEqual(j, want) {
				t.Fatalf("document %d pinned means %s (%v), want %s", i+1, j, err, want)
			}
		}
	})
}

// imagePins collects a pin for every scalar under an "image" key.
func imagePins(n *yaml3.Node, path string, ps *[]policy.Pin) {
	switch n.Kind {
	case yaml3.DocumentNode:
		for _, c := range n.Content {
			imagePins(c, path, ps)
		}
	case yaml3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k.Value)
			if k.Value == "image" && v.Kind == yaml3.ScalarNode && v.Tag == "!!str" {
				*ps = append(*ps, policy.Pin{Path: p, From: v.Value, To: v.Value + "@sha256:" + strings.Repeat("0", 64)})
				continue
			}
			imagePins(v, p, ps)
		}
	case yaml3.SequenceNode:
		for i, c := range n.Content {
			imagePins(c, path+"/"+strconv.Itoa(i), ps)
		}
	}
}

// TestCheckPinRefusesSharedAnchors: an image whose YAML anchor another,
// unpinned field also uses cannot be pinned without changing that field:
// --pin says so and writes nothing.
func TestCheckPinRefusesSharedAnchors(t *testing.T) {
	b := newCheckBed(t)
	file := filepath.Join(t.TempDir(), "in.yaml")
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: &img " + b.open.Host + "/team/api:v1.4.1\n    env: [{name: IMAGE, value: *img}]\n"
	if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCheck(t, "", "-f", file, "--pin")
	if code == 0 || out != "" || !strings.Contains(errOut, "document 1: pinning would change more than the image values") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a refusal naming document 1", code, out, errOut)
	}
}
