package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
)

// WorkloadKind is one entry of the config's `workloads`: a kind beyond the
// built-in ones whose objects carry a pod template (Argo Rollouts' Rollout,
// OpenKruise's CloneSet, Knative's Service) or a pod spec. Its objects are
// checked like a Deployment's template. Key names are a contract with users.
type WorkloadKind struct {
	APIGroup string `json:"apiGroup"`
	Kind     string `json:"kind"`
	// Resource is the plural the webhook configurations' rules name.
	Resource string `json:"resource"`
	// APIVersions the webhooks are called for (default ["*"]); the API
	// server converts objects of other versions to one of these first.
	APIVersions []string `json:"apiVersions,omitempty"`
	// Exactly one of: the dotted path to a pod template (an object whose
	// .spec is a pod spec), or to a pod spec itself.
	PodTemplatePath string `json:"podTemplatePath,omitempty"`
	PodSpecPath     string `json:"podSpecPath,omitempty"`
}

// maxWorkloadKinds bounds the section: each entry is a webhook rule and a
// scan per review, and a config naming more is more likely a mistake.
const maxWorkloadKinds = 50

// maxPathSegments bounds a path's depth (CronJob's, the deepest built-in, has 5).
const maxPathSegments = 10

// pathSegment is one field name of a dotted path: what CRD schemas use.
// Dots separate; "/", "[", "*" and spaces are refused so a JSON pointer or
// a JSONPath typed here is an error, not a path that never matches.
var pathSegment = regexp.MustCompile(`^[A-Za-z0-9_$-]+$`)

// GroupKind is the entry's group and kind.
func (k WorkloadKind) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: k.APIGroup, Kind: k.Kind}
}

// Versions are the API versions the webhook rules name.
func (k WorkloadKind) Versions() []string {
	if len(k.APIVersions) == 0 {
		return []string{"*"}
	}
	return k.APIVersions
}

// path is the configured path as field names, and whether it leads to a
// pod template (else to a pod spec).
func (k WorkloadKind) path() ([]string, bool) {
	if k.PodTemplatePath != "" {
		return strings.Split(k.PodTemplatePath, "."), true
	}
	return strings.Split(k.PodSpecPath, "."), false
}

// validateWorkloads checks the `workloads` section; errors name the entry
// and its key.
func validateWorkloads(ks []WorkloadKind) error {
	if len(ks) > maxWorkloadKinds {
		return fmt.Errorf("workloads: %d entries, at most %d", len(ks), maxWorkloadKinds)
	}
	kinds, resources := map[schema.GroupKind]int{}, map[string]int{}
	for i, k := range ks {
		at := fmt.Sprintf("workloads[%d]", i)
		if err := k.validate(); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if j, dup := kinds[k.GroupKind()]; dup {
			return fmt.Errorf("%s: %s/%s is already workloads[%d]", at, k.APIGroup, k.Kind, j)
		}
		if j, dup := resources[k.APIGroup+"/"+k.Resource]; dup {
			return fmt.Errorf("%s.resource: %s/%s is already workloads[%d]", at, k.APIGroup, k.Resource, j)
		}
		kinds[k.GroupKind()], resources[k.APIGroup+"/"+k.Resource] = i, i
	}
	return nil
}

