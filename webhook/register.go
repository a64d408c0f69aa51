package webhook

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
)

// Paths the handlers are served on.
const (
	ValidatePath = "/validate"
	MutatePath   = "/mutate"
)

// Names of the webhooks pullsafe owns in its two configurations.
const (
	ValidatingWebhookName = "validate.pullsafe.io"
	MutatingWebhookName   = "pin.pullsafe.io"
)

// Registration describes the two webhook configurations pullsafe needs.
type Registration struct {
	Name string // name of both configurations, e.g. "pullsafe"
	// Either URL (out of cluster: https://127.0.0.1:9443) or Service.
	URL      string
	Service  *admissionregv1.ServiceReference
	CABundle []byte
	// Exclude are namespaces never sent to pullsafe (kube-system and
	// kube-node-lease are always added).
	Exclude []string
	// PinTemplates adds the workload kinds to the mutating webhook.
	PinTemplates bool
	// Workloads are the config's custom kinds: in the validating webhook's
	// rules, and in the mutating one's with PinTemplates.
	Workloads      []policy.WorkloadKind
	TimeoutSeconds int32
}

// RegistrationFor is what cfg asks of the webhook configurations: which
// kinds each webhook sees and which namespaces never reach pullsafe. name
// names both configurations; ownNamespace is always excluded. The caller
// adds the client config (URL or Service, CABundle). The manifests, the
// out-of-cluster registration and the in-cluster reconciler all start here.
func RegistrationFor(cfg *policy.Config, name, ownNamespace string) Registration {
	var exclude []string
	if ownNamespace != "" {
		exclude = append(exclude, ownNamespace)
	}
	return Registration{Name: name, Exclude: append(exclude, cfg.Namespaces.Exclude...), PinTemplates: cfg.Pin.Templates,
		Workloads: cfg.Workloads}
}

// podRules are the Pod operations both webhooks see.
var podRules = []admissionregv1.RuleWithOperations{
	{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
	{Operations: []admissionregv1.OperationType{admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}}},
}

// templateRules are the workloads whose pod templates are checked.
var templateRules = []admissionregv1.RuleWithOperations{
	{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
			Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}}},
	{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs", "cronjobs"}}},
	{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"replicationcontrollers"}}},
}

// customRules are the rules for the config's workloads: CREATE and UPDATE
// of the resource itself, never a subresource. Namespaced only: pull
// secrets live in the namespace of the object, and a cluster-scoped one
// has none to read.
func customRules(ks []policy.WorkloadKind) []admissionregv1.RuleWithOperations {
	out := make([]admissionregv1.RuleWithOperations, 0, len(ks))
	for _, k := range ks {
		out = append(out, admissionregv1.RuleWithOperations{
			Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
			Rule: admissionregv1.Rule{APIGroups: []string{k.APIGroup}, APIVersions: slices.Clone(k.Versions()),
				Resources: []string{k.Resource}, Scope: ptr.To(admissionregv1.NamespacedScope)}})
	}
	return out
}

// Configurations builds the validating and mutating configurations.
func (r Registration) Configurations() (*admissionregv1.ValidatingWebhookConfiguration, *admissionregv1.MutatingWebhookConfiguration) {
	excluded := map[string]bool{}
	for _, n := range policy.AlwaysExcluded {
		excluded[n] = true
	}
	for _, n := range r.Exclude {
		excluded[n] = true
	}
	names := make([]string, 0, len(excluded))
	for n := range excluded {
		names = append(names, n)
	}
	sort.Strings(names)
	selector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: names}}}
	timeout := r.TimeoutSeconds
	if timeout == 0 {
		timeout = int32(webhookTimeout / time.Second)
	}
	cc := func(path string) admissionregv1.WebhookClientConfig {
		c := admissionregv1.WebhookClientConfig{CABundle: r.CABundle}
		if r.URL != "" {
			c.URL = ptr.To(r.URL + path)
		} else if r.Service != nil {
			s := *r.Service
			s.Path = ptr.To(path)
			c.Service = &s
		}
		return c
	}
	common := func() (*admissionregv1.FailurePolicyType, *admissionregv1.MatchPolicyType, *admissionregv1.SideEffectClass) {
		return ptr.To(admissionregv1.Ignore), ptr.To(admissionregv1.Equivalent), ptr.To(admissionregv1.SideEffectClassNone)
	}
	fp, mp, se := common()
	all := slices.Concat(podRules, templateRules, customRules(r.Workloads))
	v := &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Labels: map[string]string{"app.kubernetes.io/name": "pullsafe"}},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name: ValidatingWebhookName, ClientConfig: cc(ValidatePath), Rules: all,
			FailurePolicy: fp, MatchPolicy: mp, SideEffects: se, NamespaceSelector: selector,
			TimeoutSeconds: ptr.To(timeout), AdmissionReviewVersions: []string{"v1"},
		}},
	}
	mutRules := podRules
	if r.PinTemplates {
		mutRules = all
	}
	fp, mp, se = common()
	m := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Labels: map[string]string{"app.kubernetes.io/name": "pullsafe"}},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name: MutatingWebhookName, ClientConfig: cc(MutatePath), Rules: mutRules,
			FailurePolicy: fp, MatchPolicy: mp, SideEffects: se, NamespaceSelector: selector.DeepCopy(),
			TimeoutSeconds: ptr.To(timeout), AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy: ptr.To(admissionregv1.IfNeededReinvocationPolicy),
		}},
	}
	return v, m
}

// Apply creates or updates both configurations.
func (r Registration) Apply(ctx context.Context, c client.Client) error {
	v, m := r.Configurations()
	for _, obj := range []client.Object{v, m} {
		if err := upsert(ctx, c, obj); err != nil {
			return fmt.Errorf("registering %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// Delete removes both configurations; absent ones are fine.
func (r Registration) Delete(ctx context.Context, c client.Client) error {
	v, m := r.Configurations()
	for _, obj := range []client.Object{v, m} {
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func upsert(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	return c.Update(ctx, obj)
}
