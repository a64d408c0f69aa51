package webhook

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// TestSubresourcesNeverLookedUp: subresources that cannot change an image
// are allowed without a single registry request, even when the object the
// API server sends carries an image that does not exist.
func TestSubresourcesNeverLookedUp(t *testing.T) {
	// Objects are built once with a placeholder host; each case gets its
	// own bed, so no cache answers for a lookup that should not happen.
	const host = "registry.placeholder"
	missing := host + "/team/api:v9.9.9"
	badPod := withVolume(pod("team-a", missing), "models", missing)
	badPod.Spec.InitContainers = []corev1.Container{{Name: "log", Image: missing, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	oldPod := pod("team-a", host+"/team/api:v1.4.1")
	badDeploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: badPod.Spec}}}
	oldDeploy := badDeploy.DeepCopy()
	oldDeploy.Spec.Template.Spec = oldPod.Spec
	scale := &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "api"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	binding := &corev1.Binding{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Binding"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-0-amd64"}}

	for _, tt := range []struct {
		resource, subresource string
		op                    admissionv1.Operation
		obj, old              runtime.Object
	}{
		{"pods", "resize", admissionv1.Update, badPod, oldPod},
		{"pods", "status", admissionv1.Update, badPod, oldPod},
		{"pods", "binding", admissionv1.Create, binding, nil},
		// The API server sends the parent's kind for some subresources:
		// a Deployment object under deployments/status must not be checked.
		{"deployments", "status", admissionv1.Update, badDeploy, oldDeploy},
		{"deployments", "scale", admissionv1.Update, scale, scale},
		{"statefulsets", "scale", admissionv1.Update, scale, scale},
		{"replicasets", "scale", admissionv1.Update, scale, scale},
		{"replicationcontrollers", "scale", admissionv1.Update, scale, scale},
		// Even a Deployment object sent under */scale (a conversion the
		// API server does not make, but a future one might) is not looked up.
		{"deployments", "scale", admissionv1.Update, badDeploy, oldPod},
	} {
		for _, mutating := range []bool{false, true} {
			name := fmt.Sprintf("%s/%s mutating=%v", tt.resource, tt.subresource, mutating)
			t.Run(name, func(t *testing.T) {
				b := newBed(t, withNodes("amd64"))
				h := b.validate
				if mutating {
					h = b.mutate
				}
				req := request(t, tt.op, tt.obj, tt.old, tt.subresource)
				req.Resource = metav1.GroupVersionResource{Resource: tt.resource}
				req.Object.Raw = []byte(strings.ReplaceAll(string(req.Object.Raw), host, b.open.Host))
				req.OldObject.Raw = []byte(strings.ReplaceAll(string(req.OldObject.Raw), host, b.open.Host))
				b.open.Reset()
				resp := h.Handle(context.Background(), req)
				if !resp.Allowed || len(resp.Warnings) != 0 || len(resp.Patches) != 0 || resp.Result.Message != "" {
					t.Errorf("response = %+v patches %v", resp.AdmissionResponse, resp.Patches)
				}
				if n := b.open.Count("", ""); n != 0 {
					t.Errorf("%d registry requests", n)
				}
			})
		}
	}
}

// TestConfigurationsListNoImagelessSubresources: the webhook
// configurations never ask the API server for a subresource that cannot
// change an image (*/scale, */status, pods/resize, pods/binding...), nor
// for wildcards that would include them: only pods/ephemeralcontainers,
// which adds containers.
func TestConfigurationsListNoImagelessSubresources(t *testing.T) {
	for _, pin := range []bool{false, true} {
		r := inCluster
		r.PinTemplates = pin
		v, m := r.Configurations()
		var rules []admissionregv1.RuleWithOperations
		for _, w := range v.Webhooks {
			rules = append(rules, w.Rules...)
		}
		for _, w := range m.Webhooks {
			rules = append(rules, w.Rules...)
		}
		for _, rule := range rules {
			for _, res := range rule.Resources {
				if strings.Contains(res, "*") || (strings.Contains(res, "/") && res != "pods/ephemeralcontainers") {
					t.Errorf("pinTemplates=%v: rule lists %q", pin, res)
				}
			}
		}
	}
}
