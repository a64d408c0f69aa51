package policy

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// fromMemory checks, one after the other, the containers whose every
// answer the registry's resolver holds in memory (registry.MemoryOnly),
// into results, and returns the indexes of the others, for the lookup
// slots. A cached answer sends no request: it takes no slot, so it never
// waits behind another namespace's flood of slow lookups, and costs no
// goroutine. Only the registry's resolver is asked this way; another
// (the audit's, which asks registries again) goes through the slots.
func (c *Checker) fromMemory(ctx context.Context, in Input, results []result) (missed []int) {
	res, ok := c.res.(*registry.Resolver)
	if !ok {
		missed = make([]int, len(in.Containers))
		for i := range missed {
			missed[i] = i
		}
		return missed
	}
	mem := &inMemory{next: res}
	fast := *c
	fast.res = mem
	ctx, hits := registry.MemoryOnlyCounting(ctx)
	for i, ct := range in.Containers {
		mem.missed = false
		r := fast.safeContainer(ctx, in, ct)
		if mem.missed {
			// Worked out again from the start with the slots: a rule may
			// have read the miss as a registry's answer. Its hits count
			// there, once.
			hits.Drop()
			missed = append(missed, i)
			continue
		}
		hits.Count()
		results[i] = r
	}
	return missed
}

// inMemory is the resolver of fromMemory: it notes whether an answer was
// not in memory.
type inMemory struct {
	next   ImageResolver
	missed bool
}

func (m *inMemory) note(err error) {
	if errors.Is(err, registry.ErrNotInMemory) {
		m.missed = true
	}
}

func (m *inMemory) Resolve(ctx context.Context, image string, kc *registry.Keychain) (*registry.Image, error) {
	img, err := m.next.Resolve(ctx, image, kc)
	m.note(err)
	return img, err
}

func (m *inMemory) Platforms(ctx context.Context, img *registry.Image) ([]v1.Platform, error) {
	p, err := m.next.Platforms(ctx, img)
	m.note(err)
	return p, err
}

func (m *inMemory) PullPath(ctx context.Context, img *registry.Image, platforms []v1.Platform) error {
	err := m.next.PullPath(ctx, img, platforms)
	m.note(err)
	return err
}

func (m *inMemory) HasMirror(registry string) bool { return m.next.HasMirror(registry) }

func (m *inMemory) PullIdentity(image string, kc *registry.Keychain) string {
	return m.next.PullIdentity(image, kc)
}
