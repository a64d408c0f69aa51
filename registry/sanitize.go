package registry

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize makes text that came from a registry (or from a user's file) safe
// to show a person at a terminal: escape sequences (ANSI CSI, OSC window
// titles, DCS/APC strings, in their 7-bit and 8-bit forms) are removed
// whole, CR, LF and tabs become spaces so nobody can fake a line of output,
// other control and format characters (bidi overrides among them) are
// dropped, runs of spaces collapse, and the result is cut to at most max
// bytes (plus "…") on a rune boundary. A registry's words are evidence, not
// markup.
func Sanitize(s string, max int) string {
	if clean(s, max) {
		// Most text is already clean (pullsafe's own words, a registry's
		// usual answer): the same string back, with no copy.
		return s
	}
	return sanitizeAll(s, max)
}

// clean reports whether sanitize would return s unchanged: at most max
// bytes of printable runes and single spaces, none at either end.
func clean(s string, max int) bool {
	if len(s) > max {
		return false
	}
	space := true // a leading space is dropped
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			switch {
			case c == ' ':
				if space {
					return false
				}
				space = true
			case c < 0x20 || c == 0x7f:
				return false
			default:
				space = false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !unicode.IsPrint(r) {
			return false
		}
		space = false
		i += n
	}
	return !space || s == ""
}

// sanitizeAll is Sanitize reading every rune: what clean lets through unchanged.
func sanitizeAll(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max+8))
	space := false // a space is pending, written before the next visible rune
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b: // ESC
			i += escapeLen(s[i:])
			continue
		case r == 0x9b: // 8-bit CSI
			i += n + csiLen(s[i+n:])
			continue
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // 8-bit DCS, SOS, OSC, PM, APC
			i += n + stringLen(s[i+n:])
			continue
		case r == '\n' || r == '\r' || r == '\t' || r == ' ':
			space = b.Len() > 0
		case r == utf8.RuneError && n == 1:
			r = '\uFFFD'
			fallthrough
		case unicode.IsPrint(r):
			need := utf8.RuneLen(r)
			if space {
				need++
			}
			if b.Len()+need > max {
				b.WriteString("…")
				return b.String()
			}
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s (which
// starts with ESC), as a terminal would consume it.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		return 2 + csiLen(s[2:])
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: strings up to BEL or ST
		return 2 + stringLen(s[2:])
	}
	_, n := utf8.DecodeRuneInString(s[1:])
	return 1 + n
}

// csiLen is the length of a CSI sequence's parameters and final byte.
func csiLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x40 && c <= 0x7e {
			return i + 1
		}
		if c < 0x20 || c > 0x7e {
			return i // not a CSI byte: the sequence was malformed, stop here
		}
	}
	return len(s)
}

// stringLen is the length of an OSC/DCS string up to and including its
// terminator: BEL, ESC \ or the 8-bit ST. An unterminated string runs to
// the end, as it would swallow the rest on a terminal.
func stringLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			return i
		case strings.HasPrefix(s[i:], "\u009c"):
			return i + len("\u009c")
		}
	}
	return len(s)
}

// Visible escapes unprintable runes Go-style (\x1b, \u202e) and leaves a
// printable string as it is: for a value kept as a value (a container
// name, an image in JSON output), where Sanitize would change what it is.
// JSON itself would pass C1 controls and bidi overrides.
func Visible(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// MaxShown bounds one string the command line prints (check, why); the
// verdict's own lines are already bounded by policy.
const MaxShown = 512

// Shown is a string from a file or a registry made safe for a terminal.
func Shown(s string) string { return Sanitize(s, MaxShown) }

// QuotedShown shows a name or image as a Go string, bounded: unprintable
// runes escaped, so a hostile name is visible as such.
func QuotedShown(s string) string {
	if len(s) > MaxShown {
		s = Shown(s)
	}
	return strconv.Quote(s)
}
