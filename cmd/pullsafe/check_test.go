package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/pullsafe/pullsafe/test/golden"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/webhook"
)

// checkBed is two in-process registries with the images the fixtures use,
// and the fixtures copied with OPEN/PRIVATE replaced by their hosts.
type checkBed struct {
	open, private *registrytest.Registry
	dir           string
}

func newCheckBed(t *testing.T) *checkBed {
	t.Helper()
	b := &checkBed{open: registrytest.New(t), private: registrytest.New(t), dir: t.TempDir()}
	b.open.Image("team/api", "v1.4.0", "linux", "amd64")
	b.open.Image("team/api", "v1.4.1", "linux", "amd64")
	b.open.Image("tools/arm-only", "v1", "linux", "arm64")
	b.private.Index("team/payments", "v2", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	b.private.SetAuth("basic")
	src := filepath.Join("testdata", "check", "manifests")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("PRIVATE"), []byte(b.private.Host)), []byte("OPEN"), []byte(b.open.Host))
		if err := os.WriteFile(filepath.Join(b.dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// normalize makes output stable across runs: hosts, digests, temp dirs.
func (b *checkBed) normalize(s string) string {
	s = strings.ReplaceAll(s, b.dir+"/", "")
	s = strings.ReplaceAll(s, b.open.Host, "OPEN")
	s = strings.ReplaceAll(s, b.private.Host, "PRIVATE")
	return regexp.MustCompile(`sha256:[0-9a-f]{12,64}`).ReplaceAllString(s, "sha256:DIGEST")
}

// runCheck runs check as the command line would, with no kubeconfig to
// find (a developer's ~/.kube/config must not change a unit test): tests
// that use a cluster name it with --kubeconfig.
func runCheck(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	var out, errOut bytes.Buffer
	err := check(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		code = exitCode(err)
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestCheckGolden(t *testing.T) {
	b := newCheckBed(t)
	out, errOut, code := runCheck(t, "", "-f", b.dir, "--platforms", "linux/amd64")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (something would be denied)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	golden.Check(t, filepath.Join("testdata", "check", "golden.txt"), b.normalize(out), "review the check output")
}

func TestCheckJSONAndExitCodes(t *testing.T) {
	b := newCheckBed(t)
	out, _, code := runCheck(t, "", "-f", b.dir, "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var results []jsonResult
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	decisions := map[string]policy.Decision{}
	for _, r := range results {
		decisions[r.Namespace+"/"+r.Object] = r.Decision
	}
	want := map[string]policy.Decision{
		"shop/deployment/payments": policy.DecisionAllow, // secret from the same file
		"shop/pod/web":             policy.DecisionDeny,  // tag typo
		"other/cronjob/report":     policy.DecisionWarn,  // regcred: not in other's input, unknown offline
		"shop/daemonset/agent":     policy.DecisionAllow, // no --platforms: platform not checked
		"shop/job/build":           policy.DecisionAllow, // service account's pull secret
	}
	if diff := cmp.Diff(want, decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}

	// Only good objects: exit 0. Warnings fail only with --strict.
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: " + b.open.Host + "/team/api:v1.4.1}]}\n"
	if _, errOut, code := runCheck(t, pod, "-f", "-"); code != 0 {
		t.Errorf("good pod: exit %d: %s", code, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "nopin.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\npin: {pods: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := runCheck(t, pod, "-f", "-", "--config", cfg, "--strict"); code != 1 || !strings.Contains(out, "[mutable-tag]") {
		t.Errorf("--strict with a mutable-tag warning: exit %d\n%s", code, out)
	}
}

// TestCheckOfflineSecretsAreUnknown: without a cluster (the README's CI
// example), a pull secret managed outside the manifests (external-secrets,
// sealed-secrets, ops) is unknown, not absent: "cannot verify" with a note
// that the check ran offline, exit 0 (1 with --strict). What the input
// holds still decides: its secret for another host is a denial.
func TestCheckOfflineSecretsAreUnknown(t *testing.T) {
	b := newCheckBed(t)
	dir := t.TempDir()
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: payments, namespace: shop}\nspec:\n  selector: {matchLabels: {app: p}}\n" +
		"  template:\n    metadata: {labels: {app: p}}\n    spec:\n      imagePullSecrets: [{name: regcred}]\n" +
		"      containers: [{name: p, image: \"" + b.private.Host + "/team/payments:v2\", imagePullPolicy: Always}]\n"
	if err := os.WriteFile(filepath.Join(dir, "deployment.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCheck(t, "", "-f", dir)
	if code != 0 || !strings.Contains(out, `cannot verify: authentication required and pull secret(s) "regcred" of namespace "shop" are not in the input`) ||
		!strings.Contains(out, "checked offline (no cluster)") || strings.Contains(out, "do not exist") {
		t.Errorf("exit %d, want 0 with a cannot-verify warning and the offline note:\n%s%s", code, out, errOut)
	}
	if _, _, code := runCheck(t, "", "-f", dir, "--strict"); code != 1 {
		t.Errorf("--strict: exit %d, want 1 (a warning)", code)
	}
	wrong := "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: shop}\ntype: kubernetes.io/dockerconfigjson\n" +
		"stringData: {.dockerconfigjson: '{\"auths\":{\"registry.elsewhere.io\":{\"username\":\"alice\",\"password\":\"s3cret\"}}}'}\n"
	if err := os.WriteFile(filepath.Join(dir, "secret.yaml"), []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := runCheck(t, "", "-f", dir); code != 1 || !strings.Contains(out, "hold no credentials for") {
		t.Errorf("the input's secret for another host: exit %d, want 1:\n%s", code, out)
	}
}

func TestCheckInputErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\n---\nkind: [unclosed\n"), 0o644)
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"-f", bad}, "", "bad.yaml: document 2"},
		{nil, "", "no input"},
		{[]string{"-f", filepath.Join(dir, "missing.yaml")}, "", "missing.yaml"},
		{[]string{"-f", "-"}, "kind: Deployment\nspec: {template: {spec: {containers: oops}}}\n", "-: document 1"},
		{[]string{"-f", "-", "--platforms", "amd64"}, "", "not os/arch"},
		{[]string{"-f", "-", "-o", "xml"}, "", "want text or json"},
		{[]string{"-f", "-", "--in-place"}, "", "--in-place needs --pin"},
	}
	for _, tt := range tests {
		_, errOut, code := runCheck(t, tt.stdin, tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tt.args, code, errOut, tt.want)
		}
	}
}

func TestCheckPinKeepsCommentsAndOrder(t *testing.T) {
	b := newCheckBed(t)
	file := filepath.Join(b.dir, "pod.yaml")
	src := "# keep me\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p # and me\nspec:\n  zeta: 1\n  containers:\n  - name: c\n    image: " +
		b.open.Host + "/team/api:v1.4.1\n  alpha: 2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: untouched}\n"
	os.WriteFile(file, []byte(src), 0o644)
	out, errOut, code := runCheck(t, "", "-f", file, "--pin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "# keep me") || !strings.Contains(out, "name: p # and me") ||
		strings.Index(out, "zeta") > strings.Index(out, "alpha") || !strings.Contains(out, "metadata: {name: untouched}") {
		t.Errorf("comments, order or untouched document lost:\n%s", out)
	}
	if !regexp.MustCompile(`image: 127\.0\.0\.1:\d+/team/api:v1\.4\.1@sha256:[0-9a-f]{64}`).MatchString(out) {
		t.Errorf("image not pinned:\n%s", out)
	}
	if _, errOut, code := runCheck(t, "", "-f", file, "--pin", "--in-place"); code != 0 {
		t.Fatalf("--in-place: exit %d: %s", code, errOut)
	}
	data, _ := os.ReadFile(file)
	if string(data) != out {
		t.Errorf("--in-place wrote something else than --pin printed")
	}
	// Pinned files check clean: no finding at all, so even --strict passes
	// with pinning off (before pinning, the IfNotPresent tag is a
	// mutable-tag warning there).
	nopin := filepath.Join(b.dir, "nopin.config")
	if err := os.WriteFile(nopin, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\npin: {pods: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if before, _, code := runCheck(t, src, "-f", "-", "--strict", "--config", nopin); code != 1 || !strings.Contains(before, "[mutable-tag]") {
		t.Fatalf("before pinning: exit %d, want 1 with a mutable-tag warning (else the check below proves nothing)\n%s", code, before)
	}
	js, errOut, code := runCheck(t, "", "-f", file, "--strict", "--config", nopin, "-o", "json")
	var results []jsonResult
	if err := json.Unmarshal([]byte(js), &results); err != nil || code != 0 {
		t.Fatalf("pinned file: exit %d, %v\n%s%s", code, err, js, errOut)
	}
	got := make([]string, 0, len(results))
	for _, r := range results {
		got = append(got, fmt.Sprintf("%s %s findings=%d", r.Object, r.Decision, len(r.Findings)))
	}
	if diff := cmp.Diff([]string{"pod/p allow findings=0"}, got); diff != "" {
		t.Errorf("pinned file does not check clean (-want +got):\n%s", diff)
	}
	// Pinning again changes nothing.
	again, _, code := runCheck(t, "", "-f", file, "--pin")
	if code != 0 || again != out {
		t.Errorf("second --pin: exit %d, changed:\n%s", code, again)
	}
}

// TestCheckAndWebhookSayTheSame sends one Pod through the validating
// webhook handler and through `pullsafe check`: same verdict, same words.
func TestCheckAndWebhookSayTheSame(t *testing.T) {
	b := newCheckBed(t)
	podJSON := func(ns string) []byte {
		p := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}, Containers: []corev1.Container{
				{Name: "api", Image: b.open.Host + "/team/api:v1.4.2", ImagePullPolicy: corev1.PullAlways},
				{Name: "pay", Image: b.private.Host + "/team/payments:v3", ImagePullPolicy: corev1.PullAlways}}}}
		data, _ := json.Marshal(p)
		return data
	}
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + b.private.Host + `":{"username":"alice","password":"s3cret"}}}`)}}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, secret).Build()
	h := webhook.NewHandler(policy.NewChecker(cfg, res), webhook.NewClientCluster(c, c), false, "", nil)
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "shop", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: podJSON("shop")}}})
	if resp.Allowed {
		t.Fatal("webhook allowed it")
	}

	secret.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	secretYAML, _ := json.Marshal(secret)
	stdin := string(secretYAML) + "\n" + string(podJSON("shop"))
	out, errOut, code := runCheck(t, stdin, "-f", "-")
	if code != 1 {
		t.Fatalf("check exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, indent(resp.Result.Message)) {
		t.Errorf("check and webhook differ.\nwebhook:\n%s\ncheck:\n%s", resp.Result.Message, out)
	}
	if !strings.Contains(resp.Result.Message, "nearest tags: v1.4.1, v1.4.0") || !strings.Contains(resp.Result.Message, `container "pay"`) {
		t.Errorf("unexpected verdict: %s", resp.Result.Message)
	}
}

