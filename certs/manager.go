package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Keys of the certificate Secret.
const (
	keyCACert = "ca.crt"
	keyCAKey  = "ca.key"
	// keyBundle is what is injected: the CA, plus the previous one while it
	// is still valid, so replicas still serving a certificate of the old CA
	// keep being trusted until they pick up the new one.
	keyBundle = "ca-bundle.crt"
)

// Manager keeps pullsafe's serving certificate in a Secret shared by all
// replicas, writes it where the webhook server reloads it, and injects the
// CA into both webhook configurations.
type Manager struct {
	Client    client.Client // a live (uncached) client: replicas race on the Secret
	Namespace string
	Secret    string   // e.g. "pullsafe-certs"
	Hosts     []string // SANs, e.g. pullsafe.pullsafe-system.svc
	CertDir   string
	// Webhooks names the Validating- and MutatingWebhookConfiguration.
	Webhooks     string
	CAValidity   time.Duration // default 5 years
	CertValidity time.Duration // default 1 year
	Interval     time.Duration // how often Run re-checks; default 1m
	// InjectDelay is how long Ensure waits after changing the caBundle
	// before serving a new certificate: the API server sees configuration
	// changes through an informer. Default 3s.
	InjectDelay time.Duration
	Now         func() time.Time
}

func (m *Manager) defaults() {
	if m.CAValidity == 0 {
		m.CAValidity = 5 * 365 * 24 * time.Hour
	}
	if m.CertValidity == 0 {
		m.CertValidity = 365 * 24 * time.Hour
	}
	if m.Interval == 0 {
		// A caBundle wiped by `helm upgrade --force` or `kubectl replace`
		// makes every admission fail open until it is injected again:
		// three GETs a minute per replica bound that to a minute.
		m.Interval = time.Minute
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.InjectDelay == 0 {
		m.InjectDelay = 3 * time.Second
	}
}

// Ensure makes sure a valid certificate is in the Secret, on disk and in the
// webhook configurations. Safe to run concurrently from several replicas:
// creation and rotation use optimistic concurrency, and the loser adopts
// what the winner wrote.
//
// The order matters under load: the configurations trust a new CA (and the
// API server has had InjectDelay to see it) before this replica serves a
// certificate the new CA signed; the other way round, every webhook call in
// between fails TLS and the API server admits it unchecked.
func (m *Manager) Ensure(ctx context.Context) error {
	s, err := m.secret(ctx)
	if err != nil {
		return err
	}
	changed, err := m.inject(ctx, bundleOf(s))
	if err != nil {
		return err
	}
	if changed {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(m.InjectDelay):
		}
	}
	return writeIfChanged(m.CertDir, s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
}

// EnsureServing is Ensure without the injection, for start-up (the server
// cannot start without a certificate on disk): the serving certificate is
// in the Secret and on disk. It returns the CA bundle.
func (m *Manager) EnsureServing(ctx context.Context) ([]byte, error) {
	s, err := m.secret(ctx)
	if err != nil {
		return nil, err
	}
	if err := writeIfChanged(m.CertDir, s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return nil, err
	}
	return bundleOf(s), nil
}

// secret returns the Secret, created or rotated as needed.
func (m *Manager) secret(ctx context.Context) (*corev1.Secret, error) {
	m.defaults()
	var s *corev1.Secret
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		s, err = m.reconcileSecret(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("certificate secret %s/%s: %w", m.Namespace, m.Secret, err)
	}
	return s, nil
}

// bundleOf is what the configurations must trust: the CA, plus the
// previous one while it is valid.
func bundleOf(s *corev1.Secret) []byte {
	if b := s.Data[keyBundle]; len(b) > 0 {
		return b
	}
	return s.Data[keyCACert]
}

// Run calls Ensure at once and then every Interval until ctx ends, so a
// rotation made by another replica, or one that falls due, reaches this one
// without a restart. After a failure (say, the webhook configurations are
// not created yet) it tries again after 10 seconds.
func (m *Manager) Run(ctx context.Context) error {
	m.defaults()
	for {
		next := m.Interval
		if err := m.Ensure(ctx); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "certificate check failed; the current certificate keeps serving")
			next = 10 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

// reconcileSecret returns the Secret, creating or rotating it when needed.
// A conflict (another replica won) is returned for RetryOnConflict.
func (m *Manager) reconcileSecret(ctx context.Context) (*corev1.Secret, error) {
	var s corev1.Secret
	err := m.Client.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Secret}, &s)
	if apierrors.IsNotFound(err) {
		data, err := m.issue(nil)
		if err != nil {
			return nil, err
		}
		s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Secret,
			Labels: map[string]string{"app.kubernetes.io/name": "pullsafe"}}, Type: corev1.SecretTypeTLS, Data: data}
		if err := m.Client.Create(ctx, &s); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, apierrors.NewConflict(corev1.Resource("secrets"), m.Secret, err) // adopt the winner's
			}
			return nil, err
		}
		return &s, nil
	}
	if err != nil {
		return nil, err
	}
	if !m.needsRotation(s.Data) {
		return &s, nil
	}
	data, err := m.issue(s.Data)
	if err != nil {
		return nil, err
	}
	s.Data = data
	if err := m.Client.Update(ctx, &s); err != nil {
		return nil, err
	}
	log.FromContext(ctx).Info("rotated webhook serving certificate", "secret", m.Namespace+"/"+m.Secret)
	return &s, nil
}

