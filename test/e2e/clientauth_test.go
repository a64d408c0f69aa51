//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/test/bed"
)

// apiServerCN is the common name of the client certificate the API server
// presents; pullsafe runs with --client-cn set to it.
const apiServerCN = "kube-apiserver-admission"

// TestAPIServerPresentsClientCertificate runs a bed of its own whose
// kube-apiserver is told, by the README's AdmissionConfiguration, to present
// a client certificate to pullsafe, and whose pullsafe requires one
// (--client-ca-file, --client-cn). A Pod refused with pullsafe's own message
// proves the API server got through; the webhook's failurePolicy is Ignore,
// so an API server that could not would have admitted it.
func TestAPIServerPresentsClientCertificate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ca, caKey := newTestCA(t, "pullsafe-e2e-client-ca")
	caFile := filepath.Join(dir, "client-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.Raw)
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	cert := newClientCert(t, ca, caKey, apiServerCN)
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", der)

	port, err := bed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// For a URL webhook kube-apiserver looks the user up by the URL's
	// host:port; the bare host is tried only when the port is 443
	// (k8s.io/apiserver/pkg/util/webhook: clientConfig).
	kubeconfig := filepath.Join(dir, "webhook-kubeconfig.yaml")
	writeFile(t, kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: "127.0.0.1:%d"
  user:
    client-certificate: %q
    client-key: %q
`, port, certFile, keyFile))
	admission := filepath.Join(dir, "admission.yaml")
	var plugins strings.Builder
	for _, name := range []string{"ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"} {
		fmt.Fprintf(&plugins, `- name: %s
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %q
`, name, kubeconfig)
	}
	writeFile(t, admission, "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"+plugins.String())

	mb, err := bed.Start(ctx, bed.Options{
		Config:         bed.Config,
		Log:            os.Stderr,
		APIServerFlags: map[string]string{"admission-control-config-file": admission},
		PullsafePort:   port,
		PullsafeArgs:   []string{"--client-ca-file", caFile, "--client-cn", apiServerCN},
	})
	if err != nil {
		t.Fatalf("the client-certificate test bed did not start: %v", err)
	}
	t.Cleanup(mb.Stop)
	if _, err := mb.Push(mb.Open, "team/api", "v1.4.1", bed.Linux("amd64")); err != nil {
		t.Fatal(err)
	}
	if err := mb.Namespace(ctx, "team-a", nil); err != nil {
		t.Fatal(err)
	}

	img := mb.Open.Addr + "/team/api:v1.4.2"
	stdout, stderr, err := mb.Run(podYAML("team-a", "typo", "api", img, podOpts{}), "apply", "-f", "-")
	out := stdout + stderr
	t.Logf("kubectl apply\n%s", out)
	if err == nil {
		t.Fatal("a Pod with a tag that does not exist was admitted: the API server did not reach pullsafe with its certificate")
	}
	mustContain(t, out, "denied the request", `image "`+img+`"`, "manifest unknown", "did you mean v1.4.1?")

	other, otherKey := newTestCA(t, "another-ca")
	for _, tc := range []struct {
		name    string
		cert    *tls.Certificate
		status  int    // 0: the connection fails
		message string // in the 403's body
	}{
		{name: "no certificate", status: http.StatusForbidden, message: "a client certificate signed by --client-ca-file is required"},
		{name: "CA's certificate, another name", cert: newClientCert(t, ca, caKey, "intruder"),
			status: http.StatusForbidden, message: `client certificate common name "intruder" is not one of --client-cn`},
		{name: "another CA's certificate", cert: newClientCert(t, other, otherKey, apiServerCN)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				// pullsafe's self-signed serving certificate, on loopback.
				InsecureSkipVerify: true,
				// Sent whatever CAs the server asks for: Go's client
				// silently omits a Certificates entry the server's
				// CertificateRequest does not name, which would test the
				// no-certificate case again.
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					if tc.cert == nil {
						return &tls.Certificate{}, nil
					}
					return tc.cert, nil
				},
			}}}
			resp, err := client.Post(mb.PullsafeURL+"/validate", "application/json", strings.NewReader(`{}`))
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("POST /validate answered %s; want the TLS handshake refused", resp.Status)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.message) {
				t.Errorf("POST /validate: %s %q; want %d with %q", resp.Status, body, tc.status, tc.message)
			}
		})
	}
}

func newTestCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// newClientCert is a certificate for cn with the clientAuth extended key
// usage, signed by ca.
func newClientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, file, kind string, der []byte) {
	t.Helper()
	writeFile(t, file, string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})))
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
