package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// VerifiesBlobs reports whether registries.verifyBlobs is on (the default).
func (r RegistriesConfig) VerifiesBlobs() bool { return r.VerifyBlobs == nil || *r.VerifyBlobs }

// pullPathNames reports whether the pull path check will name what a
// Platforms failure means: a manifest or config that is missing, or whose
// bytes do not match its digest, fails every pull, and PullPath, which
// asks every host the nodes ask, says which piece it is.
func (c *Checker) pullPathNames(err error) bool {
	var e *registry.Error
	return c.cfg.Registries.VerifiesBlobs() && errors.As(err, &e) &&
		(e.Reason == registry.NotFound || e.Flavour == registry.FlavourDigestMismatch)
}

// pullPath checks what the nodes fetch after the index: the manifest of
// the platform each eligible node pulls, its config and its layers. A
// missing piece, or a manifest that does not match its digest, fails
// every pull of the image: not-found, naming it. What cannot be checked
// (a blob refused to a credential that read the manifest, 429, 5xx, a
// timeout) is "cannot verify", never a denial.
func (c *Checker) pullPath(ctx context.Context, in Input, ct Container, img *registry.Image, find func(Rule, string, string)) {
	if !c.cfg.Registries.VerifiesBlobs() || slices.Contains(schema1, img.MediaType) {
		return
	}
	platforms, err := c.res.Platforms(ctx, img)
	if err != nil && !c.pullPathNames(err) {
		return // platform reported it: cannot verify
	}
	pull := platforms
	if err == nil && isIndex(img.MediaType) {
		if slices.ContainsFunc(platforms, func(p v1.Platform) bool { return samePlatform(p, v1.Platform{}) }) {
			return // an entry states no platform: which one a node pulls is the runtime's to find out
		}
		var eligible []Node
		if len(in.Nodes) > 0 {
			eligible = in.eligibleNodes()
		}
		if pull = pulledPlatforms(stated(platforms), eligible); len(pull) == 0 {
			return // nodes unknown, or none of them pulls an entry: the platform rule's verdict
		}
	}
	if err = c.res.PullPath(ctx, img, pull); err != nil {
		c.pullPathFailed(err, find)
	}
}

// pullPathFailed says what a failed PullPath means. Apart from pullPath,
// so that the error's holder is made only when there is an error.
func (c *Checker) pullPathFailed(err error, find func(Rule, string, string)) {
	var e *registry.Error
	switch {
	case !errors.As(err, &e):
		find(RuleUnreachable, fmt.Sprintf("cannot verify the layers the nodes pull: %v", err), "")
	case e.Reason == registry.NotFound && e.Flavour == registry.FlavourDigestMismatch:
		find(RuleNotFound, e.Message+" at "+e.Registry+": containerd fails every pull (\"unexpected commit digest\")",
			"push the image again (the registry serves other bytes than the digest names), or pin a digest that pulls")
	case e.Reason == registry.NotFound:
		find(RuleNotFound, e.Message+" — the reference resolves, but every pull of it fails with \"not found\"",
			"push the image again from a complete copy (the blob was deleted: registry garbage collection, a replication or pull-through cache that lost it)")
	case e.Reason == registry.RateLimited:
		find(RuleRateLimited, fmt.Sprintf("cannot verify the layers the nodes pull: registry %s is rate limiting (%s)", e.Registry, e.Message), "")
	default:
		find(RuleUnreachable, fmt.Sprintf("cannot verify the layers the nodes pull (%s: %s)", e.Flavour, e.Message), "")
	}
}

// pulledPlatforms is, of an index's platforms (in index order), the one
// each node's containerd pulls: the entry its matcher ranks best (the
// earliest in its platform vector, platformmatch.go), the first of equally
// ranked ones, as containerd sorts stably and keeps one. A node whose
// choice pullsafe cannot know is left out, so it is never the cause of a
// denial: a node without os/arch labels, a Windows node (containerd also
// matches its OS build), and a node of unknown CPU variant for which
// entries of different variants rank equally (arm/v6 and arm/v7 for an
// arm node).
func pulledPlatforms(platforms []v1.Platform, nodes []Node) []v1.Platform {
	var out []v1.Platform
	for _, n := range nodes {
		os, arch := n.Labels[corev1.LabelOSStable], n.Labels[corev1.LabelArchStable]
		if os == "" || arch == "" || strings.EqualFold(os, "windows") {
			continue
		}
		best, bestRank, ambiguous := -1, 0, false
		for i, p := range platforms {
			rank := pullRank(p, os, arch, n.Variant)
			switch {
			case rank < 0:
			case best < 0 || rank < bestRank:
				best, bestRank, ambiguous = i, rank, false
			case rank == bestRank && !sameCPU(platforms[best], p):
				ambiguous = true
			}
		}
		if best >= 0 && !ambiguous && !slices.ContainsFunc(out, func(p v1.Platform) bool { return samePlatform(p, platforms[best]) }) {
			out = append(out, platforms[best])
		}
	}
	return out
}

// pullRank is p's place in the platform vector of a node of os/arch/variant
// (pulls, ranked): lower is preferred; -1 when the node does not pull p.
func pullRank(p v1.Platform, os, arch, variant string) int {
	if normalOS(p.OS) != normalOS(os) {
		return -1
	}
	parch, pvariant := normalArch(p.Architecture, p.Variant)
	for i, a := range vector(arch, variant) {
		if a.arch == parch && (a.any || p.Variant == "" || a.variant == pvariant) {
			return i
		}
	}
	return -1
}

// sameCPU reports whether two platforms normalise to one architecture and
// variant: containerd ranks such entries equally too.
func sameCPU(p, q v1.Platform) bool {
	pa, pv := normalArch(p.Architecture, p.Variant)
	qa, qv := normalArch(q.Architecture, q.Variant)
	return pa == qa && pv == qv
}

func samePlatform(p, q v1.Platform) bool {
	return p.OS == q.OS && p.Architecture == q.Architecture && p.Variant == q.Variant && p.OSVersion == q.OSVersion
}
