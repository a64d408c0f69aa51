package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// withVolume adds an image volume to p (mounted by its first container,
// as a real pod would).
func withVolume(p *corev1.Pod, name, reference string) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name,
		VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: reference}}})
	if len(p.Spec.Containers) > 0 {
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/" + name})
	}
	return p
}

// withSidecar adds an init container with restartPolicy: Always.
func withSidecar(p *corev1.Pod, name, image string) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: name, Image: image, RestartPolicy: &always})
	return p
}

func TestImageVolumes(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	good := b.open.Host + "/team/api:v1.4.1"
	missing := b.open.Host + "/team/api:v1.4.2"

	t.Run("not found is refused naming the volume", func(t *testing.T) {
		resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, withVolume(pod("team-a", good), "models", missing), nil, ""))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `[not-found] volume "models" image "`+missing+`"`) {
			t.Errorf("response = %+v", resp.Result)
		}
		if got := resp.AuditAnnotations["findings"]; !strings.Contains(got, "not-found:deny:volume/models") {
			t.Errorf("findings annotation = %q", got)
		}
	})
	t.Run("deployment template", func(t *testing.T) {
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
			Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: withVolume(pod("team-a", good), "models", missing).Spec}}}
		resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, d, nil, ""))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `deployment/api would fail to pull 1 image(s):`+"\n"+`[not-found] volume "models"`) {
			t.Errorf("response = %+v", resp.Result)
		}
	})
	t.Run("pinned in the pod", func(t *testing.T) {
		req := request(t, admissionv1.Create, withVolume(pod("team-a", b.open.Host+"/multi/app:v1"), "models", good), nil, "")
		resp := b.mutate.Handle(context.Background(), req)
		var paths []string
		for _, op := range resp.Patches {
			paths = append(paths, op.Operation+" "+op.Path)
		}
		if !slices.Contains(paths, "replace /spec/volumes/0/image/reference") {
			t.Fatalf("patches = %v", paths)
		}
		patched, got := applyPodPatch(t, req, resp)
		ref := got.Spec.Volumes[0].Image.Reference
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(good) + `@sha256:[0-9a-f]{64}$`).MatchString(ref) {
			t.Errorf("volume reference after the patch = %q", ref)
		}
		pinnedIsStable(t, b, req, patched)
	})
	t.Run("pullPolicy Never is never looked up", func(t *testing.T) {
		p := withVolume(pod("team-a", good), "models", missing)
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
		p.Spec.Volumes[0].Image.PullPolicy = corev1.PullNever
		b.open.Reset()
		if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); !resp.Allowed || len(resp.Warnings) != 0 {
			t.Errorf("response = %+v", resp.AdmissionResponse)
		}
		if n := b.open.Count("", ""); n != 0 {
			t.Errorf("%d registry requests for pullPolicy Never", n)
		}
	})
	t.Run("update looks up only the changed reference", func(t *testing.T) {
		old := withVolume(withVolume(pod("team-a", missing), "gone", missing), "models", good)
		upd := old.DeepCopy()
		upd.Labels = map[string]string{"edited": "true"}
		b.open.Reset()
		if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, "")); !resp.Allowed {
			t.Errorf("unchanged: %+v", resp.Result)
		}
		if n := b.open.Count("", ""); n != 0 {
			t.Errorf("%d registry requests for an UPDATE that changed no reference", n)
		}
		upd.Spec.Volumes[1].Image.Reference = b.open.Host + "/team/api:v1.4.3"
		resp := b.validate.Handle(context.Background(), request(t, admissionv1.Update, upd, old, ""))
		if resp.Allowed || strings.Contains(resp.Result.Message, `"gone"`) || !strings.Contains(resp.Result.Message, `volume "models" image`) {
			t.Errorf("changed reference: %+v", resp.Result)
		}
	})
}

// pinnedIsStable: reinvoked on the pinned Pod, the mutating webhook pins
// nothing again, and the validating one accepts it without a warning (no
// mutable-tag warning for what is now pinned).
func pinnedIsStable(t *testing.T, b *bed, req admission.Request, patched []byte) {
	t.Helper()
	req.Object.Raw = patched
	if again := b.mutate.Handle(context.Background(), req); len(again.Patches) != 0 {
		t.Errorf("second pass patched again: %+v", again.Patches)
	}
	if v := b.validate.Handle(context.Background(), req); !v.Allowed || len(v.Warnings) != 0 {
		t.Errorf("pinned pod: allowed %v warnings %v", v.Allowed, v.Warnings)
	}
}

