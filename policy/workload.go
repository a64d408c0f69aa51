package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// podSpecPaths is where each built-in checked kind keeps its pod spec,
// keyed by group and kind: a CRD named Deployment in another group is not
// apps/v1 Deployment. One table, one walk: no per-kind copies of the same
// loop. Kinds from the config's workloads are found by extractCustom.
var podSpecPaths = map[schema.GroupKind][]string{
	{Group: "", Kind: "Pod"}:                   {"spec"},
	{Group: "apps", Kind: "Deployment"}:        {"spec", "template", "spec"},
	{Group: "apps", Kind: "ReplicaSet"}:        {"spec", "template", "spec"},
	{Group: "apps", Kind: "StatefulSet"}:       {"spec", "template", "spec"},
	{Group: "apps", Kind: "DaemonSet"}:         {"spec", "template", "spec"},
	{Group: "batch", Kind: "Job"}:              {"spec", "template", "spec"},
	{Group: "", Kind: "ReplicationController"}: {"spec", "template", "spec"},
	{Group: "batch", Kind: "CronJob"}:          {"spec", "jobTemplate", "spec", "template", "spec"},
}

// podSpecPointers are podSpecPaths as JSON pointers, built once: every
// review of a built-in kind needs its pointer for the patch paths.
var podSpecPointers = func() map[schema.GroupKind]string {
	m := make(map[schema.GroupKind]string, len(podSpecPaths))
	for gk, path := range podSpecPaths {
		m[gk] = pointer(path)
	}
	return m
}()

// Checked reports whether pullsafe looks at objects of gk: a built-in kind
// or one of the config's workloads (custom).
func Checked(gk schema.GroupKind, custom ...WorkloadKind) bool {
	if _, ok := podSpecPaths[gk]; ok {
		return true
	}
	_, ok := customKind(gk, custom)
	return ok
}

// builtinGroupKind is the built-in kind named kind, or kind in the core
// group if none is.
func builtinGroupKind(kind string) schema.GroupKind {
	for gk := range podSpecPaths {
		if gk.Kind == kind {
			return gk
		}
	}
	return schema.GroupKind{Kind: kind}
}

// Container is one image a workload would pull, with where it sits in the
// object so a patch can target exactly that field. Most are containers; an
// image volume is one too (its reference is pulled like a container's image,
// with the same pull secrets and the same pull policy defaulting).
type Container struct {
	Name       string // the container's name, or the volume's
	Image      string
	List       string // initContainers, containers, ephemeralContainers or volumes
	PullPolicy corev1.PullPolicy
	Path       string // JSON pointer to the image field, e.g. /spec/containers/0/image
	Source     Source // what the image is for, as messages name it
}

// Source is what in a pod spec an image is pulled for. Its value is how
// messages name it: `sidecar container "log"`, `volume "models"`.
type Source string

// The places the kubelet pulls images from (README "What it checks").
const (
	SourceContainer Source = "container"
	SourceInit      Source = "init container"
	// SourceSidecar is an init container with restartPolicy: Always
	// (KEP-753; GA in 1.33): it keeps running beside the containers.
	SourceSidecar   Source = "sidecar container"
	SourceEphemeral Source = "ephemeral container"
	// SourceVolume is an image volume (KEP-4639; GA in 1.36): the
	// kubelet pulls spec.volumes[].image.reference with the pod's pull
	// secrets (kuberuntime getImageVolumes) before starting containers.
	SourceVolume Source = "volume"
)

// String is the source as messages name it; the zero value is a container.
func (s Source) String() string {
	if s == "" {
		return string(SourceContainer)
	}
	return string(s)
}

// Short is the source in one word, for audit annotations
// (rule:action:short/name); plain containers keep their bare name.
func (s Source) Short() string {
	switch s {
	case "", SourceContainer:
		return ""
	case SourceInit:
		return "init"
	case SourceSidecar:
		return "sidecar"
	case SourceEphemeral:
		return "ephemeral"
	}
	return string(s)
}

