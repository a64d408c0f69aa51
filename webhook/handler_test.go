package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pullsafe/pullsafe/test/golden"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// closedHub sends what is meant for Docker Hub to a closed loopback port,
// recording it, and everything else on unchanged (below the resolver's
// network checks: DNS here may not resolve index.docker.io at all).
type closedHub struct {
	mu    sync.Mutex
	asked []string
}

func (h *closedHub) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Hostname(), "docker.io") {
		h.mu.Lock()
		h.asked = append(h.asked, r.URL.Host+r.URL.Path)
		h.mu.Unlock()
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = "http", "127.0.0.1:1"
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Asked is what reached Docker Hub, host and path.
func (h *closedHub) Asked() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.asked)
}

// bed is a handler wired to two in-process registries (open and private)
// and a fake cluster.
type bed struct {
	open, private *registrytest.Registry
	// hub stands in for Docker Hub behind the mirror (b.open): a closed
	// port, so a mirror that failed falls through to a deterministic
	// failure, never to the real index.docker.io.
	hub      *closedHub
	validate *Handler
	mutate   *Handler
	cluster  *ClientCluster
	checker  *policy.Checker
}

type bedOpt func(cfg *policy.Config, objs *[]client.Object)

func withNodes(archs ...string) bedOpt {
	return func(_ *policy.Config, objs *[]client.Object) {
		for i, a := range archs {
			*objs = append(*objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d-%s", i, a),
				Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: a}}})
		}
	}
}

func newBed(t testing.TB, opts ...bedOpt) *bed {
	t.Helper()
	b := &bed{open: registrytest.New(t), private: registrytest.New(t)}
	b.open.Image("team/api", "v1.4.0", "linux", "amd64")
	b.open.Image("team/api", "v1.4.1", "linux", "amd64")
	b.open.Image("arm/app", "v1", "linux", "arm64")
	b.open.Index("multi/app", "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	b.open.Image("library/nginx", "1.27", "linux", "amd64")
	b.private.Image("team/secret", "v1", "linux", "amd64")
	b.private.SetAuth("basic")

	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	cfg.Registries.Mirrors = map[string][]string{"docker.io": {b.open.Host}}
	objs := []client.Object{
		ns("team-a", nil), ns("team-b", nil), ns("relaxed", map[string]string{policy.LabelMode: "warn"}),
		ns("quiet", map[string]string{policy.LabelMode: "off"}), ns("kube-system", nil),
		ns("nopin", map[string]string{policy.LabelPin: "false"}),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
		pullSecret("team-a", "regcred", b.private.Host, b.private.User, b.private.Pass),
		pullSecret("team-a", "wronghost", strings.Split(b.private.Host, ":")[0], b.private.User, b.private.Pass),
	}
	for _, o := range opts {
		o(cfg, &objs)
	}
	b.hub = &closedHub{}
	res, err := registry.NewResolver(registry.WithMirrors(cfg.Registries.Mirrors), registry.WithLookupTimeout(2*time.Second), registry.WithAllowLoopback(true),
		registry.WithTransport(b.hub))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithObjects(objs...).Build()
	b.cluster = NewClientCluster(c, c)
	track(b.cluster, objs)
	checker := policy.NewChecker(cfg, res)
	b.checker = checker
	b.validate = NewHandler(checker, b.cluster, false, "pullsafe-system", nil)
	b.mutate = NewHandler(checker, b.cluster, true, "pullsafe-system", nil)
	return b
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pullSecret(namespace, name, host, user, pass string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, host, user, pass))}}
}

func pod(namespace string, images ...string) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return p
}

func request(t testing.TB, op admissionv1.Operation, obj, old runtime.Object, subresource string) admission.Request {
	t.Helper()
	raw := func(o runtime.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	m := obj.(metav1.Object)
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Kind: metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Namespace: m.GetNamespace(), Name: m.GetName(), Operation: op, SubResource: subresource,
		Object: raw(obj), OldObject: raw(old)}}
}

