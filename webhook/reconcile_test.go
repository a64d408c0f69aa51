package webhook

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pullsafe/pullsafe/policy"
)

// shipped are the configurations as the manifests install them, with a
// caBundle injected and a webhook pullsafe does not own added by someone.
func shipped() (*admissionregv1.ValidatingWebhookConfiguration, *admissionregv1.MutatingWebhookConfiguration) {
	v, m := inCluster.Configurations()
	for _, cc := range []*admissionregv1.WebhookClientConfig{&v.Webhooks[0].ClientConfig, &m.Webhooks[0].ClientConfig} {
		cc.CABundle = []byte("injected CA")
	}
	v.Annotations = map[string]string{"cert-manager.io/inject-ca-from": "pullsafe-system/pullsafe"}
	other := m.Webhooks[0].DeepCopy()
	other.Name = "other.example.com"
	other.Rules = nil
	m.Webhooks = append(m.Webhooks, *other)
	return v, m
}

func TestReconcileTouchesOnlyRulesAndSelector(t *testing.T) {
	ctx := context.Background()
	v0, m0 := shipped()
	updates := 0
	conflicted := false
	c := fake.NewClientBuilder().WithObjects(v0, m0).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if !conflicted { // another replica (or the caBundle injector) wrote first
				conflicted = true
				return apierrors.NewConflict(schema.GroupResource{Resource: "mutatingwebhookconfigurations"}, obj.GetName(), nil)
			}
			updates++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	cfg := policy.DefaultConfig()
	cfg.Pin.Templates = true
	cfg.Namespaces.Exclude = []string{"ci"}
	reg := RegistrationFor(cfg, "pullsafe", "pullsafe-system")

	changed, err := reg.Reconcile(ctx, c)
	if err != nil || !changed || updates != 2 || !conflicted {
		t.Fatalf("Reconcile: changed %v, %d update(s) after a conflict (%v), %v; want 2", changed, updates, conflicted, err)
	}
	var v admissionregv1.ValidatingWebhookConfiguration
	var m admissionregv1.MutatingWebhookConfiguration
	for _, obj := range []client.Object{&v, &m} {
		if err := c.Get(ctx, client.ObjectKey{Name: "pullsafe"}, obj); err != nil {
			t.Fatal(err)
		}
	}
	wantV, wantM := v0.DeepCopy(), m0.DeepCopy()
	wantSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn, Values: []string{"ci", "kube-node-lease", "kube-system", "pullsafe-system"}}}}
	all := withDefaultScope(append(append([]admissionregv1.RuleWithOperations{}, podRules...), templateRules...))
	wantV.Webhooks[0].Rules, wantV.Webhooks[0].NamespaceSelector = all, wantSel
	wantM.Webhooks[0].Rules, wantM.Webhooks[0].NamespaceSelector = all, wantSel
	ignoreMeta := cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "ObjectMeta.ResourceVersion" || p.String() == "TypeMeta" }, cmp.Ignore())
	if diff := cmp.Diff(wantV, &v, ignoreMeta); diff != "" {
		t.Errorf("validating configuration (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantM, &m, ignoreMeta); diff != "" {
		t.Errorf("mutating configuration (-want +got):\n%s", diff)
	}

	// Every replica runs it: nothing left to change, nothing written.
	before := updates
	if changed, err := reg.Reconcile(ctx, c); err != nil || changed || updates != before {
		t.Errorf("second Reconcile: changed %v, %d more update(s), %v", changed, updates-before, err)
	}

	// Back to the default: templates leave the mutating rules again.
	if _, err := RegistrationFor(policy.DefaultConfig(), "pullsafe", "pullsafe-system").Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "pullsafe"}, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v1/pods CREATE,UPDATE", "v1/pods/ephemeralcontainers UPDATE"}, ruleNames(m.Webhooks[0].Rules)); diff != "" {
		t.Errorf("mutating rules after pin.templates false (-want +got):\n%s", diff)
	}
	if string(m.Webhooks[0].ClientConfig.CABundle) != "injected CA" || len(m.Webhooks) != 2 {
		t.Errorf("caBundle %q, %d webhooks: not left alone", m.Webhooks[0].ClientConfig.CABundle, len(m.Webhooks))
	}
}

// Reconcile never creates: the manifests (or the out-of-cluster
// registration) do. A configuration without pullsafe's webhook is an error.
func TestReconcileMissing(t *testing.T) {
	ctx := context.Background()
	reg := RegistrationFor(policy.DefaultConfig(), "pullsafe", "pullsafe-system")
	c := fake.NewClientBuilder().Build()
	if _, err := reg.Reconcile(ctx, c); !apierrors.IsNotFound(err) {
		t.Errorf("absent configurations: %v, want not found", err)
	}
	var list admissionregv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 0 {
		t.Errorf("Reconcile created %d configuration(s) (%v)", len(list.Items), err)
	}
	v, m := shipped()
	v.Webhooks[0].Name = "renamed.example.com"
	c = fake.NewClientBuilder().WithObjects(v, m).Build()
	if _, err := reg.Reconcile(ctx, c); err == nil {
		t.Error("a configuration without validate.pullsafe.io reconciled without error")
	}
}

// An operator's own additions to the namespaceSelector (a kustomize patch
// excluding namespaces by label) stay: pullsafe sets only its namespace
// name exclusion. Wiping them would send namespaces the operator opted out
// back through pullsafe, to be denied in enforce mode.
func TestReconcileKeepsTheOperatorsSelector(t *testing.T) {
	ctx := context.Background()
	v0, m0 := shipped()
	theirs := []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"sandbox"}}}
	for _, sel := range []*metav1.LabelSelector{v0.Webhooks[0].NamespaceSelector, m0.Webhooks[0].NamespaceSelector} {
		sel.MatchExpressions = append(theirs[:1:1], sel.MatchExpressions...)
		sel.MatchLabels = map[string]string{"team": "payments"}
	}
	c := fake.NewClientBuilder().WithObjects(v0, m0).Build()
	cfg := policy.DefaultConfig()
	cfg.Namespaces.Exclude = []string{"ci"}
	if _, err := RegistrationFor(cfg, "pullsafe", "pullsafe-system").Reconcile(ctx, c); err != nil {
		t.Fatal(err)
	}
	want := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}, MatchExpressions: []metav1.LabelSelectorRequirement{theirs[0],
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"ci", "kube-node-lease", "kube-system", "pullsafe-system"}}}}
	var v admissionregv1.ValidatingWebhookConfiguration
	var m admissionregv1.MutatingWebhookConfiguration
	for _, obj := range []client.Object{&v, &m} {
		if err := c.Get(ctx, client.ObjectKey{Name: "pullsafe"}, obj); err != nil {
			t.Fatal(err)
		}
	}
	for name, got := range map[string]*metav1.LabelSelector{"validating": v.Webhooks[0].NamespaceSelector, "mutating": m.Webhooks[0].NamespaceSelector} {
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s namespaceSelector (-want +got):\n%s", name, d)
		}
	}
}
