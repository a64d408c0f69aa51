package policy

import "github.com/pullsafe/pullsafe/registry"

// FindingJSON is a finding as `check -o json` and `why -o json` print it.
// JSON escapes C0 controls but passes C1 controls and bidi overrides
// through, so cause and fix (text for a person) are cleaned as in the text
// output, and container and image keep their value with anything
// unprintable escaped.
type FindingJSON struct {
	Rule      Rule   `json:"rule"`
	Action    Action `json:"action"`
	Container string `json:"container"`
	Image     string `json:"image"`
	Cause     string `json:"cause"`
	Fix       string `json:"fix,omitempty"`
	// Source says what Container names: container, init container,
	// sidecar container, ephemeral container, or volume (an image
	// volume, Container then being the volume's name).
	Source Source `json:"source"`
}

// JSON is f as the command line prints it.
func (f Finding) JSON() FindingJSON {
	return FindingJSON{Rule: f.Rule, Action: f.Action, Container: registry.Visible(f.Container), Image: registry.Visible(f.Image),
		Cause: registry.Shown(f.Cause), Fix: registry.Shown(f.Fix), Source: Source(f.Source.String())}
}
