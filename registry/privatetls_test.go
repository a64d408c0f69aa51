package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestPrivateAddressOverHTTPS: a registry on an RFC 1918 address (or a
// .local name) with a certificate the nodes trust is pulled over HTTPS by
// containerd, so pullsafe must reach it over HTTPS too, credentials
// included: the plain-HTTP refusal is only for the fallback, never for the
// TLS lookup. The addresses stand in for remote hosts (aliased to loopback).
func TestPrivateAddressOverHTTPS(t *testing.T) {
	var mu sync.Mutex
	var seen []string // "scheme-less" record: method path authorization
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	cert, certDER := serverCert(t, []string{"registry.local"}, "127.0.0.1", "10.1.2.3", "192.168.7.9")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(certDER)))
	addr := strings.TrimPrefix(srv.URL, "https://")
	ref, err := name.NewTag(addr + "/team/api:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, registrytest.PlatformImage(t, "linux", "amd64"), remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"10.1.2.3:5000", "192.168.7.9:443", "registry.local:5000"} {
		t.Run(host, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			r := newTestResolver(t, WithAllowLoopback(false), withHostAlias(host, addr),
				WithCABundle(host, pemEncode(certDER)))
			img, err := r.Resolve(context.Background(), host+"/team/api:v1", keychainFor(host))
			if err != nil {
				t.Fatalf("Resolve over HTTPS: %v", err)
			}
			if img.Digest.String() == "" {
				t.Error("no digest")
			}
			if _, err := r.Platforms(context.Background(), img); err != nil {
				t.Errorf("Platforms over HTTPS: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			authorized := 0
			for _, s := range seen {
				if strings.HasSuffix(s, "Basic YWxpY2U6cHctYWxpY2U=") {
					authorized++
				}
			}
			if authorized == 0 {
				t.Errorf("the pull secret never reached the TLS registry: %q", seen)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// serverCert is a self-signed certificate for names and IP addresses.
func serverCert(t *testing.T, names []string, ips ...string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}