// Workload is what pullsafe checks in one object.
type Workload struct {
	Kind       string
	Name       string
	Namespace  string
	Template   bool // a pod template (not a Pod): pinned only if configured
	Spec       corev1.PodSpec
	Containers []Container
	// Controller is the object's owner reference marked controller: true
	// (the Deployment of a ReplicaSet, the ReplicaSet of a Pod), nil when
	// none is. A template a controller writes is never pinned
	// (controlled.go); a Pod without one is bare (kubeletpulls.go).
	Controller *OwnerRef
	// Mirror: a Pod carrying the kubernetes.io/config.mirror annotation,
	// bound to a node and controlled by that Node: the API's copy of a
	// static Pod, as a kubelet creates it (controlled.go, kubeletpulls.go).
	Mirror bool
}

// Object is "kind/name" for messages; name may be empty for generateName Pods.
func (w *Workload) Object() string {
	if w.Name == "" {
		return strings.ToLower(w.Kind)
	}
	return strings.ToLower(w.Kind) + "/" + w.Name
}

// ExtractWorkload finds the pod spec in the JSON of an object of group and
// kind gk, a built-in kind or one of custom (the config's workloads). It
// decodes, in one pass, only the fields pullsafe reads (an admission review
// of a large Pod is mostly env, volumes and probes pullsafe never looks at),
// and only to read them: patches address fields by path, so fields newer than
// our API types are never dropped. It returns nil, nil for kinds pullsafe
// does not check.
func ExtractWorkload(gk schema.GroupKind, raw []byte, custom ...WorkloadKind) (*Workload, error) {
	w, spec, base, err := locate(gk, raw, custom)
	if w == nil || err != nil || spec == nil {
		return w, err // not checked, undecodable, or no pod spec (yet): nothing to check
	}
	w.Spec = spec.typed()
	w.Containers = spec.images(base)
	return w, nil
}

// images lists every image the kubelet would pull for the pod spec at base:
// its containers of each kind, then its image volumes.
func (p *podSpec) images(base string) []Container {
	n := len(p.InitContainers) + len(p.Containers) + len(p.EphemeralContainers)
	out := make([]Container, 0, n+len(p.Volumes))
	// Every JSON pointer is written into one text and each Container's Path
	// is a substring of it: one allocation for a 30-container Pod, not 30.
	var paths strings.Builder
	paths.Grow((n + len(p.Volumes)) * (len(base) + len("/ephemeralContainers/") + len("/image/reference") + 6))
	var endsBuf [32]int
	ends := endsBuf[:0]
	var num [20]byte
	path := func(list string, i int, suffix string) {
		paths.WriteString(base)
		paths.WriteByte('/')
		paths.WriteString(list)
		paths.WriteByte('/')
		paths.Write(strconv.AppendInt(num[:0], int64(i), 10))
		paths.WriteString(suffix)
		ends = append(ends, paths.Len())
	}
	for _, l := range []struct {
		name string
		cs   []container
		src  Source
	}{{"initContainers", p.InitContainers, SourceInit}, {"containers", p.Containers, SourceContainer},
		{"ephemeralContainers", p.EphemeralContainers, SourceEphemeral}} {
		for i, c := range l.cs {
			src := l.src
			if l.src == SourceInit && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				src = SourceSidecar
			}
			path(l.name, i, "/image")
			out = append(out, Container{Name: c.Name, Image: c.Image, List: l.name, Source: src, PullPolicy: c.ImagePullPolicy})
		}
	}
	for i, v := range p.Volumes {
		// A template may leave the reference empty for config management
		// to fill in; the API server refuses a Pod without one, so the
		// kubelet never pulls an empty reference.
		if v.Image == nil || v.Image.Reference == "" {
			continue
		}
		path("volumes", i, "/image/reference")
		out = append(out, Container{Name: v.Name, Image: v.Image.Reference, List: "volumes", Source: SourceVolume,
			PullPolicy: v.Image.PullPolicy})
	}
	all := paths.String()
	for k, end := range ends {
		start := 0
		if k > 0 {
			start = ends[k-1]
		}
		out[k].Path = all[start:end]
	}
	return out
}

// locate decodes the object's metadata and its pod spec, and returns the
// JSON pointer of the pod spec; a nil Workload for kinds not checked.
func locate(gk schema.GroupKind, raw []byte, custom []WorkloadKind) (*Workload, *podSpec, string, error) {
	base, ok := podSpecPointers[gk]
	if !ok {
		if k, ok := customKind(gk, custom); ok {
			return extractCustom(k, raw)
		}
		return nil, nil, "", nil
	}
	var obj object
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, "", fmt.Errorf("decoding %s: %w", gk.Kind, err)
	}
	w := &Workload{Kind: gk.Kind, Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace, Template: gk.Kind != "Pod"}
	ps := obj.podSpec(gk.Kind)
	nodeName := ""
	if ps != nil {
		nodeName = ps.NodeName
	}
	obj.Metadata.describe(w, nodeName)
	return w, ps, base, nil
}

