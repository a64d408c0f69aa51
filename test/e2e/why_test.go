//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// whyNS is where the stuck pods live: mode off, so the webhook admits the
// broken images the kubelet is then made to fail on.
const whyNS = "stuck"

// stuckPod creates a Pod and sets its status and events the way the kubelet
// does when a pull fails: containerStatuses[].state.waiting {reason,
// message} through the status subresource, and Events from source kubelet
// with the messages of pkg/kubelet/images/image_manager.go.
type stuckPod struct {
	name, image, node, pullPolicy string
	secrets                       []string
	reason, message               string // the container's waiting state
	events                        []kubeletEvent
	volume                        string // an image volume's reference
	owner                         string // labels app=owner (a Deployment's pod)
}

type kubeletEvent struct {
	reason, message string
	count           int32
	ago             time.Duration
}

func (s stuckPod) create(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	pp := corev1.PullPolicy(s.pullPolicy)
	if pp == "" {
		pp = corev1.PullAlways
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: whyNS},
		Spec: corev1.PodSpec{NodeName: s.node, Containers: []corev1.Container{{Name: "app", Image: s.image, ImagePullPolicy: pp}}}}
	if s.owner != "" {
		pod.Labels = map[string]string{"app": s.owner}
	}
	for _, sec := range s.secrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: sec})
	}
	if s.volume != "" {
		pod.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: s.volume, PullPolicy: corev1.PullAlways}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "models", MountPath: "/models"}}
	}
	pods := b.Client.CoreV1().Pods(whyNS)
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Image: s.image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: s.reason, Message: s.message}}}}}
	if s.reason == "Running" {
		created.Status.Phase = corev1.PodRunning
		created.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
		created.Status.ContainerStatuses[0].Ready = true
	}
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, e := range s.events {
		at := metav1.NewTime(time.Now().Add(-e.ago).Truncate(time.Second))
		typ := corev1.EventTypeWarning
		if e.reason == "BackOff" || e.reason == "Pulling" {
			typ = corev1.EventTypeNormal
		}
		ev := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", s.name, i), Namespace: whyNS},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: whyNS, Name: s.name, UID: created.UID,
				FieldPath: "spec.containers{app}"},
			Reason: e.reason, Message: e.message, Type: typ, Count: max(e.count, 1),
			Source:         corev1.EventSource{Component: "kubelet", Host: s.node},
			FirstTimestamp: at, LastTimestamp: at,
		}
		if _, err := b.Client.CoreV1().Events(whyNS).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// pullFailed is the kubelet's pair for one failed pull: the Failed event
// and the ErrImagePull waiting message (the CRI's error text).
func pullFailed(image, criError string) (string, string, []kubeletEvent) {
	return "ErrImagePull", criError, []kubeletEvent{
		{reason: "Pulling", message: fmt.Sprintf("Pulling image %q", image), ago: 2 * time.Minute},
		{reason: "Failed", message: fmt.Sprintf("Failed to pull image %q: %s", image, criError), count: 4, ago: 90 * time.Second},
		{reason: "Failed", message: "Error: ErrImagePull", count: 4, ago: 90 * time.Second},
	}
}

// backingOff is the same pod a little later: ImagePullBackOff, the
// kubelet's BackOff event after the Failed ones.
func backingOff(image, criError string) (string, string, []kubeletEvent) {
	_, _, evs := pullFailed(image, criError)
	evs = append(evs, kubeletEvent{reason: "BackOff", message: fmt.Sprintf("Back-off pulling image %q", image), count: 9, ago: 10 * time.Second})
	return "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", image), evs
}

