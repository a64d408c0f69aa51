package audit_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/webhook"
)

// Running Pods the kubelet would pull nothing new for, or would pull with
// credentials the audit cannot see, are no finding: a false finding pages
// someone as a false denial would.
func TestPassNoFalseFindings(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	good, gone := reg.Host+"/team/app:v1", reg.Host+"/team/app:deleted"
	yes := true
	tests := []struct {
		name string
		cfg  func(*policy.Config)
		auth string
		objs func() []client.Object
	}{
		{
			// A static Pod's mirror: the kubelet runs it from its manifest
			// with the node's credentials (NodeRestriction forbids a mirror
			// Pod to name secrets); its owner is the Node.
			name: "mirror pod of a static pod, private registry",
			auth: "basic",
			objs: func() []client.Object {
				return []client.Object{&corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "etcd-node1",
						Annotations:     map[string]string{corev1.MirrorPodAnnotationKey: "abc"},
						OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node1", UID: "n1", Controller: &yes}}},
					Spec:   corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "etcd", Image: good}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning},
				}}
			},
		},
		{
			// Ephemeral containers are never restarted (core/v1
			// EphemeralContainer), and the Deployment's next Pods do not
			// have them: a debug image deleted since is no finding.
			name: "exited ephemeral container of a deployment pod",
			objs: func() []client.Object {
				objs := deployment("shop", "web", good, 1)
				pod := objs[2].(*corev1.Pod)
				pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: gone}}}
				pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "debugger",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}
				return objs
			},
		},
		{
			// A Pod no controller owns never moves to another node, and the
			// kubelet restarts its IfNotPresent containers from the image it
			// holds (in use, so never garbage-collected): nothing to pull.
			name: "bare pod, IfNotPresent container started, tag deleted since",
			objs: func() []client.Object {
				return []client.Object{&corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "adhoc"},
					Spec: corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "app", Image: gone,
						ImagePullPolicy: corev1.PullIfNotPresent}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: gone,
						ImageID: "docker.io/x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
						State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
				}}
			},
		},
		{
			name: "bare pod, IfNotPresent container crash-looping, tag deleted since",
			objs: func() []client.Object {
				return []client.Object{&corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "adhoc"},
					Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "app", Image: gone}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: gone,
						ImageID: "docker.io/x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
						State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}},
				}}
			},
		},
		{
			name: "imagePullPolicy Never, tag deleted",
			objs: func() []client.Object {
				objs := deployment("shop", "web", gone, 1)
				objs[2].(*corev1.Pod).Spec.Containers[0].ImagePullPolicy = corev1.PullNever
				return objs
			},
		},
		{
			// mutable-tag set to deny is admission's policy, not a pull
			// the kubelet would fail: the Event says "would fail to pull".
			name: "mutable tag with the rule set to deny",
			cfg:  func(c *policy.Config) { c.Rules[policy.RuleMutableTag] = policy.ActionDeny; c.Pin.Pods = false },
			objs: func() []client.Object { return deployment("shop", "web", good, 1) },
		},
		{
			// unreachable set to deny: a registry down for a minute during
			// the pass says nothing of the pull on a restart; the audit
			// reports what it knows to fail, and notes the rest.
			name: "unreachable registry with the rule set to deny",
			cfg:  func(c *policy.Config) { c.Rules[policy.RuleUnreachable] = policy.ActionDeny },
			objs: func() []client.Object { return deployment("shop", "web", "127.0.0.1:1/team/app:v1", 1) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.SetAuth(tt.auth)
			t.Cleanup(func() { reg.SetAuth("") })
			cfg := policy.DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			r, err := newAuditor(t, tt.objs(), newChecker(t, cfg), newFakeClock().option()).Pass(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.Failing() {
				t.Errorf("false finding: %+v", r.Results)
			}
		})
	}
}

