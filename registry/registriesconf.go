package registry

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/shortnames"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
)

// CRI-O resolves the image string the kubelet hands it (unqualified: the
// kubelet only appends ":latest") with containers/image, reading
// registries.conf (containers-registries.conf(5)): a short name becomes
// its [aliases] entry or one candidate per unqualified-search registry,
// tried in order; every candidate, short or not, then goes through the
// [[registry]] table (location rewrite, mirrors tried first, blocked).
// pullsafe reads the file with the same library (go.podman.io/image/v5
// pkg/sysregistriesv2 and pkg/shortnames), so the parsing and matching
// are CRI-O's own, and the file is bounded before the library opens it.
const (
	MaxRegistriesConfBytes   = 1 << 20 // the main file and each drop-in
	MaxRegistriesConfDropIns = 64
	// MaxRegistriesConfEntries bounds [[registry]] tables, mirrors per
	// registry, search registries and aliases, each.
	MaxRegistriesConfEntries = 1000
)

// RegistriesConf is a loaded registries.conf (and its drop-in folder), as
// CRI-O reads it. Safe for concurrent use.
type RegistriesConf struct {
	sys    *types.SystemContext
	search []string
}

// LoadRegistriesConf reads file and the *.conf drop-ins of dir ("": none)
// in the library's order and checks what CRI-O would refuse at start-up.
// Nothing of the process's own environment is read: not
// CONTAINERS_REGISTRIES_CONF(_OVERRIDE), not $HOME's registries.conf, not
// the short-name alias cache of pullsafe's user (CRI-O's is filled only by
// interactive prompts, which a daemon never shows).
func LoadRegistriesConf(file, dir string) (*RegistriesConf, error) {
	sum := sha256.New()
	if err := boundedFile(file, sum); err != nil {
		return nil, err
	}
	if dir == "" {
		// A drop-in folder that cannot exist: the library then reads none,
		// and no default or environment-given one.
		dir = file + ".d.pullsafe-none"
	} else if err := boundedDropIns(dir, sum); err != nil {
		return nil, err
	}
	// The library caches each parse process-wide and never drops one, keyed
	// by these paths and RootForImplicitAbsolutePaths, which it does not
	// apply to explicit paths. The key is the files' content: a reload of
	// an edit parses the file as it is now, a config kept after a refused
	// reload keeps reading its own parse, never the refused one, and
	// re-reading unchanged files (a config refused for another key is
	// re-read at every poll) replaces their parse instead of adding one.
	// What stays is one parse (bounded above) per content ever loaded:
	// those are a person's edits.
	sys := &types.SystemContext{SystemRegistriesConfPath: file, SystemRegistriesConfDirPath: dir,
		RootForImplicitAbsolutePaths: fmt.Sprintf("/nonexistent/pullsafe-%x", sum.Sum(nil)),
		UserShortNameAliasConfPath:   filepath.Join(filepath.Dir(file), ".pullsafe-no-short-name-alias-cache.conf")}
	conf, err := sysregistriesv2.TryUpdatingCache(sys)
	if err != nil {
		return nil, fmt.Errorf("registries.conf: %w", err)
	}
	if err := boundedEntries(conf); err != nil {
		return nil, err
	}
	search, err := sysregistriesv2.UnqualifiedSearchRegistries(sys)
	if err != nil {
		return nil, fmt.Errorf("registries.conf: %w", err)
	}
	return &RegistriesConf{sys: sys, search: search}, nil
}

// boundedFile checks file is one the library can read whole, and adds its
// name and content to sum.
func boundedFile(file string, sum hash.Hash) error {
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("registries.conf: %w", err)
	}
	// The library reads whole: /dev/zero or a FIFO would never end.
	if !fi.Mode().IsRegular() || fi.Size() > MaxRegistriesConfBytes {
		return fmt.Errorf("registries.conf: %s is not a regular file of at most %d bytes", file, MaxRegistriesConfBytes)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("registries.conf: %w", err)
	}
	defer f.Close()
	// Length-prefixed, so that no two sets of files hash alike.
	fmt.Fprintf(sum, "%d:%s", len(file), file)
	data, err := io.ReadAll(io.LimitReader(f, MaxRegistriesConfBytes+1))
	if err != nil {
		return fmt.Errorf("registries.conf: %w", err)
	}
	if len(data) > MaxRegistriesConfBytes {
		return fmt.Errorf("registries.conf: %s is not a regular file of at most %d bytes", file, MaxRegistriesConfBytes)
	}
	fmt.Fprintf(sum, "%d:", len(data))
	sum.Write(data)
	return nil
}