func runWhy(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(b.PullsafeBin, append([]string{"why", "--kubeconfig", b.Kubeconfig, "-n", whyNS}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("pullsafe why %s (exit %d)\n%s%s", strings.Join(args, " "), code, out, stderr.String())
	return string(out), code
}

var whyOnce bool

func whySetup(t *testing.T) {
	t.Helper()
	if whyOnce {
		return
	}
	whyOnce = true
	if err := b.Namespace(context.Background(), whyNS, map[string]string{"pullsafe.io/mode": "off"}); err != nil {
		t.Fatal(err)
	}
}

// TestWhyNamesTheCause: for each cause of the troubleshooting guides, a pod
// stuck the way the kubelet leaves it, and what `pullsafe why` says.
func TestWhyNamesTheCause(t *testing.T) {
	whySetup(t)
	secret := func(name, server, user, pass string) {
		t.Helper()
		if _, errOut, err := b.Run("", "-n", whyNS, "create", "secret", "docker-registry", name,
			"--docker-server="+server, "--docker-username="+user, "--docker-password="+pass); err != nil {
			t.Fatal(errOut)
		}
	}
	// Docker Hub's answer past its pull limit, on loopback.
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // 200: anonymous pulls allowed, as on Docker Hub's mirror-less path
		}
		w.Header().Set("Retry-After", "120")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading"}]}`)
	}))
	defer limited.Close()
	limitedHost := strings.TrimPrefix(limited.URL, "http://")
	secret("wrong-host", "127.0.0.1:1", bed.PrivateUser, bed.PrivatePass)
	secret("wrong-pass", b.Private.Addr, bed.PrivateUser, "not-the-password")
	secret("good", b.Private.Addr, bed.PrivateUser, bed.PrivatePass)

	private := b.Private.Addr + "/team/secret:v1"
	hole, err := registrytest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	timeoutConfig := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(timeoutConfig, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nlookupTimeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		pod  func() stuckPod
		code int
		want []string
	}{{
		name: "tag-missing",
		pod: func() stuckPod {
			img := b.Open.Addr + "/team/api:v1.4.2"
			r, m, e := backingOff(img, fmt.Sprintf(`rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found`, img, img, img))
			return stuckPod{image: img, node: "node-0-amd64", reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"ImagePullBackOff", `kubelet: Back-off pulling image`, `last failed pull, Event by "kubelet" at `, "4 times", "cause [not-found]", "nearest tags: v1.4.1, v1.4.0", "fix: did you mean v1.4.1?"},
	}, {
		name: "secret-missing",
		pod: func() stuckPod {
			r, m, e := pullFailed(private, fmt.Sprintf(`rpc error: code = Unknown desc = failed to pull and unpack image %q: failed to resolve reference %q: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials`, private, private))
			return stuckPod{image: private, node: "node-0-amd64", secrets: []string{"regcred-absent"}, reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [unauthorized]", `pull secret(s) "regcred-absent" referenced by the pod do not exist in namespace "stuck"`, "kubectl -n stuck create secret docker-registry regcred-absent --docker-server=" + b.Private.Addr},
	}, {
		name: "secret-wrong-host",
		pod: func() stuckPod {
			r, m, e := pullFailed(private, `rpc error: code = Unknown desc = failed to pull and unpack image: 401 Unauthorized`)
			return stuckPod{image: private, node: "node-0-amd64", secrets: []string{"wrong-host"}, reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [unauthorized]", `hold no credentials for ` + b.Private.Addr, "127.0.0.1:1", "host and port must match exactly"},
	}, {
		name: "wrong-password",
		pod: func() stuckPod {
			r, m, e := pullFailed(private, `rpc error: code = Unknown desc = failed to pull and unpack image: failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized`)
			return stuckPod{image: private, node: "node-0-amd64", secrets: []string{"wrong-pass"}, reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [unauthorized]", "rejected the credentials of stuck/wrong-pass", "renew the credentials"},
	}, {
		name: "rate-limited",
		pod: func() stuckPod {
			img := limitedHost + "/library/nginx:1.27"
			r, m, e := backingOff(img, `rpc error: code = Unknown desc = failed to pull and unpack image: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit.`)
			return stuckPod{image: img, node: "node-0-amd64", reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [rate-limited]", "rate limiting pulls", "pull rate limit", "retry after 2m0s"},
	}, {
		// A name that cannot resolve, without asking any DNS server: Go's
		// resolver refuses .onion itself (RFC 7686); .invalid would be
		// sent to the system's nameserver.
		name: "dns",
		pod: func() stuckPod {
			img := "registry.pullsafe-e2e.onion/team/api:v1"
			r, m, e := pullFailed(img, `rpc error: code = Unknown desc = failed to pull and unpack image: failed to resolve reference: failed to do request: Head "https://registry.pullsafe-e2e.onion/v2/team/api/manifests/v1": dial tcp: lookup registry.pullsafe-e2e.onion: no such host`)
			return stuckPod{image: img, node: "node-0-amd64", reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [unreachable]", "cannot verify: registry registry.pullsafe-e2e.onion unreachable", "no such host", "DNS and egress from the nodes"},
	}, {
		// A registry that accepts connections and never answers: the
		// lookup ends at the config's lookupTimeout.
		name: "timeout",
		args: []string{"--config", timeoutConfig},
		pod: func() stuckPod {
			img := hole.Addr + "/team/api:v1"
			r, m, e := backingOff(img, fmt.Sprintf(`rpc error: code = Canceled desc = failed to pull and unpack image %q: failed to resolve reference %q: failed to do request: Head "https://%s/v2/team/api/manifests/v1": dial tcp %s: i/o timeout`, img, img, hole.Addr, hole.Addr))
			return stuckPod{image: img, node: "node-0-amd64", reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"cause [unreachable]", "timeout", "no answer before the lookup deadline", "DNS and egress from the nodes"},
	}, {
		name: "platform",
		pod: func() stuckPod {
			img := b.Open.Addr + "/amd/app:v1"
			r, m, e := pullFailed(img, fmt.Sprintf(`rpc error: code = NotFound desc = failed to pull and unpack image %q: no match for platform in manifest: not found`, img))
			return stuckPod{image: img, node: "node-1-arm64", reason: r, message: m, events: e}
		},
		code: 1,
		want: []string{"on node node-1-arm64", "cause [platform]", "offers linux/amd64 only", "node-1-arm64"},
	}, {
		name: "fine-now",
		pod: func() stuckPod {
			img := b.Open.Addr + "/team/api:v1.4.1"
			r, m, e := backingOff(img, fmt.Sprintf(`rpc error: code = Unavailable desc = failed to pull and unpack image %q: dial tcp %s: connect: connection refused`, img, b.Open.Addr))
			return stuckPod{image: img, node: "node-0-amd64", reason: r, message: m, events: e}
		},
		code: 0,
		want: []string{"now fine: the registry answered now: the image exists and these credentials can pull it", "the last failed pull is the Event above",
			"connection refused", "retries at the end of its back-off", "delete the pod to retry now", "nodes may not reach the registry"},
	}, {
		name: "never-pull",
		pod: func() stuckPod {
			img := b.Open.Addr + "/team/api:local-build"
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", img)
			return stuckPod{image: img, node: "node-0-amd64", pullPolicy: "Never", reason: "ErrImageNeverPull", message: msg,
				events: []kubeletEvent{{reason: "ErrImageNeverPull", message: msg, count: 3}}}
		},
		code: 1,
		want: []string{"ErrImageNeverPull", "cause [never-pull]", "not in node node-0-amd64's image store", "imagePullPolicy: IfNotPresent"},
	}, {
		name: "invalid-name",
		pod: func() stuckPod {
			img := b.Open.Addr + "/Team/API:v1"
			msg := fmt.Sprintf("Failed to apply default image tag %q: couldn't parse image reference %q: invalid reference format: repository name (Team/API) must be lowercase", img, img)
			return stuckPod{image: img, node: "node-0-amd64", reason: "InvalidImageName", message: msg,
				events: []kubeletEvent{{reason: "InspectFailed", message: msg}}}
		},
		code: 1,
		want: []string{"InvalidImageName", "cause [invalid-reference]", "lowercase"},
	}, {
		name: "volume",
		pod: func() stuckPod {
			img := b.Open.Addr + "/models/none:v1"
			_, _, e := pullFailed(img, fmt.Sprintf(`rpc error: code = NotFound desc = failed to pull and unpack image %q: not found`, img))
			return stuckPod{image: b.Open.Addr + "/team/api:v1.4.1", volume: img, node: "node-0-amd64", reason: "ContainerCreating", events: e}
		},
		code: 1,
		want: []string{`volume "models" image`, "failed pulls in events", "cause [not-found]"},
	}, {
		name: "not-stuck",
		pod: func() stuckPod {
			return stuckPod{image: b.Open.Addr + "/team/api:v1.4.1", node: "node-0-amd64", reason: "Running"}
		},
		code: 0,
		want: []string{"not stuck on an image (phase Running)"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pod()
			p.name = tc.name
			p.create(t)
			out, code := runWhy(t, append([]string{"pod/" + tc.name}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			mustContain(t, out, tc.want...)
			js, code := runWhy(t, append([]string{tc.name, "-o", "json"}, tc.args...)...)
			var parsed map[string]any
			if err := json.Unmarshal([]byte(js), &parsed); err != nil || code != tc.code {
				t.Errorf("-o json: exit %d, %v", code, err)
			}
		})
	}
}

// TestWhyDeployment: a Deployment's stuck pods and its template; and the
// kubectl plugin, found by kubectl on PATH.
func TestWhyDeployment(t *testing.T) {
	whySetup(t)
	img := b.Open.Addr + "/team/api:v1.4.2"
	if out, ok := apply(t, deploymentYAML(whyNS, "web", img)); !ok {
		t.Fatal(out)
	}
	// No controller manager on the bed: the ReplicaSet's pod is made here.
	r, m, e := backingOff(img, fmt.Sprintf(`rpc error: code = NotFound desc = failed to pull and unpack image %q: not found`, img))
	stuckPod{name: "web-7d9c-x2x", image: img, node: "node-0-amd64", reason: r, message: m, events: e, owner: "web"}.create(t)
	out, code := runWhy(t, "deployment/web")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	mustContain(t, out, "deployment/web in namespace stuck: new pods would fail to pull", "[not-found]", "pod/web-7d9c-x2x in namespace stuck on node node-0-amd64: stuck pulling 1 image(s)",
		"nearest tags: v1.4.1, v1.4.0")

	// kubectl finds any executable named kubectl-pullsafe on PATH.
	dir := t.TempDir()
	if err := os.Symlink(b.PullsafeBin, filepath.Join(dir, "kubectl-pullsafe")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+b.Kubeconfig, "NO_COLOR=1")
	list := exec.Command(b.Kubectl, "plugin", "list")
	list.Env = env
	lo, err := list.CombinedOutput()
	t.Logf("kubectl plugin list\n%s", lo)
	if err != nil || !strings.Contains(string(lo), filepath.Join(dir, "kubectl-pullsafe")) {
		t.Errorf("kubectl plugin list: %v", err)
	}
	plug := exec.Command(b.Kubectl, "pullsafe", "why", "deploy/web", "-n", whyNS)
	plug.Env = env
	po, err := plug.Output()
	t.Logf("kubectl pullsafe why deploy/web\n%s", po)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("kubectl pullsafe why: %v, want exit 1", err)
	}
	mustContain(t, string(po), "pod/web-7d9c-x2x in namespace stuck on node node-0-amd64: stuck pulling 1 image(s)", "cause [not-found]")

	// A pod that does not exist is a cluster error, exit 2, said on stderr.
	if _, code := runWhy(t, "pod/nope"); code != 2 {
		t.Errorf("why pod/nope: exit %d, want 2", code)
	}
}

// TestWhyHostileKubeletMessage: the kubelet's messages quote registry
// responses; as stored by the API server they reach the terminal cleaned
// and bounded.
func TestWhyHostileKubeletMessage(t *testing.T) {
	whySetup(t)
	img := b.Open.Addr + "/team/api:v1.4.2"
	hostile := "denied\x1b]0;pwned\x07\x1b[2J\r\n[ok] image pulled \u202e" + strings.Repeat("A", 20000)
	r, _, e := pullFailed(img, hostile)
	stuckPod{name: "hostile", image: img, node: "node-0-amd64", reason: r, message: hostile, events: e}.create(t)
	out, code := runWhy(t, "pod/hostile")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	mustContain(t, out, "cause [not-found]", "kubelet: denied")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "[ok]") || strings.ContainsAny(line, "\x1b\x07\r\u202e") || len(line) > 1200 {
			t.Errorf("unsafe line (%d bytes): %.200q", len(line), line)
		}
	}
}
