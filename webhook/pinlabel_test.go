package webhook

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
)

// TestPinLabelTypoIsSaidAndFallsBackToTheConfig: pullsafe.io/pin=yes is not
// "false": the Pod is pinned as pin.pods says, and the validating webhook
// says the label was not understood, as it does for pullsafe.io/mode.
func TestPinLabelTypoIsSaidAndFallsBackToTheConfig(t *testing.T) {
	b := newBed(t, withNodes("amd64"), func(_ *policy.Config, objs *[]client.Object) {
		*objs = append(*objs, ns("typo", map[string]string{policy.LabelPin: "yes"}))
	})
	req := request(t, admissionv1.Create, pod("typo", b.open.Host+"/team/api:v1.4.1"), nil, "")
	if m := b.mutate.Handle(context.Background(), req); len(m.Patches) != 1 {
		t.Errorf("mutating: patches %+v, want the pin (pin.pods: true)", m.Patches)
	}
	v := b.validate.Handle(context.Background(), req)
	want := []string{"pullsafe: namespace label pullsafe.io/pin=yes is not true or false; using the config's pin.pods: true"}
	if d := cmp.Diff(want, v.Warnings); !v.Allowed || d != "" {
		t.Errorf("validating: allowed %v, warnings (-want +got):\n%s", v.Allowed, d)
	}
}
