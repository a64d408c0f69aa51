package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pullsafe/pullsafe/registry"
)

// brokenSecret names a referenced pull secret the kubelet cannot parse: it
// then fails every pull of the pod, whatever the image.
func brokenSecret(cr Credentials) string {
	for _, p := range cr.Keychain.Problems() {
		if p.FailsPull {
			return fmt.Sprintf("pull secret %s is broken (%s); the kubelet fails every pull that references it", p.Secret, p.Reason)
		}
	}
	return ""
}

// diagnoseUnauthorized says which of the usual causes it is: a referenced
// secret missing from this namespace, no secret at all, secrets for other
// hosts (ports must match exactly), or credentials the registry rejected.
func diagnoseUnauthorized(in Input, ref registry.Reference, e *registry.Error) (cause, fix string) {
	cr := in.Credentials
	ns := in.Workload.Namespace
	host := hostOf(ref, e)
	words := e.Message
	if words == "" {
		words = "unauthorized"
	}
	whose := "the pod"
	if cr.ServiceAccount != "" {
		whose = fmt.Sprintf("service account %q", cr.ServiceAccount)
	}
	switch {
	case len(e.Tried) > 0:
		return fmt.Sprintf("%s — registry %s rejected the credentials of %s", words, host, strings.Join(e.Tried, ", ")),
			"renew the credentials in the secret (expired token or password?) and check the account may pull this repository"
	case len(cr.Unknown) > 0 || cr.ServiceAccountUnknown && len(cr.Referenced) == 0:
		return fmt.Sprintf("%s — %s", words, cr.unverifiable(in.Workload)),
			"check against the cluster (--kubeconfig), or include the pull secret and service account in the checked manifests"
	case len(cr.Missing) > 0:
		return fmt.Sprintf("%s — pull secret(s) %s referenced by %s do not exist in namespace %q (secrets do not cross namespaces)",
				words, quoteAll(cr.Missing), whose, ns),
			fmt.Sprintf("create the secret in namespace %q: kubectl -n %s create secret docker-registry %s --docker-server=%s ...", ns, ns, cr.Missing[0], host)
	case len(cr.Referenced) == 0 && cr.ServiceAccountNotFound:
		return fmt.Sprintf("%s — no imagePullSecrets: the pod lists none and its service account %q was not found, so the kubelet would pull anonymously", words, cr.ServiceAccount),
			fmt.Sprintf("create service account %q in namespace %q with imagePullSecrets (or include it in the checked manifests), or list the pull secret in the pod's imagePullSecrets", cr.ServiceAccount, ns)
	case len(cr.Referenced) == 0:
		return fmt.Sprintf("%s — no imagePullSecrets: %s references none, so the kubelet pulls anonymously", words, whose),
			fmt.Sprintf("kubectl -n %s create secret docker-registry regcred --docker-server=%s ..., then add it to imagePullSecrets", ns, host)
	}
	var holds []string
	srcs := cr.Keychain.Sources()
	names := make([]string, 0, len(srcs))
	for s := range srcs {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		holds = append(holds, fmt.Sprintf("%s holds %s", s, strings.Join(srcs[s], ", ")))
	}
	if len(holds) == 0 {
		holds = []string{"they hold no usable credentials"}
	}
	return fmt.Sprintf("%s — pull secret(s) %s hold no credentials for %s (%s; host and port must match exactly)",
			words, quoteAll(cr.Referenced), host, strings.Join(holds, "; ")),
		fmt.Sprintf("add an entry for %q to the pull secret", host)
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
