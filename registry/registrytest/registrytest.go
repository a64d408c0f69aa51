// Package registrytest serves go-containerregistry's in-process registry
// behind httptest for tests, with request counting, basic or bearer
// authentication and fault injection wrapped around it, and pushes random
// test images with chosen platforms.
package registrytest

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is go-containerregistry's in-process registry served twice:
// seed (open, for pushing fixtures) and srv (what the resolver talks to),
// with authentication and faults wrapped around srv's handler.
type Registry struct {
	t      testing.TB
	seed   *httptest.Server
	Server *httptest.Server
	Host   string // Server's host:port

	mu       sync.Mutex
	requests []string // "METHOD path" of every request srv received
	authz    []string // Authorization headers srv received
	fault    func(w http.ResponseWriter, r *http.Request) bool
	auth     string // "", "basic" or "bearer"
	User     string // the credentials basic and bearer auth accept
	Pass     string
}

// New starts a registry for the test; it stops when the test ends.
func New(t testing.TB) *Registry {
	t.Helper()
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	tr := &Registry{t: t, User: "alice", Pass: "s3cret"}
	tr.seed = httptest.NewServer(inner)
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.requests = append(tr.requests, r.Method+" "+r.URL.Path)
		tr.authz = append(tr.authz, r.Header.Get("Authorization"))
		fault, auth := tr.fault, tr.auth
		tr.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		if !tr.authorized(w, r, auth) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	tr.Host = strings.TrimPrefix(tr.Server.URL, "http://")
	t.Cleanup(func() { tr.Server.Close(); tr.seed.Close() })
	return tr
}

// authorized implements basic auth, or a bearer token flow with a token
// endpoint at /token that takes basic credentials (as distribution's token
// servers and Docker Hub do).
func (tr *Registry) authorized(w http.ResponseWriter, r *http.Request, auth string) bool {
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tr.User+":"+tr.Pass))
	switch auth {
	case "basic":
		if r.Header.Get("Authorization") == good {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
	case "bearer":
		if r.URL.Path == "/token" {
			if r.Header.Get("Authorization") != good {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`, http.StatusUnauthorized)
				return false
			}
			fmt.Fprint(w, `{"token":"tok-`+tr.User+`"}`)
			return false
		}
		if r.Header.Get("Authorization") == "Bearer tok-"+tr.User {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.Server.URL))
	default:
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	if r.Method != http.MethodHead {
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}
	return false
}

// SetAuth sets authentication: "", "basic" or "bearer".
func (tr *Registry) SetAuth(kind string) { tr.mu.Lock(); tr.auth = kind; tr.mu.Unlock() }

// SetFault installs f before auth and the registry; f returns true when it
// has answered the request itself.
func (tr *Registry) SetFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	tr.fault = f
	tr.mu.Unlock()
}

// Count returns how many requests matched method and a path containing sub.
func (tr *Registry) Count(method, sub string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.requests {
		m, p, _ := strings.Cut(r, " ")
		if (method == "" || m == method) && strings.Contains(p, sub) {
			n++
		}
	}
	return n
}

// Authorizations returns the Authorization headers received so far.
func (tr *Registry) Authorizations() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.authz...)
}

// Reset forgets the requests counted so far.
func (tr *Registry) Reset() { tr.mu.Lock(); tr.requests, tr.authz = nil, nil; tr.mu.Unlock() }

// Image pushes a random single-platform image to repo:tag and returns its digest.
func (tr *Registry) Image(repo, tag, os, arch string) v1.Hash {
	tr.t.Helper()
	return tr.ImageDescriptor(repo, tag, os, arch).Digest
}

// Index pushes a multi-platform index to repo:tag and returns its digest.
func (tr *Registry) Index(repo, tag string, platforms ...v1.Platform) v1.Hash {
	tr.t.Helper()
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: PlatformImage(tr.t, p.OS, p.Architecture),
			Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref, err := name.NewTag(strings.TrimPrefix(tr.seed.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		tr.t.Fatal(err)
	}
	d, _ := idx.Digest()
	return d
}

// PlatformImage is a small random image whose config says os/arch.
func PlatformImage(t testing.TB, os, arch string) v1.Image {
	img, err := NewPlatformImage(os, arch)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// NewPlatformImage is PlatformImage for callers without a testing.TB.
func NewPlatformImage(os, arch string) (v1.Image, error) {
	img, err := random.Image(64, 1)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	return mutate.ConfigFile(img, cf)
}

// CountPath returns how many requests matched method ("" for any) and
// exactly path, e.g. "/v2/" for pings.
func (tr *Registry) CountPath(method, path string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.requests {
		if m, p, _ := strings.Cut(r, " "); (method == "" || m == method) && p == path {
			n++
		}
	}
	return n
}
