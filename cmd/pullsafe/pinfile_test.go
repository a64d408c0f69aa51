package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
