package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestMemoryOnly: a lookup made with MemoryOnly sends no request; it gets
// ErrNotInMemory until a lookup cached the answer, then exactly the
// answer a lookup without it gets (refusals included); and a credential
// provider to run is never run.
func TestMemoryOnly(t *testing.T) {
	tr := registrytest.New(t)
	tr.Index("multi/app", "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	r := newTestResolver(t)
	ctx, mem := context.Background(), MemoryOnly(context.Background())
	image, missing := tr.Host+"/multi/app:v1", tr.Host+"/multi/app:v2"

	for _, im := range []string{image, missing} {
		if _, err := r.Resolve(mem, im, nil); !errors.Is(err, ErrNotInMemory) {
			t.Errorf("Resolve(%s) before any lookup: %v, want ErrNotInMemory", im, err)
		}
	}
	if n := len(tr.Authorizations()); n != 0 {
		t.Fatalf("%d requests for memory-only lookups, want 0", n)
	}
	img, err := r.Resolve(ctx, image, nil)
	if err != nil {
		t.Fatal(err)
	}
	plat := []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	if _, err := r.Platforms(mem, img); !errors.Is(err, ErrNotInMemory) {
		t.Errorf("Platforms before any lookup: %v, want ErrNotInMemory", err)
	}
	if err := r.PullPath(mem, img, plat); !errors.Is(err, ErrNotInMemory) {
		t.Errorf("PullPath before any lookup: %v, want ErrNotInMemory", err)
	}
	platforms, perr := r.Platforms(ctx, img)
	pathErr := r.PullPath(ctx, img, plat)
	_, missErr := r.Resolve(ctx, missing, nil)
	if perr != nil || pathErr != nil || missErr == nil {
		t.Fatalf("platforms %v, pull path %v, missing tag %v", perr, pathErr, missErr)
	}
	requests := len(tr.Authorizations())

	memImg, err := r.Resolve(mem, image, nil)
	if d := cmp.Diff(img, memImg, cmpopts.IgnoreUnexported(Image{})); err != nil || d != "" {
		t.Errorf("Resolve from memory: %v (-lookup +memory):\n%s", err, d)
	}
	if got, err := r.Platforms(mem, memImg); err != nil || !cmp.Equal(platforms, got) {
		t.Errorf("Platforms from memory: %v, %v; want %v", got, err, platforms)
	}
	if err := r.PullPath(mem, memImg, plat); err != nil {
		t.Errorf("PullPath from memory: %v", err)
	}
	if _, err := r.Resolve(mem, missing, nil); err == nil || err.Error() != missErr.Error() {
		t.Errorf("a cached not-found from memory: %v, want %v", err, missErr)
	}
	if n := len(tr.Authorizations()) - requests; n != 0 {
		t.Errorf("%d requests for answers in memory, want 0", n)
	}

	// A provider matching the image would have to run first.
	config, dir := tr.TokenProviderFiles(t)
	cp, err := LoadCredentialProviders(config, dir)
	if err != nil {
		t.Fatal(err)
	}
	withProvider := newTestResolver(t, WithCredentialProviders(cp))
	before := tr.Count(http.MethodHead, "/multi/app/manifests/v1")
	if _, err := withProvider.Resolve(mem, image, nil); !errors.Is(err, ErrNotInMemory) {
		t.Errorf("Resolve with a matching credential provider: %v, want ErrNotInMemory", err)
	}
	if n := tr.Count(http.MethodHead, "/multi/app/manifests/v1") - before; n != 0 {
		t.Errorf("%d HEADs, want 0", n)
	}
}