func (k WorkloadKind) validate() error {
	if _, builtin := podSpecPaths[k.GroupKind()]; builtin {
		return fmt.Errorf("%s/%s is built in: it cannot be redefined", k.APIGroup, k.Kind)
	}
	if k.APIGroup == "" {
		return fmt.Errorf("apiGroup: required (the core group has no custom kinds)")
	}
	if errs := validation.IsDNS1123Subdomain(k.APIGroup); len(errs) > 0 || !strings.Contains(k.APIGroup, ".") {
		return fmt.Errorf("apiGroup: %q is not a CRD group (a lowercase DNS name with at least one dot, e.g. argoproj.io)", k.APIGroup)
	}
	if errs := validation.IsDNS1035Label(strings.ToLower(k.Kind)); len(errs) > 0 {
		return fmt.Errorf("kind: %q is not a kind (e.g. Rollout): %s", k.Kind, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1035Label(k.Resource); len(errs) > 0 {
		return fmt.Errorf("resource: %q is not a resource (the lowercase plural, e.g. rollouts; no subresources): %s",
			k.Resource, strings.Join(errs, "; "))
	}
	if err := validVersions(k.APIVersions); err != nil {
		return fmt.Errorf("apiVersions: %w", err)
	}
	switch {
	case k.PodTemplatePath == "" && k.PodSpecPath == "":
		return fmt.Errorf("podTemplatePath or podSpecPath: one is required")
	case k.PodTemplatePath != "" && k.PodSpecPath != "":
		return fmt.Errorf("podTemplatePath and podSpecPath: give only one")
	case k.PodTemplatePath != "":
		return validPath("podTemplatePath", k.PodTemplatePath)
	}
	return validPath("podSpecPath", k.PodSpecPath)
}

func validVersions(vs []string) error {
	for i, v := range vs {
		if v == "*" && len(vs) > 1 {
			return fmt.Errorf(`"*" is all versions: list nothing else`)
		}
		if errs := validation.IsDNS1035Label(v); v != "*" && len(errs) > 0 {
			return fmt.Errorf("%q is not a version (e.g. v1alpha1)", v)
		}
		if slices.Contains(vs[:i], v) {
			return fmt.Errorf("%q is listed twice", v)
		}
	}
	return nil
}

func validPath(key, p string) error {
	segs := strings.Split(p, ".")
	if len(segs) > maxPathSegments {
		return fmt.Errorf("%s: %q is deeper than %d fields", key, p, maxPathSegments)
	}
	for _, s := range segs {
		if !pathSegment.MatchString(s) {
			return fmt.Errorf("%s: %q is not a dotted path of field names (e.g. spec.template)", key, p)
		}
	}
	return nil
}

// customKind returns the configured entry for gk, if any.
func customKind(gk schema.GroupKind, custom []WorkloadKind) (WorkloadKind, bool) {
	for _, k := range custom {
		if k.GroupKind() == gk {
			return k, true
		}
	}
	return WorkloadKind{}, false
}

// extractCustom finds the pod spec of an object of a configured kind. It
// walks the object down the path decoding only the maps on the way, then
// decodes the object found as a template or pod spec. A path that is not
// there (yet) is nothing to check; one that holds something else than an
// object is an error naming the path and the config entry, which the
// webhook turns into an allow with a warning.
func extractCustom(k WorkloadKind, raw []byte) (*Workload, *podSpec, string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, "", fmt.Errorf("decoding %s: %w", k.Kind, err)
	}
	w := &Workload{Kind: k.Kind, Template: true}
	if m := top["metadata"]; isObject(m) {
		var meta metadata
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, "", fmt.Errorf("decoding %s: metadata: %w", k.Kind, err)
		}
		w.Name, w.Namespace = meta.Name, meta.Namespace
		meta.describe(w, "") // a template: never a mirror
	}
	path, isTemplate := k.path()
	found, err := walk(top, path)
	if err != nil {
		return nil, nil, "", k.pathError(err)
	}
	if found == nil {
		return w, nil, "", nil
	}
	// Case-sensitive, as the kind's controller decodes it (every
	// Kubernetes client does): a CRD that preserves unknown fields keeps
	// "Containers" as written, and no Pod ever gets what is under it.
	spec := &podSpec{}
	if isTemplate {
		var t template
		err = kjson.UnmarshalCaseSensitivePreserveInts(found, &t)
		spec = t.Spec
		path = append(path, "spec")
	} else {
		err = kjson.UnmarshalCaseSensitivePreserveInts(found, spec)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("decoding %s at %s: %w", k.Kind, strings.Join(path, "."), err)
	}
	return w, spec, pointer(path), nil
}

// walk follows path through obj; nil, nil when a field on the way is
// absent or null.
func walk(obj map[string]json.RawMessage, path []string) (json.RawMessage, error) {
	for i, seg := range path {
		v, ok := obj[seg]
		if !ok || isNull(v) {
			return nil, nil
		}
		if !isObject(v) {
			return nil, fmt.Errorf("%s is %s, not an object", strings.Join(path[:i+1], "."), jsonType(v))
		}
		if i == len(path)-1 {
			return v, nil
		}
		obj = nil
		if err := json.Unmarshal(v, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(path[:i+1], "."), err)
		}
	}
	return nil, nil
}

// pathError says which config entry led to a path that is no object.
func (k WorkloadKind) pathError(err error) error {
	key := "podSpecPath"
	if k.PodTemplatePath != "" {
		key = "podTemplatePath"
	}
	return fmt.Errorf("%w (config workloads entry %s/%s, %s)", err, k.APIGroup, k.Kind, key)
}

// pointer is the JSON pointer (RFC 6901) of a field path: "~" and "/" in a
// name are escaped, so a patch lands on exactly that field.
func pointer(path []string) string {
	var b strings.Builder
	for _, s := range path {
		b.WriteByte('/')
		if strings.ContainsAny(s, "~/") {
			s = pointerEscaper.Replace(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// pointerEscaper escapes a JSON pointer's reference token (RFC 6901).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

// jsonType names the JSON type of v for messages.
func jsonType(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return "empty"
	case v[0] == '[':
		return "an array"
	case v[0] == '"':
		return "a string"
	case v[0] == 't' || v[0] == 'f':
		return "a boolean"
	}
	return "a number"
}
