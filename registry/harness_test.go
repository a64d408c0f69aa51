package registry

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

// testRegistry is go-containerregistry's in-process registry served twice:
// seed (open, for pushing fixtures) and srv (what the resolver talks to),
// with authentication and faults wrapped around srv's handler.
type testRegistry struct {
	t    testing.TB
	seed *httptest.Server
	srv  *httptest.Server
	host string // srv's host:port

	mu       sync.Mutex
	requests []string // "METHOD path" of every request srv received
	authz    []string // Authorization headers srv received
	fault    func(w http.ResponseWriter, r *http.Request) bool
	auth     string // "", "basic" or "bearer"
	user     string
	pass     string
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	tr := &testRegistry{t: t, user: "alice", pass: "s3cret"}
	tr.seed = httptest.NewServer(inner)
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	t.Cleanup(func() { tr.srv.Close(); tr.seed.Close() })
	return tr
}

// authorized implements basic auth, or a bearer token flow with a token
// endpoint at /token that takes basic credentials (as distribution's token
// servers and Docker Hub do).
func (tr *testRegistry) authorized(w http.ResponseWriter, r *http.Request, auth string) bool {
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tr.user+":"+tr.pass))
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
			fmt.Fprint(w, `{"token":"tok-`+tr.user+`"}`)
			return false
		}
		if r.Header.Get("Authorization") == "Bearer tok-"+tr.user {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.srv.URL))
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

func (tr *testRegistry) setAuth(kind string) { tr.mu.Lock(); tr.auth = kind; tr.mu.Unlock() }

func (tr *testRegistry) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	tr.fault = f
	tr.mu.Unlock()
}

// count returns how many requests matched method and a path containing sub.
func (tr *testRegistry) count(method, sub string) int {
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

func (tr *testRegistry) reset() { tr.mu.Lock(); tr.requests, tr.authz = nil, nil; tr.mu.Unlock() }

// image pushes a random single-platform image to repo:tag and returns its digest.
func (tr *testRegistry) image(repo, tag, os, arch string) v1.Hash {
	tr.t.Helper()
	img := platformImage(tr.t, os, arch)
	ref, err := name.NewTag(strings.TrimPrefix(tr.seed.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		tr.t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

// index pushes a multi-platform index to repo:tag and returns its digest.
func (tr *testRegistry) index(repo, tag string, platforms ...v1.Platform) v1.Hash {
	tr.t.Helper()
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: platformImage(tr.t, p.OS, p.Architecture),
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

func platformImage(t testing.TB, os, arch string) v1.Image {
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newTestResolver(t testing.TB, opts ...Option) *Resolver {
	t.Helper()
	r, err := NewResolver(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