// TestCheckMirrorPodAsAdmission: a mirror Pod (the API's copy of a static
// Pod) is admitted without a lookup (policy.Pulled: the node pulls its
// images with its own credentials); check says the same and asks no
// registry, instead of denying a private image "pulled anonymously".
func TestCheckMirrorPodAsAdmission(t *testing.T) {
	b := newCheckBed(t)
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-node-a", Namespace: "shop", Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "abc"},
			// What the kubelet's mirror client writes and NodeRestriction
			// requires: without it the annotation is any tenant's (policy.mirror).
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-a", UID: "node-a-uid", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "pay", Image: b.private.Host + "/team/payments:v3", ImagePullPolicy: corev1.PullAlways}}}}
	podJSON, _ := json.Marshal(pod)

	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}).Build()
	h := webhook.NewHandler(policy.NewChecker(cfg, res), webhook.NewClientCluster(c, c), false, "", nil)
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "shop", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: podJSON}}})
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("webhook: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	if n := b.private.Count("", ""); n != 0 {
		t.Fatalf("webhook asked the registry %d times", n)
	}

	out, errOut, code := runCheck(t, string(podJSON), "--mode", "enforce", "-f", "-")
	if code != 0 {
		t.Fatalf("check exit %d, want 0 as the webhook allows it\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := b.private.Count("", ""); n != 0 {
		t.Errorf("check asked the registry %d times, the webhook none:\n%s", n, out)
	}
	if !strings.Contains(out, "skipped: mirror Pod") {
		t.Errorf("check does not say why it did not look:\n%s", out)
	}
}

