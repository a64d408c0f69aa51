package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func loadConf(t testing.TB, conf string) *RegistriesConf {
	t.Helper()
	file := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadRegistriesConf(file, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testConf = `unqualified-search-registries = ["registry.corp", "docker.io"]

[aliases]
"team/web" = "registry.corp/team/web"

[[registry]]
prefix = "registry.corp"
location = "registry.corp"
[[registry.mirror]]
location = "mirror.corp/cache"

[[registry]]
prefix = "evil.example"
location = "evil.example"
blocked = true

[[registry]]
prefix = "*.legacy.corp"
location = "new.corp"
`

// TestRegistriesConfAsCRIO: candidates and sources as containers/image
// gives them to CRI-O.
func TestRegistriesConfAsCRIO(t *testing.T) {
	c := loadConf(t, testConf)
	tests := []struct {
		image     string
		want      ShortName
		ambiguous bool
		sources   [][]string // per candidate; nil: blocked
	}{
		{"team/api:v1", ShortName{Candidates: []string{"registry.corp/team/api:v1", "docker.io/team/api:v1"}, Short: true}, true,
			[][]string{{"mirror.corp/cache/team/api:v1", "registry.corp/team/api:v1"}, {"docker.io/team/api:v1"}}},
		{"nginx:latest", ShortName{Candidates: []string{"registry.corp/nginx:latest", "docker.io/library/nginx:latest"}, Short: true}, true,
			[][]string{{"mirror.corp/cache/nginx:latest", "registry.corp/nginx:latest"}, {"docker.io/library/nginx:latest"}}},
		{"team/web:v2", ShortName{Candidates: []string{"registry.corp/team/web:v2"}, Short: true}, false,
			[][]string{{"mirror.corp/cache/team/web:v2", "registry.corp/team/web:v2"}}},
		{"evil.example/x:1", ShortName{Candidates: []string{"evil.example/x:1"}}, false, [][]string{nil}},
		{"app.legacy.corp/team/x:1", ShortName{Candidates: []string{"app.legacy.corp/team/x:1"}}, false, [][]string{{"new.corp/team/x:1"}}},
		{"other.io/x@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ShortName{Candidates: []string{"other.io/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}, false,
			[][]string{{"other.io/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, err := c.Resolve(tt.image)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Resolve (-want +got):\n%s", d)
			}
			if got.Ambiguous() != tt.ambiguous {
				t.Errorf("Ambiguous = %v", got.Ambiguous())
			}
			var srcs [][]string
			for _, cand := range got.Candidates {
				s, err := c.Sources(cand)
				var b *BlockedError
				if errors.As(err, &b) {
					s = nil
				} else if err != nil {
					t.Fatal(err)
				}
				srcs = append(srcs, s)
			}
			if d := cmp.Diff(tt.sources, srcs); d != "" {
				t.Errorf("Sources (-want +got):\n%s", d)
			}
		})
	}
	if _, err := loadConf(t, "").Resolve("team/api:v1"); err == nil {
		t.Error("a short name without search registries or alias resolved")
	}
}

