package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestCheckOutputIsSanitized: tags and platforms a hostile registry sends
// reach check's text and JSON output without escape sequences, fake lines
// or bidi overrides.
func TestCheckOutputIsSanitized(t *testing.T) {
	tr := registrytest.New(t)
	child := tr.ImageDescriptor("evil/platforms", "child", "linux", "arm64")
	tr.RawManifest("evil/platforms", "v1", "application/vnd.oci.image.index.v1+json", registrytest.IndexOf(child, []v1.Platform{
		{OS: "linux", Architecture: "arm64\x1b[2J"},
		{OS: "linux\r\n[ok] ALL CLEAR", Architecture: "s390x\x1b]0;pwned\x07"},
		{OS: "linux", Architecture: "\u202eriscv64"},
	}))
	tr.Image("evil/tags", "v0", "linux", "amd64")
	want := "release-candidate-2026-11-22-build-0042"
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/evil/tags/tags/list") {
			json.NewEncoder(w).Encode(map[string]any{"name": "evil/tags", "tags": []string{
				want[:len(want)-2] + "\x1b[2J", want[:len(want)-1] + "\r\n[ok] OK", want[:len(want)-1] + "\x1b]0;title\x07"}})
			return true
		}
		return false
	})
	dir := t.TempDir()
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: evil, namespace: shop}
spec:
  containers:
  - {name: tags, image: %[1]s/evil/tags:%[2]s}
  - {name: platforms, image: %[1]s/evil/platforms:v1}
`, tr.Host, want)
	file := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(file, []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, output := range []string{"text", "json"} {
		out, errOut, code := runCheck(t, "", "-f", file, "--platforms", "linux/amd64", "-o", output)
		if code != 1 {
			t.Fatalf("-o %s: exit %d, want 1\n%s\n%s", output, code, out, errOut)
		}
		if !strings.Contains(out, "nearest tags") || !strings.Contains(out, "arm64") {
			t.Errorf("-o %s: the registry's words are gone entirely:\n%s", output, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "[ok]") {
				t.Errorf("-o %s: a registry started a line: %q", output, line)
			}
			for _, r := range line {
				if !unicode.IsPrint(r) {
					t.Errorf("-o %s: unprintable %U in %q", output, r, line)
					break
				}
			}
		}
	}
}

// TestCheckHugeIndexGivesABoundedFinding: an index of 19,000 entries (once
// a 380 KB finding) gives a finding of bounded size: a denial when its 60
// distinct platforms exclude the nodes, "cannot verify" (exit 0) when it
// offers more distinct platforms than pullsafe keeps.
func TestCheckHugeIndexGivesABoundedFinding(t *testing.T) {
	tr := registrytest.New(t)
	index := func(distinct int) []byte {
		var b strings.Builder
		b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
		for i := range 19000 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"platform":{"os":"linux","architecture":"arch-%d-%s"}}`, i%distinct, strings.Repeat("x", 40))
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	tr.RawManifest("huge/few", "v1", "application/vnd.oci.image.index.v1+json", index(60))
	tr.RawManifest("huge/many", "v1", "application/vnd.oci.image.index.v1+json", index(19000))
	dir := t.TempDir()
	for _, tc := range []struct {
		repo     string
		wantCode int
		want     string
	}{
		{"huge/few", 1, "[platform]"},
		{"huge/many", 0, "cannot verify platforms"},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(tc.repo, "/", "-")+".yaml")
		pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: %s/%s:v1}]}\n", tr.Host, tc.repo)
		if err := os.WriteFile(file, []byte(pod), 0o644); err != nil {
			t.Fatal(err)
		}
		// Decoding 19,000 entries under -race on a busy machine takes
		// seconds: the time is not what this test is about.
		cfg := writeConfig(t, "mode: enforce\nlookupTimeout: 30s\n")
		out, errOut, code := runCheck(t, "", "-f", file, "--platforms", "linux/amd64", "--config", cfg)
		if code != tc.wantCode || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q\n%s\n%s", tc.repo, code, tc.wantCode, tc.want, out, errOut)
		}
		if len(out) > 8<<10 {
			t.Errorf("%s: %d bytes of output for one container", tc.repo, len(out))
		}
		for _, line := range strings.Split(out, "\n") {
			if len(line) > 600 {
				t.Errorf("%s: line of %d bytes", tc.repo, len(line))
			}
		}
	}
}

// TestCheckJSONSourceAndObjectAreSanitized: the file name, namespace and
// object name come from the user's files; JSON escapes C0 controls but
// passes C1 controls (U+009B is CSI) and bidi overrides through raw, so
// these fields need the same treatment as container and image.
func TestCheckJSONSourceAndObjectAreSanitized(t *testing.T) {
	tr := registrytest.New(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "pod\u202eyaml.txt")
	pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: \"web\\u009b2J\\u202e\", namespace: \"shop\\u009b31m\\u202e\"}\n"+
		"spec: {containers: [{name: c, image: %s/team/missing:v1}]}\n", tr.Host)
	if err := os.WriteFile(file, []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCheck(t, "", "-f", file, "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "web") || !strings.Contains(out, "shop") {
		t.Errorf("the object is gone from the output:\n%s", out)
	}
	for _, r := range out {
		if r == '\u009b' || r == '\u202e' {
			t.Errorf("raw %U in the JSON output:\n%s", r, out)
			break
		}
	}
}
