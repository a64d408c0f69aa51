//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
	"github.com/pullsafe/pullsafe/webhook"
)

// controllersConfig pins templates (or not) and fails open at once on a
// registry outage: no lookup timeout to sit out, no outage window to wait
// for once the registry is back.
const controllersConfig = `apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: enforce
registries: {allowLoopback: true}
pin: {pods: true, templates: %v, keepTag: true}
lookupTimeout: 1s
outageWindow: 0s
`

// rollout is what the controllers made of one Deployment.
type rollout struct {
	ReplicaSets   int   // owned by the Deployment
	Collisions    int32 // the Deployment's status.collisionCount
	Pods          int   // of the Deployment, not being deleted
	FailedCreates int   // FailedCreate Events in the namespace: a Pod or ReplicaSet refused
}

func observe(t *testing.T, ns, name string) rollout {
	t.Helper()
	ctx := context.Background()
	d, err := b.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r rollout
	if d.Status.CollisionCount != nil {
		r.Collisions = *d.Status.CollisionCount
	}
	rss, err := b.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == d.UID {
			r.ReplicaSets++
		}
	}
	pods, err := b.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			r.Pods++
		}
	}
	evs, err := b.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err != nil {
		t.Fatal(err)
	}
	r.FailedCreates = len(evs.Items)
	return r
}

// settles polls until the controllers reach want (within a minute: they
// act within seconds), then checks that it stays so for five more polls:
// a ReplicaSet storm passes through any count on its way up.
func settles(t *testing.T, ns, name string, want rollout) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	got := observe(t, ns, name)
	for got != want {
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s/%s: %+v after a minute, want %+v", ns, name, got, want)
		}
		time.Sleep(500 * time.Millisecond)
		got = observe(t, ns, name)
	}
	for range 5 {
		time.Sleep(time.Second)
		if got = observe(t, ns, name); got != want {
			t.Fatalf("deployment %s/%s: reached %+v, then %+v", ns, name, want, got)
		}
	}
}

