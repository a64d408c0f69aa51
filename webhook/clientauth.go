package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// maxClientCABytes bounds the --client-ca-file read: a bundle of a few
// hundred certificates, never the whole of a file pointed at by mistake.
const maxClientCABytes = 1 << 20

// ClientAuth admits to the webhook paths only callers presenting a
// certificate signed by the --client-ca-file bundle (the API server's, from
// its AdmissionConfiguration kubeconfig), and, with names, one whose
// subject common name is among them. Without it, anyone who reaches the
// port could ask with any namespace's pull secrets and read private digests
// off /mutate.
//
// The TLS handshake verifies a certificate when one is given (one from
// another CA never gets a connection); a request without one is refused
// with 403 by Require. The certificate stays optional at the TLS level so
// that controller-runtime's readiness check, which dials the port without
// one, keeps working on every TLS version.
type ClientAuth struct {
	// Log receives reloads and refusals; the zero value discards.
	Log   logr.Logger
	file  string
	names []string
	pool  atomic.Pointer[x509.CertPool]

	mu   sync.Mutex
	last []byte // the bytes pool was built from

	refused atomic.Int64 // requests refused, for logs
}

// NewClientAuth reads file, a PEM bundle of CA certificates; names, when
// any, are the common names allowed. An unreadable file, or one without a
// certificate, is an error: pullsafe does not start open.
func NewClientAuth(file string, names []string) (*ClientAuth, error) {
	a := &ClientAuth{file: file, names: slices.Clone(names)}
	if _, err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again and reports whether the bundle changed. A
// file that cannot be read or holds no certificate leaves the bundle in
// use as it is.
func (a *ClientAuth) Reload() (bool, error) {
	data, err := readBounded(a.file, maxClientCABytes)
	if err != nil {
		return false, fmt.Errorf("--client-ca-file: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != nil && bytes.Equal(data, a.last) {
		return false, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return false, fmt.Errorf("--client-ca-file %s: no PEM certificate in it", a.file)
	}
	a.pool.Store(pool)
	a.last = data
	return true, nil
}

func readBounded(file string, max int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than the %d bytes allowed", file, max)
	}
	return data, nil
}

// Run re-reads the file every interval until ctx ends: a CA bundle rotated
// in its Secret or ConfigMap volume is used without a restart. A bad file
// is logged, and the bundle in use stays.
func (a *ClientAuth) Run(ctx context.Context, interval time.Duration) error {
	log := a.Log.WithValues("file", a.file)
	t := time.NewTicker(interval)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := a.Reload()
		switch {
		case err != nil && err.Error() != lastErr:
			log.Error(err, "client CA bundle not reloaded; the one loaded before stays in effect")
		case changed:
			log.Info("client CA bundle reloaded")
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
	}
}

// configure is a controller-runtime TLSOpts function. Each handshake gets a
// copy of the server's final config (serving certificate included) with the
// bundle in effect at that moment.
func (a *ClientAuth) configure(base *tls.Config) {
	base.ClientAuth = tls.VerifyClientCertIfGiven
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = a.pool.Load()
		return c, nil
	}
}

// errNoClientCert is why a request without a verified certificate is refused.
var errNoClientCert = errors.New("a client certificate signed by --client-ca-file is required")

// allowed reports why r may not call a webhook, nil when it may.
func (a *ClientAuth) allowed(r *http.Request) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return errNoClientCert
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if len(a.names) > 0 && !slices.Contains(a.names, cn) {
		return fmt.Errorf("client certificate common name %q is not one of --client-cn", cn)
	}
	return nil
}

// Require serves next only to callers allowed by the bundle and names.
func (a *ClientAuth) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.allowed(r); err != nil {
			// At most one line per 1,000 refusals: a caller hammering the
			// port must not flood the logs; a misconfigured API server
			// still shows at once.
			if n := a.refused.Add(1); n%1000 == 1 {
				a.Log.Info("webhook call refused", "reason", err.Error(), "remote", r.RemoteAddr, "refusedSoFar", n)
			}
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authServer is a webhook server whose every path requires the client
// certificate: a path registered later cannot forget it.
type authServer struct {
	crwebhook.Server
	auth *ClientAuth
}

func (s authServer) Register(path string, hook http.Handler) {
	s.Server.Register(path, s.auth.Require(hook))
}

// NewWebhookServer is the HTTPS server the API server calls, serving the
// certificate in certDir (reloaded on change); with auth, only callers it
// allows reach a webhook.
func NewWebhookServer(host string, port int, certDir string, auth *ClientAuth) crwebhook.Server {
	opts := crwebhook.Options{Host: host, Port: port, CertDir: certDir}
	if auth == nil {
		return crwebhook.NewServer(opts)
	}
	opts.TLSOpts = []func(*tls.Config){auth.configure}
	return authServer{Server: crwebhook.NewServer(opts), auth: auth}
}
