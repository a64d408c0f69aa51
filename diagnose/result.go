package diagnose

import "github.com/pullsafe/pullsafe/policy"

// Pod is one pod's answer.
type Pod struct {
	Name  string `json:"name"`
	Node  string `json:"node,omitempty"`
	Phase string `json:"phase"`
	// Stuck is false for a pod whose images were all pulled; Waiting then
	// says what its containers wait for instead.
	Stuck   bool          `json:"stuck"`
	Waiting []string      `json:"waiting,omitempty"`
	Images  []Explanation `json:"images"`
}

// Result is the whole answer for one target.
type Result struct {
	Namespace string `json:"namespace"`
	Object    string `json:"object"`
	Pods      []Pod  `json:"pods"`
	// MorePods counts the stuck pods not shown (maxPods).
	MorePods int `json:"morePods,omitempty"`
	// Template holds what new pods of a workload would fail on.
	Template []policy.Finding `json:"-"`
	Notes    []string         `json:"notes,omitempty"`
}

// CauseFound reports whether the answer names a cause, or cannot tell
// why an image fails: `pullsafe why` then exits 1.
func (r *Result) CauseFound() bool {
	if len(r.Template) > 0 {
		return true
	}
	for _, p := range r.Pods {
		for _, im := range p.Images {
			if im.Status == StatusFails || im.Status == StatusCannotTell {
				return true
			}
		}
	}
	return false
}
