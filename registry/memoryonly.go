package registry

import (
	"context"
	"errors"
)

// ErrNotInMemory is the answer of a lookup made with MemoryOnly that the
// resolver could not give without a request: nothing cached for it, or a
// credential provider to run first.
var ErrNotInMemory = errors.New("registry: answer not in memory")

type memoryOnlyKey struct{}

// MemoryOnly returns a context whose lookups (Resolve, Platforms, PullPath)
// answer from what the resolver holds in memory, cached answers and cached
// refusals alike, and otherwise return ErrNotInMemory at once: they never
// send a request, start a lookup, run a credential provider or wait for
// one. A caller that bounds lookups in flight (policy's slots) asks this
// way first, so an answer in memory takes no slot and waits for none. A
// background lookup (WithBudget) skips the caches, so with MemoryOnly it
// always gets ErrNotInMemory.
func MemoryOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoryOnlyKey{}, true)
}

func memoryOnly(ctx context.Context) bool {
	on, _ := ctx.Value(memoryOnlyKey{}).(bool)
	return on
}

// matchesAny reports whether a provider would be asked for image, which
// may mean running it.
func (cp *CredentialProviders) matchesAny(image string) bool {
	if cp == nil {
		return false
	}
	for _, p := range cp.providers {
		if p.matches(image) {
			return true
		}
	}
	return false
}
