package webhook

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/pullsafe/pullsafe/policy"
)

// UnservedWorkloads compares the config's workloads with what the API server
// serves (mapper: discovery) and says, per entry, why the webhook would
// never see its objects or would see them and check nothing. Typos here are
// silent otherwise: a wrong resource means the API server never calls
// pullsafe, a wrong kind means it calls and pullsafe reads nothing. A CRD
// installed after pullsafe starts is "not served yet", so callers repeat
// this and only log: the config stays valid either way.
func UnservedWorkloads(mapper meta.RESTMapper, kinds []policy.WorkloadKind) []string {
	var out []string
	for i, k := range kinds {
		at := fmt.Sprintf("workloads[%d] (%s)", i, k.GroupKind())
		mappings, err := mapper.RESTMappings(k.GroupKind())
		switch {
		case meta.IsNoMatchError(err) || (err == nil && len(mappings) == 0):
			out = append(out, at+": the API server serves no such kind (CRD not installed yet, or a typo in apiGroup or kind): its objects are not checked")
			continue
		case err != nil:
			var amb *meta.AmbiguousResourceError
			if !errors.As(err, &amb) {
				out = append(out, fmt.Sprintf("%s: cannot ask the API server about it: %v", at, err))
				continue
			}
		}
		var resources, versions []string
		namespaced := false
		for _, m := range mappings {
			if !slices.Contains(resources, m.Resource.Resource) {
				resources = append(resources, m.Resource.Resource)
			}
			versions = append(versions, m.Resource.Version)
			namespaced = namespaced || m.Scope.Name() == meta.RESTScopeNameNamespace
		}
		if !slices.Contains(resources, k.Resource) {
			out = append(out, fmt.Sprintf("%s: served as resource %q, not %q: the webhook configurations name %q, so the API server never sends these objects to pullsafe",
				at, resources[0], k.Resource, k.Resource))
		}
		if !namespaced {
			out = append(out, at+": the kind is cluster-scoped; pullsafe's rules match namespaced objects only (pull secrets live in a namespace)")
		}
		if vs := k.Versions(); !slices.Contains(vs, "*") && !slices.ContainsFunc(vs, func(v string) bool { return slices.Contains(versions, v) }) {
			out = append(out, fmt.Sprintf("%s: apiVersions %v, served versions %v: the API server never sends these objects to pullsafe", at, vs, versions))
		}
	}
	return out
}
