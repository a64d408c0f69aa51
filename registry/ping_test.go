package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// The /v2/ ping only advises (issue 26): containerd never sends it, it asks
// for the manifest and follows the challenge that answer carries. Fronts
// that route by path (ingresses, WAFs, static registries) answer the bare
// root with 404 or 403 and serve the manifests.
func TestPingStatusIsNotTheVerdict(t *testing.T) {
	root := func(status int) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/v2/" {
				return false
			}
			http.Error(w, http.StatusText(status), status)
			return true
		}
	}
	for _, tc := range []struct {
		name   string
		auth   string // the registry's authentication on everything but the root
		status int    // the root's answer
	}{
		{"404 on the root, anonymous", "", http.StatusNotFound},
		{"403 on the root, anonymous", "", http.StatusForbidden},
		{"400 on the root, anonymous", "", http.StatusBadRequest},
		{"404 on the root, bearer on the manifest", "bearer", http.StatusNotFound},
		{"403 on the root, basic on the manifest", "basic", http.StatusForbidden},
		{"200 on the root, bearer only on the manifest", "bearer", http.StatusOK},
		{"200 on the root, basic only on the manifest", "basic", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := registrytest.New(t)
			want := tr.Image("team/api", "v1", "linux", "amd64")
			tr.Image("team/web", "v1", "linux", "amd64")
			tr.SetAuth(tc.auth)
			tr.SetFault(root(tc.status))
			if tc.status == http.StatusOK {
				tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path == "/v2/" {
						return true // 200, no challenge: the manifest asks for one
					}
					return false
				})
			}
			r := newTestResolver(t)
			var kc *Keychain
			if tc.auth != "" {
				kc = NewKeychain([]*corev1.Secret{goodSecret(tr)})
			}
			img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", kc)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if img.Digest != want {
				t.Errorf("digest %s, want %s", img.Digest, want)
			}
			if tc.auth != "" && img.Credential == "" {
				t.Errorf("resolved without the credential: %+v", img)
			}
			// The next repository on the host goes straight to the challenge
			// the first one learned: one manifest HEAD, no 401 detour.
			tr.Reset()
			if _, err := r.Resolve(context.Background(), tr.Host+"/team/web:v1", kc); err != nil {
				t.Fatalf("second repository: %v", err)
			}
			if n := tr.Count(http.MethodHead, "/manifests/"); n != 1 {
				t.Errorf("second repository: %d manifest HEADs, want 1", n)
			}
			// What the registry says about a missing tag is still the verdict.
			_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v9", kc)
			if e := mustFail(t, err); e.Reason != NotFound {
				t.Errorf("missing tag: %+v, want not-found", e)
			}
		})
	}
}

// A wrong credential behind a root that answers 404 is refused by the
// manifest's own challenge: that is a verdict, the root's 404 is not.
func TestPingAdvisoryStillRefusesWrongCredentials(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{dockerSecret("stale", map[string]string{tr.Host: "mallory"})})
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", kc)
	if e := mustFail(t, err); e.Reason != Unauthorized {
		t.Errorf("wrong credential: %+v, want unauthorized", e)
	}
}

// hugeChallenge answers every request with a 401 whose challenge carries a
// parameter of size bytes, or with a 200 whose header X-Pad has size bytes.
func hugeChallenge(size int, pad bool) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if pad {
			w.Header().Set("X-Pad", strings.Repeat("p", size))
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://auth.example/token",service="%s"`, strings.Repeat("s", size)))
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
}

// A registry's headers are bounded (issue 20: an 8 MiB WWW-Authenticate was
// kept per host in the ping cache, 13.9 MiB each): headers past 64 KiB are
// refused, a challenge parameter past 1 KiB is neither kept nor followed,
// and neither is a denial.
func TestHugeHeadersAreNeitherKeptNorADenial(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		pad  bool
	}{
		{"8 MiB challenge", 8 << 20, false},
		{"900 KiB header", 900 << 10, true}, // under net/http's own 1 MiB default
		{"60 KiB service", 60 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := registrytest.New(t)
			tr.SetFault(hugeChallenge(tc.size, tc.pad))
			r := newTestResolver(t)
			_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
			if e := mustFail(t, err); e.Reason != Unreachable || e.Flavour != FlavourBadResponse {
				t.Errorf("error = %+v, want cannot verify (bad response)", e)
			}
			for _, k := range r.pings.Keys() {
				pr, _ := r.pings.Peek(k)
				if f := measure(pr); f.bytes > 4*maxChallengeParam {
					t.Errorf("ping cache holds %d bytes for %s", f.bytes, k)
				}
			}
		})
	}
}