var (
	digestRE = regexp.MustCompile(`sha256:[0-9a-f]{12,64}`)
	portRE   = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// checkGolden compares the response with testdata/golden/NAME.json; set
// PULLSAFE_UPDATE_GOLDEN=1 to rewrite the files, then review them as text.
func checkGolden(t *testing.T, name string, b *bed, resp admission.Response) {
	t.Helper()
	out, err := json.MarshalIndent(struct {
		Response admissionv1.AdmissionResponse `json:"response"`
		Patches  any                           `json:"patches,omitempty"`
	}{resp.AdmissionResponse, resp.Patches}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(out), b.open.Host, "open.registry.test")
	s = strings.ReplaceAll(s, b.private.Host, "private.registry.test")
	s = portRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = digestRE.ReplaceAllString(s, "sha256:DIGEST")
	golden.Check(t, filepath.Join("testdata", "golden", name+".json"), s+"\n", "review the AdmissionResponse")
}

func TestGoldenResponses(t *testing.T) {
	b := newBed(t, withNodes("amd64", "amd64"))
	privateImg := func(h string) string { return h + "/team/secret:v1" }
	withSecrets := func(p *corev1.Pod, names ...string) *corev1.Pod {
		for _, n := range names {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
		}
		return p
	}
	deploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "api", Image: b.open.Host + "/team/api:v1.4.2"}}}}}}
	saDeploy := deploy.DeepCopy()
	saDeploy.Spec.Template.Spec.ServiceAccountName = "builder"
	saDeploy.Spec.Template.Spec.Containers[0].Image = privateImg(b.private.Host)
	cron := &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "migrate", Image: b.open.Host + "/team/api:v1.4.2"}},
				Containers:     []corev1.Container{{Name: "job", Image: b.open.Host + "/team/api:v1.4.1"}}}}}}}}

	tests := []struct {
		name string
		h    *Handler
		req  admission.Request
	}{
		{"pod-not-found", b.validate, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.2"), nil, "")},
		{"pod-digest-missing", b.validate, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.1@"+"sha256:"+strings.Repeat("0", 64)), nil, "")},
		{"pod-pinned", b.mutate, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.1", "nginx:1.27"), nil, "")},
		{"pod-mutable-tag", b.validate, request(t, admissionv1.Create, pod("nopin", b.open.Host+"/team/api:v1.4.1"), nil, "")},
		{"pod-invalid-reference", b.validate, request(t, admissionv1.Create, pod("team-a", "Team/API:v1"), nil, "")},
		{"pod-private-no-secret", b.validate, request(t, admissionv1.Create, pod("team-a", privateImg(b.private.Host)), nil, "")},
		{"pod-private-with-secret", b.validate, request(t, admissionv1.Create, withSecrets(pod("team-a", privateImg(b.private.Host)), "regcred"), nil, "")},
		{"pod-private-secret-in-other-namespace", b.validate, request(t, admissionv1.Create, withSecrets(pod("team-b", privateImg(b.private.Host)), "regcred"), nil, "")},
		{"pod-private-secret-wrong-host", b.validate, request(t, admissionv1.Create, withSecrets(pod("team-a", privateImg(b.private.Host)), "wronghost"), nil, "")},
		{"pod-platform-arm-only", b.validate, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/arm/app:v1"), nil, "")},
		{"pod-warn-namespace", b.validate, request(t, admissionv1.Create, pod("relaxed", b.open.Host+"/team/api:v1.4.2"), nil, "")},
		{"pod-off-namespace", b.validate, request(t, admissionv1.Create, pod("quiet", b.open.Host+"/team/api:v1.4.2"), nil, "")},
		{"pod-kube-system", b.validate, request(t, admissionv1.Create, pod("kube-system", b.open.Host+"/team/api:v1.4.2"), nil, "")},
		{"deployment-not-found", b.validate, request(t, admissionv1.Create, deploy, nil, "")},
		{"deployment-service-account-secret", b.validate, request(t, admissionv1.Create, saDeploy, nil, "")},
		{"deployment-not-pinned", b.mutate, request(t, admissionv1.Create, saDeploy, nil, "")},
		{"cronjob-nested-template", b.validate, request(t, admissionv1.Create, cron, nil, "")},
		{"pod-unreachable", b.validate, request(t, admissionv1.Create, pod("team-a", "127.0.0.1:1/team/api:v1"), nil, "")},
		{"pod-image-volume-not-found", b.validate, request(t, admissionv1.Create, withVolume(pod("team-a", b.open.Host+"/team/api:v1.4.1"), "models", b.open.Host+"/team/api:v1.4.2"), nil, "")},
		{"pod-image-volume-pinned", b.mutate, request(t, admissionv1.Create, withVolume(pod("team-a", b.open.Host+"/team/api:v1.4.1"), "models", b.open.Host+"/multi/app:v1"), nil, "")},
		{"pod-sidecar-not-found", b.validate, request(t, admissionv1.Create, withSidecar(pod("team-a", b.open.Host+"/team/api:v1.4.1"), "log", b.open.Host+"/team/api:v1.4.2"), nil, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGolden(t, tt.name, b, tt.h.Handle(context.Background(), tt.req))
		})
	}
}

func TestPlatformRule(t *testing.T) {
	amd := func(b *bed) string { return b.open.Host + "/team/api:v1.4.1" }
	tests := []struct {
		name      string
		nodes     []string
		selector  map[string]string
		image     func(*bed) string
		allowed   bool
		warnMatch string
	}{
		{"arm64 nodes, amd64-only image", []string{"arm64", "arm64"}, nil, amd, false, ""},
		{"mixed nodes", []string{"amd64", "arm64"}, nil, amd, true, "add nodeSelector kubernetes.io/arch: amd64"},
		{"mixed nodes with nodeSelector", []string{"amd64", "arm64"}, map[string]string{corev1.LabelArchStable: "amd64"}, amd, true, ""},
		{"multi-arch image", []string{"amd64", "arm64"}, nil, func(b *bed) string { return b.open.Host + "/multi/app:v1" }, true, ""},
		{"no nodes", nil, nil, amd, true, "platform not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, withNodes(tt.nodes...))
			p := pod("team-a", tt.image(b))
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
			p.Spec.NodeSelector = tt.selector
			resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v: %s", resp.Allowed, tt.allowed, resp.Result.Message)
			}
			joined := strings.Join(resp.Warnings, "\n")
			if tt.warnMatch == "" && len(resp.Warnings) > 0 && tt.allowed {
				t.Errorf("unexpected warnings: %s", joined)
			}
			if tt.warnMatch != "" && !strings.Contains(joined, tt.warnMatch) {
				t.Errorf("warnings %q lack %q", joined, tt.warnMatch)
			}
		})
	}
}

func TestUpdateWithoutImageChangeMakesNoRegistryTraffic(t *testing.T) {
	b := newBed(t)
	old := pod("team-a", b.open.Host+"/team/api:v1.4.2") // would be denied on CREATE
	upd := old.DeepCopy()
	upd.Labels = map[string]string{"edited": "true"}
	b.open.Reset()
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, ""))
	if !resp.Allowed || len(resp.Warnings) > 0 {
		t.Errorf("response = %+v", resp.AdmissionResponse)
	}
	if n := b.open.Count("", ""); n != 0 {
		t.Errorf("%d registry requests for an UPDATE that changed no image", n)
	}
	upd.Spec.Containers[0].Image = b.open.Host + "/team/api:v1.4.3"
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, "")); resp.Allowed {
		t.Error("changed image to a missing tag was allowed")
	}
}

