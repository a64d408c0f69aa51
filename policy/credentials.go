package policy

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// SecretReader reads the objects pull credentials come from, in one
// namespace. The webhook reads the cluster; `pullsafe check` the input
// files, then the cluster (ManifestObjects).
type SecretReader interface {
	// Secret returns the secret, or (nil, nil) if it does not exist, or an
	// error wrapping ErrUnknown when whether it exists cannot be known.
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// ServiceAccount returns the service account, or (nil, nil) if it does
	// not exist, or an error wrapping ErrUnknown as Secret does.
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
}

// ErrUnknown: the reader cannot tell whether the object exists. Offline, an
// object that is not in the input may exist in the cluster all the same
// (managed by external-secrets, sealed-secrets, created by ops): unknown,
// never absent.
var ErrUnknown = errors.New("not in the input, and no cluster was asked (checked offline)")

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
//
// What r cannot know (ErrUnknown: offline, not in the input) is recorded as
// unknown (Unknown, ServiceAccountUnknown), not as missing: the Checker then
// says "cannot verify" where it decides.
func ReadCredentials(ctx context.Context, r SecretReader, w *Workload, stage Stage) (Credentials, error) {
	var cr Credentials
	refs := w.Spec.ImagePullSecrets
	if len(refs) == 0 && (w.Template || stage == AsWritten) {
		// ExtractWorkload has folded the deprecated serviceAccount alias
		// into the name, as the API server's conversion does.
		sa := w.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		acct, err := r.ServiceAccount(ctx, w.Namespace, sa)
		cr.ServiceAccount = sa
		switch {
		case errors.Is(err, ErrUnknown):
			cr.ServiceAccountUnknown = true
		case err != nil:
			return cr, fmt.Errorf("cannot read service account %s/%s: %w", w.Namespace, sa, err)
		case acct == nil:
			cr.ServiceAccountNotFound = true
		default:
			refs = acct.ImagePullSecrets
		}
	}
	var secrets []*corev1.Secret
	for _, ref := range refs {
		if ref.Name == "" {
			continue
		}
		cr.Referenced = append(cr.Referenced, ref.Name)
		s, err := r.Secret(ctx, w.Namespace, ref.Name)
		if errors.Is(err, ErrUnknown) {
			cr.Unknown = append(cr.Unknown, ref.Name)
			continue
		}
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
	cr.Keychain.SetIdentity(podIdentity(r, w))
	return cr, nil
}

// unverifiable says why the pull secrets the kubelet will hold for w cannot
// be known now, or "" when they can. Then an image the registry refuses
// anonymously or with the secrets at hand may still pull: "cannot verify",
// never a denial.
//
//   - Offline, a secret or service account not in the input is unknown.
//   - A template's pods are created later, and pull with the secrets that
//     exist by then: a missing pull secret or service account of a template
//     is one that does not exist yet (kubectl apply -f dir/ applies
//     deployment.yaml before secret.yaml; patchers add pull secrets to
//     service accounts after the fact). Only w's namespace counts: secrets
//     never cross namespaces, and pullsafe may not read other namespaces'.
//   - A Pod's missing secret is not pending: its kubelet pulls now, and
//     fails (a denial, diagnoseUnauthorized).
func (cr Credentials) unverifiable(w *Workload) string {
	ns := ""
	if w != nil {
		ns = w.Namespace
	}
	switch {
	case len(cr.Unknown) > 0:
		return fmt.Sprintf("pull secret(s) %s of namespace %q are not in the input and no cluster was asked (checked offline)", quoteAll(cr.Unknown), ns)
	case cr.ServiceAccountUnknown && len(cr.Referenced) == 0:
		return fmt.Sprintf("service account %q of namespace %q, whose imagePullSecrets the pods get, is not in the input and no cluster was asked (checked offline)", cr.ServiceAccount, ns)
	case w == nil || !w.Template:
		return ""
	case len(cr.Missing) > 0:
		return fmt.Sprintf("pull secret(s) %s do not exist yet in namespace %q; the pods pull with them once they are created", quoteAll(cr.Missing), ns)
	case cr.ServiceAccountNotFound && len(cr.Referenced) == 0:
		return fmt.Sprintf("service account %q does not exist yet in namespace %q; the pods are created only once it does, with its imagePullSecrets", cr.ServiceAccount, ns)
	}
	return ""
}

// OfflineNote is the verdict's note when something was unknown offline.
const OfflineNote = "checked offline (no cluster): pull secrets and service accounts not in the input are unknown, and what they decide is \"cannot verify\""
