package diagnose

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// podOf is a pod with one container and, optionally, an image volume,
// its container waiting with reason (or running when reason is "").
func podOf(image, reason, message, volume string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", UID: "u1"},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app", Image: image}}}}
	if volume != "" {
		p.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: volume}}}}
	}
	st := corev1.ContainerStatus{Name: "app", Image: image}
	if reason == "" {
		st.State.Running = &corev1.ContainerStateRunning{}
	} else {
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: message}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{st}
	return p
}

func workloadOf(t *testing.T, p *corev1.Pod) *policy.Workload {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func event(reason, message string, at time.Time) corev1.Event {
	return corev1.Event{Reason: reason, Message: message, Count: 1, LastTimestamp: metav1.NewTime(at),
		Source: corev1.EventSource{Component: "kubelet", Host: "node-a"}, ReportingController: "kubelet", ReportingInstance: "node-a"}
}

// TestStuckImages: which images of a pod the kubelet is failing to pull,
// read from container statuses and events as the kubelet writes them.
func TestStuckImages(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	img, vol := "reg.example/team/api:v2", "reg.example/models/m:v1"
	type got struct {
		Names     []string
		LastError string
		Waiting   []string
	}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		events []corev1.Event
		want   got
	}{{
		name: "backoff with its last error",
		pod:  podOf(img, "ImagePullBackOff", `Back-off pulling image "`+img+`"`, ""),
		events: []corev1.Event{
			event("Failed", `Failed to pull image "`+img+`": old`, t0),
			event("Failed", `Failed to pull image "`+img+`": newest`, t0.Add(time.Minute)),
			event("Failed", `Failed to pull image "reg.example/team/api:v2-other": not this one`, t0.Add(2*time.Minute)),
			event("BackOff", `Back-off pulling image "`+img+`"`, t0.Add(3*time.Minute)),
		},
		want: got{Names: []string{"container/app"}, LastError: `Failed to pull image "` + img + `": newest`},
	}, {
		name: "running: not stuck",
		pod:  podOf(img, "", "", ""),
		events: []corev1.Event{
			event("Failed", `Failed to pull image "`+img+`": earlier`, t0),
		},
	}, {
		name: "crash loop: waiting, not on an image",
		pod:  podOf(img, "CrashLoopBackOff", "back-off 5m0s restarting failed container", ""),
		want: got{Waiting: []string{`container "app" is waiting: CrashLoopBackOff`}},
	}, {
		name: "image volume failing: events only",
		pod:  podOf(img, "ContainerCreating", "", vol),
		events: []corev1.Event{
			event("Pulling", `Pulling image "`+vol+`"`, t0),
			event("Failed", `Failed to pull image "`+vol+`": not found`, t0.Add(time.Second)),
		},
		want: got{Names: []string{"volume/models"}, LastError: `Failed to pull image "` + vol + `": not found`,
			Waiting: []string{`container "app" is waiting: ContainerCreating`}},
	}, {
		name: "image volume pulled since",
		pod:  podOf(img, "ContainerCreating", "", vol),
		events: []corev1.Event{
			event("Failed", `Failed to pull image "`+vol+`": not found`, t0),
			event("Pulled", `Successfully pulled image "`+vol+`"`, t0.Add(time.Minute)),
			event("Pulling", `Pulling image "`+vol+`"`, t0.Add(time.Minute)),
		},
		want: got{Waiting: []string{`container "app" is waiting: ContainerCreating`}},
	}, {
		name: "never pull",
		pod:  podOf(img, "ErrImageNeverPull", `Container image "`+img+`" is not present with pull policy of Never`, ""),
		want: got{Names: []string{"container/app"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			stuck, waiting := stuckImages(tc.pod, workloadOf(t, tc.pod), tc.events)
			var g got
			for _, s := range stuck {
				g.Names = append(g.Names, s.Container.Source.String()+"/"+s.Container.Name)
				if s.LastError != nil {
					g.LastError = s.LastError.Message
				}
			}
			g.Waiting = waiting
			if d := cmp.Diff(tc.want, g); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// testChecker is the checker why builds, on a registry behind httptest.
func testChecker(t *testing.T) *policy.Checker {
	t.Helper()
	cfg, err := policy.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	Configure(cfg)
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	return policy.NewChecker(cfg, res)
}

// TestExplainCauses: the lookup's answer now, mapped to a cause and a fix.
func TestExplainCauses(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1.4.1", "linux", "amd64")
	tr.Image("team/api", "v1.4.0", "linux", "amd64")
	checker := testChecker(t)
	nodes := []policy.Node{
		policy.NodeOf(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}),
		policy.NodeOf(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b", Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64"}}}),
	}
	type want struct{ Status, Rule, Cause, Fix string }
	for _, tc := range []struct {
		name, image, reason, node string
		want                      want
	}{
		{"missing tag", tr.Host + "/team/api:v1.4.2", "ImagePullBackOff", "node-a",
			want{StatusFails, "not-found", "nearest tags: v1.4.1, v1.4.0", "did you mean v1.4.1?"}},
		{"fine now", tr.Host + "/team/api:v1.4.1", "ErrImagePull", "node-a",
			want{StatusFineNow, "", "the registry answered now: the image exists and these credentials can pull it", "delete the pod to retry now"}},
		// The same image on the arm64 node: the platform question is about
		// the pod's node, not the cluster's.
		{"platform of the pod's node", tr.Host + "/team/api:v1.4.1", "ErrImagePull", "node-b",
			want{StatusFails, "platform", "offers linux/amd64 only", "multi-arch"}},
		{"never pull", tr.Host + "/team/api:local", "ErrImageNeverPull", "node-a",
			want{StatusFails, "never-pull", "not in node node-a's image store", "imagePullPolicy: IfNotPresent"}},
		// The image is fine in the registry: the node is the cause.
		{"inspect failed on the node", tr.Host + "/team/api:v1.4.1", "ImageInspectError", "node-a",
			want{StatusFails, "node-inspect", "failed to inspect the image", "journalctl"}},
		{"signature refused on the node", tr.Host + "/team/api:v1.4.1", "SignatureValidationFailed", "node-a",
			want{StatusFails, "signature", "refused the image's signature", "sign the image"}},
		{"invalid name", tr.Host + "/Team/API:v1", "InvalidImageName", "node-a",
			want{StatusFails, "invalid-reference", "must be lowercase", "lowercase"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := podOf(tc.image, tc.reason, "kubelet words", "")
			pod.Spec.NodeName = tc.node
			w := workloadOf(t, pod)
			stuck, _ := stuckImages(pod, w, nil)
			if len(stuck) != 1 {
				t.Fatalf("stuck %d images, want 1", len(stuck))
			}
			v := checker.Check(context.Background(), policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce,
				Credentials: policy.Credentials{Keychain: registry.NewKeychain(nil)}, Nodes: nodes})
			ex := explain(stuck[0], findingsFor(v, stuck[0].Container), tc.node, false)
			g := want{ex.Status, ex.Rule, ex.Cause, ex.Fix}
			if g.Status != tc.want.Status || g.Rule != tc.want.Rule || !strings.Contains(g.Cause, tc.want.Cause) || !strings.Contains(g.Fix, tc.want.Fix) {
				t.Errorf("got %+v\nwant (substrings) %+v", g, tc.want)
			}
		})
	}
}

