package diagnose

import (
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/policy"
)

// TestExplainRuntimeRefusals: CRI-O's and containerd's own words for a
// name or platform the node refuses, whatever the registry says now.
func TestExplainRuntimeRefusals(t *testing.T) {
	for _, tc := range []struct{ name, reason, msg, rule, want string }{
		{"CRI-O ambiguous short name", "ImageInspectError",
			`Failed to inspect image "": rpc error: code = Unknown desc = short name mode is enforcing, but image name synology/synology-csi:v1.2.0 returns ambiguous list`,
			"short-name", "[aliases]"},
		{"CRI-O before the message was reworded", "ErrImagePull",
			`rpc error: code = Unknown desc = short-name resolution enforced but cannot prompt without a TTY`, "short-name", "full name"},
		{"no search registries", "ErrImagePull",
			`rpc error: code = Unknown desc = short-name "team/api:v1" did not resolve to an alias and no unqualified-search registries are defined in "/etc/containers/registries.conf"`,
			"short-name", "unqualified-search-registries"},
		{"blocked", "ErrImagePull",
			`rpc error: code = Unknown desc = registry evil.example is blocked in /etc/containers/registries.conf or /etc/containers/registries.conf.d`,
			"blocked-registry", "unblock"},
		{"containers/image's wording since v5.30", "ErrImagePull",
			`rpc error: code = Unknown desc = initializing source docker://evil.example/x:1: registry evil.example is blocked in one of /etc/containers/registries.conf, /etc/containers/registries.conf.d`,
			"blocked-registry", "unblock"},
		// The kubelet's message carries the registry's own error text:
		// a registry saying "blocked" is no registries.conf entry.
		{"a registry's denial that says blocked", "ErrImagePull",
			`failed to pull and unpack image "reg/x:v1": failed to resolve reference "reg/x:v1": unexpected status 403 Forbidden: denied: this repository is blocked in your region`,
			"", ""},
		{"containerd: no entry for the Windows build", "ErrImagePull",
			`failed to pull and unpack image "reg/win:v1": no match for platform in manifest: not found`, "platform", "10.0.20348"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer}, Reason: tc.reason, Message: tc.msg}
			ex := explain(si, nil, "node-a", false)
			if tc.rule == "" {
				if ex.Rule == "blocked-registry" {
					t.Errorf("a registry's own words taken for registries.conf: %+v", ex)
				}
				return
			}
			if ex.Status != StatusFails || ex.Rule != tc.rule || !strings.Contains(ex.Cause+ex.Fix, tc.want) || !strings.Contains(ex.Cause, "node-a") {
				t.Errorf("got %+v\nwant rule %s naming %q", ex, tc.rule, tc.want)
			}
		})
	}
}
