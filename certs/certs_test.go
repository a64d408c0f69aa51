package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueServesTLSThatVerifiesAgainstTheCA(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("pullsafe-ca", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"pullsafe.pullsafe-system.svc", "127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL) // by IP SAN
	if err != nil {
		t.Fatalf("IP SAN does not verify: %v", err)
	}
	resp.Body.Close()

	b, _ := pem.Decode(certPEM)
	c, _ := x509.ParseCertificate(b.Bytes)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "pullsafe.pullsafe-system.svc"}); err != nil {
		t.Errorf("DNS SAN does not verify: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.svc"}); err == nil {
		t.Error("certificate verifies for a host it was not issued for")
	}
	if !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || c.NotAfter.After(now.Add(time.Hour+time.Second)) {
		t.Errorf("cert = %v %v", c.IPAddresses, c.NotAfter)
	}
	if _, _, err := ca.Issue(nil, now, time.Hour); err == nil {
		t.Error("issued a certificate for no host")
	}
}

func TestIssuedCertNeverOutlivesCA(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("ca", now, time.Hour)
	certPEM, _, err := ca.Issue([]string{"x"}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	c, _ := x509.ParseCertificate(b.Bytes)
	if c.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("serving cert expires %v after its CA %v", c.NotAfter, ca.Cert.NotAfter)
	}
}

func TestNeedsRotation(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("ca", now, 90*24*time.Hour)
	certPEM, _, _ := ca.Issue([]string{"x"}, now, 30*24*time.Hour)
	tests := []struct {
		at   time.Time
		want bool
	}{
		{now, false},
		{now.Add(19 * 24 * time.Hour), false},
		{now.Add(21 * 24 * time.Hour), true}, // less than a third left
		{now.Add(31 * 24 * time.Hour), true}, // expired
	}
	for _, tt := range tests {
		if got := NeedsRotation(certPEM, tt.at); got != tt.want {
			t.Errorf("at +%s: %v, want %v", tt.at.Sub(now), got, tt.want)
		}
	}
	if !NeedsRotation([]byte("garbage"), now) {
		t.Error("garbage must need rotation")
	}
}

func TestLoadCARoundTripAndWriteDir(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("ca", now, time.Hour)
	again, err := LoadCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := again.Issue([]string{"x"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA([]byte("x"), []byte("y")); err == nil {
		t.Error("LoadCA accepted garbage")
	}
	dir := filepath.Join(t.TempDir(), "certs")
	if err := WriteDir(dir, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)); err != nil {
		t.Error(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
}
