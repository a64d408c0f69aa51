// Package policy decides what pullsafe says about a workload's images: which
// rules apply, with which credentials and nodes, and the resulting verdict
// and messages. It makes no network calls of its own and knows nothing of
// HTTP, AdmissionReviews or JSON patches.
package policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Rule is a rule id of DESIGN.md; ids appear in config, messages, audit
// annotations and metrics.
type Rule string

const (
	RuleNotFound           Rule = "not-found"
	RuleUnauthorized       Rule = "unauthorized"
	RulePlatform           Rule = "platform"
	RuleDockerHubAnonymous Rule = "dockerhub-anonymous"
	RuleMutableTag         Rule = "mutable-tag"
	RuleInvalidReference   Rule = "invalid-reference"
	RuleUnreachable        Rule = "unreachable"
	RuleRateLimited        Rule = "rate-limited"
	// RuleShortName: CRI-O nodes cannot resolve the name through their
	// registries.conf (ambiguous in short-name-mode enforcing, or no search
	// registry and no alias): crio.go.
	RuleShortName Rule = "short-name"
	// RuleBlockedRegistry: CRI-O nodes' registries.conf blocks every
	// registry the name resolves to.
	RuleBlockedRegistry Rule = "blocked-registry"
	// RuleInternal is pullsafe's own failure (a panic, an unreadable secret):
	// always allowed with a warning, never configurable to deny.
	RuleInternal Rule = "internal"
)

// AllRules are the configurable rules.
var AllRules = []Rule{RuleNotFound, RuleUnauthorized, RulePlatform, RuleDockerHubAnonymous,
	RuleMutableTag, RuleInvalidReference, RuleUnreachable, RuleRateLimited, RuleShortName, RuleBlockedRegistry}

// DefaultAction is the action of DESIGN.md's table.
func (r Rule) DefaultAction() Action {
	switch r {
	case RuleMutableTag, RuleUnreachable, RuleRateLimited, RuleInternal:
		return ActionWarn
	}
	return ActionDeny
}

// FailsPull reports whether a finding of r says the kubelet's pull would
// fail: the registry has no such image, refuses the credentials, offers no
// platform the nodes run, or the reference does not parse. The others
// deny by the config's choice: a risk (dockerhub-anonymous: a shared rate
// limit; mutable-tag: skew between nodes) or an answer pullsafe could not
// get (unreachable, rate-limited, internal). Only pull failures are worded
// "would fail to pull" (Verdict.DenialMessage) and audited as such.
func (r Rule) FailsPull() bool {
	switch r {
	case RuleNotFound, RuleUnauthorized, RulePlatform, RuleInvalidReference, RuleShortName, RuleBlockedRegistry:
		return true
	}
	return false
}

func (r Rule) known() bool {
	for _, k := range AllRules {
		if k == r {
			return true
		}
	}
	return false
}

func joinRules() string {
	s := make([]string, len(AllRules))
	for i, r := range AllRules {
		s[i] = string(r)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// Action is what a rule does when it fires.
type Action string

const (
	ActionDeny   Action = "deny"
	ActionWarn   Action = "warn"
	ActionIgnore Action = "ignore"
)

func (a Action) valid() bool { return a == ActionDeny || a == ActionWarn || a == ActionIgnore }

// Mode is the cluster default or a namespace's pullsafe.io/mode label.
type Mode string

const (
	ModeEnforce Mode = "enforce"
	ModeWarn    Mode = "warn"
	ModeOff     Mode = "off"
)

// UnmarshalJSON accepts the YAML 1.1 boolean false as "off": the config is
// read with sigs.k8s.io/yaml, which follows YAML 1.1, so an unquoted
// `mode: off` arrives as false. Refusing it would make the README's own
// spelling fail at start-up; true (from `on`/`yes`) is no mode and stays an
// error.
func (m *Mode) UnmarshalJSON(b []byte) error {
	if string(b) == "false" {
		*m = ModeOff
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode: %s is not one of enforce, warn, off", b)
	}
	*m = Mode(s)
	return nil
}

func (m Mode) valid() bool { return m == ModeEnforce || m == ModeWarn || m == ModeOff }

// Namespace labels that override the config per namespace.
const (
	LabelMode = "pullsafe.io/mode"
	LabelPin  = "pullsafe.io/pin"
)
