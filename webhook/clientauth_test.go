package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/pullsafe/pullsafe/certs"
	"github.com/pullsafe/pullsafe/policy"
)

// testCA signs client certificates, as the CA of a kube-apiserver's
// AdmissionConfiguration kubeconfig would.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate for common name cn.
func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// authBed is pullsafe's webhook server, as serve wires it, on a loopback
// port with a serving certificate and a client CA file.
type authBed struct {
	url    string
	caFile string
	roots  *x509.CertPool // trusts the serving certificate
	auth   *ClientAuth
	calls  atomic.Int64 // reviews that reached the handler
	review []byte
}

func newAuthBed(t *testing.T, clientCA []byte, names ...string) *authBed {
	t.Helper()
	b := &authBed{}
	dir, roots := servingCertDir(t)
	b.roots = roots
	var err error
	b.caFile = filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(b.caFile, clientCA, 0o600); err != nil {
		t.Fatal(err)
	}
	if b.auth, err = NewClientAuth(b.caFile, names); err != nil {
		t.Fatal(err)
	}

	// The issue's probe: a Pod in another team's namespace naming its pull
	// secret and private image, sent to /mutate, which answers with the
	// private digest when it is served.
	bd := newBed(t)
	p := pod("team-a", bd.private.Host+"/team/secret:v1")
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	req := request(t, admissionv1.Create, p, nil, "")
	b.review, _ = json.Marshal(admissionv1.AdmissionReview{TypeMeta: typeMetaReview, Request: &req.AdmissionRequest})

	port := freePort(t)
	srv := NewWebhookServer("127.0.0.1", port, dir, b.auth)
	hook := WithRequestDeadline(NewReviews(bd.mutate, logr.Discard()))
	srv.Register(MutatePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		hook.ServeHTTP(w, r)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Readiness dials the port without a client certificate: it must pass,
	// or pods guarded by --client-ca-file never become ready.
	ready := srv.StartedChecker()
	for i := 0; ready(nil) != nil; i++ {
		if i == 500 {
			t.Fatalf("webhook server never ready: %v", ready(nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.url = "https://127.0.0.1:" + strconv.Itoa(port) + MutatePath + "?timeout=10s"
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// post sends the review over a fresh connection (a full handshake) with
// cert, if any; it returns the status, or 0 when the TLS handshake refused.
func (b *authBed) post(t *testing.T, cert *tls.Certificate, maxVersion uint16) int {
	t.Helper()
	cfg := &tls.Config{RootCAs: b.roots, MaxVersion: maxVersion}
	if cert != nil {
		// Sent whatever CAs the server names, as a caller probing the
		// port would (Go's client would otherwise send none).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Post(b.url, "application/json", bytes.NewReader(b.review))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func TestClientCertificateRequired(t *testing.T) {
	apiserverCA, otherCA := newTestCA(t, "apiserver-client-ca"), newTestCA(t, "other-ca")
	apiserver := apiserverCA.client(t, "kube-apiserver")
	tenant := apiserverCA.client(t, "tenant")
	forged := otherCA.client(t, "kube-apiserver")
	tests := []struct {
		name      string
		names     []string
		cert      *tls.Certificate
		want      int // HTTP status; 0: the handshake refused
		wantCalls int64
	}{
		{name: "no certificate", cert: nil, want: http.StatusForbidden},
		{name: "certificate of the configured CA", cert: &apiserver, want: http.StatusOK, wantCalls: 1},
		{name: "certificate of another CA", cert: &forged, want: 0},
		{name: "allowed common name", names: []string{"kube-apiserver"}, cert: &apiserver, want: http.StatusOK, wantCalls: 1},
		{name: "other common name of the same CA", names: []string{"kube-apiserver"}, cert: &tenant, want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newAuthBed(t, apiserverCA.pem, tt.names...)
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				if got := b.post(t, tt.cert, v); got != tt.want {
					t.Errorf("TLS %x: status %d, want %d", v, got, tt.want)
				}
			}
			if got := b.calls.Load(); got != 2*tt.wantCalls {
				t.Errorf("handler reached %d times, want %d", got, 2*tt.wantCalls)
			}
		})
	}
}

// A CA bundle rotated in its volume is used without a restart; a broken
// file leaves the bundle in effect.
func TestClientCAReload(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old"), newTestCA(t, "new")
	oldCert, newCert := oldCA.client(t, "kube-apiserver"), newCA.client(t, "kube-apiserver")
	b := newAuthBed(t, oldCA.pem)
	statuses := func() []int { return []int{b.post(t, &oldCert, 0), b.post(t, &newCert, 0)} }
	if diff := cmp.Diff([]int{http.StatusOK, 0}, statuses()); diff != "" {
		t.Fatalf("before rotation (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(b.caFile, newCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.auth.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v; want true, nil", changed, err)
	}
	if diff := cmp.Diff([]int{0, http.StatusOK}, statuses()); diff != "" {
		t.Errorf("after rotation (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(b.caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.auth.Reload(); changed || err == nil {
		t.Fatalf("Reload of a broken file = %v, %v; want false and an error", changed, err)
	}
	if diff := cmp.Diff([]int{0, http.StatusOK}, statuses()); diff != "" {
		t.Errorf("after a broken file (-want +got):\n%s", diff)
	}
}

func TestClientCAFileRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, bytes.Repeat([]byte("A"), maxClientCABytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.pem"), big, empty} {
		if _, err := NewClientAuth(f, nil); err == nil {
			t.Errorf("NewClientAuth(%s): no error", filepath.Base(f))
		}
	}
}

// --client-cn alone would read as protection that is not there.
func TestClientCNNeedsCAFile(t *testing.T) {
	o := ServerOptions{Config: policy.DefaultConfig(), RestConfig: &rest.Config{}, Port: 9443, ClientCNs: []string{"kube-apiserver"}}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--client-ca-file") {
		t.Errorf("Validate = %v, want an error naming --client-ca-file", err)
	}
	o.ClientCAFile = "/etc/pullsafe-client-ca/ca.crt"
	if err := o.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

// servingCertDir is a folder with a serving certificate for 127.0.0.1
// (tls.crt, tls.key) and the roots that trust it.
func servingCertDir(t testing.TB) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("serving-ca", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteDir(dir, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	return dir, roots
}
