package policy

import (
	"fmt"
	"sort"

	"github.com/pullsafe/pullsafe/registry"
)

// validateHostsDir reads registries.hostsDir whole, so a missing folder or
// a hosts.toml containerd could not use is an error at load (or a reload
// kept out), naming the file. A registry may be described by the folder or
// by registries.mirrors, not both: two descriptions of what the nodes do
// cannot both be true.
//
// It records what the folder held (HostsDigest), so a config whose folder
// changed is not equal to the one loaded before: the reload rebuilds the
// resolver (HostsChanged).
func (r *RegistriesConfig) validateHostsDir() error {
	if r.HostsDir == "" {
		return nil
	}
	hosts, err := registry.LoadHostsDir(r.HostsDir)
	if err != nil {
		return fmt.Errorf("registries.hostsDir: %w", err)
	}
	r.HostsDigest = hosts.Digest()
	regs := make([]string, 0, len(r.Mirrors))
	for reg := range r.Mirrors {
		regs = append(regs, reg)
	}
	sort.Strings(regs)
	for _, reg := range regs {
		if _, ok := hosts.Hosts(reg); ok {
			return fmt.Errorf("registries.mirrors.%s: %s is also configured by registries.hostsDir (%s): describe it in one "+
				"of the two (hosts.toml is what the nodes read; registries.mirrors is its shorthand)", reg, reg, r.HostsDir)
		}
	}
	return nil
}

// HostsChanged reports whether registries.hostsDir holds other hosts.toml
// bytes than when this config was loaded.
func (r *RegistriesConfig) HostsChanged() bool {
	return r.HostsDir != "" && registry.HostsDirDigest(r.HostsDir) != r.HostsDigest
}
