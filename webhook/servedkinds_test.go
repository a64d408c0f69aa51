package webhook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/policy"
)

// TestUnservedWorkloads: each way a `workloads` entry can silently check
// nothing is named, and a correct entry gives no message.
func TestUnservedWorkloads(t *testing.T) {
	rollout := schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}
	cluster := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Fleet"}
	// Discovery's mapper knows every served group version, as this one does.
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{rollout.GroupVersion(), cluster.GroupVersion()})
	mapper.AddSpecific(rollout, rollout.GroupVersion().WithResource("rollouts"), rollout.GroupVersion().WithResource("rollout"), meta.RESTScopeNamespace)
	mapper.AddSpecific(cluster, cluster.GroupVersion().WithResource("fleets"), cluster.GroupVersion().WithResource("fleet"), meta.RESTScopeRoot)
	entry := func(group, kind, resource string, versions ...string) policy.WorkloadKind {
		return policy.WorkloadKind{APIGroup: group, Kind: kind, Resource: resource, APIVersions: versions, PodTemplatePath: "spec.template"}
	}
	for _, tt := range []struct {
		name string
		k    policy.WorkloadKind
		want []string
	}{
		{"right", entry("argoproj.io", "Rollout", "rollouts"), nil},
		{"right version", entry("argoproj.io", "Rollout", "rollouts", "v1alpha1"), nil},
		{"kind typo", entry("argoproj.io", "RollOut", "rollouts"),
			[]string{"workloads[0] (RollOut.argoproj.io): the API server serves no such kind (CRD not installed yet, or a typo in apiGroup or kind): its objects are not checked"}},
		{"group typo", entry("argoproj.com", "Rollout", "rollouts"),
			[]string{"workloads[0] (Rollout.argoproj.com): the API server serves no such kind (CRD not installed yet, or a typo in apiGroup or kind): its objects are not checked"}},
		{"resource typo", entry("argoproj.io", "Rollout", "rollout"),
			[]string{`workloads[0] (Rollout.argoproj.io): served as resource "rollouts", not "rollout": the webhook configurations name "rollout", so the API server never sends these objects to pullsafe`}},
		{"version not served", entry("argoproj.io", "Rollout", "rollouts", "v1"),
			[]string{"workloads[0] (Rollout.argoproj.io): apiVersions [v1], served versions [v1alpha1]: the API server never sends these objects to pullsafe"}},
		{"cluster-scoped", entry("example.com", "Fleet", "fleets"),
			[]string{"workloads[0] (Fleet.example.com): the kind is cluster-scoped; pullsafe's rules match namespaced objects only (pull secrets live in a namespace)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, UnservedWorkloads(mapper, []policy.WorkloadKind{tt.k})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
