package diagnose

import (
	"strings"
	"testing"

	"github.com/pullsafe/pullsafe/policy"
)

// TestExplainNodeSideErrors: the registry answers pullsafe, but the
// kubelet's error says the node itself fails (disk, trust, plain HTTP):
// "nothing to change" would leave the pod stuck.
func TestExplainNodeSideErrors(t *testing.T) {
	for _, tc := range []struct{ name, msg, want string }{
		{"disk full", `failed to pull and unpack image "reg/x:v1": failed to extract layer sha256:ab: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/9/fs/a: no space left on device: unknown`, "disk"},
		{"node trust", `failed to pull and unpack image "reg/x:v1": failed to resolve reference "reg/x:v1": failed to do request: Head "https://reg/v2/x/manifests/v1": tls: failed to verify certificate: x509: certificate signed by unknown authority`, "CA"},
		{"plain http", `failed to pull and unpack image "reg/x:v1": failed to resolve reference "reg/x:v1": failed to do request: Head "https://reg/v2/x/manifests/v1": http: server gave HTTP response to HTTPS client`, "HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer},
				Reason: "ErrImagePull", Message: tc.msg}
			ex := explain(si, nil, "node-a", false)
			if ex.Status != StatusFails || !strings.HasPrefix(ex.Rule, "node-") || !strings.Contains(ex.Cause+ex.Fix, tc.want) {
				t.Errorf("got %+v\nwant a node-side cause naming %q", ex, tc.want)
			}
			if strings.Contains(ex.Fix, "nothing to change") {
				t.Errorf("fix %q", ex.Fix)
			}
		})
	}
}

// TestNetworkErrorWords: Go's and containerd's words for a connection that
// broke after it was made are network failures too: a fine-now answer
// warns that the nodes may not reach the registry as this machine does.
func TestNetworkErrorWords(t *testing.T) {
	for _, msg := range []string{
		`failed to copy: httpReadSeeker: failed open: failed to do request: Get "https://reg/v2/x/blobs/sha256:ab": read tcp 10.0.0.5:51234->10.0.0.7:443: read: connection reset by peer`,
		`failed to resolve reference "reg/x:v1": failed to do request: Head "https://reg/v2/x/manifests/v1": context deadline exceeded`,
		`failed to copy: read tcp 10.0.0.5:51234->10.0.0.7:443: read: network is unreachable`,
	} {
		si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer}, Reason: "ErrImagePull", Message: msg}
		if !networkError(si) {
			t.Errorf("not a network error: %s", msg)
		}
	}
}

// TestExplainInvalidNameNeverFine: InvalidImageName is the kubelet's own
// parse failure and is final until the pod's image changes; when pullsafe's
// parser accepts the reference, "fine now, the kubelet retries" is false.
func TestExplainInvalidNameNeverFine(t *testing.T) {
	si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer},
		Reason: "InvalidImageName", Message: `Failed to apply default image tag "reg/x:v1": couldn't parse image name "reg/x:v1": invalid reference format`}
	if ex := explain(si, nil, "node-a", false); ex.Status == StatusFineNow {
		t.Errorf("%+v", ex)
	}
}

// TestExplainFineNowClaimsOnlyWhatWasChecked: with nodes unread
// (forbidden) or the pod's node not matched, the platform was not checked:
// "fine now" must not claim the node's platform.
func TestExplainFineNowClaimsOnlyWhatWasChecked(t *testing.T) {
	si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer}, Reason: "ImagePullBackOff",
		PlatformUnchecked: true}
	if ex := explain(si, nil, "node-a", false); strings.Contains(ex.Cause, "platform") && !strings.Contains(ex.Cause, "not checked") {
		t.Errorf("cause %q", ex.Cause)
	}
}

// TestExplainRateLimitedHereOnly: registries rate-limit by client IP; a
// 429 to this machine says nothing of the node's pull unless the kubelet
// was refused the same way.
func TestExplainRateLimitedHereOnly(t *testing.T) {
	f := []policy.Finding{{Rule: policy.RuleRateLimited, Action: policy.ActionDeny, Container: "app", Image: "docker.io/library/nginx:1.27",
		Source: policy.SourceContainer, Cause: "registry index.docker.io is rate limiting pulls (toomanyrequests)"}}
	for _, tc := range []struct{ msg, want string }{
		{`failed to pull and unpack image "docker.io/library/nginx:1.27": failed to resolve reference: docker.io/library/nginx:1.27: not found`, StatusCannotTell},
		{`failed to pull and unpack image "docker.io/library/nginx:1.27": 429 Too Many Requests - Server message: toomanyrequests: You have reached your unauthenticated pull rate limit`, StatusFails},
	} {
		si := stuckImage{Container: policy.Container{Name: "app", Image: "docker.io/library/nginx:1.27", Source: policy.SourceContainer},
			Reason: "ErrImagePull", Message: tc.msg}
		if ex := explain(si, f, "node-a", false); ex.Status != tc.want {
			t.Errorf("%s: status %s, want %s", tc.msg, ex.Status, tc.want)
		}
	}
}
