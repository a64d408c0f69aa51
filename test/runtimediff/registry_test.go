package runtimediff

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// slowDelay is how long a "slow" registry waits before each answer: past
// pullsafe's lookupTimeout in these cases (1s), well within any pull's.
const slowDelay = 1500 * time.Millisecond

// fault makes one kind of request answer status (or, with slow, wait
// slowDelay and then answer as usual).
type fault struct {
	on     string // "ping", "token", "manifests" or "blobs"
	status int
	slow   bool
	method string // only requests of this method ("HEAD"); "": all
}

func (f fault) String() string {
	on := f.on
	if f.method != "" {
		on += "-" + f.method
	}
	if f.slow {
		return on + "-slow"
	}
	return fmt.Sprintf("%s-%d", on, f.status)
}

// regOpts describe one registry of a case.
type regOpts struct {
	tls    bool
	auth   string // "", "basic" or "bearer" (token endpoint at /token taking basic credentials)
	prefix string // served under this path ("/custom/v2/..."), for override_path
	faults []fault
	// caDir holds the CA file of a TLS registry that a hosts.toml names:
	// the run's folder, as the hosts directory outlives the case (pullsafe
	// may read every host's file); empty: the case's own temporary folder.
	caDir string
}

// caseRegistry is go-containerregistry's in-process registry, seeded through
// an open server, served to pullsafe and containerd through front (plain
// HTTP or TLS) with authentication, faults, missing blobs and altered
// manifest bytes wrapped around it.
type caseRegistry struct {
	t      *testing.T
	opts   regOpts
	seed   *httptest.Server
	front  *httptest.Server
	inner  http.Handler
	Host   string // front's host:port
	URL    string // front's base URL (scheme://host:port)
	CAFile string // PEM of front's certificate, for TLS registries
	User   string
	Pass   string

	mu     sync.Mutex
	gone   map[string]bool // blob digests answered BLOB_UNKNOWN
	tamper map[string]bool // manifest references whose GET bytes are altered
}

// newRegistry starts a registry for the case. It stops at the end of the
// run, not of the case: the hosts directory is shared, and a port freed by
// one case and handed to another's registry would bring the first case's
// hosts.toml along.
func newRegistry(s *setup, o regOpts) *caseRegistry {
	t := s.t
	t.Helper()
	r := &caseRegistry{t: t, opts: o, User: "alice", Pass: "s3cret", gone: map[string]bool{}, tamper: map[string]bool{}}
	r.inner = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.seed = httptest.NewServer(r.inner)
	r.front = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// Clients that refuse the certificate are cases, not news.
	r.front.Config.ErrorLog = log.New(io.Discard, "", 0)
	if o.tls {
		r.front.StartTLS()
		dir := o.caDir
		if dir == "" {
			dir = t.TempDir()
		}
		r.CAFile = filepath.Join(dir, strings.ReplaceAll(r.front.Listener.Addr().String(), ":", "_")+".pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.front.Certificate().Raw})
		if err := os.WriteFile(r.CAFile, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		r.front.Start()
	}
	r.URL = r.front.URL
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.front.URL, "https://"), "http://")
	s.hold(func() { r.front.Close(); r.seed.Close() })
	return r
}

// closedHost is a loopback host:port nothing listens on (connection
// refused): a privileged port, never handed out to a registry.
const closedHost = "127.0.0.1:1"

func (r *caseRegistry) serve(w http.ResponseWriter, req *http.Request) {
	if r.opts.prefix != "" {
		if !strings.HasPrefix(req.URL.Path, r.opts.prefix+"/") {
			writeError(w, req, http.StatusNotFound, "NOT_FOUND", "no such path")
			return
		}
		req.URL.Path = strings.TrimPrefix(req.URL.Path, r.opts.prefix)
	}
	kind := kindOf(req.URL.Path)
	for _, f := range r.opts.faults {
		if f.on != kind || (f.method != "" && f.method != req.Method) {
			continue
		}
		if f.slow {
			select {
			case <-time.After(slowDelay):
			case <-req.Context().Done():
				return
			}
			continue
		}
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, req, f.status, codeOf(f.status), http.StatusText(f.status))
		return
	}
	if !r.authorized(w, req) {
		return
	}
	if kind == "blobs" && r.isGone(req.URL.Path) {
		writeError(w, req, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
		return
	}
	if kind == "manifests" && req.Method == http.MethodGet && r.isTampered(req.URL.Path) {
		r.serveTampered(w, req)
		return
	}
	r.inner.ServeHTTP(w, req)
}

func kindOf(path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "ping"
	case path == "/token":
		return "token"
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	}
	return "other"
}

func codeOf(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusNotFound:
		return "MANIFEST_UNKNOWN"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	}
	return "UNAVAILABLE"
}

func writeError(w http.ResponseWriter, req *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
	}
}

