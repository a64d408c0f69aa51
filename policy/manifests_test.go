package policy

import (
	"strings"
	"testing"
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
		{"kind: List\nitems: [1]\n", "document 1, item 1"},
	} {
		_, err := ReadManifests(strings.NewReader(bad.in), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.want)
		}
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
