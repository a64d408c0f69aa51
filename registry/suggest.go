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

// nearest returns up to n tags closest to want by edit distance, only those
// close enough to be a plausible typo or neighbouring version.
func nearest(want string, tags []string, n int) []string {
	type cand struct {
		tag  string
		dist int
	}
	limit := max(2, len(want)/2)
	var cs []cand
	for _, t := range tags {
		if d := distance(want, t); d <= limit && t != want {
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
	return out
}

// distance is the Levenshtein distance over bytes (tags are ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