// authorized implements basic auth, or the bearer token flow of
// distribution's token servers and Docker Hub (basic credentials at the
// realm, a token for the registry).
func (r *caseRegistry) authorized(w http.ResponseWriter, req *http.Request) bool {
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(r.User+":"+r.Pass))
	switch r.opts.auth {
	case "":
		return true
	case "basic":
		if req.Header.Get("Authorization") == good {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="runtimediff"`)
	case "bearer":
		if req.URL.Path == "/token" {
			if req.Header.Get("Authorization") != good {
				writeError(w, req, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
				return false
			}
			fmt.Fprint(w, `{"token":"tok-`+r.User+`","access_token":"tok-`+r.User+`"}`)
			return false
		}
		if req.Header.Get("Authorization") == "Bearer tok-"+r.User {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="runtimediff"`, r.URL))
	}
	writeError(w, req, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	return false
}

func (r *caseRegistry) isGone(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone[path[strings.LastIndex(path, "/")+1:]]
}

func (r *caseRegistry) isTampered(path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tamper[path[strings.LastIndex(path, "/")+1:]]
}

// serveTampered answers with the stored manifest's headers (its digest and
// length) over bytes changed in place: what a corrupting cache or a
// tampering proxy serves.
func (r *caseRegistry) serveTampered(w http.ResponseWriter, req *http.Request) {
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, req)
	body := bytes.Replace(rec.Body.Bytes(), []byte(`"pad":"a"`), []byte(`"pad":"b"`), 1)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// Gone makes the registry answer BLOB_UNKNOWN for digest, as after a
// garbage collection or a half-finished replication.
func (r *caseRegistry) Gone(digest v1.Hash) {
	r.mu.Lock()
	r.gone[digest.String()] = true
	r.mu.Unlock()
}

// Tamper alters the bytes served for the manifest ref (a tag or digest)
// made with padded (annotation pad=a).
func (r *caseRegistry) Tamper(ref string) { r.mu.Lock(); r.tamper[ref] = true; r.mu.Unlock() }

func (r *caseRegistry) seedRef(repo, tag string) name.Reference {
	ref, err := name.ParseReference(strings.TrimPrefix(r.seed.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

func (r *caseRegistry) platformImage(p v1.Platform) v1.Image { return platformImage(r.t, p) }

// platformImage is a small random image whose config says p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	img, err := registrytest.NewPlatformImage(p.OS, p.Architecture)
	if err != nil {
		t.Fatal(err)
	}
	if p.Variant != "" {
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Variant = p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// Image pushes a single-platform image as repo:tag.
func (r *caseRegistry) Image(repo, tag string, p v1.Platform) v1.Image {
	img := r.platformImage(p)
	r.Write(repo, tag, img)
	return img
}

// Write pushes img as repo:tag.
func (r *caseRegistry) Write(repo, tag string, img v1.Image) {
	if err := remote.Write(r.seedRef(repo, tag), img); err != nil {
		r.t.Fatal(err)
	}
}

// WriteIndex pushes idx and its images as repo:tag.
func (r *caseRegistry) WriteIndex(repo, tag string, idx v1.ImageIndex) {
	if err := remote.WriteIndex(r.seedRef(repo, tag), idx); err != nil {
		r.t.Fatal(err)
	}
}

// PaddedImage is Image with the annotation Tamper alters.
func (r *caseRegistry) PaddedImage(repo, tag string, p v1.Platform) v1.Image {
	img := mutate.Annotations(r.platformImage(p), map[string]string{"pad": "a"}).(v1.Image)
	r.Write(repo, tag, img)
	return img
}

// Index pushes an index of one image per platform as repo:tag and returns
// the images in order; padded images carry the annotation Tamper alters.
func (r *caseRegistry) Index(repo, tag string, padded bool, ps ...v1.Platform) []v1.Image {
	idx, imgs := newIndex(r.t, padded, ps...)
	r.WriteIndex(repo, tag, idx)
	return imgs
}

// newIndex is an index of one random image per platform.
func newIndex(t *testing.T, padded bool, ps ...v1.Platform) (v1.ImageIndex, []v1.Image) {
	var idx v1.ImageIndex = empty.Index
	var imgs []v1.Image
	for _, p := range ps {
		img := platformImage(t, p)
		if padded {
			img = mutate.Annotations(img, map[string]string{"pad": "a"}).(v1.Image)
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		imgs = append(imgs, img)
	}
	return idx, imgs
}

// Artifact pushes an OCI manifest whose config is not an image's (a Helm
// chart), with one layer.
func (r *caseRegistry) Artifact(repo, tag string) {
	img := r.platformImage(amd64)
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.cncf.helm.config.v1+json")
	if err := remote.Write(r.seedRef(repo, tag), img); err != nil {
		r.t.Fatal(err)
	}
}

// Raw pushes body as repo:tag with mediaType, byte for byte.
func (r *caseRegistry) Raw(repo, tag, mediaType string, body []byte) {
	req, err := http.NewRequest(http.MethodPut, r.seed.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		r.t.Fatalf("pushing %s:%s: %s", repo, tag, resp.Status)
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func configOf(t *testing.T, img v1.Image) v1.Hash {
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func layerOf(t *testing.T, img v1.Image) v1.Hash {
	m, err := partial.Manifest(img)
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[0].Digest
}
