package registry

import (
	// The kubelet imports these so that digests of either size parse; so
	// does pullsafe, or a sha512 digest the kubelet accepts would be refused.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
)

// FlavourUnsupported is an Unreachable flavour: the kubelet accepts the
// reference but the lookup library cannot express it (e.g. a sha512
// digest), so pullsafe cannot verify it.
const FlavourUnsupported = "unsupported-reference"

// Reference is an image reference exactly as the kubelet reads it. This is
// pullsafe's one home for that behaviour: the kubelet's
// pkg/util/parsers.ParseImageName, i.e. github.com/distribution/reference's
// ParseNormalizedNamed (the parser containerd's CRI plugin uses as well),
// with "latest" applied when there is neither tag nor digest. Everything
// that matches on an image (credentials, skip, nodeCredentials, messages)
// uses these normalised parts; test/kubeletdiff compares them with the
// kubelet's own code.
type Reference struct {
	// Name is the repository as the kubelet names it and matches pull
	// secrets with: "docker.io/library/nginx", "registry.corp.io:5000/team/api".
	Name string
	// Domain is the registry host as written ("MyReg" stays "MyReg"), with
	// Docker Hub spelled docker.io; Path is the repository on it.
	Domain, Path string
	// Tag is the tag the kubelet pulls: as written, or "latest" when the
	// reference has neither tag nor digest. Empty for a digest-only one.
	Tag string
	// Digest is "sha256:…" when the reference has one; it wins over Tag.
	Digest string
	// Written is the repository as the image spells it, without tag and
	// digest ("MyReg:5000/app", "nginx"): what a pin keeps, and what
	// registries.skip patterns written for the short form match.
	Written string
	// TagDefaulted: the image names neither tag nor digest, so Tag is the
	// kubelet's "latest" (applyDefaultImageTag appends ":latest" to it).
	TagDefaulted bool
}

// Host is the registry the reference is pulled from, one name however the
// reference spells it (RegistryHost): the key for state kept per registry.
// Domain keeps the spelling, for messages and pull-secret matching.
func (r Reference) Host() string { return RegistryHost(r.Domain) }

// HostOf is the registry host of image (Reference.Host), "" when the
// kubelet could not parse it.
func HostOf(image string) string {
	r, err := ParseReference(image)
	if err != nil {
		return ""
	}
	return r.Host()
}

// RegistryHost is one registry's name however it is written: host names
// are case-insensitive (the kubelet's parser keeps "MyReg" as written),
// ":443" is HTTPS's default port, and Docker Hub is docker.io whether
// written index.docker.io (the legacy name the parser folds already) or
// registry-1.docker.io (the host containerd and ggcr send docker.io's
// requests to). A URL's scheme and path (a mirror endpoint,
// "https://mirror.corp/v2/") are dropped; an IPv6 literal keeps its
// brackets ("[fd00::1]:5000"). Every per-registry key (lookup slots, the
// audit's budget, the hosts a kubelet error names) is this, so a flood
// cannot spell one registry three ways to get three shares.
func RegistryHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	h = strings.TrimSuffix(strings.ToLower(h), ":443")
	if h == "index.docker.io" || h == "registry-1.docker.io" {
		return "docker.io"
	}
	return h
}

// parsedRefs memoises ParseReference, a pure function that runs a regular
// expression and is asked several times per container per review (pull
// policy, skip, credentials, messages): a busy cluster names the same few
// hundred images all day. Only successes are kept, so the *Error of a bad
// reference is never shared; the size bounds what any user can make it hold.
var parsedRefs, _ = lru.New[string, Reference](4096)

// ParseReference parses image as the kubelet does. A failure is an *Error
// with Reason InvalidReference: the kubelet's InvalidImageName.
func ParseReference(image string) (Reference, error) {
	if r, ok := parsedRefs.Get(image); ok {
		return r, nil
	}
	r, err := parseReference(image)
	if err == nil {
		parsedRefs.Add(image, r)
	}
	return r, err
}

func parseReference(image string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return Reference{}, &Error{Reason: InvalidReference, Image: image, Message: sanitize(err.Error()), Err: err}
	}
	r := Reference{Name: named.Name(), Domain: reference.Domain(named), Path: reference.Path(named), Written: image}
	// The image is the name as written, then ":tag", then "@digest": the
	// parser accepts nothing else.
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest().String()
		r.Written = strings.TrimSuffix(r.Written, "@"+r.Digest)
	}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
		r.Written = strings.TrimSuffix(r.Written, ":"+r.Tag)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag, r.TagDefaulted = "latest", true
	}
	return r, nil
}

// String is the normalised reference: name:tag, name@digest or
// name:tag@digest.
func (r Reference) String() string {
	s := r.Name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// ggcr is the same reference for go-containerregistry, built from the
// normalised parts rather than re-parsed: ggcr's own parser disagrees with
// the kubelet (it takes "MyReg/app" for a Docker Hub repository and refuses
// it), and a reference the kubelet pulls must never be refused here. What
// ggcr cannot express is "cannot verify", never invalid.
func (r Reference) ggcr() (name.Reference, error) {
	reg, err := name.NewRegistry(strings.ToLower(r.Domain))
	if err != nil {
		return nil, r.unsupported(err)
	}
	repo := reg.Repo(r.Path)
	if r.Digest != "" {
		// A digest pullsafe cannot hash must not reach a URL.
		if _, err := v1.NewHash(r.Digest); err != nil {
			return nil, r.unsupported(err)
		}
		return repo.Digest(r.Digest), nil
	}
	return repo.Tag(r.Tag), nil
}

func (r Reference) unsupported(err error) *Error {
	return &Error{Reason: Unreachable, Flavour: FlavourUnsupported, Image: r.String(), Registry: r.Domain,
		Message: sanitize(fmt.Sprintf("valid for the kubelet but not checkable by pullsafe: %v", err)), Err: err}
}

// parseImage parses a reference for a lookup.
func parseImage(image string) (parsed, error) {
	r, err := ParseReference(image)
	if err != nil {
		return parsed{}, err
	}
	ref, err := r.ggcr()
	if err != nil {
		e := err.(*Error)
		e.Image = image
		return parsed{}, e
	}
	n := ref.Name()
	return parsed{ref: ref, name: n, repo: r.Name, anonymous: n + "|anonymous"}, nil
}

// kubeletName is a ggcr repository named as the kubelet names it, Docker
// Hub as docker.io. Lookups carry the name from Reference; this is only for
// answers built from a ggcr name.
func kubeletName(repo name.Repository) string {
	return canonicalHost(repo.RegistryStr()) + "/" + repo.RepositoryStr()
}

// KubeletName returns the repository of image as the kubelet matches
// credentials ("nginx" -> "docker.io/library/nginx").
func KubeletName(image string) (string, error) {
	r, err := ParseReference(image)
	return r.Name, err
}