func (m *Manager) needsRotation(d map[string][]byte) bool {
	if NeedsRotation(d[corev1.TLSCertKey], m.Now()) || NeedsRotation(d[keyCACert], m.Now()) {
		return true
	}
	_, err := LoadCA(d[keyCACert], d[keyCAKey])
	return err != nil
}

// issue makes the Secret's data: the existing CA while it has life left,
// else a new one, and a fresh serving certificate for Hosts.
func (m *Manager) issue(old map[string][]byte) (map[string][]byte, error) {
	now := m.Now()
	var ca *CA
	bundle := old[keyBundle]
	if old != nil && !NeedsRotation(old[keyCACert], now) {
		ca, _ = LoadCA(old[keyCACert], old[keyCAKey])
	}
	if ca == nil {
		var err error
		if ca, err = NewCA("pullsafe-ca", now, m.CAValidity); err != nil {
			return nil, err
		}
		bundle = ca.CertPEM
		if prev := old[keyCACert]; len(prev) > 0 && !expired(prev, now) {
			bundle = append(append([]byte{}, ca.CertPEM...), prev...)
		}
	}
	if len(bundle) == 0 {
		bundle = ca.CertPEM
	}
	certPEM, keyPEM, err := ca.Issue(m.Hosts, now, m.CertValidity)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{keyCACert: ca.CertPEM, keyCAKey: ca.KeyPEM, keyBundle: bundle,
		corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}, nil
}

func expired(certPEM []byte, now time.Time) bool {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return true
	}
	c, err := x509.ParseCertificate(b.Bytes)
	return err != nil || now.After(c.NotAfter)
}

// inject sets caBundle on every webhook of both configurations and reports
// whether it changed anything.
func (m *Manager) inject(ctx context.Context, ca []byte) (bool, error) {
	changed := false
	targets := []client.Object{&admissionregv1.ValidatingWebhookConfiguration{}, &admissionregv1.MutatingWebhookConfiguration{}}
	for _, obj := range targets {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := m.Client.Get(ctx, types.NamespacedName{Name: m.Webhooks}, obj); err != nil {
				return err
			}
			if !setCABundle(obj, ca) {
				return nil
			}
			changed = true
			return m.Client.Update(ctx, obj)
		})
		if err != nil {
			return changed, fmt.Errorf("injecting caBundle into %T %s: %w", obj, m.Webhooks, err)
		}
	}
	return changed, nil
}

// setCABundle reports whether anything changed.
func setCABundle(obj client.Object, ca []byte) bool {
	changed := false
	set := func(cc *admissionregv1.WebhookClientConfig) {
		if !bytes.Equal(cc.CABundle, ca) {
			cc.CABundle = ca
			changed = true
		}
	}
	switch o := obj.(type) {
	case *admissionregv1.ValidatingWebhookConfiguration:
		for i := range o.Webhooks {
			set(&o.Webhooks[i].ClientConfig)
		}
	case *admissionregv1.MutatingWebhookConfiguration:
		for i := range o.Webhooks {
			set(&o.Webhooks[i].ClientConfig)
		}
	}
	return changed
}

// writeIfChanged rewrites the files only when the certificate changed, so
// the webhook server's watcher reloads only on a real rotation.
func writeIfChanged(dir string, certPEM, keyPEM []byte) error {
	if cur, err := readFile(dir, CertFile); err == nil && bytes.Equal(cur, certPEM) {
		return nil
	}
	return WriteDir(dir, certPEM, keyPEM)
}