// object has the shape of every checked kind at once: a Pod's spec holds the
// pod spec itself, workloads' spec.template.spec, CronJob's
// spec.jobTemplate.spec.template.spec. Must agree with podSpecPaths.
type object struct {
	Metadata metadata `json:"metadata"`
	Spec     *struct {
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
	Volumes             []volume                      `json:"volumes"`
	ImagePullSecrets    []corev1.LocalObjectReference `json:"imagePullSecrets"`
	ServiceAccountName  string                        `json:"serviceAccountName"`
	// DeprecatedServiceAccount is serviceAccount, the alias a manifest may
	// still use; typed folds it as the API server does.
	DeprecatedServiceAccount string            `json:"serviceAccount"`
	NodeName                 string            `json:"nodeName"`
	NodeSelector             map[string]string `json:"nodeSelector"`
	// RuntimeClassName: the platform rule's Windows build is uncertain
	// under a runtime handler that may pull another build (buildUncertain).
	RuntimeClassName *string `json:"runtimeClassName"`
	// Only the required node affinity: the preferred terms rank nodes
	// and rule out none (Eligible), and pod (anti-)affinity names pods.
	Affinity *struct {
		NodeAffinity *struct {
			Required *corev1.NodeSelector `json:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `json:"nodeAffinity"`
	} `json:"affinity"`
}

type container struct {
	Name            string                         `json:"name"`
	Image           string                         `json:"image"`
	ImagePullPolicy corev1.PullPolicy              `json:"imagePullPolicy"`
	RestartPolicy   *corev1.ContainerRestartPolicy `json:"restartPolicy"`
}

// volume is the part of a volume pullsafe reads: only image volumes
// (spec.volumes[].image) pull anything.
type volume struct {
	Name  string `json:"name"`
	Image *struct {
		Reference  string            `json:"reference"`
		PullPolicy corev1.PullPolicy `json:"pullPolicy"`
	} `json:"image"`
}

// typed is the pod spec as the API server stores it. Its v1 conversion
// (pkg/apis/core/v1/conversion.go, Convert_v1_PodSpec_To_core_PodSpec)
// takes the deprecated serviceAccount as the account when
// serviceAccountName is empty; when both are set, serviceAccountName wins.
// A manifest keeps the alias as written; an admitted object has both equal
// (the conversion back to v1 copies the name into the alias).
func (p *podSpec) typed() corev1.PodSpec {
	sa := p.ServiceAccountName
	if sa == "" {
		sa = p.DeprecatedServiceAccount
	}
	s := corev1.PodSpec{ImagePullSecrets: p.ImagePullSecrets, ServiceAccountName: sa, DeprecatedServiceAccount: p.DeprecatedServiceAccount,
		NodeName: p.NodeName, NodeSelector: p.NodeSelector, RuntimeClassName: p.RuntimeClassName}
	if p.Affinity != nil && p.Affinity.NodeAffinity != nil {
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: p.Affinity.NodeAffinity.Required}}
	}
	return s
}

// ChangedImages returns the containers of w whose image is new compared with
// old (same list and name; image volumes by their name): on UPDATE only
// those are looked up. A container whose image was never pulled before
// (imagePullPolicy Never, e.g. on a template) and now will be counts as
// changed too.
func ChangedImages(w, old *Workload) []Container {
	if old == nil {
		return w.Containers
	}
	// Keyed by image too: a configured kind has no API validation, so a
	// name may repeat, and an image the old object already had under that
	// name is not new whichever entry held it.
	type key struct{ list, name, image string }
	contacted := map[key]bool{}
	for _, c := range old.Containers {
		k := key{c.List, c.Name, c.Image}
		contacted[k] = contacted[k] || Contacts(c)
	}
	var out []Container
	for _, c := range w.Containers {
		if before, ok := contacted[key{c.List, c.Name, c.Image}]; !ok || (!before && Contacts(c)) {
			out = append(out, c)
		}
	}
	return out
}
