package diagnose

import (
	"context"
	"fmt"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// maxEvents is the page size of a pod's events, maxEventPages the pages
// read: the kubelet aggregates repeats into one event with a count, so a
// pod has few, but a pod of many containers (or a noisy writer) may not.
const (
	maxEvents     = 500
	maxEventPages = 4
)

// readCredentials reads w's pull secrets; unread says this account may not
// get secrets or service accounts (the "view" ClusterRole cannot): the
// lookup then runs without them, and a note says so.
func (e *Explainer) readCredentials(ctx context.Context, w *policy.Workload) (cr policy.Credentials, unread bool, err error) {
	cr, err = policy.ReadCredentials(ctx, secretReader{e.cs}, w, policy.Admitted)
	if apierrors.IsForbidden(err) {
		e.addNote("pull secrets not read (forbidden): images were looked up without them; credential causes are not named")
		return policy.Credentials{Keychain: registry.NewKeychain(nil)}, true, nil
	}
	return cr, false, err
}

// readEvents reads the pod's events in pages of maxEvents, at most
// maxEventPages of them: the API server orders events by name, not time, so
// the kubelet's newest word may be on any page.
func (e *Explainer) readEvents(ctx context.Context, pod *corev1.Pod) ([]corev1.Event, error) {
	var out []corev1.Event
	opts := metav1.ListOptions{FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)),
		fields.OneTermEqualSelector("involvedObject.kind", "Pod")).String(), Limit: maxEvents}
	for range maxEventPages {
		evs, err := e.cs.CoreV1().Events(e.ns).List(ctx, opts)
		if apierrors.IsForbidden(err) {
			e.addNote("events not read (forbidden): the kubelet's last errors are not shown")
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, evs.Items...)
		if opts.Continue = evs.Continue; opts.Continue == "" {
			return out, nil
		}
	}
	e.addNote(fmt.Sprintf("more than %d events for pod %s: the rest not read", maxEvents*maxEventPages, pod.Name))
	return out, nil
}

func (e *Explainer) addNote(n string) {
	if !slices.Contains(e.notes, n) {
		e.notes = append(e.notes, n)
	}
}

// secretReader reads pull secrets and service accounts with a clientset.
type secretReader struct{ cs kubernetes.Interface }

func (r secretReader) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	s, err := r.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

func (r secretReader) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	sa, err := r.cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return sa, err
}

// ServiceAccountToken requests a token with the clientset, as the
// webhook's ServiceAccountTokens does (bound to the account only).
func (r secretReader) ServiceAccountToken(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error) {
	tr, err := r.cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{UID: sa.UID},
		Spec:       authenticationv1.TokenRequestSpec{Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for service account %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	return tr.Status.Token, nil
}
