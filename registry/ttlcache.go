package registry

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ttlCache is a size-bounded LRU whose entries expire after ttl (0: never),
// with no goroutine of its own. golang-lru v2.0.7's expirable LRU starts a
// cleanup goroutine per cache that cannot be stopped (its Close is
// commented out upstream): each resolver a config reload replaced left 5
// behind (100 reloads: 37 -> 537 goroutines), and a TTL under 100ns made
// its ticker panic. Here an expired entry is dropped when it is read, and
// Add drops expired entries from the least recently used end, so expired
// answers (and the credentials in cached transports) do not wait for the
// size bound to push them out.
type ttlCache[K comparable, V any] struct {
	mu      sync.Mutex
	lru     *simplelru.LRU[K, ttlEntry[V]]
	ttl     time.Duration
	onEvict func(K, V)
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time // zero: never
}

// sweepPerAdd bounds the expired entries one Add drops: Add stays O(1).
const sweepPerAdd = 4

func newTTLCache[K comparable, V any](size int, onEvict func(K, V), ttl time.Duration) *ttlCache[K, V] {
	c := &ttlCache[K, V]{ttl: ttl, onEvict: onEvict}
	lru, err := simplelru.NewLRU[K, ttlEntry[V]](max(size, 1), func(k K, e ttlEntry[V]) {
		if c.onEvict != nil {
			c.onEvict(k, e.v)
		}
	})
	if err != nil {
		panic(err) // only for size < 1, excluded above
	}
	c.lru = lru
	return c
}

func (c *ttlCache[K, V]) expired(e ttlEntry[V], now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}

// Add adds or replaces key's value, which expires ttl from now.
func (c *ttlCache[K, V]) Add(key K, v V) {
	now := time.Now()
	e := ttlEntry[V]{v: v}
	if c.ttl > 0 {
		e.expires = now.Add(c.ttl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for range sweepPerAdd {
		k, old, ok := c.lru.GetOldest()
		if !ok || !c.expired(old, now) {
			break
		}
		c.lru.Remove(k)
	}
	c.lru.Add(key, e)
}

// Get returns key's value unless it is missing or expired.
func (c *ttlCache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	if ok && c.expired(e, time.Now()) {
		c.lru.Remove(key)
		ok = false
	}
	if !ok {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Remove drops key.
func (c *ttlCache[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(key)
}

// Keys lists the keys of entries not expired, oldest first.
func (c *ttlCache[K, V]) Keys() []K {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []K
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && !c.expired(e, now) {
			out = append(out, k)
		}
	}
	return out
}

// Len counts the entries held, expired ones not yet dropped included.
func (c *ttlCache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Purge drops every entry.
func (c *ttlCache[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// Values lists the values of entries not expired, oldest first.
func (c *ttlCache[K, V]) Values() []V {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []V
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && !c.expired(e, now) {
			out = append(out, e.v)
		}
	}
	return out
}

// Peek returns key's value unless it is missing or expired, without
// making it the most recently used.
func (c *ttlCache[K, V]) Peek(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(key)
	if !ok || c.expired(e, time.Now()) {
		var zero V
		return zero, false
	}
	return e.v, true
}