// TestCheckForgedMirrorPodChecked: a Pod whose Node owner names another UID
// than the cluster's node is no kubelet's mirror: admission checks it
// (policy.ConfirmMirror) and denies its private image pulled without a
// secret. check, against the same cluster, must not skip it as a mirror.
func TestCheckForgedMirrorPodChecked(t *testing.T) {
	b := newCheckBed(t)
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-node-a", Namespace: "shop", Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "abc"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-a", UID: "forged", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "pay", Image: b.private.Host + "/team/payments:v2", ImagePullPolicy: corev1.PullAlways}}}}
	podJSON, _ := json.Marshal(pod)

	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	res, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "node-a-uid"}}).Build()
	live := webhook.NewClientCluster(c, c)
	checker := policy.NewChecker(cfg, res)
	h := webhook.NewHandler(checker, live, false, "", nil)
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "shop", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: podJSON}}})
	if resp.Allowed {
		t.Fatalf("webhook allowed the forged mirror Pod; the test expects its denial")
	}

	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, podJSON)
	if err != nil {
		t.Fatal(err)
	}
	w.Namespace = "shop"
	objects, err := policy.NewManifestObjects(nil, "shop", live)
	if err != nil {
		t.Fatal(err)
	}
	cluster := &inputCluster{objects: objects, live: live}
	nodes, err := cluster.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &checked{w: w}
	if err := checkOne(context.Background(), checker, cluster, r, nodes, &checkOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.skipped != "" || r.v.Decision() != policy.DecisionDeny {
		t.Errorf("check: skipped %q, decision %v; the webhook denies", r.skipped, r.v.Decision())
	}
}

// A kind named Namespace of another group (a CRD's) is not the namespace:
// its labels set no pullsafe.io/mode, as the webhook reads only the core
// Namespace's, and the Pod in it is checked.
func TestCheckCRDNamespaceIsNotTheNamespace(t *testing.T) {
	reg := registrytest.New(t)
	in := "apiVersion: example.com/v1\nkind: Namespace\nmetadata: {name: shop, labels: {pullsafe.io/mode: \"off\"}}\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers: [{name: c, image: \"" + reg.Host + "/team/app:gone\"}]\n"
	out, errOut, code := runCheck(t, in, "-f", "-")
	if code != 1 || !strings.Contains(out, "not-found") {
		t.Errorf("exit %d, want 1 (the Pod's tag does not exist):\n%s%s", code, out, errOut)
	}
}
