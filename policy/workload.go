package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podSpecPaths is where each checked kind keeps its pod spec. One table, one
// walk: no per-kind copies of the same loop.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// Checked reports whether pullsafe looks at objects of kind.
func Checked(kind string) bool { _, ok := podSpecPaths[kind]; return ok }

// Container is one image a workload would run, with where it sits in the
// object so a patch can target exactly that field.
type Container struct {
	Name       string
	Image      string
	List       string // initContainers, containers or ephemeralContainers
	PullPolicy corev1.PullPolicy
	Path       string // JSON pointer to the image field, e.g. /spec/containers/0/image
}

// Workload is what pullsafe checks in one object.
type Workload struct {
	Kind       string
	Name       string
	Namespace  string
	Template   bool // a pod template (not a Pod): pinned only if configured
	Spec       corev1.PodSpec
	Containers []Container
}

// Object is "kind/name" for messages; name may be empty for generateName Pods.
func (w *Workload) Object() string {
	if w.Name == "" {
		return strings.ToLower(w.Kind)
	}
	return strings.ToLower(w.Kind) + "/" + w.Name
}

// ExtractWorkload finds the pod spec in the JSON of an object of kind. The
// spec is decoded only to be read: patches address fields by path, so
// fields newer than our API types are never dropped. It returns nil, nil for
// kinds pullsafe does not check.
func ExtractWorkload(kind string, raw []byte) (*Workload, error) {
	path, ok := podSpecPaths[kind]
	if !ok {
		return nil, nil
	}
	var top struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kind, err)
	}
	w := &Workload{Kind: kind, Name: top.Metadata.Name, Namespace: top.Metadata.Namespace, Template: kind != "Pod"}
	cur := json.RawMessage(raw)
	for i, key := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, fmt.Errorf("decoding %s at /%s: %w", kind, strings.Join(path[:i], "/"), err)
		}
		next, ok := m[key]
		if !ok || string(next) == "null" {
			return w, nil // no pod spec (yet): nothing to check
		}
		cur = next
	}
	if err := json.Unmarshal(cur, &w.Spec); err != nil {
		return nil, fmt.Errorf("decoding %s pod spec at /%s: %w", kind, strings.Join(path, "/"), err)
	}
	base := "/" + strings.Join(path, "/")
	add := func(list string, i int, name, image string, pp corev1.PullPolicy) {
		w.Containers = append(w.Containers, Container{Name: name, Image: image, List: list, PullPolicy: pp,
			Path: base + "/" + list + "/" + strconv.Itoa(i) + "/image"})
	}
	for i, c := range w.Spec.InitContainers {
		add("initContainers", i, c.Name, c.Image, c.ImagePullPolicy)
	}
	for i, c := range w.Spec.Containers {
		add("containers", i, c.Name, c.Image, c.ImagePullPolicy)
	}
	for i, c := range w.Spec.EphemeralContainers {
		add("ephemeralContainers", i, c.Name, c.Image, c.ImagePullPolicy)
	}
	return w, nil
}

// ChangedImages returns the containers of w whose image is new compared with
// old (same list and name): on UPDATE only those are looked up.
func ChangedImages(w, old *Workload) []Container {
	if old == nil {
		return w.Containers
	}
	before := map[string]string{}
	for _, c := range old.Containers {
		before[c.List+"/"+c.Name] = c.Image
	}
	var out []Container
	for _, c := range w.Containers {
		if img, ok := before[c.List+"/"+c.Name]; !ok || img != c.Image {
			out = append(out, c)
		}
	}
	return out
}
