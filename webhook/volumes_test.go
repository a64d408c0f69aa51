package webhook

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
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
		got := applyPatch(t, req, resp)
		ref := got.Spec.Volumes[0].Image.Reference
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(good) + `@sha256:[0-9a-f]{64}$`).MatchString(ref) {
			t.Errorf("volume reference after the patch = %q", ref)
		}
		// Reinvocation pins nothing again; validation accepts the result.
		req.Object.Raw, _ = json.Marshal(got)
		if again := b.mutate.Handle(context.Background(), req); len(again.Patches) != 0 {
			t.Errorf("second pass patched again: %+v", again.Patches)
		}
		if v := b.validate.Handle(context.Background(), req); !v.Allowed || len(v.Warnings) != 0 {
			t.Errorf("pinned pod: allowed %v warnings %v", v.Allowed, v.Warnings)
		}
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

func applyPatch(t *testing.T, req admission.Request, resp admission.Response) *corev1.Pod {
	t.Helper()
	patchJSON, _ := json.Marshal(resp.Patches)
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(req.Object.Raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	return &got
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
