package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegistriesConfConfig: registries.registriesConf is loaded at start
// (and at each reload) by containers/image; every problem is an error
// naming the key, never a crash or a request-time failure.
func TestRegistriesConfConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.conf", "unqualified-search-registries = [\"registry.corp\"]\n")
	big := write("big.conf", "# "+strings.Repeat("x", 1<<20)+"\n")
	bad := write("bad.conf", "unqualified-search-registries = [\n")
	unknown := write("unknown.conf", "no-such-key = 1\n")
	badMode := write("badmode.conf", "short-name-mode = \"sometimes\"\n")
	drops := filepath.Join(dir, "many.d")
	if err := os.Mkdir(drops, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 65 {
		if err := os.WriteFile(filepath.Join(drops, strings.Repeat("a", 1)+string(rune('A'+i%26))+strings.Repeat("b", i/26)+".conf"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(extra string) string {
		return "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nregistries:\n" + extra
	}
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"loaded", cfg("  registriesConf: " + good + "\n"), ""},
		{"with a missing drop-in folder", cfg("  registriesConf: " + good + "\n  registriesConfDir: " + filepath.Join(dir, "none.d") + "\n"), ""},
		{"missing file", cfg("  registriesConf: " + filepath.Join(dir, "nope.conf") + "\n"), "registries.registriesConf: registries.conf: stat"},
		{"larger than 1 MiB", cfg("  registriesConf: " + big + "\n"), "is not a regular file of at most 1048576 bytes"},
		{"a device", cfg("  registriesConf: /dev/zero\n"), "is not a regular file"},
		{"not TOML", cfg("  registriesConf: " + bad + "\n"), "registries.registriesConf: registries.conf: loading registries configuration"},
		{"unknown key: containers/image only logs it, as CRI-O starts with it", cfg("  registriesConf: " + unknown + "\n"), ""},
		{"bad short-name-mode", cfg("  registriesConf: " + badMode + "\n"), "invalid short-name mode"},
		{"too many drop-ins", cfg("  registriesConf: " + good + "\n  registriesConfDir: " + drops + "\n"), "has more than 64 drop-ins"},
		{"folder without file", cfg("  registriesConfDir: " + drops + "\n"), "registries.registriesConfDir needs registries.registriesConf"},
		{"bad crioShortNameMode", cfg("  crioShortNameMode: permissive\n"), `registries.crioShortNameMode: "permissive" is not one of enforcing, disabled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil || c.LoadedRegistriesConf == nil {
					t.Fatalf("err = %v, loaded = %v", err, c != nil && c.LoadedRegistriesConf != nil)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