// A DaemonSet's Pods have the same images and secrets but run on nodes of
// different platforms: the Pod on the node its image cannot run on is
// checked too, not taken for its sibling on another node.
func TestPassChecksEachNodePlatform(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/agent", "v1", "linux", "amd64")
	yes := true
	node := func(name, arch string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch}}}
	}
	pod := func(name, nodeName string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(name),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "uid-agent", Controller: &yes}}},
			Spec:   corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "agent", Image: reg.Host + "/team/agent:v1"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
	}
	objs := []client.Object{node("amd", "amd64"), node("arm", "arm64"), pod("agent-a", "amd"), pod("agent-b", "arm")}
	r, err := newAuditor(t, objs, newChecker(t, policy.DefaultConfig()), newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range r.Results {
		for _, f := range res.Findings {
			got = append(got, fmt.Sprintf("%s %d %s", res.Owner, res.Pods, f.Rule))
		}
	}
	if d := cmp.Diff([]string{"daemonset/agent 1 platform"}, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
}

// apiServerPods is the fake client listing Pods as the API server does and
// the fake does not: in pages of Limit (Continue is the offset here), and
// failing once the request's context has ended, as client-go does.
type apiServerPods struct{ client.Reader }

func (r apiServerPods) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	pods, ok := list.(*corev1.PodList)
	if !ok || lo.Limit == 0 {
		return nil
	}
	from, _ := strconv.Atoi(lo.Continue)
	all := len(pods.Items)
	to := min(from+int(lo.Limit), all)
	pods.Items, pods.Continue = pods.Items[from:to], ""
	if to < all {
		pods.Continue = strconv.Itoa(to)
	}
	return nil
}

// A pass that outlasts its interval (more images than the budget allows
// in one) reports what it found before the end and notes the rest, rather
// than failing whole: in a large cluster it would otherwise never report.
func TestPassCutShortReportsWhatItFound(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	var objs []client.Object
	objs = append(objs, deployment("shop", "a-gone", reg.Host+"/team/app:deleted", 1)...)
	for _, n := range []string{"b", "c", "d"} {
		objs = append(objs, deployment("shop", n, reg.Host+"/team/app:"+n, 1)...)
	}
	cfg := policy.DefaultConfig()
	cfg.Audit.RequestsPerMinute = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := newFakeClock()
	clock.onWait = cancel // the interval ends at the first wait for the budget
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
	a := audit.New(apiServerPods{c}, webhook.NewClientCluster(c, c), func() *policy.Checker { return newChecker(t, cfg) }, "pullsafe-system",
		audit.WithPageSize(1), clock.option())
	r, err := a.Pass(ctx)
	if err != nil {
		t.Fatalf("a pass cut short failed whole: %v", err)
	}
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Owner.String())
	}
	if d := cmp.Diff([]string{"deployment/a-gone"}, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
	if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "cut short") }) {
		t.Errorf("no note says the pass was cut short: %q", r.Notes)
	}
}

// The bare Pod's containers the kubelet would pull again are findings: one
// with imagePullPolicy Always (pulled at each restart), one not started.
func TestPassBarePodPullsAgain(t *testing.T) {
	reg := registrytest.New(t)
	gone := reg.Host + "/team/app:deleted"
	started := corev1.ContainerStatus{ImageID: "x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	always, waiting := started, corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}
	always.Name, waiting.Name = "always", "waiting"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "adhoc"},
		Spec: corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{
			{Name: "always", Image: gone, ImagePullPolicy: corev1.PullAlways},
			{Name: "waiting", Image: gone, ImagePullPolicy: corev1.PullIfNotPresent}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{always, waiting}},
	}
	r, err := newAuditor(t, []client.Object{pod}, newChecker(t, policy.DefaultConfig()), newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range r.Results {
		for _, f := range res.Findings {
			got = append(got, res.Owner.String()+" "+f.Container+" "+string(f.Rule))
		}
	}
	if d := cmp.Diff([]string{"pod/adhoc always not-found", "pod/adhoc waiting not-found"}, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
}

// A config reload during a pass gives admission a new Checker: the audit
// gives way to the lookups of the Checker admission uses now, not only to
// those of the one it started the pass with.
func TestPassWaitsForAdmissionAfterReload(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	before, after := newChecker(t, policy.DefaultConfig()), newChecker(t, policy.DefaultConfig())
	var calls atomic.Int64
	current := func() *policy.Checker {
		if calls.Add(1) == 1 {
			return before // the pass starts, then the config is reloaded
		}
		return after
	}
	stop, admitted := slowAdmission(t, reg, after)
	defer stop()
	clock := newFakeClock()
	var auditWhileAdmission atomic.Int64
	auditWhileAdmission.Store(-1)
	clock.onWait = func() {
		// The first wait is the one the reload is about; later ones (the
		// released admission's next lookups) find the audit's HEAD sent.
		auditWhileAdmission.CompareAndSwap(-1, int64(reg.CountPath(http.MethodHead, "/v2/team/app/manifests/v1")))
		stop()
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(deployment("shop", "web", reg.Host+"/team/app:v1", 1)...).Build()
	r, err := audit.New(c, webhook.NewClientCluster(c, c), current, "pullsafe-system", clock.option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-admitted
	if n := auditWhileAdmission.Load(); n != 0 {
		t.Errorf("the audit sent %d lookups while an admission lookup of the reloaded Checker was in flight, want 0 (-1: it never waited)", n)
	}
	if r.Failing() {
		t.Errorf("findings %+v", r.Results)
	}
}

// slowAdmission starts an admission Check on checker whose lookup is held
// in the registry until stop is called; it returns once the lookup is in
// flight.
func slowAdmission(t *testing.T, reg *registrytest.Registry, checker *policy.Checker) (stop func(), admitted <-chan *policy.Verdict) {
	t.Helper()
	reg.Image("team/slow", "v1", "linux", "amd64")
	release, entered := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	stop = func() { released.Do(func() { close(release) }) }
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/team/slow/manifests/") {
			once.Do(func() { close(entered) })
			<-release
		}
		return false
	})
	ch := make(chan *policy.Verdict, 1)
	go func() {
		w := &policy.Workload{Kind: "Pod", Name: "p", Namespace: "shop",
			Containers: []policy.Container{{Name: "c", Image: reg.Host + "/team/slow:v1"}}}
		ch <- checker.Check(context.Background(), policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce})
	}()
	<-entered
	return stop, ch
}

