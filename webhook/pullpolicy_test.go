package webhook

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestPullNeverIsNeitherLookedUpNorPinned: through both webhooks, a pod
// with imagePullPolicy Never and a tag that does not exist is admitted
// unchanged, and the registry receives no request at all.
func TestPullNeverIsNeitherLookedUpNorPinned(t *testing.T) {
	b := newBed(t, withNodes("amd64"))
	p := pod("team-a", b.open.Host+"/team/api:does-not-exist")
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	b.open.Reset()
	for _, h := range []*Handler{b.mutate, b.validate} {
		resp := h.Handle(context.Background(), request(t, admissionv1.Create, p, nil, ""))
		if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 0 {
			t.Errorf("response %+v, patches %v, warnings %v: want allowed unchanged", resp.Result, resp.Patches, resp.Warnings)
		}
	}
	if n := b.open.Count("", ""); n != 0 {
		t.Errorf("%d registry requests, want 0", n)
	}
}
