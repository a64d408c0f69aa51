package policy

import (
	"slices"
	"strconv"
)

// Settings are what the config and a namespace's labels decide for one
// object: its mode and whether its tags are pinned. The webhook and
// `pullsafe check` both take them from here, so the two never disagree.
type Settings struct {
	Mode Mode
	Pin  Pinning
	// Problems are label values that were not understood, one line each;
	// the default was used instead, and the caller says so (an admission
	// warning, a line of check's output): a typo never changes pullsafe's
	// behaviour silently.
	Problems []string
}

// Pinning says whether an object's tags are rewritten to the digests
// checked, and when they are not, how they would be. It is the one answer to
// "is this image pinned?": a tag that is pinned raises no mutable-tag
// finding, and one that is not gets Fix as its advice.
type Pinning struct {
	On bool
	// Fix is, when On is false, what would get this object's tags pinned.
	Fix string
}

// PinAll is `pullsafe check --pin`: an explicit request to write digests
// into the files, for every kind it checks, whatever pin.pods and
// pin.templates say (those govern what the webhook does to objects in the
// cluster; --pin governs the files).
func PinAll() Pinning { return Pinning{On: true} }

// Settings resolves labels (a namespace's) against the config for a Pod
// (template false) or a workload's pod template.
//
// Pods: the label pullsafe.io/pin=true|false overrides pin.pods. Templates:
// pinned when pin.templates is true, unless the label says false (the label
// alone cannot turn template pinning on: the mutating webhook covers
// templates only when pin.templates is set). An invalid label value falls
// back to the config's default and is reported in Problems.
func (c *Config) Settings(labels map[string]string, template bool) Settings {
	s := Settings{Mode: c.Mode}
	if v, ok := labels[LabelMode]; ok {
		if m := Mode(v); m.valid() {
			s.Mode = m
		} else {
			s.Problems = append(s.Problems, "namespace label "+LabelMode+"="+v+" is not enforce, warn or off; using "+string(c.Mode))
		}
	}
	var label *bool // nil: no valid label
	if v, ok := labels[LabelPin]; ok {
		switch v {
		case "true", "false":
			b := v == "true"
			label = &b
		default:
			key, def := "pin.pods", c.Pin.Pods
			if template {
				key, def = "pin.templates", c.Pin.Templates
			}
			s.Problems = append(s.Problems, "namespace label "+LabelPin+"="+v+" is not true or false; using the config's "+key+": "+strconv.FormatBool(def))
		}
	}
	if template {
		s.Pin = c.templatePinning(label)
	} else {
		s.Pin = c.podPinning(label)
	}
	return s
}

const pinInManifest = "pin the digest in the manifest (pullsafe check --pin)"

func (c *Config) podPinning(label *bool) Pinning {
	on := c.Pin.Pods
	if label != nil {
		on = *label
	}
	if on {
		return Pinning{On: true}
	}
	return Pinning{Fix: "pin the digest, or label the namespace " + LabelPin + "=true"}
}

func (c *Config) templatePinning(label *bool) Pinning {
	switch {
	case !c.Pin.Templates:
		return Pinning{Fix: pinInManifest + ", or set pin.templates: true in pullsafe's config"}
	case label != nil && !*label:
		return Pinning{Fix: pinInManifest + ", or remove the namespace label " + LabelPin + "=false"}
	}
	return Pinning{On: true}
}

// AlwaysExcluded are the namespaces no webhook of pullsafe's ever sees: a
// webhook there can stop the cluster from healing itself.
var AlwaysExcluded = []string{"kube-node-lease", "kube-system"}

// Excluded says why pullsafe never looks at objects in namespace ns, or ""
// when it does: kube-system and kube-node-lease (a webhook there can stop
// the cluster from healing itself), its own namespace (own) and the
// config's namespaces.exclude.
func (c *Config) Excluded(ns, own string) string {
	switch {
	case slices.Contains(AlwaysExcluded, ns):
		return "namespace " + ns + " is never checked"
	case own != "" && ns == own:
		return "namespace " + ns + " is pullsafe's own"
	case slices.Contains(c.Namespaces.Exclude, ns):
		return "namespace " + ns + " is in the config's namespaces.exclude"
	}
	return ""
}