// One public image run in many namespaces, none with pull secrets, is one
// registry request a pass: the credentials are the same (none).
func TestPassOneLookupPerImageAcrossNamespaces(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	var objs []client.Object
	for i := range 30 {
		objs = append(objs, deployment(fmt.Sprintf("ns%d", i), "web", reg.Host+"/team/app:v1", 1)...)
	}
	reg.Reset()
	r, err := newAuditor(t, objs, newChecker(t, policy.DefaultConfig()), newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.Count(http.MethodHead, "/manifests/v1"); n != 1 || r.Failing() {
		t.Errorf("%d HEADs of app:v1 for 30 namespaces, findings %v; want 1, none", n, r.Results)
	}
}

// The audit asks the registry again: admission cached the pinned digest's
// answer (24h for a digest, 5m for a tag), and a digest deleted since must
// be found at the next pass, not a day later.
func TestPassAsksAgainNotAdmissionsCache(t *testing.T) {
	reg := registrytest.New(t)
	d := reg.Image("team/app", "v1", "linux", "amd64")
	image := reg.Host + "/team/app:v1@" + d.String()
	checker := newChecker(t, policy.DefaultConfig())
	// Admission (the validating webhook after the pin) caches the answer.
	w := &policy.Workload{Kind: "Pod", Name: "p", Namespace: "shop", Containers: []policy.Container{{Name: "c", Image: image}}}
	if v := checker.Check(context.Background(), policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce}); v.Decision() == policy.DecisionDeny {
		t.Fatalf("admission: %+v", v.Findings)
	}
	req, _ := http.NewRequest(http.MethodDelete, reg.Server.URL+"/v2/team/app/manifests/"+d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting the manifest: %s", resp.Status)
	}
	r, err := newAuditor(t, deployment("shop", "web", image, 1), checker, newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Results) != 1 || r.Results[0].Findings[0].Rule != policy.RuleNotFound {
		t.Errorf("a digest deleted after admission: findings %+v, want not-found on deployment/web", r.Results)
	}
}

// A Pod that spells a mirror Pod by hand (the annotation and a Node owner
// whose UID is not the Node's) was not made by a kubelet: admission and
// check look it up (policy.ConfirmMirror), and so does the audit, or a Pod
// admitted in warn mode would never be reported.
func TestPassChecksForgedMirrorPod(t *testing.T) {
	reg := registrytest.New(t)
	yes := true
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "n1"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fake-etcd",
			Annotations:     map[string]string{corev1.MirrorPodAnnotationKey: "abc"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node1", UID: "forged", Controller: &yes}}},
		Spec:   corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "etcd", Image: reg.Host + "/team/app:deleted"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	r, err := newAuditor(t, []client.Object{node, pod}, newChecker(t, policy.DefaultConfig()), newFakeClock().option()).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range r.Results {
		for _, f := range res.Findings {
			got = append(got, f.Container+" "+string(f.Rule))
		}
	}
	if d := cmp.Diff([]string{"etcd not-found"}, got); d != "" {
		t.Errorf("findings of a forged mirror Pod (-want +got):\n%s", d)
	}
}