// applyPodPatch applies the response's JSON patch to the request's Pod, as
// the API server does, and returns the result as bytes and decoded.
func applyPodPatch(t *testing.T, req admission.Request, resp admission.Response) ([]byte, *corev1.Pod) {
	t.Helper()
	patched := applyPatch(t, resp, req.Object.Raw)
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	return patched, &got
}

// TestImageVolumeCredentials: the kubelet pulls image volumes with the
// pod's pull secrets (kuberuntime getImageVolumes passes the same
// pullSecrets as for containers), so a volume in a private registry is
// looked up with them, and a missing secret is the same finding as for a
// container.
func TestImageVolumeCredentials(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	private := b.private.Host + "/team/secret:v1"
	open := b.open.Host + "/multi/app:v1"
	withSecret := func(p *corev1.Pod, name string) *corev1.Pod {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: name}}
		return p
	}

	b.private.Reset()
	resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, withSecret(withVolume(pod("team-a", open), "models", private), "regcred"), nil, ""))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("with the pod's secret: %+v", resp.AdmissionResponse)
	}
	if auths := b.private.Authorizations(); !slices.ContainsFunc(auths, func(a string) bool { return strings.HasPrefix(a, "Basic ") }) {
		t.Errorf("the volume was not looked up with the pod's secret: authorizations %q", auths)
	}

	// A template's volume uses the service account's secrets when the
	// template lists none, as its containers do.
	d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: withVolume(pod("team-a", open), "models", private).Spec}}}
	d.Spec.Template.Spec.ServiceAccountName = "builder"
	if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, d, nil, "")); !resp.Allowed {
		t.Errorf("template with the service account's secret: %+v", resp.Result)
	}

	// Missing secret: the volume's finding is the container's, word for word.
	asContainer := b.validate.Handle(context.Background(), request(t, admissionv1.Create, withSecret(pod("team-a", private), "absent"), nil, ""))
	asVolume := b.validate.Handle(context.Background(), request(t, admissionv1.Create, withSecret(withVolume(pod("team-a", open), "models", private), "absent"), nil, ""))
	if asContainer.Allowed || asVolume.Allowed {
		t.Fatalf("missing secret allowed: container %v, volume %v", asContainer.Allowed, asVolume.Allowed)
	}
	want := strings.Replace(asContainer.Result.Message, `container "c0"`, `volume "models"`, 1)
	if !strings.Contains(want, `"absent" referenced by the pod do not exist`) || asVolume.Result.Message != want {
		t.Errorf("volume with a missing secret:\n%s\nwant:\n%s", asVolume.Result.Message, want)
	}
}

// pushArtifact pushes an OCI artifact (KEP-4639's "OCI object": a
// manifest whose config says nothing of a platform) as repo:tag.
func pushArtifact(t *testing.T, host, repo, tag, configType string, config []byte) {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer(config, types.MediaType(configType))
	data := static.NewLayer([]byte("weights"), "application/vnd.example.model.layer.v1.tar")
	var descs []v1.Descriptor
	for _, l := range []v1.Layer{cfg, data} {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
		d, err := partial.Descriptor(l)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, *d)
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"artifactType": "application/vnd.example.model.v1", "config": descs[0], "layers": descs[1:]})
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("pushing the artifact: %s", resp.Status)
	}
}

// TestImageVolumeArtifact: an image volume may reference an OCI artifact,
// which states no platform. It is never refused nor warned about for
// platform, whatever the nodes, and is pinned like an image.
func TestImageVolumeArtifact(t *testing.T) {
	for _, tt := range []struct{ name, configType, config string }{
		{"empty config", "application/vnd.oci.empty.v1+json", "{}"},
		{"own config, not an image config", "application/vnd.example.model.config.v1+binary", "\x00\x01 not json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, withNodes("arm64", "s390x"))
			pushArtifact(t, b.open.Host, "models/llm", "v1", tt.configType, []byte(tt.config))
			p := withVolume(pod("team-a", b.open.Host+"/multi/app:v1"), "models", b.open.Host+"/models/llm:v1")
			p.Spec.Containers[0].Image = b.open.Host + "/multi/app:v1@sha256:" + strings.Repeat("0", 64)
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
			b.open.Reset()
			resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
			if !resp.Allowed || len(resp.Warnings) != 0 {
				t.Errorf("artifact volume: %+v", resp.AdmissionResponse)
			}
			// An artifact's config says nothing of platforms: not fetched.
			if n := b.open.Count(http.MethodGet, "/blobs/"); n != 0 {
				t.Errorf("%d blob GETs for an artifact's platforms", n)
			}
			if m := b.mutate.Handle(context.Background(), request(t, admissionv1.Create, p, nil, "")); len(m.Patches) != 1 {
				t.Errorf("artifact volume not pinned: %+v", m.Patches)
			}
		})
	}
}
