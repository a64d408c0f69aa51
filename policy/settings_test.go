package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestSettings is the one table of "is this object pinned, and if not, what
// would pin it" for Pods and templates, and of label values not understood.
func TestSettings(t *testing.T) {
	const (
		podFix      = "pin the digest, or label the namespace pullsafe.io/pin=true"
		templateCfg = "pin the digest in the manifest (pullsafe check --pin), or set pin.templates: true in pullsafe's config"
		templateLbl = "pin the digest in the manifest (pullsafe check --pin), or remove the namespace label pullsafe.io/pin=false"
	)
	on := Pinning{On: true}
	tests := []struct {
		name     string
		pin      PinConfig
		labels   map[string]string
		template bool
		want     Settings
	}{
		{name: "defaults: Pods pinned", pin: PinConfig{Pods: true}, want: Settings{Mode: ModeWarn, Pin: on}},
		{name: "defaults: templates not pinned, and the label would not help", pin: PinConfig{Pods: true}, template: true,
			want: Settings{Mode: ModeWarn, Pin: Pinning{Fix: templateCfg}}},
		{name: "label true does not pin templates", pin: PinConfig{Pods: true}, template: true, labels: map[string]string{LabelPin: "true"},
			want: Settings{Mode: ModeWarn, Pin: Pinning{Fix: templateCfg}}},
		{name: "pin.templates pins templates", pin: PinConfig{Templates: true}, template: true, want: Settings{Mode: ModeWarn, Pin: on}},
		{name: "label false stops template pinning", pin: PinConfig{Templates: true}, template: true, labels: map[string]string{LabelPin: "false"},
			want: Settings{Mode: ModeWarn, Pin: Pinning{Fix: templateLbl}}},
		{name: "label false stops Pod pinning; the label is the fix", pin: PinConfig{Pods: true}, labels: map[string]string{LabelMode: "enforce", LabelPin: "false"},
			want: Settings{Mode: ModeEnforce, Pin: Pinning{Fix: podFix}}},
		{name: "pin.pods false: the label is the fix", want: Settings{Mode: ModeWarn, Pin: Pinning{Fix: podFix}}},
		{name: "label true pins Pods", labels: map[string]string{LabelPin: "true"}, want: Settings{Mode: ModeWarn, Pin: on}},
		{name: "typo in the mode label falls back and says so", pin: PinConfig{Pods: true}, labels: map[string]string{LabelMode: "enforced"},
			want: Settings{Mode: ModeWarn, Pin: on, Problems: []string{"namespace label pullsafe.io/mode=enforced is not enforce, warn or off; using warn"}}},
		{name: "typo in the pin label falls back to pin.pods, not false", pin: PinConfig{Pods: true}, labels: map[string]string{LabelPin: "yes"},
			want: Settings{Mode: ModeWarn, Pin: on, Problems: []string{"namespace label pullsafe.io/pin=yes is not true or false; using the config's pin.pods: true"}}},
		{name: "typo in the pin label of a template names pin.templates", pin: PinConfig{Templates: true}, template: true, labels: map[string]string{LabelPin: "True"},
			want: Settings{Mode: ModeWarn, Pin: on, Problems: []string{"namespace label pullsafe.io/pin=True is not true or false; using the config's pin.templates: true"}}},
		{name: "both labels wrong: both said", labels: map[string]string{LabelMode: "x", LabelPin: "y"},
			want: Settings{Mode: ModeWarn, Pin: Pinning{Fix: podFix}, Problems: []string{
				"namespace label pullsafe.io/mode=x is not enforce, warn or off; using warn",
				"namespace label pullsafe.io/pin=y is not true or false; using the config's pin.pods: false"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Pin = tt.pin
			if d := cmp.Diff(tt.want, cfg.Settings(tt.labels, tt.template), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Settings (-want +got):\n%s", d)
			}
		})
	}
}

func TestExcluded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Namespaces.Exclude = []string{"ops"}
	got := map[string]string{}
	for _, ns := range []string{"kube-system", "kube-node-lease", "pullsafe-system", "ops", "shop", "kube-public"} {
		got[ns] = cfg.Excluded(ns, "pullsafe-system")
	}
	want := map[string]string{
		"kube-system":     "namespace kube-system is never checked",
		"kube-node-lease": "namespace kube-node-lease is never checked",
		"pullsafe-system": "namespace pullsafe-system is pullsafe's own",
		"ops":             "namespace ops is in the config's namespaces.exclude",
		"shop":            "",
		"kube-public":     "",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Excluded (-want +got):\n%s", d)
	}
}
