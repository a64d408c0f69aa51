package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// rescoping answers the first request for each manifest with a 401 whose
// challenge names a scope never sent before: go-containerregistry's bearer
// transport adds every such scope to the ones its cached transport asks
// tokens for, and drops none (issue 20). Retries pass.
type rescoping struct {
	tr    *registrytest.Registry
	scope func(i int) string // the i-th new scope
	pad   int                // bytes of an error_description beside it

	mu   sync.Mutex
	seen map[string]bool
}

func (f *rescoping) fault(w http.ResponseWriter, r *http.Request) bool {
	if !strings.Contains(r.URL.Path, "/manifests/") {
		return false
	}
	f.mu.Lock()
	first, i := !f.seen[r.URL.Path], len(f.seen)
	f.seen[r.URL.Path] = true
	f.mu.Unlock()
	if !first {
		return false
	}
	h := fmt.Sprintf(`Bearer realm="%s/token",service="test",scope="%s"`, f.tr.Server.URL, f.scope(i))
	if f.pad > 0 {
		h += fmt.Sprintf(`,error_description="%s"`, strings.Repeat("e", f.pad))
	}
	w.Header().Set("WWW-Authenticate", h)
	w.WriteHeader(http.StatusUnauthorized)
	return true
}

func TestChallengeScopesStayBounded(t *testing.T) {
	const lookups = 200
	cases := []struct {
		name  string
		scope func(i int) string
		pad   int
		// want is the digest's answer, or the reason of the refusal
		resolves   bool
		wantReason Reason
	}{
		{name: "normal bearer registry"},
		{name: "token expired: the same scope again", scope: func(int) string { return "repository:team/app:pull" }, resolves: true},
		{name: "a new 60 KiB scope each time", scope: func(i int) string {
			return fmt.Sprintf("repository:team/app:pull,x%d", i) + strings.Repeat("s", 60<<10)
		}, wantReason: Unreachable},
		{name: "a new 900-byte scope each time beside 60 KiB of text", scope: func(i int) string {
			return fmt.Sprintf("repository:team/app:pull,x%d", i) + strings.Repeat("a", 900)
		}, pad: 60 << 10, resolves: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.scope == nil {
				tc.resolves = true
			}
			tr := registrytest.New(t)
			desc := tr.ImageDescriptor("team/app", "v0", "linux", "amd64")
			index := registrytest.IndexOf(desc, []v1.Platform{{OS: "linux", Architecture: "amd64"}})
			var want v1.Hash
			for i := range lookups {
				want = tr.RawManifest("team/app", fmt.Sprintf("t%d", i), "application/vnd.oci.image.index.v1+json", index)
			}
			tr.SetAuth("bearer")
			if tc.scope != nil {
				f := &rescoping{tr: tr, scope: tc.scope, pad: tc.pad, seen: map[string]bool{}}
				tr.SetFault(f.fault)
			}
			r := newTestResolver(t, WithCache(10000, time.Hour, time.Hour), WithLookupTimeout(time.Minute))
			kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
			ctx := context.Background()
			before := heapInUse()
			wrong, first := 0, ""
			for i := range lookups {
				img, err := r.Resolve(ctx, fmt.Sprintf("%s/team/app:t%d", tr.Host, i), kc)
				var got string
				switch {
				case tc.resolves && err != nil:
					got = err.Error()
				case tc.resolves && img.Digest != want:
					got = img.Digest.String()
				case !tc.resolves && ReasonOf(err) != tc.wantReason:
					got = fmt.Sprintf("%v (%s)", err, ReasonOf(err))
				}
				if got != "" {
					if wrong++; wrong == 1 {
						first = fmt.Sprintf("lookup %d: %s", i, got)
					}
				}
			}
			if wrong > 0 {
				want := want.String()
				if !tc.resolves {
					want = string(tc.wantReason)
				}
				t.Errorf("%d of %d lookups answered otherwise than %s; first: %s", wrong, lookups, want, first)
			}
			grown := int64(heapInUse()) - int64(before)
			held := measureWithout(r.auth.Values(), r.pool).bytes
			t.Logf("cached transports hold %d KiB; live heap grew %d KiB over %d lookups", held>>10, grown>>10, lookups)
			// One 60 KiB scope kept per lookup is 12 MiB, one of 900 bytes
			// 175 KiB; what a transport may learn is maxFollowedScopes
			// scopes of at most 1 KiB each.
			if limit := 64 << 10; held > limit {
				t.Errorf("cached transports hold %d KiB, want at most %d KiB", held>>10, limit>>10)
			}
			if limit := int64(4 << 20); grown > limit {
				t.Errorf("live heap grew %d KiB, want at most %d KiB", grown>>10, limit>>10)
			}
		})
	}
}

