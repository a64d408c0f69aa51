package policy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadManifests(t *testing.T) {
	in := `# a comment
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: c, image: nginx}]}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
`
	ms, err := ReadManifests(strings.NewReader(in), "app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Kind+"@"+m.Where())
	}
	want := "Pod@app.yaml: document 1|ConfigMap@app.yaml: document 3, item 1|Deployment@app.yaml: document 3, item 2"
	if strings.Join(got, "|") != want {
		t.Errorf("got %s", strings.Join(got, "|"))
	}
	json := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"}}`
	if ms, err := ReadManifests(strings.NewReader(json), "p.json"); err != nil || len(ms) != 1 || ms[0].Kind != "Pod" {
		t.Errorf("json: %v %v", ms, err)
	}
	for _, bad := range []struct{ in, want string }{
		{"kind: Pod\n---\n: : :\n  - [", "bad.yaml: document 2"},
		{"just a string\n", "bad.yaml: document 1: not a Kubernetes object"},
		{"metadata: {name: x}\n", "bad.yaml: document 1: no kind"},
		{"kind: List\nitems: [1]\n", "bad.yaml: document 1: not a Kubernetes object"},
		{"kind: List\nitems: [{metadata: {name: x}}]\n", "bad.yaml: document 1, item 1: no kind"},
	} {
		_, err := ReadManifests(strings.NewReader(bad.in), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.want)
		}
	}
}

// TestReadManifestsListsAsKubectl: a list is what kubectl flattens: any
// object with "items", whose items without kind and apiVersion take them
// from the list's (an API server's typed list, e.g. saved with kubectl get
// --raw, omits them).
func TestReadManifestsListsAsKubectl(t *testing.T) {
	in := `{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"9"},"items":[
{"metadata":{"name":"a","namespace":"shop"},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}},
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}]}`
	ms, err := ReadManifests(strings.NewReader(in), "pods.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		w, err := ExtractWorkload(m.GroupKind(), m.JSON)
		if err != nil {
			t.Fatalf("%s: %v", m.Where(), err)
		}
		got = append(got, m.Kind+"@"+m.Where()+"="+w.Name)
	}
	want := []string{"Pod@pods.json: document 1, item 1=a", "Pod@pods.json: document 1, item 2=b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzReadManifests: no input panics the reader, and every manifest it
// returns has a kind and JSON that ExtractWorkload can be given.
func FuzzReadManifests(f *testing.F) {
	f.Add([]byte("kind: Pod\nspec: {containers: [{image: a}]}\n---\nkind: List\nitems: [{kind: Job}]\n"))
	f.Add([]byte(`{"kind":"DeploymentList","items":[{"kind":"Deployment","spec":{"template":{"spec":{}}}}]}`))
	f.Add([]byte("---\n- a\n- b\n"))
	f.Add([]byte("kind: Pod\nmetadata: &a {name: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ReadManifests(strings.NewReader(string(data)), "fuzz.yaml")
		docs, splitErr := SplitYAML(strings.NewReader(string(data)))
		for _, m := range ms {
			if m.Kind == "" || len(m.JSON) == 0 {
				t.Fatalf("manifest without kind or body: %+v", m)
			}
			_, _ = ExtractWorkload(m.GroupKind(), m.JSON, fuzzWorkloads...)
			// --pin rewrites document m.Doc of SplitYAML's split: both
			// must count documents alike.
			if t0 := strings.TrimLeft(string(data), " \t\r\n"); err == nil && splitErr == nil && !strings.HasPrefix(t0, "{") && !strings.HasPrefix(t0, "[") && m.Doc > len(docs) {
				t.Fatalf("manifest in document %d, SplitYAML found %d documents", m.Doc, len(docs))
			}
		}
	})
}

// TestSplitYAMLKeepsBytes: joining SplitYAML's documents gives the input
// back byte for byte (--pin writes untouched documents this way), and the
// documents are numbered as ReadManifests numbers them.
func TestSplitYAMLKeepsBytes(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		bodies   []string // each document's body, without its separator
	}{
		{"empty", "", []string{""}},
		{"leading separator", "---\nkind: A\n", []string{"kind: A\n"}},
		{"trailing separator", "kind: A\n---\n", []string{"kind: A\n", ""}},
		{"trailing separator without newline", "kind: A\n---", []string{"kind: A\n", ""}},
		{"no final newline", "kind: A\n---\nkind: B", []string{"kind: A\n", "kind: B"}},
		{"CRLF", "kind: A\r\n--- # two\r\nkind: B\r\n---   \r\n", []string{"kind: A\r\n", "kind: B\r\n", ""}},
		{"comment separator", "kind: A\n--- # comment\nkind: B\n", []string{"kind: A\n", "kind: B\n"}},
		{"comment before first separator", "# head\n---\nkind: A\n", []string{"# head\n", "kind: A\n"}},
		{"directive", "%YAML 1.2\n---\nkind: A\n", []string{"%YAML 1.2\n", "kind: A\n"}},
		{"empty documents", "---\n---\n\n---\nkind: A\n", []string{"", "\n", "kind: A\n"}},
		{"dashes as content", "a: |\n  ---x\n----\n", []string{"a: |\n  ---x\n----\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := SplitYAML(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var joined strings.Builder
			var bodies []string
			for _, d := range docs {
				joined.Write(d.Separator)
				joined.Write(d.Body)
				bodies = append(bodies, string(d.Body))
			}
			if joined.String() != tt.in {
				t.Errorf("joined %q, want %q", joined.String(), tt.in)
			}
			if diff := cmp.Diff(tt.bodies, bodies); diff != "" {
				t.Errorf("bodies (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzSplitYAML: split and rejoin is the identity for any input SplitYAML
// accepts, and it numbers documents as ReadManifests does.
func FuzzSplitYAML(f *testing.F) {
	f.Add([]byte("---\r\nkind: A\r\n--- # c\r\nkind: B\r\n---"))
	f.Add([]byte("%YAML 1.2\n---\n- a\n---   \n"))
	f.Add([]byte("a: |\n  ---\n----\n--- |\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := SplitYAML(bytes.NewReader(data))
		if err != nil {
			return
		}
		var joined []byte
		for _, d := range docs {
			if len(d.Separator) > 0 && !bytes.HasPrefix(d.Separator, []byte("---")) {
				t.Fatalf("separator %q", d.Separator)
			}
			joined = append(append(joined, d.Separator...), d.Body...)
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("joined %q, want %q", joined, data)
		}
		ms, _ := ReadManifests(bytes.NewReader(data), "fuzz.yaml")
		for _, m := range ms {
			if t0 := bytes.TrimLeft(data, " \t\r\n"); len(t0) > 0 && (t0[0] == '{' || t0[0] == '[') {
				break
			}
			if m.Doc > len(docs) {
				t.Fatalf("manifest in document %d, SplitYAML found %d documents", m.Doc, len(docs))
			}
		}
	})
}