// TestWhyOutputIsSanitized: kubelet messages and events quote registry
// responses: they reach the terminal and JSON without escape sequences or
// fake lines, and bounded.
func TestWhyOutputIsSanitized(t *testing.T) {
	hostile := "denied\x1b[2J\r\n[ok] image pulled \u202e" + strings.Repeat("A", 10000)
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	r := &Result{Namespace: "shop", Object: "pod/p", Pods: []Pod{{Name: "p\x1b]0;t\x07", Node: "n", Phase: "Pending", Stuck: true,
		Images: []Explanation{{Source: policy.SourceContainer, Container: "app\x1b[31m", Image: "reg/x:v1\u202e", KubeletReason: "ErrImagePull",
			KubeletMessage: hostile, LastError: hostile, LastErrorBy: "kubelet", LastErrorAt: &at, LastErrorCount: 3, Status: StatusFails, Rule: "unauthorized",
			Cause: hostile, Fix: hostile}}}}}
	var text, js bytes.Buffer
	if err := WriteText(r, &text, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(r, &js); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String()} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "[ok]") {
				t.Errorf("%s: a kubelet message started a line: %q", name, line)
			}
			if len(line) > 1200 {
				t.Errorf("%s: a line of %d bytes", name, len(line))
			}
			for _, r := range line {
				if !unicode.IsPrint(r) {
					t.Errorf("%s: unprintable %U in %q", name, r, line)
					break
				}
			}
		}
	}
	if !strings.Contains(text.String(), `last failed pull, Event by "kubelet" at 2026-11-22T03:00:00Z, 3 times: "denied`) {
		t.Errorf("text lacks the kubelet's words:\n%s", text.String())
	}
}

