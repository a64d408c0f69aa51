package policy

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// fakeResolver answers from tables, so the Checker's rules and messages are
// tested as pure functions: no HTTP, no registry. It records every image it
// was asked for.
type fakeResolver struct {
	images    map[string]*registry.Image // by reference as written
	errs      map[string]error
	platforms map[v1.Hash][]v1.Platform
	platErr   error
	mirrors   map[string]bool
	asked     *asked // records lookups when set
	paths     *pathAnswers
}

// asked is every image a fakeResolver was asked for.
type asked struct {
	mu     sync.Mutex
	images []string
}

func (f *fakeResolver) Resolve(_ context.Context, image string, _ *registry.Keychain) (*registry.Image, error) {
	if f.asked != nil {
		f.asked.mu.Lock()
		f.asked.images = append(f.asked.images, image)
		f.asked.mu.Unlock()
	}
	if err := f.errs[image]; err != nil {
		return nil, err
	}
	if img := f.images[image]; img != nil {
		c := *img
		return &c, nil
	}
	return nil, &registry.Error{Reason: registry.NotFound, Flavour: registry.FlavourTag, Image: image, Message: "manifest unknown"}
}

func (f *fakeResolver) Platforms(_ context.Context, img *registry.Image) ([]v1.Platform, error) {
	return f.platforms[img.Digest], f.platErr
}

func (f *fakeResolver) PullPath(_ context.Context, img *registry.Image, platforms []v1.Platform) error {
	if f.paths != nil {
		f.paths.mu.Lock()
		f.paths.asked = append(f.paths.asked, platforms)
		f.paths.mu.Unlock()
		return f.paths.err
	}
	return nil
}

func (f *fakeResolver) HasMirror(reg string) bool { return f.mirrors[reg] }

func (f *fakeResolver) PullIdentity(string, *registry.Keychain) string { return "" }

// pathAnswers is what a fakeResolver's PullPath answers, and the platforms
// it was asked for.
type pathAnswers struct {
	err   error
	mu    sync.Mutex
	asked [][]v1.Platform
}
