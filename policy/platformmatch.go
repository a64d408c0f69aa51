package policy

import (
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The platform rule asks what containerd asks when it picks a manifest: its
// default matcher, github.com/containerd/platforms Only(DefaultSpec()),
// compares Normalize()d platforms and accepts, besides the node's own, the
// platforms its CPU runs too (platformVector in compare.go): 386 on amd64,
// arm/v8..v5 on arm64, arm/v(N-1)..v5 on arm/vN, lower amd64 and arm64
// variants. An exact comparison would deny a linux/386 image on amd64
// nodes, or an index spelling aarch64, that the kubelet pulls. The one
// departure is towards allowing: a variant the node or the image does not
// state is no mismatch, as Kubernetes labels no variant.

// normalOS is containerd's normalizeOS.
func normalOS(os string) string {
	os = strings.ToLower(os)
	if os == "macos" {
		return "darwin"
	}
	return os
}

// normalArch is containerd's normalizeArch.
func normalArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "i386":
		return "386", ""
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		switch variant {
		case "8", "v8", "v8.0":
			variant = ""
		case "9", "9.0", "v9.0":
			variant = "v9"
		}
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	}
	return arch, variant
}

// accepted is one platform a node's containerd pulls; any means the variant
// is unknown and every variant of arch is taken.
type accepted struct {
	arch, variant string
	any           bool
}

// arm64Versions is containerd's arm64variantToVersion: the arm64 variants
// a variant also runs, as major versions with their highest minor.
var arm64Versions = map[string][][2]int{
	"v8": {{8, 0}}, "v8.0": {{8, 0}}, "v8.1": {{8, 1}}, "v8.2": {{8, 2}}, "v8.3": {{8, 3}}, "v8.4": {{8, 4}},
	"v8.5": {{8, 5}}, "v8.6": {{8, 6}}, "v8.7": {{8, 7}}, "v8.8": {{8, 8}}, "v8.9": {{8, 9}},
	"v9": {{9, 0}, {8, 5}}, "v9.0": {{9, 0}, {8, 5}}, "v9.1": {{9, 1}, {8, 6}}, "v9.2": {{9, 2}, {8, 7}},
	"v9.3": {{9, 3}, {8, 8}}, "v9.4": {{9, 4}, {8, 9}}, "v9.5": {{9, 5}, {8, 9}}, "v9.6": {{9, 6}, {8, 9}}, "v9.7": {{9, 7}, {8, 9}},
}

// vector is containerd's platformVector for a node of arch and variant
// (empty: unknown), variants normalised.
func vector(arch, variant string) []accepted {
	key := vectorKey{arch, variant}
	vectors.RLock()
	v, ok := vectors.m[key]
	vectors.RUnlock()
	if ok {
		return v
	}
	out := buildVector(arch, variant)
	vectors.Lock()
	if len(vectors.m) < maxVectors {
		if vectors.m == nil {
			vectors.m = map[vectorKey][]accepted{}
		}
		vectors.m[key] = out
	}
	vectors.Unlock()
	return out
}

// vectors memoises vector: it is asked for every node and image platform of
// every review, and a cluster has a handful of node platforms. Key: the
// node's arch and variant labels as written (a struct, so that a hit builds
// no string). Bound: maxVectors entries, past which vectors are built and
// not kept, so unusual node labels cannot grow it. Who fills it: the nodes'
// labels, which only the cluster's nodes write; a value is a function of
// its key alone and never modified, so no review's answer depends on
// another's.
var vectors struct {
	sync.RWMutex
	m map[vectorKey][]accepted
}

type vectorKey struct{ arch, variant string }

const maxVectors = 256

func buildVector(arch, variant string) []accepted {
	known := variant != ""
	if known {
		arch, variant = normalArch(arch, variant)
	} else {
		arch, _ = normalArch(arch, "")
	}
	out := []accepted{{arch: arch, variant: variant, any: !known}}
	switch arch {
	case "amd64":
		if n, err := strconv.Atoi(strings.TrimPrefix(variant, "v")); known && err == nil && n > 1 {
			for n--; n >= 1; n-- {
				_, v := normalArch(arch, "v"+strconv.Itoa(n))
				out = append(out, accepted{arch: arch, variant: v})
			}
		}
		out = append(out, accepted{arch: "386"})
	case "arm":
		if n, err := strconv.Atoi(strings.TrimPrefix(variant, "v")); known && err == nil && n > 5 {
			for n--; n >= 5; n-- {
				out = append(out, accepted{arch: arch, variant: "v" + strconv.Itoa(n)})
			}
		}
	case "arm64":
		raw := variant
		if !known {
			// Unknown variant: every arm64 and every arm variant.
			return append(out, accepted{arch: "arm", any: true})
		}
		if raw == "" {
			raw = "v8"
		} else if raw == "v9" {
			raw = "v9.0"
		}
		if versions, ok := arm64Versions[raw]; ok {
			for _, mm := range versions {
				for minor := mm[1]; minor >= 0; minor-- {
					v := "v" + strconv.Itoa(mm[0]) + "." + strconv.Itoa(minor)
					if minor == 0 {
						v = "v" + strconv.Itoa(mm[0])
					}
					_, v = normalArch(arch, v)
					out = append(out, accepted{arch: arch, variant: v})
				}
			}
		}
		out = append(out, vector("arm", "v8")...)
	}
	return out
}

// pulls reports whether containerd on a node of os/arch/variant pulls an
// image manifest of platform p.
func pulls(p v1.Platform, os, arch, variant string) bool {
	if normalOS(p.OS) != normalOS(os) {
		return false
	}
	parch, pvariant := normalArch(p.Architecture, p.Variant)
	for _, a := range vector(arch, variant) {
		if a.arch == parch && (a.any || p.Variant == "" || a.variant == pvariant) {
			return true
		}
	}
	return false
}
