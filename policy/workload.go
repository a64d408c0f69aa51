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

// ExtractWorkload finds the pod spec in the JSON of an object of kind. It
// decodes, in one pass, only the fields pullsafe reads (an admission review
// of a large Pod is mostly env, volumes and probes pullsafe never looks at),
// and only to read them: patches address fields by path, so fields newer than
// our API types are never dropped. It returns nil, nil for kinds pullsafe
// does not check.
func ExtractWorkload(kind string, raw []byte) (*Workload, error) {
	path, ok := podSpecPaths[kind]
	if !ok {
		return nil, nil
	}
	var obj object
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kind, err)
	}
	w := &Workload{Kind: kind, Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace, Template: kind != "Pod"}
	spec := obj.podSpec(kind)
	if spec == nil {
		return w, nil // no pod spec (yet): nothing to check
	}
	w.Spec = spec.typed()
	base := "/" + strings.Join(path, "/")
	for _, l := range []struct {
		name string
		cs   []container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}, {"ephemeralContainers", spec.EphemeralContainers}} {
		for i, c := range l.cs {
			w.Containers = append(w.Containers, Container{Name: c.Name, Image: c.Image, List: l.name,
				PullPolicy: c.ImagePullPolicy, Path: base + "/" + l.name + "/" + strconv.Itoa(i) + "/image"})
		}
	}
	return w, nil
}

// object has the shape of every checked kind at once: a Pod's spec holds the
// pod spec itself, workloads' spec.template.spec, CronJob's
// spec.jobTemplate.spec.template.spec. Must agree with podSpecPaths.
type object struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec *struct {
		podSpec
		Template    *template `json:"template"`
		JobTemplate *struct {
			Spec *struct {
				Template *template `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type template struct {
	Spec *podSpec `json:"spec"`
}

func (o *object) podSpec(kind string) *podSpec {
	switch {
	case o.Spec == nil:
		return nil
	case kind == "Pod":
		return &o.Spec.podSpec
	case kind == "CronJob":
		if jt := o.Spec.JobTemplate; jt != nil && jt.Spec != nil && jt.Spec.Template != nil {
			return jt.Spec.Template.Spec
		}
		return nil
	case o.Spec.Template != nil:
		return o.Spec.Template.Spec
	}
	return nil
}

// podSpec is the part of corev1.PodSpec pullsafe reads.
type podSpec struct {
	InitContainers      []container                   `json:"initContainers"`
	Containers          []container                   `json:"containers"`
	EphemeralContainers []container                   `json:"ephemeralContainers"`
	ImagePullSecrets    []corev1.LocalObjectReference `json:"imagePullSecrets"`
	ServiceAccountName  string                        `json:"serviceAccountName"`
	NodeName            string                        `json:"nodeName"`
	NodeSelector        map[string]string             `json:"nodeSelector"`
	Affinity            *struct {
		NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity"`
	} `json:"affinity"`
}

type container struct {
	Name            string            `json:"name"`
	Image           string            `json:"image"`
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy"`
}

func (p *podSpec) typed() corev1.PodSpec {
	s := corev1.PodSpec{ImagePullSecrets: p.ImagePullSecrets, ServiceAccountName: p.ServiceAccountName,
		NodeName: p.NodeName, NodeSelector: p.NodeSelector}
	if p.Affinity != nil && p.Affinity.NodeAffinity != nil {
		s.Affinity = &corev1.Affinity{NodeAffinity: p.Affinity.NodeAffinity}
	}
	return s
}

// ChangedImages returns the containers of w whose image is new compared with
// old (same list and name): on UPDATE only those are looked up. A container
// whose image was never pulled before (imagePullPolicy Never, e.g. on a
// template) and now will be counts as changed too.
func ChangedImages(w, old *Workload) []Container {
	if old == nil {
		return w.Containers
	}
	before := map[string]Container{}
	for _, c := range old.Containers {
		before[c.List+"/"+c.Name] = c
	}
	var out []Container
	for _, c := range w.Containers {
		if b, ok := before[c.List+"/"+c.Name]; !ok || b.Image != c.Image || (!Contacts(b) && Contacts(c)) {
			out = append(out, c)
		}
	}
	return out
}
