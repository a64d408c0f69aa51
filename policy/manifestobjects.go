package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
)

// ManifestObjects is a SecretReader over the Secrets and ServiceAccounts of
// manifests, as the API server would store them, then over next (the
// cluster) for what the manifests lack. Without next (offline), what the
// manifests lack is unknown (ErrUnknown), never absent: a pull secret may be
// managed outside the manifests (external-secrets, sealed-secrets, ops).
// It also holds the labels of the manifests' Namespaces (NamespaceLabels).
// Only core objects count: a CRD's kind named Secret or Namespace is none.
type ManifestObjects struct {
	secrets    map[string]*corev1.Secret
	accounts   map[string]*corev1.ServiceAccount
	namespaces map[string]map[string]string
	next       SecretReader
}

// NewManifestObjects reads the Secrets and ServiceAccounts of ms; those that
// name no namespace are in namespace (kubectl apply's default). next may be
// nil: offline.
func NewManifestObjects(ms []Manifest, namespace string, next SecretReader) (*ManifestObjects, error) {
	o := &ManifestObjects{secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{},
		namespaces: map[string]map[string]string{}, next: next}
	for _, m := range ms {
		if gk := m.GroupKind(); gk.Group != "" {
			continue // a CRD named Secret is not a core/v1 Secret
		}
		switch m.Kind {
		case "Secret":
			var s corev1.Secret
			if err := json.Unmarshal(m.JSON, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			s.Namespace = nsOr(s.Namespace, namespace)
			o.secrets[s.Namespace+"/"+s.Name] = foldStringData(&s)
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			if err := json.Unmarshal(m.JSON, &sa); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			sa.Namespace = nsOr(sa.Namespace, namespace)
			o.accounts[sa.Namespace+"/"+sa.Name] = &sa
		case "Namespace":
			var ns corev1.Namespace
			if err := json.Unmarshal(m.JSON, &ns); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			o.namespaces[ns.Name] = ns.Labels
		}
	}
	return o, nil
}

// foldStringData writes stringData over data, as the API server does on
// write (stringData wins for a key in both).
func foldStringData(s *corev1.Secret) *corev1.Secret {
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
	return s
}

func nsOr(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

// Secret is the manifests' secret, else next's; ErrUnknown offline.
func (o *ManifestObjects) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	if o.next == nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, ErrUnknown)
	}
	return o.next.Secret(ctx, ns, name)
}

// ServiceAccount is the manifests' service account, else next's;
// ErrUnknown offline.
func (o *ManifestObjects) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if sa, ok := o.accounts[ns+"/"+name]; ok {
		return sa, nil
	}
	if o.next == nil {
		return nil, fmt.Errorf("service account %s/%s: %w", ns, name, ErrUnknown)
	}
	return o.next.ServiceAccount(ctx, ns, name)
}

// NamespaceLabels are the labels of namespace name once the manifests are
// applied: live (the cluster's; nil offline or unread) with the manifests'
// Namespace's laid over them, as kubectl apply sets the labels it is given
// and keeps the others (a pullsafe.io/mode set with kubectl label stays).
func (o *ManifestObjects) NamespaceLabels(name string, live map[string]string) map[string]string {
	in, ok := o.namespaces[name]
	if !ok {
		return live
	}
	out := maps.Clone(live)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, in)
	return out
}
