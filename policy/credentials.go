package policy

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// SecretReader reads the objects pull credentials come from, in one
// namespace. The webhook reads the cluster; `pullsafe check` the input
// files, then the cluster.
type SecretReader interface {
	// Secret returns the secret, or (nil, nil) if it does not exist.
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// ServiceAccount returns the service account, or (nil, nil) if it does not exist.
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
}

// Stage is how far an object has come through the API server, which decides
// whose pull secrets a Pod has.
type Stage int

const (
	// Admitted is an object as an admission webhook sees it: the API
	// server's ServiceAccount admission plugin has already run on a Pod.
	Admitted Stage = iota
	// AsWritten is an object as written in a manifest, before the API
	// server has seen it.
	AsWritten
)

// ReadCredentials returns the pull secrets the kubelet would use for w, read
// from r in w's namespace (secrets never cross namespaces).
//
//   - A pod template uses its own imagePullSecrets, else its service
//     account's: the Pods made from it get them from the ServiceAccount
//     admission plugin.
//   - A Pod uses its own. As written (stage AsWritten), a Pod listing none
//     gets its service account's (serviceAccountName, empty meaning
//     "default"), as the ServiceAccount admission plugin copies them on
//     CREATE when pod.Spec.ImagePullSecrets is empty
//     (plugin/pkg/admission/serviceaccount/admission.go). A service account
//     that does not exist gives none; the API server would refuse the Pod
//     ("error looking up service account") until it is created.
//   - An admitted Pod (the webhook's) already holds the copied names.
func ReadCredentials(ctx context.Context, r SecretReader, w *Workload, stage Stage) (Credentials, error) {
	var cr Credentials
	refs := w.Spec.ImagePullSecrets
	if len(refs) == 0 && (w.Template || stage == AsWritten) {
		sa := w.Spec.ServiceAccountName
		if sa == "" {
			// The API server reads the deprecated alias when the name is
			// empty (pkg/apis/core/v1/conversion.go).
			sa = w.Spec.DeprecatedServiceAccount
		}
		if sa == "" {
			sa = "default"
		}
		acct, err := r.ServiceAccount(ctx, w.Namespace, sa)
		if err != nil {
			return cr, fmt.Errorf("cannot read service account %s/%s: %w", w.Namespace, sa, err)
		}
		if acct != nil {
			refs = acct.ImagePullSecrets
		}
		cr.ServiceAccount, cr.ServiceAccountNotFound = sa, acct == nil
	}
	var secrets []*corev1.Secret
	for _, ref := range refs {
		if ref.Name == "" {
			continue
		}
		cr.Referenced = append(cr.Referenced, ref.Name)
		s, err := r.Secret(ctx, w.Namespace, ref.Name)
		if err != nil {
			return cr, fmt.Errorf("cannot read pull secret %s/%s: %w", w.Namespace, ref.Name, err)
		}
		if s == nil {
			cr.Missing = append(cr.Missing, ref.Name)
			continue
		}
		secrets = append(secrets, s)
	}
	cr.Keychain = registry.NewKeychain(secrets)
	return cr, nil
}
