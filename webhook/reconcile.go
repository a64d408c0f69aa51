package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Reconcile brings the rules and namespaceSelector of pullsafe's webhook in
// each existing configuration in line with r, and touches nothing else:
// clientConfig and its caBundle belong to whoever injects them (pullsafe's
// certificate manager, cert-manager's cainjector), other webhooks and
// fields to whoever set them. Every replica runs it, so it writes only what
// differs; it reads afresh and retries on a conflict, and never creates a
// configuration. It reports whether it wrote.
func (r Registration) Reconcile(ctx context.Context, c client.Client) (bool, error) {
	v, m := r.Configurations()
	changed := false
	for _, want := range []client.Object{v, m} {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			// A fresh object each try: decoding into a used one keeps
			// fields the server no longer has.
			var cur client.Object = &admissionregv1.MutatingWebhookConfiguration{}
			if _, ok := want.(*admissionregv1.ValidatingWebhookConfiguration); ok {
				cur = &admissionregv1.ValidatingWebhookConfiguration{}
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(want), cur); err != nil {
				return err
			}
			diff, err := setOwned(cur, want)
			if err != nil || !diff {
				return err
			}
			if err := c.Update(ctx, cur); err != nil {
				return err
			}
			changed = true
			return nil
		})
		if err != nil {
			return changed, fmt.Errorf("webhook configuration %s (%T): %w", want.GetName(), want, err)
		}
	}
	return changed, nil
}

// setOwned copies want's rules and namespaceSelector into pullsafe's
// webhook in cur and reports whether that changed cur.
func setOwned(cur, want client.Object) (bool, error) {
	switch c := cur.(type) {
	case *admissionregv1.ValidatingWebhookConfiguration:
		w := want.(*admissionregv1.ValidatingWebhookConfiguration).Webhooks[0]
		if i := slices.IndexFunc(c.Webhooks, func(h admissionregv1.ValidatingWebhook) bool { return h.Name == w.Name }); i >= 0 {
			return setRulesAndSelector(&c.Webhooks[i].Rules, &c.Webhooks[i].NamespaceSelector, w.Rules, w.NamespaceSelector), nil
		}
		return false, fmt.Errorf("it has no webhook %s", w.Name)
	case *admissionregv1.MutatingWebhookConfiguration:
		w := want.(*admissionregv1.MutatingWebhookConfiguration).Webhooks[0]
		if i := slices.IndexFunc(c.Webhooks, func(h admissionregv1.MutatingWebhook) bool { return h.Name == w.Name }); i >= 0 {
			return setRulesAndSelector(&c.Webhooks[i].Rules, &c.Webhooks[i].NamespaceSelector, w.Rules, w.NamespaceSelector), nil
		}
		return false, fmt.Errorf("it has no webhook %s", w.Name)
	}
	return false, fmt.Errorf("unexpected %T", cur)
}

func setRulesAndSelector(rules *[]admissionregv1.RuleWithOperations, sel **metav1.LabelSelector,
	wantRules []admissionregv1.RuleWithOperations, wantSel *metav1.LabelSelector) bool {
	wantRules = withDefaultScope(wantRules)
	wantSel = ownSelector(*sel, wantSel)
	if equality.Semantic.DeepEqual(*rules, wantRules) && equality.Semantic.DeepEqual(*sel, wantSel) {
		return false
	}
	*rules, *sel = wantRules, wantSel
	return true
}

// withDefaultScope spells the scope the API server defaults ("*"), so a
// stored configuration compares equal to the one built.
func withDefaultScope(rules []admissionregv1.RuleWithOperations) []admissionregv1.RuleWithOperations {
	out := make([]admissionregv1.RuleWithOperations, len(rules))
	for i, r := range rules {
		r.Scope = ptr.To(ptr.Deref(r.Scope, admissionregv1.AllScopes))
		out[i] = r
	}
	return out
}

// ownSelector is cur with pullsafe's part of the selector, want's
// expressions on a key (the namespace name NotIn list), set: what an
// operator added (matchLabels, expressions on other keys) stays, so a
// namespace they excluded is never sent back through pullsafe.
func ownSelector(cur, want *metav1.LabelSelector) *metav1.LabelSelector {
	if cur == nil || want == nil {
		return want
	}
	out := cur.DeepCopy()
	for _, w := range want.MatchExpressions {
		i := slices.IndexFunc(out.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool {
			return e.Key == w.Key && e.Operator == w.Operator
		})
		if i >= 0 {
			out.MatchExpressions[i] = *w.DeepCopy()
		} else {
			out.MatchExpressions = append(out.MatchExpressions, *w.DeepCopy())
		}
	}
	maps.Copy(out.MatchLabels, want.MatchLabels)
	if out.MatchLabels == nil && len(want.MatchLabels) > 0 {
		out.MatchLabels = maps.Clone(want.MatchLabels)
	}
	return out
}
