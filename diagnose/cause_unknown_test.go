package diagnose

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
		{"kubelet says not found", `rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:1/team/api:v1": not found`, StatusCannotTell},
		{"kubelet says unreachable too", `failed to do request: Head "https://127.0.0.1:1/v2/team/api/manifests/v1": dial tcp 127.0.0.1:1: connect: connection refused`, StatusFails},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := explainNow(t, func(*policy.Config) {}, podOf("127.0.0.1:1/team/api:v1", "ErrImagePull", tc.msg, ""))
			if ex.Status != tc.status || ex.Rule != string(policy.RuleUnreachable) {
				t.Errorf("got %+v\nwant status %s", ex, tc.status)
			}
			if tc.status == StatusCannotTell && !strings.Contains(ex.Cause, "cannot tell") {
				t.Errorf("cause %q does not say pullsafe cannot tell", ex.Cause)
			}
		})
	}
}

// TestExplainNodeCredentialsCannotTell: registries.nodeCredentials means
// the nodes pull with credentials pullsafe does not hold; its own 401 is
// no cause.
func TestExplainNodeCredentialsCannotTell(t *testing.T) {
	f := []policy.Finding{{Rule: policy.RuleUnauthorized, Action: policy.ActionWarn, Container: "app", Image: "123.dkr.ecr.example/x:v1", Source: policy.SourceContainer,
		Cause: "cannot verify: nodes pull from 123.dkr.ecr.example with their own credentials (registries.nodeCredentials); pullsafe does not"}}
	si := stuckImage{Container: policy.Container{Name: "app", Image: "123.dkr.ecr.example/x:v1", Source: policy.SourceContainer}, Reason: "ImagePullBackOff"}
	if ex := explain(si, f, "node-a", false); ex.Status != StatusCannotTell {
		t.Errorf("%+v", ex)
	}
}