func TestEphemeralContainersSubresource(t *testing.T) {
	b := newBed(t)
	old := pod("team-a", b.open.Host+"/team/api:v1.4.1@sha256:"+strings.Repeat("1", 64))
	upd := old.DeepCopy()
	upd.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debugger", Image: b.open.Host + "/team/debug:v9"}}}
	b.open.Reset()
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, "ephemeralcontainers"))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `container "debugger"`) {
		t.Errorf("response = %+v", resp.Result)
	}
	if n := b.open.Count(http.MethodHead, "/team/api/"); n != 0 {
		t.Errorf("unchanged container looked up %d times", n)
	}
	// Other subresources (pods/status) are never checked.
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, "status")); !resp.Allowed {
		t.Errorf("pods/status denied: %+v", resp.Result)
	}
}

func TestPatchIsIdempotent(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	p := pod("team-a", b.open.Host+"/team/api:v1.4.1", "nginx:1.27")
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: b.open.Host + "/multi/app:v1"}}
	req := request(t, admissionv1.Create, p, nil, "")
	resp := b.mutate.Handle(context.Background(), req)
	if len(resp.Patches) != 3 {
		t.Fatalf("patches = %+v", resp.Patches)
	}
	for _, op := range resp.Patches {
		if op.Operation != "replace" || !strings.HasSuffix(op.Path, "/image") {
			t.Errorf("non-targeted patch op %+v", op)
		}
	}
	patched, got := applyPodPatch(t, req, resp)
	if img := got.Spec.Containers[1].Image; !regexp.MustCompile(`^nginx:1\.27@sha256:[0-9a-f]{64}$`).MatchString(img) {
		t.Errorf("pinned image = %q (user's spelling kept, tag kept)", img)
	}
	if b.open.Count("", "/library/nginx/manifests/") == 0 || len(b.hub.Asked()) != 0 {
		t.Errorf("nginx pinned by the mirror? mirror asked %d times, Docker Hub %q", b.open.Count("", "/library/nginx/manifests/"), b.hub.Asked())
	}
	pinnedIsStable(t, b, req, patched)
}