// containerd never sends the ping, so a /v2/ that answers 5xx while the
// manifests are served (a load balancer whose default rule answers 503 for
// paths it does not route) does not stop the node from pulling. It must not make an existing image "cannot
// verify" (a denial under rules.unreachable: deny), nor open a window over
// every repository on the host.
func TestPingFailureIsNotTheVerdict(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			tr := registrytest.New(t)
			want := tr.Image("team/api", "v1", "linux", "amd64")
			tr.Image("team/web", "v1", "linux", "amd64")
			tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v2/" {
					http.Error(w, "no rule matches this path", status)
					return true
				}
				return false
			})
			r := newTestResolver(t)
			img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
			if err != nil {
				t.Fatalf("existing image behind a root answering %d: %v, want it resolved", status, err)
			}
			if img.Digest != want {
				t.Errorf("digest %s, want %s", img.Digest, want)
			}
			if _, err := r.Resolve(context.Background(), tr.Host+"/team/web:v1", nil); err != nil {
				t.Errorf("another repository on the host: %v, want it resolved", err)
			}
			_, err = r.Resolve(context.Background(), tr.Host+"/team/api:v9", nil)
			if e := mustFail(t, err); e.Reason != NotFound {
				t.Errorf("missing tag: %+v, want not-found", e)
			}
		})
	}
}

// A host whose root is routed elsewhere than the repository (one front,
// backends by path) may name, on /v2/, a token realm that does not know
// the repository's pull secret. containerd never asks the root: it asks
// for the manifest, follows that 401's realm and pulls. The root's realm
// refusing the secret is no verdict; only the manifest's challenge is.
func TestPingRealmRefusalIsNotTheVerdict(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unknown user"}]}`)
	}))
	t.Cleanup(other.Close)
	tr := registrytest.New(t)
	want := tr.Image("team-b/api", "v1", "linux", "amd64")
	tr.SetAuth("bearer")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/" {
			return false
		}
		realm := strings.Replace(other.URL, "127.0.0.1", "localhost", 1) + "/token"
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s",service="team-a"`, realm))
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	r := newTestResolver(t)
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	img, err := r.Resolve(context.Background(), tr.Host+"/team-b/api:v1", kc)
	if err != nil {
		t.Fatalf("image the node pulls with this secret: %v, want it resolved", err)
	}
	if img.Digest != want {
		t.Errorf("digest %s, want %s", img.Digest, want)
	}
	// A wrong secret is still refused, by the manifest's own realm.
	bad := NewKeychain([]*corev1.Secret{dockerSecret("stale", map[string]string{tr.Host: "mallory"})})
	_, err = r.Resolve(context.Background(), tr.Host+"/team-b/api:v1", bad)
	if e := mustFail(t, err); e.Reason != Unauthorized {
		t.Errorf("wrong secret: %+v, want unauthorized", e)
	}
}

// The platform check asks for the manifest by digest, and its config, on
// the transport cached for the repository; once that and the host's
// challenge have expired (10 minutes) while the image's answer has not (a
// digest's is cached a day), a host whose root does not challenge (404,
// or 200 with Bearer on the manifests only) answers the manifest with a
// 401. containerd follows it: the platforms must be read, not "cannot
// verify" (a denial under rules.unreachable: deny, and an image that runs
// on no node admitted).
func TestPlatformsFollowTheManifestChallenge(t *testing.T) {
	for _, root := range []int{http.StatusNotFound, http.StatusOK} {
		t.Run(http.StatusText(root), func(t *testing.T) {
			tr := registrytest.New(t)
			tr.Image("team/api", "v1", "linux", "arm64")
			tr.SetAuth("bearer")
			tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/v2/" {
					return false
				}
				w.WriteHeader(root)
				return true
			})
			shortTTL := func(o *options) error { o.transportTTL = time.Millisecond; return nil }
			r := newTestResolver(t, shortTTL)
			kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
			img, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", kc)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			time.Sleep(10 * time.Millisecond) // the transport and the host's challenge expire
			ps, err := r.Platforms(context.Background(), img)
			if err != nil {
				t.Fatalf("Platforms: %v, want linux/arm64", err)
			}
			if len(ps) != 1 || ps[0].OS != "linux" || ps[0].Architecture != "arm64" {
				t.Errorf("platforms %v, want linux/arm64", ps)
			}
		})
	}
}
