package registry

import (
	"context"
	"errors"
	"sync"
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
	return context.WithValue(ctx, memoryOnlyKey{}, (*MemoryHits)(nil))
}

// MemoryOnlyCounting is MemoryOnly whose cache hits wait in the returned
// MemoryHits until the caller keeps the answers they gave (Count) or asks
// again without the memory-only pass (Drop): a pass given up and made
// again through the slots would otherwise count each hit twice.
func MemoryOnlyCounting(ctx context.Context) (context.Context, *MemoryHits) {
	c := &countingCtx{Context: ctx}
	return c, &c.hits
}

// countingCtx is context.WithValue(ctx, memoryOnlyKey{}, &hits) in one
// allocation instead of two: it runs once per cached review, whose
// allocations are counted (webhook's TestReviewAllocations).
type countingCtx struct {
	context.Context
	hits MemoryHits
}

func (c *countingCtx) Value(key any) any {
	if key == (memoryOnlyKey{}) {
		return &c.hits
	}
	return c.Context.Value(key)
}

// MemoryHits are the cache hits of a memory-only pass not yet counted.
type MemoryHits struct {
	mu sync.Mutex
	m  *metrics
	n  int
}

// Count adds the hits waiting to pullsafe_cache_events_total.
func (h *MemoryHits) Count() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m != nil && h.n > 0 {
		h.m.cache.WithLabelValues("hit").Add(float64(h.n))
	}
	h.n = 0
}

// Drop forgets the hits waiting: the answers are asked for again.
func (h *MemoryHits) Drop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n = 0
}

func memoryOnly(ctx context.Context) bool {
	_, on := ctx.Value(memoryOnlyKey{}).(*MemoryHits)
	return on
}

// hit counts a cache hit, or keeps it for the memory-only pass's caller.
func (r *Resolver) hit(ctx context.Context) {
	if h, _ := ctx.Value(memoryOnlyKey{}).(*MemoryHits); h != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.metrics != nil {
			h.m = r.metrics
			h.n++
		}
		return
	}
	r.metrics.cacheEvent("hit")
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
