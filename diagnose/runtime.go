package diagnose

import (
	"regexp"
	"slices"
	"strings"
)

// runtimeCauses are CRI-O's (containers/image's) words for a name its
// registries.conf does not let it pull: the kubelet reports them as
// ImageInspectError (its image status call resolves the name first) or
// ErrImagePull. A registry lookup cannot see them: the registry may hold
// the image, the node refuses to choose it.
var runtimeCauses = []struct {
	texts []string
	nodeCause
}{
	// cri-o internal/storage/image.go CandidatesForPotentiallyShortImageName;
	// containers/image pkg/shortnames.Resolve.
	{[]string{"short name mode is enforcing", "short-name resolution enforced but cannot prompt without a TTY"}, nodeCause{"short-name",
		"the node's CRI-O refuses the short name: its registries.conf lists several unqualified-search registries and no alias, and short-name-mode is enforcing (\"short name mode is enforcing, but image name ... returns ambiguous list\"; CRI-O 1.34's default)",
		"write the full name, registry host first (docker.io/library/nginx:1.27, registry.corp/team/api:v1), or add an [aliases] entry to the nodes' registries.conf; give pullsafe the file (registries.registriesConf) to catch it at admission"}},
	{[]string{"did not resolve to an alias and no unqualified-search registries are defined", "did not resolve to an alias and no containers-registries.conf(5) was found"}, nodeCause{"short-name",
		"the node's CRI-O cannot resolve the short name: its registries.conf has no unqualified-search registry and no alias for it",
		"write the full name, registry host first, or add unqualified-search-registries or an [aliases] entry to the nodes' registries.conf"}},
	// containers/image docker/docker_client.go: "registry %s is blocked in
	// one of %s" (earlier "in %s or %s"); matched by blockedText, the
	// registry's own words ("denied: ... is blocked in your region") being
	// in the same message.
	{[]string{}, nodeCause{"blocked-registry",
		"the node's CRI-O refuses the registry: a [[registry]] entry of its registries.conf says blocked = true",
		"pull from a registry the nodes allow, or unblock it in the nodes' registries.conf"}},
}

// blockedText is containers/image's refusal of a blocked registry, naming
// the registries.conf files (possibly wrapped: "initializing source ...:
// registry evil.example is blocked in one of /etc/containers/...").
var blockedText = regexp.MustCompile(`registry [^ ]+ is blocked in (one of )?/`)

// runtimeCause reports a CRI-O refusal in the kubelet's words, from the
// container's status only (as nodeSideCause: Events may be anyone's).
func runtimeCause(si stuckImage, node string) (nodeCause, bool) {
	for _, c := range runtimeCauses {
		matches := slices.ContainsFunc(c.texts, func(t string) bool { return strings.Contains(si.Message, t) })
		if len(c.texts) == 0 {
			matches = blockedText.MatchString(si.Message)
		}
		if matches {
			if node != "" {
				c.cause += " (node " + node + ")"
			}
			return c.nodeCause, true
		}
	}
	return nodeCause{}, false
}