// TestRegistriesConfIgnoresEnvironment: pullsafe's own environment does
// not change what it believes the nodes read.
func TestRegistriesConfIgnoresEnvironment(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other.conf")
	if err := os.WriteFile(other, []byte(`unqualified-search-registries = ["attacker.example"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_REGISTRIES_CONF", other)
	t.Setenv("CONTAINERS_REGISTRIES_CONF_OVERRIDE", other)
	t.Setenv("HOME", t.TempDir())
	c := loadConf(t, `unqualified-search-registries = ["registry.corp"]`)
	if d := cmp.Diff([]string{"registry.corp"}, c.SearchRegistries()); d != "" {
		t.Errorf("search registries (-want +got):\n%s", d)
	}
}

// FuzzRegistriesConfResolve: any image string a Pod may carry goes through
// containers/image's short-name and [[registry]] code without a panic, and
// gives at most one candidate per search registry (or one).
func FuzzRegistriesConfResolve(f *testing.F) {
	c := loadConf(f, testConf)
	for _, s := range []string{"team/api:v1", "nginx", "evil.example/x:1", "a.legacy.corp/x@sha256:" + "00000000000000000000000000000000000000000000000000000000000000000",
		"UPPER/x", "localhost/x", "x:y:z", "/", "docker.io/library/../x", "team/web@sha256:abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		sn, err := c.Resolve(image)
		if err != nil {
			return
		}
		if len(sn.Candidates) == 0 || len(sn.Candidates) > 2 {
			t.Fatalf("%q: %d candidates", image, len(sn.Candidates))
		}
		for _, cand := range sn.Candidates {
			if srcs, err := c.Sources(cand); err == nil && len(srcs) == 0 {
				t.Fatalf("%q: no source and no error", cand)
			}
		}
	})
}

// TestRegistriesConfReloadKeepsEachParse: a second load of an edited file
// sees the edit, and the first load still answers with its own parse (a
// config kept after a refused reload must not read the refused file).
func TestRegistriesConfReloadKeepsEachParse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "registries.conf")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`unqualified-search-registries = ["one.corp"]`)
	first, err := LoadRegistriesConf(file, "")
	if err != nil {
		t.Fatal(err)
	}
	write(`unqualified-search-registries = ["two.corp", "three.corp"]`)
	second, err := LoadRegistriesConf(file, "")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := first.Resolve("team/api:v1")
	b, _ := second.Resolve("team/api:v1")
	if d := cmp.Diff([]string{"one.corp/team/api:v1"}, a.Candidates); d != "" {
		t.Errorf("first load after the edit (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"two.corp/team/api:v1", "three.corp/team/api:v1"}, b.Candidates); d != "" {
		t.Errorf("second load (-want +got):\n%s", d)
	}
}

// TestRegistriesConfReloadsOfOneFileKeepOneParse: the library keeps every
// parse process-wide, keyed by the paths pullsafe gives it. A reload that
// re-reads an unchanged file (a config whose other keys are refused is
// re-read at every 10 s poll) must not add a parse each time: heap after
// 200 loads stays within a few parses of heap after one.
func TestRegistriesConfReloadsOfOneFileKeepOneParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("unqualified-search-registries = [\"registry.corp\"]\n")
	for i := range 800 {
		fmt.Fprintf(&b, "[[registry]]\nprefix = \"r%d.corp/team\"\nlocation = \"mirror%d.corp/cache/team\"\n", i, i)
	}
	file := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	if _, err := LoadRegistriesConf(file, ""); err != nil {
		t.Fatal(err)
	}
	before := heap()
	const loads = 200
	for range loads {
		if _, err := LoadRegistriesConf(file, ""); err != nil {
			t.Fatal(err)
		}
	}
	grew := int64(heap()) - int64(before)
	// One parse of this file is ~200 KB: 200 kept parses are ~40 MB.
	if grew > 4<<20 {
		t.Errorf("heap grew %d bytes over %d loads of one unchanged file", grew, loads)
	}
}

// FuzzLoadRegistriesConf: no registries.conf content (operator config, but
// no config value may crash the process) makes the library panic at load
// or at resolution.
func FuzzLoadRegistriesConf(f *testing.F) {
	for _, s := range []string{testConf, `unqualified-search-registries = []`, `short-name-mode = "x"`,
		"[[registry]]\nprefix = \"*.a.b\"\nlocation = \"c\"\n", "[[registry]]\nprefix = \"*\"\n", "[[registry]]\nlocation = \"\"\n",
		"[aliases]\n\"x\" = \"\"\n", "[aliases]\n\"a/b\" = \"localhost\"\n", "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"\"\nblocked = true\n",
		"[[registry]]\nprefix = \"r.corp\"\n[[registry.mirror]]\nlocation = \"m.corp\"\npull-from-mirror = \"digest-only\"\n",
		"registries = [\"a\"]\n[registries.search]\nregistries = [\"b\"]\n"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, conf string) {
		file := filepath.Join(dir, "registries.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadRegistriesConf(file, "")
		if err != nil {
			return
		}
		for _, image := range []string{"team/api:v1", "nginx:latest", "a.b/x@sha256:" + strings.Repeat("0", 64), "localhost/x:1", "r.corp/team/x:1"} {
			sn, err := c.Resolve(image)
			if err != nil {
				continue
			}
			for _, cand := range sn.Candidates {
				_, _ = c.Sources(cand)
			}
		}
	})
}
