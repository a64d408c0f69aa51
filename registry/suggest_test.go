package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// levenshtein is the full table, the reference distanceWithin must agree with.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func TestDistanceWithinAgreesWithTheFullTable(t *testing.T) {
	rows := newRows(maxSuggestedTag)
	pairs := [][2]string{{"", ""}, {"", "abc"}, {"v1.4.2", "v1.4.1"}, {"latest", "lastet"}, {"v1", "v2.0.0-rc.1"},
		{"kitten", "sitting"}, {"abc", "cba"}, {"1.27", "1.27-alpine"}}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		gen := func() string {
			b := make([]byte, rnd.IntN(20))
			for i := range b {
				b[i] = "ab.1-"[rnd.IntN(5)]
			}
			return string(b)
		}
		pairs = append(pairs, [2]string{gen(), gen()})
	}
	for _, p := range pairs {
		for k := range 12 {
			want := min(levenshtein(p[0], p[1]), k+1)
			if got, _ := rows.distanceWithin(p[0], p[1], k); got != want {
				t.Fatalf("distanceWithin(%q, %q, %d) = %d, want %d", p[0], p[1], k, got, want)
			}
		}
	}
}

// longTags are n tags of size bytes, none of them near anything.
func longTags(n, size int) []string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf("v%d-", i) + strings.Repeat("x", size)
	}
	return tags
}

func TestNearestWorkIsBounded(t *testing.T) {
	want := strings.Repeat("v1.4.2-", 19)[:maxSuggestedTag] // the longest tag a reference may name
	k := min(len(want)/2, maxDistance)
	for _, tc := range []struct {
		name     string
		tags     []string
		maxCells int
	}{
		// Longer than any valid tag: not compared at all. The full table
		// was 1,000 x 1,027 x 128 cells (131 million).
		{"1000 tags of 1 KiB", longTags(1000, 1<<10), 0},
		// Valid lengths: at most the band of each table, len(want) x (2k+1).
		{"1000 tags of 120 bytes", longTags(1000, 120-5), 1000 * len(want) * (2*k + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, cells := nearestCounted(context.Background(), want, tc.tags, maxSuggestions)
			t.Logf("%d cells, suggestions %q", cells, out)
			if cells > tc.maxCells {
				t.Errorf("%d cells filled, want at most %d", cells, tc.maxCells)
			}
		})
	}
}

func TestNearestStopsAtTheDeadline(t *testing.T) {
	tags := append(longTags(5000, 100), "v1.4.1")
	ctx, cancel := context.WithCancel(context.Background())
	if out, _ := nearestCounted(ctx, "v1.4.2", tags, maxSuggestions); !cmp.Equal(out, []string{"v1.4.1"}) {
		t.Fatalf("with time left: %q, want [v1.4.1]", out)
	}
	cancel()
	if out, cells := nearestCounted(ctx, "v1.4.2", tags, maxSuggestions); len(out) != 0 || cells != 0 {
		t.Errorf("after the deadline: %q after %d cells, want nothing computed", out, cells)
	}
}

// BenchmarkNearestLongTags is a registry listing 1,000 tags of 1 KiB for a
// missing 128-character tag (issue 20: 278 ms of CPU per lookup).
func BenchmarkNearestLongTags(b *testing.B) {
	tags := longTags(1000, 1<<10)
	want := strings.Repeat("v1.4.2-", 19)[:maxSuggestedTag]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		nearest(ctx, want, tags, maxSuggestions)
	}
}

// BenchmarkNearestValidTags is the worst a registry can still make it do:
// 1,000 tags of a valid length, each compared within its bound.
func BenchmarkNearestValidTags(b *testing.B) {
	tags := longTags(1000, 120)
	want := strings.Repeat("v1.4.2-", 19)[:maxSuggestedTag]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		nearest(ctx, want, tags, maxSuggestions)
	}
}
