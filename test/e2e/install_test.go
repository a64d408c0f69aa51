//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/test/bed"
	"github.com/pullsafe/pullsafe/webhook"
)

// render returns the overlay's objects as `kubectl kustomize` renders them.
func render(t *testing.T, overlay string) (string, []*unstructured.Unstructured) {
	t.Helper()
	out, errOut, err := b.Run("", "kustomize", filepath.Join(b.Root(), "manifests", "overlays", overlay))
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", overlay, err, errOut)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(out, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return out, objs
}

func typed[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []*T {
	t.Helper()
	var out []*T
	for _, u := range objs {
		if u.GetKind() != kind {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		t.Fatalf("no %s rendered", kind)
	}
	return out
}

// TestManifests renders every overlay, asserts the safety properties on the
// YAML (so no edit can silently drop one), and has the API server accept it
// with a server-side dry run.
func TestManifests(t *testing.T) {
	ctx := context.Background()
	// Namespaced objects need their namespace to exist for a dry run.
	if err := b.Namespace(ctx, "pullsafe-system", nil); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	for _, overlay := range []string{"warn", "enforce", "cert-manager"} {
		t.Run(overlay, func(t *testing.T) {
			_, objs := render(t, overlay)
			checkSafety(t, overlay, objs)

			// cert-manager's CRDs are not installed on the test API server:
			// those two objects are checked above, the rest by the server.
			var docs []string
			for _, u := range objs {
				if u.GetAPIVersion() == "cert-manager.io/v1" {
					continue
				}
				y, _ := yaml.Marshal(u.Object)
				docs = append(docs, string(y))
			}
			out, errOut, err := b.Run(strings.Join(docs, "---\n"), "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatalf("API server refused the %s overlay: %v\n%s%s", overlay, err, out, errOut)
			}
			if n := strings.Count(out, "(server dry run)"); n != len(docs) {
				t.Errorf("%d of %d objects accepted:\n%s", n, len(docs), out)
			}
		})
	}
}

func checkSafety(t *testing.T, overlay string, objs []*unstructured.Unstructured) {
	t.Helper()
	d := typed[appsv1.Deployment](t, objs, "Deployment")[0]
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	sc, psc := c.SecurityContext, spec.SecurityContext
	checks := []struct {
		what string
		ok   bool
	}{
		{"2 replicas", ptr.Deref(d.Spec.Replicas, 0) == 2},
		{"maxUnavailable 0", d.Spec.Strategy.RollingUpdate != nil && d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() == 0},
		{"pod anti-affinity", spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil},
		{"runAsNonRoot", psc != nil && ptr.Deref(psc.RunAsNonRoot, false)},
		{"seccomp RuntimeDefault", psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"no privilege escalation", sc != nil && !ptr.Deref(sc.AllowPrivilegeEscalation, true)},
		{"read-only root FS", sc != nil && ptr.Deref(sc.ReadOnlyRootFilesystem, false)},
		{"all capabilities dropped", sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Drop) == 1 && sc.Capabilities.Drop[0] == "ALL"},
		{"readiness probe on /readyz", c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path == "/readyz"},
		{"liveness probe on /healthz", c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/healthz"},
		{"memory request and limit", !c.Resources.Requests.Memory().IsZero() && !c.Resources.Limits.Memory().IsZero()},
		{"shutdown delay", strings.Contains(strings.Join(c.Args, " "), "--shutdown-delay=")},
		{"PDB minAvailable 1", typed[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")[0].Spec.MinAvailable.IntValue() == 1},
	}
	for _, v := range typed[admissionregv1.ValidatingWebhookConfiguration](t, objs, "ValidatingWebhookConfiguration") {
		w := v.Webhooks[0]
		checks = append(checks,
			struct {
				what string
				ok   bool
			}{"validating failurePolicy Ignore", *w.FailurePolicy == admissionregv1.Ignore},
			struct {
				what string
				ok   bool
			}{"validating sideEffects None, timeout <= 10", *w.SideEffects == admissionregv1.SideEffectClassNone && *w.TimeoutSeconds <= 10},
			struct {
				what string
				ok   bool
			}{"excludes kube-system, kube-node-lease, pullsafe-system",
				strings.Join(w.NamespaceSelector.MatchExpressions[0].Values, ",") == "kube-node-lease,kube-system,pullsafe-system"})
	}
	for _, m := range typed[admissionregv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration") {
		w := m.Webhooks[0]
		checks = append(checks, struct {
			what string
			ok   bool
		}{"mutating Ignore, None, IfNeeded", *w.FailurePolicy == admissionregv1.Ignore &&
			*w.SideEffects == admissionregv1.SideEffectClassNone && *w.ReinvocationPolicy == admissionregv1.IfNeededReinvocationPolicy})
	}
	// Secrets: get only, cluster-wide; never list or watch.
	for _, cr := range typed[rbacv1.ClusterRole](t, objs, "ClusterRole") {
		for _, r := range cr.Rules {
			for _, res := range r.Resources {
				if res == "secrets" {
					checks = append(checks, struct {
						what string
						ok   bool
					}{"cluster-wide secrets: get only", strings.Join(r.Verbs, ",") == "get"})
				}
			}
		}
	}
	if overlay == "cert-manager" {
		checks = append(checks, struct {
			what string
			ok   bool
		}{"cert-manager: pullsafe manages no certificates", !strings.Contains(strings.Join(c.Args, " "), "--cert-secret")})
	} else {
		checks = append(checks, struct {
			what string
			ok   bool
		}{"pullsafe manages its certificate", strings.Contains(strings.Join(c.Args, " "), "--cert-secret=pullsafe-certs")})
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s overlay: %s: violated", overlay, c.what)
		}
	}
}

// TestInClusterCertificatesTwoReplicasRace starts two `pullsafe serve`
// processes in in-cluster certificate mode at the same moment: one CA wins,
// both serve a certificate from the same Secret, and both webhook
// configurations carry that CA. Meanwhile both replicas bring the
// configurations' namespaceSelector in line with the config (its own
// namespace excluded) without undoing the injected caBundle.
func TestInClusterCertificatesTwoReplicasRace(t *testing.T) {
	ctx := context.Background()
	const ns, name = "pullsafe-certs-e2e", "pullsafe-incluster"
	if err := b.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	// Configurations as the manifests create them, but with pullsafe's
	// namespace-name exclusion missing this namespace until pullsafe
	// reconciles them (it owns that list, not the rest of the selector;
	// the Service named does not exist, and failurePolicy is Ignore).
	reg := webhook.Registration{Name: name, Service: &admissionregv1.ServiceReference{Namespace: ns, Name: "pullsafe", Port: ptr.To[int32](443)}}
	kc, err := client.New(b.RestConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, m := reg.Configurations()
	stale := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-node-lease", "kube-system"}}}}
	v.Webhooks[0].NamespaceSelector, m.Webhooks[0].NamespaceSelector = stale, stale.DeepCopy()
	for _, obj := range []client.Object{v, m} {
		if err := kc.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kc.Delete(context.Background(), obj) })
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ports []int
		errs  []error
	)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			port, _ := bed.FreePort()
			p, err := b.RunPullsafe(ctx, fmt.Sprintf("replica-%d", i), "--namespace", ns, "--cert-secret", "pullsafe-certs",
				"--service-name", "pullsafe", "--webhook-config-name", name, "--port", fmt.Sprint(port), "--cert-dir", t.TempDir())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			t.Cleanup(p.Stop)
			ports = append(ports, port)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	secret, err := b.Client.CoreV1().Secrets(ns).Get(ctx, "pullsafe-certs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := secret.Data["ca.crt"]
	wantSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-node-lease", "kube-system", ns}}}}
	// Injection runs right after start-up; allow it a moment.
	deadline := time.Now().Add(20 * time.Second)
	for {
		vc, err1 := b.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		mc, err2 := b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err1 == nil && err2 == nil && bytes.Equal(vc.Webhooks[0].ClientConfig.CABundle, ca) && bytes.Equal(mc.Webhooks[0].ClientConfig.CABundle, ca) &&
			equality.Semantic.DeepEqual(vc.Webhooks[0].NamespaceSelector, wantSel) && equality.Semantic.DeepEqual(mc.Webhooks[0].NamespaceSelector, wantSel) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want both configurations with the Secret's CA and the selector %v; got %v, %v", wantSel, vc, mc)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want, _ := pem.Decode(secret.Data["tls.crt"])
	for _, port := range ports {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Raw
		conn.Close()
		if !bytes.Equal(got, want.Bytes) {
			t.Errorf("replica on port %d serves a certificate that is not the Secret's", port)
		}
	}
}
