package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLarge writes a file of more than 64 MiB (the old total cap): filler
// documents, then a Pod whose image the kubelet could not parse.
func writeLarge(t *testing.T, name string, json bool) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	filler := strings.Repeat("x", 15<<20)
	for i := range 5 { // 5 x 15 MiB = 75 MiB
		if json {
			fmt.Fprintf(w, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fill%d"},"data":{"a":"%s"}}`+"\n", i, filler)
		} else {
			// Comments: the reader must get through them all, the YAML
			// parser need not (a race-enabled run parses slowly).
			fmt.Fprintf(w, "# fill%d %s\n---\n", i, filler)
		}
	}
	if json {
		fmt.Fprint(w, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"last"},"spec":{"containers":[{"name":"c","image":"Bad Image::"}]}}`+"\n")
	} else {
		fmt.Fprint(w, "apiVersion: v1\nkind: Pod\nmetadata: {name: last}\nspec: {containers: [{name: c, image: \"Bad Image::\"}]}\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestCheckReadsFilesOfAnySize: the last document of a file over 64 MiB is
// checked (it was silently cut off: exit 0 with []).
func TestCheckReadsFilesOfAnySize(t *testing.T) {
	for _, json := range []bool{false, true} {
		name := map[bool]string{false: "big.yaml", true: "big.json"}[json]
		t.Run(name, func(t *testing.T) {
			if json && raceEnabled {
				// One goroutine decodes; the race detector has nothing to
				// find there and makes 75 MiB of JSON take a minute. Runs
				// in every plain `go test`; the YAML case runs always.
				t.Skip("skipped under -race")
			}
			file := writeLarge(t, name, json)
			out, errOut, code := runCheck(t, "", "-f", file, "-o", "json")
			if code != 1 || !strings.Contains(out, `"invalid-reference"`) || !strings.Contains(out, `"document": 6`) {
				t.Errorf("exit %d, want 1 with the last document's invalid-reference\nstdout: %.400s\nstderr: %.400s", code, out, errOut)
			}
		})
	}
}

// TestCheckRefusesWhatItCannotReadWhole: a document over the per-document
// bound, or content a separator line would hide, is exit 2 naming file and
// document.
func TestCheckRefusesWhatItCannotReadWhole(t *testing.T) {
	dir := t.TempDir()
	huge := strings.Repeat("x", 17<<20)
	for _, tc := range []struct{ name, content, want string }{
		{"huge.yaml", "kind: ConfigMap\n---\nkind: ConfigMap\ndata: {a: " + huge + "}\n", "huge.yaml: document 2: larger than"},
		{"hugeline.yaml", "kind: ConfigMap\n---\n" + huge, "hugeline.yaml: document 2: larger than"},
		{"huge.json", `{"kind":"ConfigMap"}` + "\n" + `{"kind":"ConfigMap","data":{"a":"` + huge + `"}}`, "huge.json: document 2: larger than"},
		{"inline.yaml", "kind: ConfigMap\n--- {kind: Pod, spec: {containers: [{name: c, image: 'Bad::'}]}}\n", "inline.yaml: document 1: content after the document separator"},
		{"truncated.json", `{"kind":"ConfigMap"}` + "\n" + `{"kind":"Pod","spec":`, "truncated.json: document 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name)
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := runCheck(t, "", "-f", file)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %.300q; want exit 2 with %q", code, errOut, tc.want)
			}
		})
	}
}