func boundedDropIns(dir string, sum hash.Hash) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // as the library: a missing folder has no drop-ins
	}
	if err != nil {
		return fmt.Errorf("registries.conf.d: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		if n++; n > MaxRegistriesConfDropIns {
			return fmt.Errorf("registries.conf.d: %s has more than %d drop-ins", dir, MaxRegistriesConfDropIns)
		}
		if err := boundedFile(filepath.Join(dir, e.Name()), sum); err != nil {
			return err
		}
	}
	return nil
}

func boundedEntries(conf *sysregistriesv2.V2RegistriesConf) error {
	if n := len(conf.Registries); n > MaxRegistriesConfEntries {
		return fmt.Errorf("registries.conf: %d [[registry]] tables, at most %d", n, MaxRegistriesConfEntries)
	}
	for _, r := range conf.Registries {
		if n := len(r.Mirrors); n > MaxRegistriesConfEntries {
			return fmt.Errorf("registries.conf: registry %q has %d mirrors, at most %d", r.Prefix, n, MaxRegistriesConfEntries)
		}
	}
	if n := len(conf.UnqualifiedSearchRegistries); n > MaxRegistriesConfEntries {
		return fmt.Errorf("registries.conf: %d unqualified-search-registries, at most %d", n, MaxRegistriesConfEntries)
	}
	if n := len(conf.Aliases); n > MaxRegistriesConfEntries {
		return fmt.Errorf("registries.conf: %d aliases, at most %d", n, MaxRegistriesConfEntries)
	}
	return nil
}

// SearchRegistries are the unqualified-search registries, in order.
func (c *RegistriesConf) SearchRegistries() []string { return c.search }

// ShortName is how CRI-O resolves one image string: the candidates it
// tries in order, and whether the name was short (its candidates came from
// an alias or the search registries).
type ShortName struct {
	Candidates []string
	Short      bool
}

// Ambiguous reports whether CRI-O in short-name-mode enforcing refuses
// the name: more than one candidate, which only the search registries give
// (an alias gives one).
func (s ShortName) Ambiguous() bool { return s.Short && len(s.Candidates) > 1 }

// Resolve is shortnames.Resolve in mode "disabled": every candidate, in
// CRI-O's order. The mode decision is the caller's (Ambiguous): Resolve in
// any other mode looks at pullsafe's own stdin and stdout and, in a
// terminal, would prompt (`pullsafe check`), where CRI-O, a daemon without
// a TTY, fails ("short-name resolution enforced but cannot prompt without
// a TTY").
func (c *RegistriesConf) Resolve(image string) (ShortName, error) {
	sys := *c.sys
	disabled := types.ShortNameModeDisabled
	sys.ShortNameMode = &disabled
	out := ShortName{Short: shortnames.IsShortName(image)}
	res, err := shortnames.Resolve(&sys, image)
	if err != nil {
		return out, err
	}
	for _, pc := range res.PullCandidates {
		out.Candidates = append(out.Candidates, pc.Value.String())
	}
	return out, nil
}

// BlockedError: a [[registry]] entry with blocked = true covers the name;
// containers/image refuses the pull ("registry %s is blocked in ...").
type BlockedError struct {
	Name   string
	Prefix string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("registry %s is blocked in registries.conf", e.Prefix)
}

// Sources are where CRI-O pulls name from, in order: the [[registry]]
// entry's mirrors (those that serve this kind of reference), then its
// location, each with the prefix rewritten; name itself when no entry
// covers it. A blocked entry is a *BlockedError.
func (c *RegistriesConf) Sources(name string) ([]string, error) {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, err
	}
	reg, err := sysregistriesv2.FindRegistry(c.sys, ref.String())
	if err != nil {
		return nil, err
	}
	if reg == nil {
		return []string{ref.String()}, nil
	}
	if reg.Blocked {
		return nil, &BlockedError{Name: name, Prefix: reg.Prefix}
	}
	ps, err := reg.PullSourcesFromReference(ref)
	if err != nil {
		return nil, err
	}
	srcs := make([]string, len(ps))
	for i, p := range ps {
		srcs[i] = p.Reference.String()
	}
	return srcs, nil
}
