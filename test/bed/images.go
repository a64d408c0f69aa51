package bed

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// Push writes a random image to reg/repo:tag: one manifest for a single
// platform, an index for several. It returns the digest a pull resolves to.
func (b *Bed) Push(reg *Process, repo, tag string, platforms ...v1.Platform) (v1.Hash, error) {
	ref, err := name.NewTag(reg.Addr + "/" + repo + ":" + tag)
	if err != nil {
		return v1.Hash{}, err
	}
	auth := remote.WithAuth(authn.Anonymous)
	if reg == b.Private {
		auth = remote.WithAuth(&authn.Basic{Username: PrivateUser, Password: PrivatePass})
	}
	if len(platforms) == 1 {
		img, err := registrytest.NewPlatformImage(platforms[0].OS, platforms[0].Architecture)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := remote.Write(ref, img, auth); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
		}
		return img.Digest()
	}
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		img, err := registrytest.NewPlatformImage(p.OS, p.Architecture)
		if err != nil {
			return v1.Hash{}, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(ref, idx, auth); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return idx.Digest()
}

// Platform is an os/arch pair of an image.
type Platform = v1.Platform

// Linux is linux/arch.
func Linux(arch string) Platform { return Platform{OS: "linux", Architecture: arch} }
