package policy

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// providerFix is the advice when a credential provider could not be run.
const providerFix = "check the plugin in --image-credential-provider-bin-dir, the provider config and the service account (README \"Credential provider plugins\"); pullsafe allowed it unchecked"

// withProviderNotes adds to an unauthorized diagnosis what the kubelet's
// credential providers gave for the image: a provider that returned
// nothing for the pod's service account is why the kubelet will have no
// credential, so it comes first in the fix.
func withProviderNotes(e *registry.Error, cause, fix string) (string, string) {
	var notes []string
	for _, o := range e.Providers {
		if n := o.Note(); n != "" {
			notes = append(notes, n)
		}
	}
	if len(notes) == 0 {
		return cause, fix
	}
	cause += "; " + strings.Join(notes, "; ")
	if e.Providers[0].ServiceAccount != "" {
		fix = "let the credential provider's identity for this service account pull the repository (for ECR, the IAM role in eks.amazonaws.com/ecr-role-arn), or run the pods under a service account that may; " + fix
	}
	return cause, fix
}

// TokenRequester is a SecretReader that can also request service-account
// tokens (the TokenRequest API): the webhook's. Offline readers cannot, and
// credential providers that need a token are then "cannot verify".
type TokenRequester interface {
	ServiceAccountToken(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error)
}

// podIdentity is who the kubelet pulls w's images as: its namespace and
// service account ("default" when none is named, as the API server
// defaults it), read lazily, only when a credential provider with
// tokenAttributes matches an image.
func podIdentity(r SecretReader, w *Workload) registry.PodIdentity {
	sa := w.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	id := registry.PodIdentity{Namespace: w.Namespace, ServiceAccount: sa,
		GetServiceAccount: func(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
			return r.ServiceAccount(ctx, ns, name)
		}}
	if t, ok := r.(TokenRequester); ok {
		id.Token = t.ServiceAccountToken
	}
	return id
}