// TestUnknownKindBeforeAnyRead: a kind why does not explain is an error
// before any cluster is read (the Explainer has no clientset to read with).
func TestUnknownKindBeforeAnyRead(t *testing.T) {
	e := &Explainer{}
	for _, target := range []string{"cronjob/nightly", "pod/", "deployment.apps/"} {
		_, err := e.Explain(context.Background(), target)
		if err == nil {
			t.Errorf("%s: no error", target)
		}
	}
	if _, err := e.Explain(context.Background(), "cronjob/nightly"); err == nil || !strings.Contains(err.Error(), "pullsafe why explains pods") {
		t.Errorf("err %v, want the kinds why explains", err)
	}
}

// TestWhyTextAndExit: the text a person reads for a workload, and whether
// it exits 1: a template that would fail is a cause even with no pod
// stuck; an image fine now is not.
func TestWhyTextAndExit(t *testing.T) {
	fine := Explanation{Source: policy.SourceContainer, Container: "app", Image: "reg/x:v1", KubeletReason: "ImagePullBackOff",
		Status: StatusFineNow, Cause: "the registry answered now", Fix: "nothing to change"}
	for _, tc := range []struct {
		name      string
		r         Result
		want      string
		wantCause bool
	}{{
		name: "not stuck",
		r: Result{Namespace: "shop", Object: "pod/p", Pods: []Pod{{Name: "p", Phase: "Running",
			Waiting: []string{`container "app" is waiting: CrashLoopBackOff`}}}},
		want: "pod/p in namespace shop: not stuck on an image (phase Running)\n  container \"app\" is waiting: CrashLoopBackOff\n",
	}, {
		name: "fine now",
		r:    Result{Namespace: "shop", Object: "pod/p", Pods: []Pod{{Name: "p", Node: "n1", Stuck: true, Images: []Explanation{fine}}}},
		want: "pod/p in namespace shop on node n1: stuck pulling 1 image(s)\n  container \"app\" image \"reg/x:v1\": ImagePullBackOff\n" +
			"    now fine: the registry answered now\n    fix: nothing to change\n",
	}, {
		name: "template fails, pods counted",
		r: Result{Namespace: "shop", Object: "deployment/web", MorePods: 3, Notes: []string{"platform not checked: nodes unknown"},
			Template: []policy.Finding{{Rule: policy.RuleNotFound, Action: policy.ActionDeny, Container: "web", Source: policy.SourceContainer,
				Image: "reg/x:v2", Cause: "manifest unknown", Fix: "did you mean v1?"}}},
		want: "deployment/web in namespace shop: new pods would fail to pull:\n  [not-found] container \"web\" image \"reg/x:v2\": manifest unknown\n" +
			"  fix: did you mean v1?\n… 3 more stuck pods not shown\nnote: platform not checked: nodes unknown\n",
		wantCause: true,
	}, {
		name: "workload healthy",
		r:    Result{Namespace: "shop", Object: "deployment/web"},
		want: "deployment/web in namespace shop: no pod stuck on an image, and new pods would pull\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&tc.r, &b, false); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, b.String()); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
			if got := tc.r.CauseFound(); got != tc.wantCause {
				t.Errorf("CauseFound %v, want %v", got, tc.wantCause)
			}
		})
	}
}
