package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// These tests feed pullsafe what a hostile registry may send and count what
// stays in memory afterwards (issue 20): bytes, never times.

// footprint is what a walk of everything reachable from a value found.
type footprint struct {
	bytes int
	types map[reflect.Type]bool
	texts []string
	seen  map[uintptr]bool
	steps int
}

// reach walks v and everything it points to, unexported fields included,
// adding up the bytes held outside v itself.
func (f *footprint) reach(v reflect.Value) int {
	if f.steps++; f.steps > 1_000_000 || !v.IsValid() {
		return 0
	}
	f.types[v.Type()] = true
	switch v.Kind() {
	case reflect.String:
		f.texts = append(f.texts, v.String())
		return v.Len()
	case reflect.Pointer:
		if v.IsNil() || f.seen[v.Pointer()] {
			return 0
		}
		f.seen[v.Pointer()] = true
		return int(v.Type().Elem().Size()) + f.reach(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer {
			return f.reach(e)
		}
		return int(e.Type().Size()) + f.reach(e)
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			n += f.reach(v.Field(i))
		}
		return n
	case reflect.Array:
		n := 0
		for i := range v.Len() {
			n += f.reach(v.Index(i))
		}
		return n
	case reflect.Slice:
		if v.IsNil() || f.seen[v.Pointer()] {
			return 0
		}
		f.seen[v.Pointer()] = true
		n := v.Cap() * int(v.Type().Elem().Size())
		for i := range v.Len() {
			n += f.reach(v.Index(i))
		}
		return n
	case reflect.Map:
		if v.IsNil() || f.seen[v.Pointer()] {
			return 0
		}
		f.seen[v.Pointer()] = true
		n := 0
		for it := v.MapRange(); it.Next(); {
			n += int(v.Type().Key().Size()+v.Type().Elem().Size()) + f.reach(it.Key()) + f.reach(it.Value())
		}
		return n
	}
	return 0
}

func measure(v any) *footprint { return measureWithout(v) }

// measureWithout is measure, not walking into shared (pointers): what
// every entry shares, and what other goroutines write while the walk reads
// (the connection pool).
func measureWithout(v any, shared ...any) *footprint {
	f := &footprint{types: map[reflect.Type]bool{}, seen: map[uintptr]bool{}}
	for _, s := range shared {
		f.seen[reflect.ValueOf(s).Pointer()] = true
	}
	rv := reflect.ValueOf(v)
	f.bytes = int(rv.Type().Size()) + f.reach(rv)
	return f
}

// hugeNotFound answers every manifest and tag list with a 404 carrying a
// 64 KiB error body, as the registry of the issue did.
func hugeNotFound(w http.ResponseWriter, r *http.Request) bool {
	if !strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/tags/") {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"pad":%q}}]}`,
			strings.Repeat("d", 63<<10)) // all go-containerregistry reads of an error body: 64 KiB
	}
	return true
}

func TestCachedNotFoundHoldsOnlyClassifiedFields(t *testing.T) {
	tr := registrytest.New(t)
	tr.SetAuth("basic")
	tr.SetFault(hugeNotFound)
	// Answers live longer than the test, however slow the machine.
	r := newTestResolver(t, WithCache(10000, time.Hour, time.Hour))
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	authorization := base64.StdEncoding.EncodeToString([]byte(tr.User + ":" + tr.Pass))
	ctx := context.Background()
	const lookups = 250
	before := heapInUse()
	for i := range lookups {
		_, err := r.Resolve(ctx, fmt.Sprintf("%s/team/app%d:v1", tr.Host, i), kc)
		if e := mustFail(t, err); e.Reason != NotFound {
			t.Fatalf("lookup %d: %+v, want not-found", i, e)
		}
	}
	grown := int64(heapInUse()) - int64(before)
	if n := r.negative.Len(); n != lookups {
		t.Fatalf("%d cached answers, want %d", n, lookups)
	}
	biggest, holds := 0, map[string]int{}
	for _, e := range r.negative.Values() {
		f := measure(e)
		biggest = max(biggest, f.bytes)
		for _, unwanted := range []reflect.Type{reflect.TypeFor[*http.Request](), reflect.TypeFor[http.Header]()} {
			if f.types[unwanted] {
				holds[unwanted.String()]++
			}
		}
		for _, s := range f.texts {
			if strings.Contains(s, authorization) || strings.Contains(s, tr.Pass) {
				holds["the credential"]++
				break
			}
		}
	}
	for what, n := range holds {
		t.Errorf("%d cached answers hold %s", n, what)
	}
	t.Logf("largest cached answer: %d bytes; live heap grew %d KiB for %d not-found lookups with 64 KiB bodies",
		biggest, grown>>10, lookups)
	if biggest > maxCachedError {
		t.Errorf("a cached answer holds %d bytes, want at most %d", biggest, maxCachedError)
	}
	// Everything else a lookup leaves (its transport, parsed reference,
	// metric labels) is a few KiB; one body kept per answer is 64 KiB.
	if limit := int64(lookups * 16 << 10); grown > limit {
		t.Errorf("live heap grew %d KiB for %d lookups, want at most %d KiB", grown>>10, lookups, limit>>10)
	}
}

// BenchmarkNotFoundMemory is the probe: distinct missing images on
// a registry whose 404s carry 64 KiB bodies; it reports the live heap each
// lookup leaves behind and the live heap at the end (-benchtime 1000x is
// the 1,000 images).
func BenchmarkNotFoundMemory(b *testing.B) {
	tr := registrytest.New(b)
	tr.SetAuth("basic")
	tr.SetFault(hugeNotFound)
	r := newTestResolver(b, WithCache(10000, time.Hour, time.Hour))
	kc := NewKeychain([]*corev1.Secret{goodSecret(tr)})
	ctx := context.Background()
	before := heapInUse()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/team/app%d:v1", tr.Host, i), kc); ReasonOf(err) != NotFound {
			b.Fatalf("lookup %d: %v, want not-found", i, err)
		}
		i++
	}
	after := heapInUse()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(i), "live-B/lookup")
	b.ReportMetric(float64(after)/(1<<20), "heap-MiB")
}
