package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
)

// tlsBed is the webhook server serve starts (NewWebhookServer, without
// client certificates) answering /validate for a cached 3-container Pod.
type tlsBed struct {
	url    string
	roots  *x509.CertPool
	review []byte
}

func newTLSBed(t testing.TB) *tlsBed {
	t.Helper()
	dir, roots := servingCertDir(t)
	bd := newBed(t, withNodes("amd64", "amd64", "arm64"))
	p := pod("team-a", bd.open.Host+"/team/api:v1.4.1", bd.open.Host+"/multi/app:v1", "nginx:1.27")
	req := request(t, admissionv1.Create, p, nil, "")
	b := &tlsBed{roots: roots}
	b.review, _ = json.Marshal(admissionv1.AdmissionReview{TypeMeta: typeMetaReview, Request: &req.AdmissionRequest})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	srv := NewWebhookServer("127.0.0.1", port, dir, nil)
	srv.Register(ValidatePath, WithRequestDeadline(NewReviews(bd.validate, logr.Discard())))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for i := 0; srv.StartedChecker()(nil) != nil; i++ {
		if i == 500 {
			t.Fatal("webhook server never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.url = "https://127.0.0.1:" + strconv.Itoa(port) + ValidatePath + "?timeout=10s"
	return b
}

// apiServerTransport is what the API server's webhook client uses: client-go
// sets HTTP/2 up on its transport (apimachinery SetTransportDefaults, with
// x/net/http2) and no TLS session cache, so it keeps one connection and
// never resumes.
func (b *tlsBed) apiServerTransport() *http.Transport {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.roots}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(true)
	return tr
}

// post sends the review and returns the answer's connection state.
func (b *tlsBed) post(t testing.TB, c *http.Client) *tls.ConnectionState {
	resp, err := c.Post(b.url, "application/json", bytes.NewReader(b.review))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if body, _ := io.ReadAll(resp.Body); json.Unmarshal(body, &ar) != nil || ar.Response == nil || !ar.Response.Allowed {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	return resp.TLS
}

// The API server's webhook client speaks HTTP/2: the server must offer it
// (controller-runtime's NextProtos), or every review in flight needs a
// connection, and a handshake, of its own. A caller that caches sessions
// resumes them, skipping the certificate exchange on a reconnect.
func TestWebhookServerSpeaksHTTP2AndResumes(t *testing.T) {
	b := newTLSBed(t)
	c := &http.Client{Transport: b.apiServerTransport()}
	for range 3 {
		if cs := b.post(t, c); cs.NegotiatedProtocol != "h2" {
			t.Fatalf("negotiated %q, want h2 as the API server's client asks", cs.NegotiatedProtocol)
		}
	}
	cache := tls.NewLRUClientSessionCache(8)
	for i := range 3 {
		fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.roots, ClientSessionCache: cache}, DisableKeepAlives: true}}
		if cs := b.post(t, fresh); i > 0 && !cs.DidResume {
			t.Errorf("connection %d did not resume its TLS session", i+1)
		}
	}
}

// BenchmarkReviewTLS is one cached 3-container Pod review through the
// webhook server over loopback TLS, by how the caller connects: a new
// connection with a full handshake per review, a resumed session per
// review, HTTP/1.1 keep-alive, and HTTP/2 as the API server connects.
// The gap between the first and the last is the handshake's share.
func BenchmarkReviewTLS(b *testing.B) {
	bd := newTLSBed(b)
	cache := tls.NewLRUClientSessionCache(8)
	cases := []struct {
		name string
		tr   *http.Transport
	}{
		{"handshake", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bd.roots}, DisableKeepAlives: true}},
		{"resumed", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bd.roots, ClientSessionCache: cache}, DisableKeepAlives: true}},
		{"keepalive", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bd.roots}}},
		{"http2", bd.apiServerTransport()},
	}
	for _, c := range cases {
		client := &http.Client{Transport: c.tr}
		bd.post(b, client) // warm
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bd.post(b, client)
			}
		})
		c.tr.CloseIdleConnections()
	}
}
