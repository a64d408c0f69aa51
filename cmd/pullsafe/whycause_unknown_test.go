package main

import (
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/policy"
)

// TestExplainCannotTellFromHere: when this machine cannot reach the
// registry (VPN, firewall) but the kubelet's error is not a network one,
// pullsafe does not know the cause: it must say so, not name
// "unreachable" as the pod's cause. When the kubelet's error is a network
// one too, both agree and the cause stands.
func TestExplainCannotTellFromHere(t *testing.T) {
	for _, tc := range []struct{ name, msg, status string }{
		{"kubelet says not found", `rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:1/team/api:v1": not found`, statusCannotTell},
		{"kubelet says unreachable too", `failed to do request: Head "https://127.0.0.1:1/v2/team/api/manifests/v1": dial tcp 127.0.0.1:1: connect: connection refused`, statusFails},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := explainNow(t, func(*policy.Config) {}, whyPodOf("127.0.0.1:1/team/api:v1", "ErrImagePull", tc.msg, ""))
			if ex.Status != tc.status || ex.Rule != string(policy.RuleUnreachable) {
				t.Errorf("got %+v\nwant status %s", ex, tc.status)
			}
			if tc.status == statusCannotTell && !strings.Contains(ex.Cause, "cannot tell") {
				t.Errorf("cause %q does not say pullsafe cannot tell", ex.Cause)
			}
		})
	}
}
