package policy

import (
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// platformJudgements are the platform rule's verdicts of one Check: what an
// image's platforms mean for the eligible nodes is the same for every
// container that runs it (30 containers of one image, a Pod naming an
// image twice), so it is worked out once per review.
//
// Key: the image's digest (its platforms are its content) and the eligible
// nodes (the first element of the review's, or a runtime group's, slice,
// which no one modifies). Bound: one entry per distinct key of the review,
// dropped with it. Who fills it: this review's containers only; the
// findings hold no container and no image, which each container adds as it
// takes them.
type platformJudgements struct {
	mu      sync.Mutex
	entries []judged // few: a review names few distinct images
	first   [4]judged
}

func newPlatformJudgements() *platformJudgements {
	j := &platformJudgements{}
	j.entries = j.first[:0]
	return j
}

type judged struct {
	digest v1.Hash
	nodes  *Node
	result result
}

// get returns the verdict put for digest on eligible (not empty). Without
// judgements (an Input Check did not make) there is none.
func (j *platformJudgements) get(digest v1.Hash, eligible []Node) (result, bool) {
	if j == nil {
		return result{}, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.entries {
		if e.digest == digest && e.nodes == &eligible[0] {
			return e.result, true
		}
	}
	return result{}, false
}

func (j *platformJudgements) put(digest v1.Hash, eligible []Node, r result) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, judged{digest, &eligible[0], r})
}