// twoReplicas is a Deployment of image whose rollouts surge: a new
// ReplicaSet gets both replicas at once and the old one keeps its two (no
// kubelet runs, so no Pod ever becomes available).
func twoReplicas(ns, name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 100%%, maxUnavailable: 0}}
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: app, image: %s}]
`, name, ns, name, name, image)
}

func deploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := b.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func kubectl(t *testing.T, args ...string) {
	t.Helper()
	out, errOut, err := b.Run("", args...)
	t.Logf("kubectl %s\n%s%s", strings.Join(args, " "), out, errOut)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
}

var (
	oneReplicaSet = rollout{ReplicaSets: 1, Pods: 2}
	restarted     = rollout{ReplicaSets: 2, Pods: 4}
)

// TestRolloutsMakeOneReplicaSetEach (issue 26, item 1): with the bed's
// controllers, every rollout makes exactly one ReplicaSet, and every Pod
// the controllers create is admitted, whether pin.templates is on or off
// and however the Deployment came in unpinned: created in a namespace
// labelled pullsafe.io/pin=false that loses the label, during a registry
// outage, or while the mutating webhook failed open. A pinned ReplicaSet
// made the deployment controller, which finds its ReplicaSet by comparing
// templates, create ReplicaSets without end (27 in 25 s, collisionCount 26).
func TestRolloutsMakeOneReplicaSetEach(t *testing.T) {
	ctx := context.Background()
	const name = "pullsafe-ctl"
	r := startReloading(t, name, fmt.Sprintf(controllersConfig, true))
	img := b.Open.Addr + "/team/api:v1.4.1"

	t.Run("pinned template, image changed", func(t *testing.T) {
		const ns = "ctl-pinned"
		if err := b.Namespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		if out, ok := apply(t, twoReplicas(ns, "web", img)); !ok {
			t.Fatal(out)
		}
		if got, want := deploymentImage(t, ns, "web"), img+"@"+apiDigest.String(); got != want {
			t.Fatalf("Deployment image %q, want pinned %q", got, want)
		}
		settles(t, ns, "web", oneReplicaSet)
		kubectl(t, "-n", ns, "set", "image", "deployment/web", "app="+b.Open.Addr+"/team/api:v1.4.0")
		if got := deploymentImage(t, ns, "web"); !strings.Contains(got, "v1.4.0@sha256:") {
			t.Fatalf("Deployment image %q, want v1.4.0 pinned", got)
		}
		settles(t, ns, "web", restarted)
	})

	t.Run("created unpinned by the namespace label, label removed", func(t *testing.T) {
		const ns = "ctl-label"
		if err := b.Namespace(ctx, ns, map[string]string{policy.LabelPin: "false"}); err != nil {
			t.Fatal(err)
		}
		if out, ok := apply(t, twoReplicas(ns, "web", img)); !ok {
			t.Fatal(out)
		}
		if got := deploymentImage(t, ns, "web"); got != img {
			t.Fatalf("Deployment image %q, want %q unpinned (label pin=false)", got, img)
		}
		settles(t, ns, "web", oneReplicaSet)
		kubectl(t, "label", "namespace", ns, policy.LabelPin+"-")
		// pullsafe sees the label go when a new Deployment gets pinned.
		eventually(t, "templates pinned in "+ns, twoReplicas(ns, "probe", img), func(out string, ok bool) bool {
			return ok && !strings.Contains(out, "mutable-tag")
		})
		kubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		settles(t, ns, "web", restarted)
	})

	t.Run("created during a registry outage", func(t *testing.T) {
		const ns = "ctl-outage"
		if err := b.Namespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		real, err := b.StartRegistry(ctx, "ctl-outage")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(real.Stop)
		if _, err := b.Push(real, "team/app", "v1", bed.Linux("amd64"), bed.Linux("arm64")); err != nil {
			t.Fatal(err)
		}
		bh, err := registrytest.NewBlackhole()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bh.Close)
		down := bh.Addr + "/team/app:v1"
		out, ok := apply(t, twoReplicas(ns, "web", down))
		if !ok {
			t.Fatal(out)
		}
		mustContain(t, out, "[unreachable]")
		if got := deploymentImage(t, ns, "web"); got != down {
			t.Fatalf("Deployment image %q, want %q unpinned (registry down)", got, down)
		}
		settles(t, ns, "web", oneReplicaSet)
		bh.Forward(real.Addr)
		kubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		settles(t, ns, "web", restarted)
	})

	t.Run("created while the mutating webhook failed open", func(t *testing.T) {
		const ns = "ctl-failopen"
		if err := b.Namespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		restore := breakMutating(t, name)
		if out, ok := apply(t, twoReplicas(ns, "web", img)); !ok {
			t.Fatal(out)
		}
		if got := deploymentImage(t, ns, "web"); got != img {
			t.Fatalf("Deployment image %q, want %q unpinned (mutating webhook unreachable)", got, img)
		}
		settles(t, ns, "web", oneReplicaSet)
		restore()
		kubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		settles(t, ns, "web", restarted)
	})

	t.Run("pin.templates off", func(t *testing.T) {
		const ns = "ctl-off"
		if err := b.Namespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		r.write(t, fmt.Sprintf(controllersConfig, false))
		eventually(t, "templates no longer pinned", twoReplicas(ns, "probe", img), func(out string, ok bool) bool {
			return ok && strings.Contains(out, "mutable-tag")
		})
		if out, ok := apply(t, twoReplicas(ns, "web", img)); !ok {
			t.Fatal(out)
		}
		settles(t, ns, "web", oneReplicaSet)
		kubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		settles(t, ns, "web", restarted)
	})
}

// breakMutating points the mutating webhook of configuration name at a
// closed port: with failurePolicy Ignore the API server admits unmutated.
// The returned func puts the URL back.
func breakMutating(t *testing.T, name string) func() {
	t.Helper()
	ctx := context.Background()
	m, err := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := -1
	for j, w := range m.Webhooks {
		if w.Name == webhook.MutatingWebhookName {
			i = j
		}
	}
	if i < 0 || m.Webhooks[i].ClientConfig.URL == nil {
		t.Fatalf("no URL-configured %s in %s", webhook.MutatingWebhookName, name)
	}
	url := *m.Webhooks[i].ClientConfig.URL
	set := func(u string) {
		patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": fmt.Sprintf("/webhooks/%d/clientConfig/url", i), "value": u}})
		if _, err := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	set("https://127.0.0.1:1/mutate")
	return func() { set(url) }
}
