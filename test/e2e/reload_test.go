//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/test/bed"
	"github.com/pullsafe/pullsafe/test/configmapvol"
	"github.com/pullsafe/pullsafe/webhook"
)

// reloading is a pullsafe of its own, out of cluster, whose config lives in
// a folder the test updates as the kubelet updates a ConfigMap volume. The
// bed's own registration is removed for the test, so only this one reviews.
type reloading struct {
	name, dir string
}

func startReloading(t *testing.T, name, config string) *reloading {
	t.Helper()
	ctx := context.Background()
	withoutDevWebhook(t)
	r := &reloading{name: name, dir: t.TempDir()}
	r.write(t, config)
	port, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// No --port: serve listens on the URL's (issue 11, item 8).
	p, err := b.RunPullsafe(ctx, name, "--config", filepath.Join(r.dir, "config.yaml"),
		"--webhook-url", fmt.Sprintf("https://127.0.0.1:%d", port), "--webhook-config-name", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := b.WaitRegistered(ctx, name); err != nil {
		t.Fatal(err)
	}
	return r
}

// write replaces the config as the kubelet does: a new ..data folder.
func (r *reloading) write(t *testing.T, config string) {
	t.Helper()
	config = strings.ReplaceAll(config, "{{OPEN}}", b.Open.Addr)
	if err := configmapvol.Write(r.dir, map[string][]byte{"config.yaml": []byte(config)}); err != nil {
		t.Fatal(err)
	}
}

// eventually re-runs a server-side dry run of manifest until want holds.
func eventually(t *testing.T, what, manifest string, want func(out string, ok bool) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		out, errOut, err := b.Run(manifest, "apply", "--dry-run=server", "-f", "-")
		if want(out+errOut, err == nil) {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s: not seen after 20s; last answer:\n%s%s", what, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const reloadConfig = `apiVersion: pullsafe.io/v1alpha1
kind: Config
mode: %s
registries:
  mirrors: {docker.io: ["{{OPEN}}"]}
  allowLoopback: true
pin: {pods: true, templates: %v, keepTag: true}
`

// Issue 11, item 1: README's rollout step 4 on a running pullsafe. The
// mode goes from warn to enforce by a ConfigMap volume update, and the next
// apply of a missing image is refused with no restart; an invalid config
// then keeps enforce and says so on every admission until it is fixed.
func TestConfigReloadWithoutRestart(t *testing.T) {
	ctx := context.Background()
	const ns = "reload-e2e"
	if err := b.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	r := startReloading(t, "pullsafe-reload", fmt.Sprintf(reloadConfig, "warn", false))
	missing := podYAML(ns, "missing", "api", b.Open.Addr+"/team/api:v1.4.2", podOpts{})
	good := podYAML(ns, "good", "api", b.Open.Addr+"/team/api:v1.4.1", podOpts{})

	out, ok := apply(t, missing, "--dry-run=server")
	if !ok {
		t.Fatalf("warn mode refused:\n%s", out)
	}
	mustContain(t, out, "Warning: pullsafe [not-found]")

	r.write(t, fmt.Sprintf(reloadConfig, "enforce", false))
	took := eventually(t, "mode enforce", missing, func(_ string, ok bool) bool { return !ok })
	t.Logf("mode enforce applied %s after the volume update", took.Round(time.Millisecond))
	out, ok = apply(t, missing)
	if ok {
		t.Fatal("enforce config applied, yet the missing image was admitted")
	}
	mustContain(t, out, "denied the request", "manifest unknown")

	r.write(t, "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: [enforce\n")
	eventually(t, "the reload failure warning", good, func(out string, ok bool) bool {
		return ok && strings.Contains(out, "Warning: pullsafe: config reload failed")
	})
	out, _ = apply(t, good, "--dry-run=server")
	mustContain(t, out, "still using the config loaded at")
	if out, ok := apply(t, missing, "--dry-run=server"); ok {
		t.Errorf("an invalid config dropped enforce:\n%s", out)
	}

	r.write(t, fmt.Sprintf(reloadConfig, "enforce", false)+"# fixed\n")
	eventually(t, "the warning gone", good, func(out string, ok bool) bool { return ok && !strings.Contains(out, "reload failed") })
}

// Issue 11, item 2: pin.templates follows the config into the cluster.
// With templates pinned, the mutating configuration covers workloads and a
// Deployment's image is pinned to the digest; reloaded to false, the rules
// drop the workloads again and the validating webhook warns mutable-tag for
// templates as before.
func TestPinTemplatesFollowTheConfig(t *testing.T) {
	ctx := context.Background()
	const ns, name = "pin-e2e", "pullsafe-pin"
	if err := b.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	r := startReloading(t, name, fmt.Sprintf(reloadConfig, "enforce", true))
	if !slices.Contains(mutatingResources(t, name), "deployments") {
		t.Fatal("pin.templates true, yet the mutating configuration does not cover Deployments")
	}
	img := b.Open.Addr + "/team/api:v1.4.1"
	deploy := func(n string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s}
spec:
  replicas: 0
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: api, image: %s, imagePullPolicy: IfNotPresent}]
`, n, ns, n, n, img)
	}
	out, ok := apply(t, deploy("pinned"))
	if !ok {
		t.Fatalf("Deployment refused:\n%s", out)
	}
	if strings.Contains(out, "mutable-tag") {
		t.Errorf("a pinned template was warned about as a mutable tag:\n%s", out)
	}
	d, err := b.Client.AppsV1().Deployments(ns).Get(ctx, "pinned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Spec.Template.Spec.Containers[0].Image, img+"@"+apiDigest.String(); got != want {
		t.Errorf("Deployment image %q, want pinned %q", got, want)
	}

	r.write(t, fmt.Sprintf(reloadConfig, "enforce", false))
	deadline := time.Now().Add(20 * time.Second)
	for slices.Contains(mutatingResources(t, name), "deployments") {
		if time.Now().After(deadline) {
			t.Fatal("pin.templates false, yet the mutating configuration still covers Deployments")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// What the server left is what pullsafe builds, with the API server's
	// defaults: reconciling again writes nothing.
	kc, err := client.New(b.RestConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after admissionregv1.MutatingWebhookConfiguration
	if err := kc.Get(ctx, client.ObjectKey{Name: name}, &before); err != nil {
		t.Fatal(err)
	}
	if changed, err := webhook.RegistrationFor(policy.DefaultConfig(), name, "pullsafe-system").Reconcile(ctx, kc); err != nil || changed {
		t.Errorf("reconciling an up-to-date configuration: changed %v, %v", changed, err)
	}
	if err := kc.Get(ctx, client.ObjectKey{Name: name}, &after); err != nil || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("resourceVersion %s -> %s (%v): a write with nothing to change", before.ResourceVersion, after.ResourceVersion, err)
	}
	eventually(t, "mutable-tag for templates", deploy("tagged"), func(out string, ok bool) bool {
		return ok && strings.Contains(out, "mutable-tag")
	})
	out, ok = apply(t, deploy("tagged"))
	if !ok {
		t.Fatalf("Deployment refused:\n%s", out)
	}
	mustContain(t, out, "Warning: pullsafe [mutable-tag]")
	if d, err = b.Client.AppsV1().Deployments(ns).Get(ctx, "tagged", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != img {
		t.Errorf("pin.templates false, yet the Deployment image became %q", got)
	}
}

// mutatingResources lists the resources pullsafe's mutating webhook covers.
func mutatingResources(t *testing.T, name string) []string {
	t.Helper()
	m, err := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range m.Webhooks {
		if w.Name == webhook.MutatingWebhookName {
			for _, r := range w.Rules {
				out = append(out, r.Resources...)
			}
		}
	}
	return out
}
