// Package golden compares test output with a file kept in the repository:
// reviewed as text, regenerated with PULLSAFE_UPDATE_GOLDEN=1.
package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Check fails t when got differs from file (surrounding blank lines
// ignored). With PULLSAFE_UPDATE_GOLDEN set it first rewrites the file.
func Check(t testing.TB, file, got, hint string) {
	t.Helper()
	if os.Getenv("PULLSAFE_UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with PULLSAFE_UPDATE_GOLDEN=1 to create it)", err)
	}
	if diff := cmp.Diff(strings.TrimSpace(string(want)), strings.TrimSpace(got)); diff != "" {
		t.Errorf("%s differs (-file +got); %s:\n%s", file, hint, diff)
	}
}
