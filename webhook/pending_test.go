package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestTemplateCredentialsNotYetCreated: one rule for a template's pull
// secrets, wherever they are named. A pull secret or service account that
// does not exist yet in the template's namespace is "cannot verify" with a
// warning naming it and the namespace (kubectl apply -f dir/ applies
// deployment.yaml before secret.yaml; patchers add pull secrets to service
// accounts moments later); other namespaces are never looked in. A Pod's
// missing secret stays a denial: its kubelet pulls now.
func TestTemplateCredentialsNotYetCreated(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	c := b.cluster.direct.(client.Client)
	if err := c.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "patched"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "late"}}}); err != nil {
		t.Fatal(err)
	}
	private := b.private.Host + "/team/secret:v1"
	deploy := func(ns, sa string, secrets ...string) *appsv1.Deployment {
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: sa,
				Containers: []corev1.Container{{Name: "api", Image: private, ImagePullPolicy: corev1.PullAlways}}}}}}
		for _, s := range secrets {
			d.Spec.Template.Spec.ImagePullSecrets = append(d.Spec.Template.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		return d
	}
	tests := []struct {
		name    string
		obj     client.Object
		allowed bool
		want    string // in the warning (allowed) or the denial
	}{
		{"template's own pull secret not created yet", deploy("team-a", "", "late"), true,
			`cannot verify: authentication required and pull secret(s) "late" do not exist yet in namespace "team-a"`},
		{"template's service account not created yet", deploy("team-a", "ghost"), true,
			`cannot verify: authentication required and service account "ghost" does not exist yet in namespace "team-a"`},
		{"template's service account lists a pull secret not created yet", deploy("team-a", "patched"), true,
			`cannot verify: authentication required and pull secret(s) "late" do not exist yet in namespace "team-a"`},
		{"regcred exists in team-a only: team-b's template is not given it", deploy("team-b", "", "regcred"), true,
			`pull secret(s) "regcred" do not exist yet in namespace "team-b"`},
		{"a Pod's missing pull secret is a denial", func() client.Object {
			p := pod("team-a", private)
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "late"}}
			return p
		}(), false, `pull secret(s) "late" referenced by the pod do not exist in namespace "team-a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, tt.obj, nil, ""))
			said := strings.Join(resp.Warnings, "\n")
			if !resp.Allowed {
				said = resp.Result.Message
			}
			if resp.Allowed != tt.allowed || !strings.Contains(said, tt.want) {
				t.Errorf("allowed %v, want %v saying %q; got:\n%s", resp.Allowed, tt.allowed, tt.want, said)
			}
		})
	}
	// Once the secret exists, the same templates are admitted without a word.
	if err := c.Create(context.Background(), pullSecret("team-a", "late", b.private.Host, b.private.User, b.private.Pass)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*appsv1.Deployment{deploy("team-a", "", "late"), deploy("team-a", "patched")} {
		if resp := b.validate.Handle(context.Background(), request(t, admissionv1.Create, d, nil, "")); !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("after the secret is created: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
		}
	}
}
