package webhook

import (
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
)

// pinResponse patches exactly the image fields that resolved, with the
// digest that was checked. The object is never re-encoded: a re-encoded
// typed object silently drops fields newer than our API types.
func (h *Handler) pinResponse(v *policy.Verdict) admission.Response {
	resp := admission.Allowed("")
	// Pinning what validation will refuse only makes its message harder to
	// read (the user's tag would show up as a digest).
	if len(v.Pins) == 0 || v.Decision() == policy.DecisionDeny {
		return resp
	}
	// The API server applies the patch to exactly the object it sent, so
	// each replace lands on the image that was checked.
	ops := make([]jsonpatch.Operation, 0, len(v.Pins))
	for _, p := range v.Pins {
		ops = append(ops, jsonpatch.Operation{Operation: "replace", Path: p.Path, Value: p.To})
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patches = ops
	resp.PatchType = &pt
	resp.AuditAnnotations = map[string]string{"pinned": v.PinnedAnnotation()}
	return resp
}
