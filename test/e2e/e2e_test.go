//go:build e2e

// The end-to-end suite: real kube-apiserver and etcd, real distribution
// registries, the real pullsafe binary, real kubectl. Every assertion is on
// the text a user sees from `kubectl apply`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullsafe/pullsafe/test/bed"
)

var (
	b           *bed.Bed
	indexDigest v1.Hash // private team/secret:v1, a multi-arch index
	apiDigest   v1.Hash // open team/api:v1.4.1
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	start := time.Now()
	var err error
	b, err = bed.Start(ctx, bed.Options{Config: bed.Config, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the end-to-end test bed did not start: %v\n", err)
		return 1
	}
	defer b.Stop()
	fmt.Fprintf(os.Stderr, "test bed up in %s (binaries in %s)\n", time.Since(start).Round(time.Millisecond), b.Tools)
	if err := seed(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: seeding the test bed: %v\n", err)
		return 1
	}
	return m.Run()
}

func seed(ctx context.Context) error {
	multi := []v1.Platform{bed.Linux("amd64"), bed.Linux("arm64")}
	var err error
	if _, err = b.Push(b.Open, "team/api", "v1.4.0", multi...); err != nil {
		return err
	}
	if apiDigest, err = b.Push(b.Open, "team/api", "v1.4.1", multi...); err != nil {
		return err
	}
	if _, err = b.Push(b.Open, "amd/app", "v1", bed.Linux("amd64")); err != nil {
		return err
	}
	if _, err = b.Push(b.Open, "library/nginx", "1.27", multi...); err != nil {
		return err
	}
	if indexDigest, err = b.Push(b.Private, "team/secret", "v1", multi...); err != nil {
		return err
	}
	for _, ns := range []string{"team-a", "team-b", "platform"} {
		if err := b.Namespace(ctx, ns, nil); err != nil {
			return err
		}
	}
	if err := b.Namespace(ctx, "relaxed", map[string]string{"pullsafe.io/mode": "warn"}); err != nil {
		return err
	}
	return b.SetNodes(ctx, "amd64", "arm64")
}

type podOpts struct {
	secrets      []string
	nodeSelector string
	pullPolicy   string
}

func podYAML(ns, name, container, image string, o podOpts) string {
	var s strings.Builder
	fmt.Fprintf(&s, "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s}\nspec:\n", name, ns)
	if o.nodeSelector != "" {
		fmt.Fprintf(&s, "  nodeSelector: {kubernetes.io/arch: %s}\n", o.nodeSelector)
	}
	if len(o.secrets) > 0 {
		s.WriteString("  imagePullSecrets:\n")
		for _, sec := range o.secrets {
			fmt.Fprintf(&s, "  - name: %s\n", sec)
		}
	}
	pp := o.pullPolicy
	if pp == "" {
		pp = "Always"
	}
	fmt.Fprintf(&s, "  containers:\n  - name: %s\n    image: %s\n    imagePullPolicy: %s\n", container, image, pp)
	return s.String()
}

// apply runs `kubectl apply -f -` and returns stdout+stderr and whether it succeeded.
func apply(t *testing.T, manifest string, extra ...string) (string, bool) {
	t.Helper()
	out, errOut, err := b.Run(manifest, append([]string{"apply", "-f", "-"}, extra...)...)
	t.Logf("kubectl apply %s\n%s%s", strings.Join(extra, " "), out, errOut)
	return out + errOut, err == nil
}

func mustContain(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("kubectl output lacks %q:\n%s", s, out)
		}
	}
}

func TestMissingTagIsRefusedWithNearestTags(t *testing.T) {
	img := b.Open.Addr + "/team/api:v1.4.2"
	out, ok := apply(t, podYAML("team-a", "typo", "api", img, podOpts{}))
	if ok {
		t.Fatal("a Pod with a tag that does not exist was admitted")
	}
	mustContain(t, out, `denied the request`, `container "api"`, `image "`+img+`"`, "manifest unknown",
		"nearest tags: v1.4.1, v1.4.0", "did you mean v1.4.1?")
}

