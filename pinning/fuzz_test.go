package pinning

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
)

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
		out, err := File(data, pins)
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
