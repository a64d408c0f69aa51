package main

import "testing"

func TestPrintableEscapesTerminalControls(t *testing.T) {
	tests := []struct{ in, want string }{
		{"deploy.yaml: document 2: too large", "deploy.yaml: document 2: too large"},
		{"line one\nline two", "line one\nline two"},
		{"evil\x1b]0;owned\x07.yaml: unreadable", `evil\x1b]0;owned\a.yaml: unreadable`},
		{"a\rpullsafe: [ok] ALL CLEAR", `a\rpullsafe: [ok] ALL CLEAR`},
		{"bidi\u202egpj.yaml", `bidi\u202egpj.yaml`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
