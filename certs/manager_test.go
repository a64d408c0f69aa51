package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func newManager(t *testing.T, c client.Client, now *time.Time) *Manager {
	return &Manager{Client: c, Namespace: "pullsafe-system", Secret: "pullsafe-certs", Webhooks: "pullsafe",
		Hosts: []string{"pullsafe.pullsafe-system.svc"}, CertDir: t.TempDir(),
		CertValidity: 30 * 24 * time.Hour, CAValidity: 365 * 24 * time.Hour, Now: func() time.Time { return *now },
		InjectDelay: time.Nanosecond}
}

func webhookConfigs() []client.Object {
	return []client.Object{
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "pullsafe"},
			Webhooks: []admissionregv1.ValidatingWebhook{{Name: "validate.pullsafe.io"}}},
		&admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "pullsafe"},
			Webhooks: []admissionregv1.MutatingWebhook{{Name: "pin.pullsafe.io"}}},
	}
}

func caBundles(t *testing.T, c client.Client) (v, m []byte) {
	var vc admissionregv1.ValidatingWebhookConfiguration
	var mc admissionregv1.MutatingWebhookConfiguration
	if err := c.Get(context.Background(), types.NamespacedName{Name: "pullsafe"}, &vc); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), types.NamespacedName{Name: "pullsafe"}, &mc); err != nil {
		t.Fatal(err)
	}
	return vc.Webhooks[0].ClientConfig.CABundle, mc.Webhooks[0].ClientConfig.CABundle
}

func TestManagerCreatesWritesInjectsAndRotates(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	c := fake.NewClientBuilder().WithObjects(webhookConfigs()...).Build()
	m := newManager(t, c, &now)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "pullsafe-system", Name: "pullsafe-certs"}, &s); err != nil {
		t.Fatal(err)
	}
	v, mb := caBundles(t, c)
	if !bytes.Equal(v, s.Data["ca.crt"]) || !bytes.Equal(mb, s.Data["ca.crt"]) {
		t.Fatal("caBundle not injected into both configurations")
	}
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(m.CertDir, CertFile), filepath.Join(m.CertDir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(onDisk.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.Data["ca.crt"])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "pullsafe.pullsafe-system.svc"}); err != nil {
		t.Errorf("served certificate does not verify against the injected CA: %v", err)
	}

	// Nothing due: nothing changes, files are not rewritten.
	fi1, _ := os.Stat(filepath.Join(m.CertDir, CertFile))
	rv := s.ResourceVersion
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Get(ctx, types.NamespacedName{Namespace: "pullsafe-system", Name: "pullsafe-certs"}, &s)
	fi2, _ := os.Stat(filepath.Join(m.CertDir, CertFile))
	if s.ResourceVersion != rv || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("Ensure changed a certificate that was not due")
	}

	// Two thirds of the serving certificate's life later: rotated, same CA.
	oldCert, oldCA := s.Data["tls.crt"], s.Data["ca.crt"]
	now = now.Add(21 * 24 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Get(ctx, types.NamespacedName{Namespace: "pullsafe-system", Name: "pullsafe-certs"}, &s)
	if bytes.Equal(s.Data["tls.crt"], oldCert) || !bytes.Equal(s.Data["ca.crt"], oldCA) {
		t.Error("serving certificate not rotated, or CA replaced needlessly")
	}
	disk, _ := os.ReadFile(filepath.Join(m.CertDir, CertFile))
	if !bytes.Equal(disk, s.Data["tls.crt"]) {
		t.Error("rotated certificate not written to the cert dir")
	}
	b, _ := pem.Decode(disk)
	if cert, _ := x509.ParseCertificate(b.Bytes); !cert.NotAfter.After(now.Add(29 * 24 * time.Hour)) {
		t.Errorf("rotated certificate expires %v", cert.NotAfter)
	}
}

func TestManagerAdoptsAnotherReplicasSecret(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	c := fake.NewClientBuilder().WithObjects(webhookConfigs()...).Build()
	a, b := newManager(t, c, &now), newManager(t, c, &now)
	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(filepath.Join(a.CertDir, CertFile))
	db, _ := os.ReadFile(filepath.Join(b.CertDir, CertFile))
	if !bytes.Equal(da, db) {
		t.Error("second replica issued its own certificate instead of adopting the Secret")
	}
}

func TestCARotationKeepsTheOldCATrustedMeanwhile(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	c := fake.NewClientBuilder().WithObjects(webhookConfigs()...).Build()
	m := newManager(t, c, &now)
	m.CAValidity, m.CertValidity = 90*24*time.Hour, 90*24*time.Hour
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	key := types.NamespacedName{Namespace: "pullsafe-system", Name: "pullsafe-certs"}
	_ = c.Get(ctx, key, &s)
	oldCA, oldCert := s.Data["ca.crt"], s.Data["tls.crt"]

	now = now.Add(61 * 24 * time.Hour) // the CA has less than a third of its life left
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Get(ctx, key, &s)
	if bytes.Equal(s.Data["ca.crt"], oldCA) {
		t.Fatal("CA not rotated")
	}
	v, _ := caBundles(t, c)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(v)
	verify := func(certPEM []byte) error {
		b, _ := pem.Decode(certPEM)
		cert, _ := x509.ParseCertificate(b.Bytes)
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "pullsafe.pullsafe-system.svc", CurrentTime: now})
		return err
	}
	if err := verify(s.Data["tls.crt"]); err != nil {
		t.Errorf("new certificate not trusted by the injected bundle: %v", err)
	}
	if err := verify(oldCert); err != nil {
		t.Errorf("a replica still serving the old certificate is no longer trusted: %v", err)
	}
}

// TestServedCertificateIsAlwaysTrusted: through a CA rotation, at every
// write of a webhook configuration the certificate on disk (what the
// replica serves) verifies against the caBundle the API server holds at
// that moment, and after it. Written before the new CA is injected, the
// API server would fail TLS on every call in between and admit unchecked.
func TestServedCertificateIsAlwaysTrusted(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var m *Manager
	var violations []string
	check := func(when string, c client.Client) {
		v, _ := caBundles(t, c)
		if len(v) == 0 {
			return // not injected yet: nothing calls the server
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(v)
		data, err := os.ReadFile(filepath.Join(m.CertDir, CertFile))
		if err != nil {
			return
		}
		b, _ := pem.Decode(data)
		cert, _ := x509.ParseCertificate(b.Bytes)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "pullsafe.pullsafe-system.svc", CurrentTime: now}); err != nil {
			violations = append(violations, when+": "+err.Error())
		}
	}
	c := fake.NewClientBuilder().WithObjects(webhookConfigs()...).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			check("before updating "+obj.GetName(), c)
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	m = newManager(t, c, &now)
	m.CAValidity, m.CertValidity = 90*24*time.Hour, 90*24*time.Hour
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the first Ensure", c)
	now = now.Add(61 * 24 * time.Hour) // the CA is due for rotation
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the rotation", c)
	if len(violations) > 0 {
		t.Errorf("the served certificate was not trusted by the configurations:\n%s", strings.Join(violations, "\n"))
	}
}
