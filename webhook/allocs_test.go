//go:build !race

// The race detector allocates on its own: these counts hold without it.

package webhook

import (
	"context"
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestReviewAllocations guards the per-review cost of cached answers
// (issue 24: ≤ 80 allocations for a cached 3-container Pod). Counts, not
// times: they do not depend on the machine's load. Each bound is the
// review's count when it was set; a change that adds allocations to every
// review shows up here before it shows up in a benchmark nobody ran.
func TestReviewAllocations(t *testing.T) {
	bd := newBed(t, withNodes("amd64", "amd64", "arm64"))
	api := bd.open.Host + "/team/api:v1.4.1"
	large := pod("team-a")
	for i := range 30 {
		large.Spec.Containers = append(large.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%02d", i), Image: api})
	}
	for _, tc := range []struct {
		name string
		obj  *corev1.Pod
		max  float64
	}{
		{"Pod3", pod("team-a", api, bd.open.Host+"/multi/app:v1", "nginx:1.27"), 80},
		{"Pod30", large, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, admissionv1.Create, tc.obj, nil, "")
			ctx := context.Background()
			if resp := bd.validate.Handle(ctx, req); !resp.Allowed { // warm the caches
				t.Fatal(resp.Result)
			}
			got := testing.AllocsPerRun(50, func() {
				if resp := bd.validate.Handle(ctx, req); !resp.Allowed {
					t.Fatal(resp.Result)
				}
			})
			t.Logf("%v allocations per review", got)
			if got > tc.max {
				t.Errorf("a cached review allocates %v times, want at most %v", got, tc.max)
			}
		})
	}
}
