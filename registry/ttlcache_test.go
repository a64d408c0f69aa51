package registry

import (
	"runtime"
	"testing"
	"time"
)

// A ttlCache starts no goroutine, whatever its TTL (expirable's panicked
// under 100ns and spun a core under a microsecond), and bounds what it holds.
func TestTTLCacheNeedsNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	var caches []*ttlCache[string, int]
	for _, ttl := range []time.Duration{0, time.Nanosecond, 50 * time.Nanosecond, time.Hour} {
		for range 100 {
			caches = append(caches, newTTLCache[string, int](10, nil, ttl))
		}
	}
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("400 caches: %d -> %d goroutines", before, after)
	}
	runtime.KeepAlive(caches) // alive while goroutines are counted
	c := newTTLCache[string, int](2, nil, time.Hour)
	for i, k := range []string{"a", "b", "c"} {
		c.Add(k, i)
	}
	if _, ok := c.Get("a"); ok || c.Len() != 2 {
		t.Errorf("size 2 after 3 adds: a kept %v, len %d", ok, c.Len())
	}
	if v, ok := c.Get("c"); !ok || v != 2 {
		t.Errorf("c = %v, %v", v, ok)
	}
}

func TestTTLCacheExpires(t *testing.T) {
	var evicted []string
	c := newTTLCache(100, func(k string, _ int) { evicted = append(evicted, k) }, time.Nanosecond)
	c.Add("old", 1)
	c.Add("older", 2)
	time.Sleep(time.Millisecond) // the entries' nanosecond passes
	if _, ok := c.Get("old"); ok {
		t.Error("an expired entry was answered")
	}
	c.Add("new", 3) // drops expired entries from the least recently used end
	if c.Len() != 1 {
		t.Errorf("after expiry and an add: %d entries held, want 1 (new)", c.Len())
	}
	if len(evicted) != 2 {
		t.Errorf("evicted %v, want old and older", evicted)
	}
}
