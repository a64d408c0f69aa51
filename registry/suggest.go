package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxTagsBody caps a tag list response; a registry may hold more tags than
// that, suggestions then come from the first page only.
const maxTagsBody = 1 << 20

// listTags reads one page of the repository's tags.
func (r *Resolver) listTags(ctx context.Context, t http.RoundTripper, ep endpoint) ([]string, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/tags/list?n=%d", ep.reg.Scheme(), ep.host, ep.repo, r.o.maxTags)
	resp, err := r.do(ctx, t, http.MethodGet, u, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, classify(err, ep.repo, ep.host)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTagsBody)).Decode(&list); err != nil {
		return nil, err
	}
	if len(list.Tags) > r.o.maxTags {
		list.Tags = list.Tags[:r.o.maxTags]
	}
	return list.Tags, nil
}

// Caps of the nearest-tag search: the registry chooses the tags (up to
// maxTags of them, each of any length) and the user the wanted tag, so the
// search skips tags longer than a valid one (the distribution spec allows
// 128 characters), computes each distance only as far as its bound, and
// gives up at the lookup's deadline.
const (
	maxSuggestions  = 3
	maxSuggestedTag = 128
	// maxDistance bounds the edits between a tag and a suggestion: past
	// it a tag is no plausible typo or neighbouring version, and the band
	// of each table stays at most 2*maxDistance+1 cells wide.
	maxDistance   = 8
	deadlineEvery = 64 // tags compared between two looks at the deadline
)

// nearest returns up to n tags closest to want by edit distance, only those
// close enough to be a plausible typo or neighbouring version. It stops, with
// what it found so far, when ctx ends.
func nearest(ctx context.Context, want string, tags []string, n int) []string {
	out, _ := nearestCounted(ctx, want, tags, n)
	return out
}

// nearestCounted is nearest, also saying how many cells of the distance
// tables it filled: the work a registry's tag list cost.
func nearestCounted(ctx context.Context, want string, tags []string, n int) ([]string, int) {
	type cand struct {
		tag  string
		dist int
	}
	if len(want) > maxSuggestedTag {
		return nil, 0
	}
	limit := min(max(2, len(want)/2), maxDistance)
	var (
		cs    []cand
		cells int
		rows  = newRows(maxSuggestedTag)
	)
	for i, t := range tags {
		if i%deadlineEvery == 0 && ctx.Err() != nil {
			break
		}
		if len(t) > maxSuggestedTag || t == want {
			continue
		}
		d, c := rows.distanceWithin(want, t, limit)
		cells += c
		if d <= limit {
			cs = append(cs, cand{t, d})
		}
	}
	// Among equals, the higher version-looking tag first ("v1.4.1" before "v1.4.0").
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return strings.Compare(cs[i].tag, cs[j].tag) > 0
	})
	out := make([]string, 0, n)
	for i := 0; i < len(cs) && i < n; i++ {
		out = append(out, cs[i].tag)
	}
	return out, cells
}

// rows are the two rows of a Levenshtein table, reused from tag to tag.
type rows struct{ prev, cur []int }

func newRows(n int) *rows { return &rows{prev: make([]int, n+1), cur: make([]int, n+1)} }

// distanceWithin is the Levenshtein distance over bytes (tags are ASCII) of
// a and b when it is at most k, else k+1; and the number of cells filled.
// Only the band |i-j| <= k of the table can hold a distance within k, and
// once a whole row exceeds k, so does the end: both cut the work from
// len(a)*len(b) to at most len(a)*(2k+1), and to nothing for strings whose
// lengths already differ by more than k. Both strings fit the rows.
func (r *rows) distanceWithin(a, b string, k int) (int, int) {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > k {
		return k + 1, 0
	}
	over := k + 1
	prev, cur := r.prev[:len(b)+1], r.cur[:len(b)+1]
	for j := range prev {
		prev[j] = min(j, over)
	}
	cells := 0
	for i := 1; i <= len(a); i++ {
		lo, hi := max(1, i-k), min(len(b), i+k)
		cur[lo-1] = over
		if lo == 1 {
			cur[0] = min(i, over)
		}
		best := cur[lo-1]
		for j := lo; j <= hi; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost, over)
			best = min(best, cur[j])
		}
		cells += hi - lo + 1
		if hi < len(b) {
			cur[hi+1] = over
		}
		if best > k {
			return over, cells
		}
		prev, cur = cur, prev
	}
	return prev[len(b)], cells
}
