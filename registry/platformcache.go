package registry

import (
	"container/list"
	"fmt"
	"sync"
	"time"
	"unsafe"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// platformSet is what the platform rule needs from an image: its distinct
// platforms, at most maxPlatforms of them, and whether there were more.
type platformSet struct {
	platforms []v1.Platform
	truncated bool

	// What a node fetches next (pullpath.go). For an index, children[i]
	// is the digest of the first entry offering platforms[i]; for a
	// manifest with a config, blobs are its config and layers.
	index    bool
	children []string
	blobs    *pathBlobs
	// readAt names the host, repository and credential that served a
	// single manifest's config (configReader): the cache is shared by
	// digest, and that one registry served it says nothing of another.
	readAt string
}

// size is an estimate of the bytes the set holds on the heap, for the
// cache's byte bound.
func (s platformSet) size() int64 {
	n := int64(unsafe.Sizeof(s)) + int64(cap(s.platforms))*int64(unsafe.Sizeof(v1.Platform{}))
	for _, p := range s.platforms {
		n += int64(len(p.OS) + len(p.Architecture) + len(p.Variant) + len(p.OSVersion))
	}
	n += int64(cap(s.children)) * int64(unsafe.Sizeof(""))
	for _, c := range s.children {
		n += int64(len(c))
	}
	return n + int64(len(s.readAt)) + s.blobs.size()
}

// platformCache holds platform sets by digest, bounded in entries and in
// bytes, each entry expiring after ttl. The answer for a digest never
// changes, but a cache that never forgets grows with every image a user
// names; the TTL lets rarely used entries go even when there is room.
type platformCache struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int64
	ttl        time.Duration
	now        func() time.Time
	order      *list.List // front: most recently used
	items      map[string]*list.Element
	bytes      int64
}

type platformEntry struct {
	key     string
	set     platformSet
	size    int64
	expires time.Time
}

// entryOverhead is a cache entry's own cost besides key and set: list
// element, map slot, entry struct.
const entryOverhead = 160

func newPlatformCache(maxEntries int, maxBytes int64, ttl time.Duration, now func() time.Time) *platformCache {
	return &platformCache{maxEntries: maxEntries, maxBytes: maxBytes, ttl: ttl, now: now,
		order: list.New(), items: map[string]*list.Element{}}
}

func (c *platformCache) get(key string) (platformSet, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return platformSet{}, false
	}
	e := el.Value.(*platformEntry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return platformSet{}, false
	}
	c.order.MoveToFront(el)
	return e.set, true
}

func (c *platformCache) add(key string, set platformSet) {
	size := int64(len(key)) + set.size() + entryOverhead
	if c.maxEntries <= 0 || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	e := &platformEntry{key: key, set: set, size: size, expires: c.now().Add(c.ttl)}
	c.items[key] = c.order.PushFront(e)
	c.bytes += size
	// Expired entries at the cold end go first, then the least recently used.
	for back := c.order.Back(); back != nil && !c.now().Before(back.Value.(*platformEntry).expires); back = c.order.Back() {
		c.remove(back)
	}
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *platformCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*platformEntry)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// len reports the cache's size, for tests.
func (c *platformCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// WithPlatformCache bounds the cache of platform lists (by image digest):
// at most entries lists and maxBytes bytes, each kept for ttl. Defaults:
// 10000 entries, 8 MiB, 24h. One list holds at most 64 distinct platforms.
func WithPlatformCache(entries int, maxBytes int64, ttl time.Duration) Option {
	return func(o *options) error {
		if entries <= 0 || maxBytes <= 0 || ttl <= 0 {
			return fmt.Errorf("platform cache: entries, bytes and TTL must be positive, got %d, %d, %s", entries, maxBytes, ttl)
		}
		o.platformEntries, o.platformBytes, o.platformTTL = entries, maxBytes, ttl
		return nil
	}
}