// panicking is a Cluster that panics, standing in for any bug in a rule.
type panicking struct{ Cluster }

func (panicking) NamespaceLabels(context.Context, string) (map[string]string, error) {
	panic("boom")
}

func TestPanicIsAllowedWithWarning(t *testing.T) {
	b := newBed(t)
	h := NewHandler(b.checker, panicking{b.cluster}, false, "", nil)
	resp := h.Handle(context.Background(), request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.2"), nil, ""))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "boom") {
		t.Errorf("response = %+v", resp.AdmissionResponse)
	}
}

func TestDeadlineFailsOpen(t *testing.T) {
	b := newBed(t)
	hang := make(chan struct{})
	defer close(hang)
	b.open.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	resp := b.validate.Handle(ctx, request(t, admissionv1.Create, pod("team-a", b.open.Host+"/team/api:v1.4.9"), nil, ""))
	if !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, " "), "unreachable") {
		t.Errorf("response = %+v", resp.AdmissionResponse)
	}
}

func TestRequestDeadlineFromTimeoutParameter(t *testing.T) {
	var got time.Duration
	h := WithRequestDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, _ := r.Context().Deadline()
		got = time.Until(dl)
	}))
	for _, tt := range []struct {
		query    string
		min, max time.Duration
	}{
		{"?timeout=10s", 8 * time.Second, 9 * time.Second},
		{"?timeout=3s", 2 * time.Second, 2400 * time.Millisecond},
		{"", 8 * time.Second, 9 * time.Second},
		{"?timeout=bogus", 8 * time.Second, 9 * time.Second},
	} {
		req, _ := http.NewRequest(http.MethodPost, "/validate"+tt.query, nil)
		h.ServeHTTP(nil, req)
		if got < tt.min || got > tt.max {
			t.Errorf("%q: deadline in %s, want between %s and %s", tt.query, got, tt.min, tt.max)
		}
	}
}

func TestNoPinWhenValidationWillRefuse(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	resp := b.mutate.Handle(context.Background(), request(t, admissionv1.Create, pod("team-a", b.open.Host+"/arm/app:v1"), nil, ""))
	if len(resp.Patches) != 0 {
		t.Errorf("pinned an image the validating webhook refuses: %+v", resp.Patches)
	}
	resp = b.mutate.Handle(context.Background(), request(t, admissionv1.Create, pod("relaxed", b.open.Host+"/arm/app:v1"), nil, ""))
	if len(resp.Patches) != 1 {
		t.Errorf("warn mode: want the pin (the pod is admitted), got %+v", resp.Patches)
	}
}

