package registry

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		max            int
	}{
		{"clear screen", "v1\x1b[2J\x1b[H", "v1", 100},
		{"colour", "\x1b[31;1mred\x1b[0m tag", "red tag", 100},
		{"window title with BEL", "a\x1b]0;pwned\x07b", "ab", 100},
		{"window title with ST", "a\x1b]0;pwned\x1b\\b", "ab", 100},
		{"unterminated OSC swallows the rest", "a\x1b]0;pwned", "a", 100},
		{"8-bit CSI", "a\u009b2Jb", "ab", 100},
		{"8-bit OSC", "a\u009d0;t\u009cb", "ab", 100},
		{"fake line", "v1\r\n[ok] ALL CLEAR", "v1 [ok] ALL CLEAR", 100},
		{"bidi override", "abc\u202edcba\u2066x\u2069", "abcdcbax", 100},
		{"other controls", "a\x00b\x7fc\x08d", "abcd", 100},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb", 100},
		{"spaces collapse and trim", "  a \t\t b  ", "a b", 100},
		{"cut on a rune boundary", "ééé", "é…", 3},
		{"plain", "linux/arm64/v8", "linux/arm64/v8", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sanitize(tc.in, tc.max); got != tc.want {
				t.Errorf("Sanitize(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

// FuzzSanitize: whatever a registry sends, the result is valid UTF-8, one
// line, free of control and format characters, and at most max bytes plus
// the ellipsis.
func FuzzSanitize(f *testing.F) {
	f.Add("v1\x1b[2J\x1b]0;title\x07\r\n[ok] ALL CLEAR\u202e", 64)
	f.Add("\u009b\u009d\x1bP", 3)
	f.Add("clean text — with an em dash", 64)
	f.Add(" lead", 64)
	f.Add("trail ", 64)
	f.Add("two  spaces", 64)
	f.Add("del\x7f", 64)
	f.Add("bad \xff utf8", 64)
	f.Add("nbsp\u00a0x", 64)
	f.Add("exactly max", 11)
	f.Add("exactly max", 10)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max & 0xfff
		got := Sanitize(s, max)
		if slow := sanitizeAll(s, max); got != slow {
			t.Fatalf("Sanitize(%q, %d) = %q, the full scan %q", s, max, got, slow)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if len(got) > max+len("…") {
			t.Fatalf("%d bytes, max %d: %q", len(got), max, got)
		}
		for _, r := range got {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("unprintable %U in %q", r, got)
			}
		}
		if strings.Contains(got, "  ") || strings.HasPrefix(got, " ") {
			t.Fatalf("unnormalized spaces: %q", got)
		}
	})
}

// TestVisible: a value kept as a value (a container name, an image in JSON)
// shows anything a terminal would act on escaped, never removed, and a
// printable string as it is.
func TestVisible(t *testing.T) {
	for in, want := range map[string]string{
		"reg.example/app:v1":  "reg.example/app:v1",
		"app\x1b[31m":         `app\x1b[31m`,
		"x:v1\u202e":          `x:v1\u202e`,
		"tab\there":           `tab\there`,
		"ümlaut café":         "ümlaut café",
		"quote\"in printable": "quote\"in printable",
	} {
		if got := Visible(in); got != want {
			t.Errorf("Visible(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestQuotedShown: what check and why print of a name or an image is a Go
// string, its unprintable runes escaped, and bounded however long the
// hostile input.
func TestQuotedShown(t *testing.T) {
	if got, want := QuotedShown("app\x1b[31m"), `"app\x1b[31m"`; got != want {
		t.Errorf("QuotedShown = %s, want %s", got, want)
	}
	long := QuotedShown(strings.Repeat("\x1b", 10*MaxShown))
	if len(long) > 4*MaxShown+2 {
		t.Errorf("QuotedShown of %d bytes printed %d bytes, want at most %d", 10*MaxShown, len(long), 4*MaxShown+2)
	}
	if got := Shown(strings.Repeat("a", 2*MaxShown)); len(got) > MaxShown+len("…") {
		t.Errorf("Shown printed %d bytes, want at most %d and \"…\"", len(got), MaxShown)
	}
}