// What the bearer transport keeps of a scope is a slice of the header it
// read: the guard hands it a challenge written afresh, realm, service and
// scope only, so no 60 KiB header stays pinned by a 100-byte scope.
func TestScopeGuardPassesOnlyWhatItFollows(t *testing.T) {
	tr := registrytest.New(t)
	f := &rescoping{tr: tr, pad: 60 << 10, seen: map[string]bool{}, scope: func(i int) string {
		return fmt.Sprintf("repository:team/app:pull,x%d", i)
	}}
	tr.SetFault(f.fault)
	realm := tr.Server.URL + "/token"
	g := newScopeGuard(http.DefaultTransport, tr.Host, realm, "repository:team/app:pull")
	req, err := http.NewRequest(http.MethodHead, tr.Server.URL+"/v2/team/app/manifests/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := resp.Header.Values("WWW-Authenticate")
	want := []string{`bearer realm="` + realm + `",service="test",scope="repository:team/app:pull,x0"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WWW-Authenticate passed on (-want +got):\n%s", diff)
	}
	if _, params, _ := parseChallenge(got[0]); params["scope"] != "repository:team/app:pull,x0" {
		t.Errorf("scope reads back as %q", params["scope"])
	}
}

// TestScopeGuardLegitimateChallengesResolve: the 401s real registries send
// once a token expired or lacks a scope (Docker Hub's and distribution's
// error="insufficient_scope", Harbor's error_description with quoted
// commas, a lowercase scheme, Bearer and Basic offered together, plugin and
// push scopes, several scopes space-separated, an unquoted service) pass
// the guard as the bearer transport reads them: every lookup resolves, with
// no lookup that costs more than one extra token request.
func TestScopeGuardLegitimateChallengesResolve(t *testing.T) {
	const lookups = 12
	cases := []struct {
		name    string
		headers func(realm string) []string
	}{
		{"Docker Hub insufficient_scope", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull",error="insufficient_scope"`}
		}},
		{"lowercase scheme", func(realm string) []string {
			return []string{`bearer realm="` + realm + `",service="test",scope="repository:team/app:pull"`}
		}},
		{"Bearer and Basic headers", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull"`, `Basic realm="Registry Realm"`}
		}},
		{"Basic first, then Bearer", func(realm string) []string {
			return []string{`Basic realm="Registry Realm"`, `Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull"`}
		}},
		{"Bearer and Basic in one header", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull", Basic realm="x"`}
		}},
		{"Harbor error_description with quoted commas", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull",error="insufficient_scope",error_description="a, \"b\", c"`}
		}},
		{"plugin scope", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository(plugin):team/app:pull"`}
		}},
		{"pull,push scope", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull,push"`}
		}},
		{"two scopes space-separated", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `",service="test",scope="repository:team/app:pull repository:team/base:pull"`}
		}},
		{"unquoted service, spaces after commas", func(realm string) []string {
			return []string{`Bearer realm="` + realm + `", service=test, scope="repository:team/app:pull"`}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := registrytest.New(t)
			desc := tr.ImageDescriptor("team/app", "v0", "linux", "amd64")
			index := registrytest.IndexOf(desc, []v1.Platform{{OS: "linux", Architecture: "amd64"}})
			var want v1.Hash
			for i := range lookups {
				want = tr.RawManifest("team/app", fmt.Sprintf("t%d", i), "application/vnd.oci.image.index.v1+json", index)
			}
			tr.SetAuth("bearer")
			var mu sync.Mutex
			seen := map[string]bool{}
			tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, "/manifests/") {
					return false
				}
				mu.Lock()
				first := !seen[r.URL.Path]
				seen[r.URL.Path] = true
				mu.Unlock()
				if !first {
					return false
				}
				for _, h := range tc.headers(tr.Server.URL + "/token") {
					w.Header().Add("WWW-Authenticate", h)
				}
				w.WriteHeader(http.StatusUnauthorized)
				return true
			})
			r := newTestResolver(t, WithCache(10000, time.Hour, time.Hour), WithLookupTimeout(time.Minute))
			kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
			for i := range lookups {
				img, err := r.Resolve(context.Background(), fmt.Sprintf("%s/team/app:t%d", tr.Host, i), kc)
				if err != nil {
					t.Fatalf("lookup %d: %v (%s)", i, err, ReasonOf(err))
				}
				if img.Digest != want {
					t.Fatalf("lookup %d: digest %s, want %s", i, img.Digest, want)
				}
			}
			// One token for the first lookup, one per 401 after: the
			// guard neither refuses nor loops.
			if n, limit := tr.Count("GET", "/token"), 1+lookups; n > limit {
				t.Errorf("%d token requests for %d lookups, want at most %d", n, lookups, limit)
			}
		})
	}
}