// TestRolloutStormCostsOneRequestPerImage: 100 Pods of one new image and 10
// other images, all reviewed at once with cold caches, cost one HEAD per
// image, one GET per new digest for the platform rule and, for the pull
// path, one GET per platform the nodes pull and one HEAD per blob of it.
func TestRolloutStormCostsOneRequestPerImage(t *testing.T) {
	b := newBed(t, withNodes("amd64", "arm64"))
	for i := range 10 {
		b.open.Index(fmt.Sprintf("other/app%d", i), "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	}
	b.open.Reset()
	var wg sync.WaitGroup
	for i := range 110 {
		img := b.open.Host + "/multi/app:v1"
		if i >= 100 {
			img = fmt.Sprintf("%s/other/app%d:v1", b.open.Host, i-100)
		}
		p := pod("team-a", img)
		p.Name = fmt.Sprintf("web-%d", i)
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
		req := request(t, admissionv1.Create, p, nil, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp := b.validate.Handle(context.Background(), req); !resp.Allowed || len(resp.Warnings) > 0 {
				t.Errorf("%s: %+v", img, resp.AdmissionResponse)
			}
		}()
	}
	wg.Wait()
	if n := b.open.Count(http.MethodHead, "/manifests/"); n != 11 {
		t.Errorf("HEAD manifests = %d, want 11 (one per image)", n)
	}
	if n := b.open.Count(http.MethodGet, "/manifests/"); n != 33 {
		t.Errorf("GET manifests = %d, want 33 (per new digest: the index, for its platforms; its amd64 and arm64 manifests)", n)
	}
	if n := b.open.Count(http.MethodHead, "/blobs/"); n != 44 {
		t.Errorf("HEAD blobs = %d, want 44 (per new digest: config and one layer of 2 platforms)", n)
	}
}

// toHost sends every request to one host over plain HTTP, below the
// authentication layer: "index.docker.io" is served by a test registry.
type toHost string

func (h toHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = "http", string(h)
	return http.DefaultTransport.RoundTrip(r)
}

func TestDockerHubAnonymous(t *testing.T) {
	hub := registrytest.New(t)
	hub.Image("library/nginx", "1.27", "linux", "amd64")
	res, err := registry.NewResolver(registry.WithTransport(toHost(hub.Host)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	hubSecret := pullSecret("team-a", "hub", "https://index.docker.io/v1/", "u", "p")
	c := fake.NewClientBuilder().WithObjects(ns("team-a", nil), hubSecret).Build()
	h := NewHandler(policy.NewChecker(cfg, res), NewClientCluster(c, c), false, "", nil)

	p := pod("team-a", "nginx:1.27")
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	resp := h.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[dockerhub-anonymous]") ||
		!strings.Contains(resp.Result.Message, "toomanyrequests") {
		t.Errorf("anonymous Docker Hub pull: %+v", resp.Result)
	}
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "hub"}}
	if resp := h.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); !resp.Allowed {
		t.Errorf("with a Docker Hub pull secret: %+v", resp.Result)
	}
}

func TestSkipAndNodeCredentials(t *testing.T) {
	b := newBed(t, withNodes("amd64"), func(cfg *policy.Config, _ *[]client.Object) {
		cfg.Registries.Skip = []string{"127.0.0.1:*/team/*"}
		cfg.Registries.NodeCredentials = []string{"127.0.0.1:*"}
	})
	b.open.Reset()
	p := pod("team-a", b.open.Host+"/team/api:v9.9.9")
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); !resp.Allowed || len(resp.Warnings) > 0 {
		t.Errorf("skipped image: %+v", resp.AdmissionResponse)
	}
	if n := b.open.Count("", ""); n != 0 {
		t.Errorf("skipped image looked up: %d requests", n)
	}
	// The private registry is on a host whose auth is the nodes' business.
	p = pod("team-a", b.private.Host+"/other/secret:v1")
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
	if !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, " "), "cannot verify: nodes pull from") {
		t.Errorf("node-credential registry: %+v", resp.AdmissionResponse)
	}
}

// hostileErrors is a Cluster whose secret reads fail with an error quoting
// escape sequences, as an error built from a user's object can.
type hostileErrors struct{ Cluster }

func (hostileErrors) Secret(context.Context, string, string) (*corev1.Secret, error) {
	return nil, errors.New("secret \x1b]0;owned\x07\x1b[2J\nWarning: forged line\u202e")
}

// TestFailOpenWarningIsSanitized: the fail-open warning quotes an error,
// which may carry a user's bytes; it reaches kubectl like every other
// warning, so it is sanitized like them.
func TestFailOpenWarningIsSanitized(t *testing.T) {
	b := newBed(t)
	h := NewHandler(b.checker, hostileErrors{b.cluster}, false, "", nil)
	p := pod("team-a", b.open.Host+"/team/api:v1.4.2")
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	resp := h.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
	if !resp.Allowed || len(resp.Warnings) != 1 {
		t.Fatalf("response = %+v", resp.AdmissionResponse)
	}
	for _, r := range resp.Warnings[0] {
		if r < 0x20 || r == 0x7f || r == '\u202e' {
			t.Errorf("warning %q carries control character %U", resp.Warnings[0], r)
		}
	}
	if !strings.Contains(resp.Warnings[0], "forged line") {
		t.Errorf("warning %q lost the error's text", resp.Warnings[0])
	}
}

// TestMirrorFallthroughToDockerHub: an image the Docker Hub mirror lacks is
// asked of Docker Hub itself, as containerd does; Docker Hub not answering
// is "cannot verify", never a denial. The bed's Docker Hub is a closed
// port, so the fallthrough is observed, not the real index.docker.io.
func TestMirrorFallthroughToDockerHub(t *testing.T) {
	b := newBed(t)
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, pod("team-a", "nginx:9.9"), nil, ""))
	if !resp.Allowed || !slices.ContainsFunc(resp.Warnings, func(w string) bool { return strings.Contains(w, "cannot verify") }) {
		t.Errorf("allowed %v, warnings %q; want allowed, cannot verify", resp.Allowed, resp.Warnings)
	}
	if b.open.Count("", "/library/nginx/manifests/9.9") == 0 {
		t.Error("the mirror was never asked")
	}
	if !slices.ContainsFunc(b.hub.Asked(), func(a string) bool { return strings.HasPrefix(a, "index.docker.io/v2/") }) {
		t.Errorf("Docker Hub was never asked: %q", b.hub.Asked())
	}
}
