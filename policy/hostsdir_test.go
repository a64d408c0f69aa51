package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// registries.hostsDir is read whole at load: what containerd could not use
// is an error naming the file, and a registry described both there and in
// registries.mirrors is refused.
func TestHostsDirValidatedAtLoad(t *testing.T) {
	head := "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nregistries:\n"
	tests := []struct {
		name  string
		files map[string]string
		extra string // more registries keys
		want  string // "" : loads
	}{
		{"good", map[string]string{"docker.io/hosts.toml": "server = \"https://mirror.corp.example\"\n"}, "", ""},
		{"mirrors for another registry", map[string]string{"docker.io/hosts.toml": "server = \"https://m\"\n"},
			"  mirrors: {quay.io: [m2.corp.example]}\n", ""},
		{"docker.io in both", map[string]string{"docker.io/hosts.toml": "server = \"https://m\"\n"},
			"  mirrors: {docker.io: [m2.corp.example]}\n", "registries.mirrors.docker.io: docker.io is also configured by registries.hostsDir"},
		{"_default covers every registry", map[string]string{"_default/hosts.toml": "server = \"https://m\"\n"},
			"  mirrors: {quay.io: [m2.corp.example]}\n", "also configured by registries.hostsDir"},
		{"malformed", map[string]string{"docker.io/hosts.toml": "server = \n"}, "", "docker.io/hosts.toml: not TOML"},
		{"unknown capability", map[string]string{"quay.io/hosts.toml": "server = \"https://m\"\ncapabilities = [\"fly\"]\n"}, "",
			"quay.io/hosts.toml: server \"https://m\": unknown capability \"fly\""},
		{"ca that is missing", map[string]string{"quay.io/hosts.toml": "server = \"https://m\"\nca = \"nope.pem\"\n"}, "", "nope.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				f := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ParseConfig([]byte(head + "  hostsDir: " + dir + "\n" + tt.extra))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("want it loaded: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			case tt.want != "" && !strings.HasPrefix(err.Error(), "registries."):
				t.Errorf("err = %v, want it to name the key", err)
			}
		})
	}
	if _, err := ParseConfig([]byte(head + "  hostsDir: /nonexistent/certs.d\n")); err == nil || !strings.Contains(err.Error(), "/nonexistent/certs.d") {
		t.Errorf("missing folder: %v", err)
	}
}