func TestWorkloadsAreRefusedAtApply(t *testing.T) {
	img := b.Open.Addr + "/team/api:v1.4.2"
	out, ok := apply(t, deploymentYAML("team-a", "api", img))
	if ok {
		t.Fatal("Deployment admitted")
	}
	mustContain(t, out, "deployment/api", "manifest unknown", "v1.4.1")
	cron := fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: team-a}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: %s}]
`, img)
	out, ok = apply(t, cron)
	if ok {
		t.Fatal("CronJob admitted")
	}
	mustContain(t, out, "cronjob/nightly", `container "job"`, "manifest unknown")
}

func TestPrivateImageNeedsThePullSecretInItsNamespace(t *testing.T) {
	ctx := context.Background()
	img := b.Private.Addr + "/team/secret:v1"

	out, ok := apply(t, podYAML("team-a", "nosecret", "app", img, podOpts{}))
	if ok {
		t.Fatal("private image without pull secret admitted")
	}
	mustContain(t, out, "[unauthorized]", "no imagePullSecrets", "kubectl -n team-a create secret docker-registry")

	_, errOut, err := b.Run("", "-n", "team-a", "create", "secret", "docker-registry", "regcred",
		"--docker-server="+b.Private.Addr, "--docker-username="+bed.PrivateUser, "--docker-password="+bed.PrivatePass)
	if err != nil {
		t.Fatalf("create secret: %v %s", err, errOut)
	}
	out, ok = apply(t, podYAML("team-a", "withsecret", "app", img, podOpts{secrets: []string{"regcred"}}))
	if !ok {
		t.Fatalf("private image with pull secret refused:\n%s", out)
	}
	pod, err := b.Client.CoreV1().Pods("team-a").Get(ctx, "withsecret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := img + "@" + indexDigest.String(); pod.Spec.Containers[0].Image != want {
		t.Errorf("image = %q, want pinned to the index digest %q", pod.Spec.Containers[0].Image, want)
	}

	out, ok = apply(t, podYAML("team-b", "elsewhere", "app", img, podOpts{secrets: []string{"regcred"}}))
	if ok {
		t.Fatal("pull secret from another namespace was honoured")
	}
	mustContain(t, out, `"regcred"`, `do not exist in namespace "team-b"`, "secrets do not cross namespaces")
}

// applyEventually retries while the node informer catches up with SetNodes.
func applyEventually(t *testing.T, manifest string, want func(out string, ok bool) bool) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, err := b.Run(manifest, "apply", "--dry-run=server", "-f", "-")
		if want(out+errOut, err == nil) || time.Now().After(deadline) {
			return apply(t, manifest)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPlatform(t *testing.T) {
	ctx := context.Background()
	img := b.Open.Addr + "/amd/app:v1"
	t.Cleanup(func() { _ = b.SetNodes(ctx, "amd64", "arm64") })

	if err := b.SetNodes(ctx, "arm64", "arm64"); err != nil {
		t.Fatal(err)
	}
	out, ok := applyEventually(t, podYAML("platform", "armonly", "app", img, podOpts{}), func(_ string, ok bool) bool { return !ok })
	if ok {
		t.Fatal("amd64-only image admitted on arm64-only nodes")
	}
	mustContain(t, out, "[platform]", "offers linux/amd64 only", "2 linux/arm64")

	if err := b.SetNodes(ctx, "amd64", "arm64"); err != nil {
		t.Fatal(err)
	}
	out, ok = applyEventually(t, podYAML("platform", "mixed", "app", img, podOpts{}), func(_ string, ok bool) bool { return ok })
	if !ok {
		t.Fatalf("mixed nodes refused:\n%s", out)
	}
	mustContain(t, out, "Warning: pullsafe [platform]", "add nodeSelector kubernetes.io/arch: amd64")

	out, ok = apply(t, podYAML("platform", "selected", "app", img, podOpts{nodeSelector: "amd64"}))
	if !ok || strings.Contains(out, "Warning") {
		t.Errorf("with the nodeSelector: ok=%v\n%s", ok, out)
	}
}

func TestWarnModeAndServerDryRun(t *testing.T) {
	img := b.Open.Addr + "/team/api:v1.4.2"
	out, ok := apply(t, podYAML("relaxed", "warned", "api", img, podOpts{}))
	if !ok {
		t.Fatalf("warn namespace refused:\n%s", out)
	}
	mustContain(t, out, "pod/warned created", "Warning: pullsafe [not-found]", "manifest unknown", "nearest tags: v1.4.1")

	out, ok = apply(t, podYAML("team-a", "preflight", "api", img, podOpts{}), "--dry-run=server")
	if ok {
		t.Fatal("server-side dry run admitted what a real apply refuses")
	}
	mustContain(t, out, `container "api"`, "manifest unknown", "nearest tags: v1.4.1, v1.4.0")
	out, ok = apply(t, podYAML("relaxed", "preflight", "api", img, podOpts{}), "--dry-run=server")
	if !ok {
		t.Fatal("dry run in warn namespace refused")
	}
	mustContain(t, out, "(server dry run)", "Warning: pullsafe [not-found]")
}

func TestDockerHubThroughMirrorIsPinned(t *testing.T) {
	out, ok := apply(t, podYAML("team-a", "hub", "web", "nginx:1.27", podOpts{pullPolicy: "IfNotPresent"}))
	if !ok {
		t.Fatalf("nginx through the configured mirror refused:\n%s", out)
	}
	pod, err := b.Client.CoreV1().Pods("team-a").Get(context.Background(), "hub", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := pod.Spec.Containers[0].Image; !strings.HasPrefix(img, "nginx:1.27@sha256:") {
		t.Errorf("image = %q, want nginx:1.27 pinned (spelling kept)", img)
	}
}

func TestUnreachableRegistryFailsOpenInTime(t *testing.T) {
	ctx := context.Background()
	flaky, err := b.StartRegistry(ctx, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(flaky, "team/app", "v1", bed.Linux("amd64"), bed.Linux("arm64")); err != nil {
		t.Fatal(err)
	}
	flaky.Stop()
	start := time.Now()
	out, ok := apply(t, podYAML("team-a", "down", "app", flaky.Addr+"/team/app:v1", podOpts{}))
	elapsed := time.Since(start)
	if !ok {
		t.Fatalf("registry down: refused instead of failing open:\n%s", out)
	}
	// The warning proves pullsafe answered: had it missed the API server's
	// deadline, failurePolicy Ignore would admit the Pod silently.
	mustContain(t, out, "Warning: pullsafe [unreachable]", "connection refused")
	t.Logf("kubectl apply with the registry down took %s (webhook timeout 10s)", elapsed.Round(time.Millisecond))
}

func TestKubeSystemIsNeverSentToTheWebhook(t *testing.T) {
	ctx := context.Background()
	cfg, err := b.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, bed.DevWebhookConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel := cfg.Webhooks[0].NamespaceSelector
	if sel == nil || len(sel.MatchExpressions) != 1 || !slices.Contains(sel.MatchExpressions[0].Values, "kube-system") {
		t.Errorf("namespaceSelector = %+v", sel)
	}
	// A tag that does not exist is admitted in kube-system, and a good tag is
	// not pinned: neither webhook saw these Pods.
	out, ok := apply(t, podYAML("kube-system", "sys-typo", "api", b.Open.Addr+"/team/api:v1.4.2", podOpts{}))
	if !ok || strings.Contains(out, "Warning") {
		t.Errorf("kube-system Pod: ok=%v\n%s", ok, out)
	}
	img := b.Open.Addr + "/team/api:v1.4.1"
	if _, ok := apply(t, podYAML("kube-system", "sys-good", "api", img, podOpts{})); !ok {
		t.Fatal("kube-system Pod refused")
	}
	pod, err := b.Client.CoreV1().Pods("kube-system").Get(ctx, "sys-good", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.Containers[0].Image != img {
		t.Errorf("kube-system Pod was mutated: %s", pod.Spec.Containers[0].Image)
	}
}
