package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pullsafe/pullsafe/registry"
)

// CRI-O nodes pull what their registries.conf makes of the image string
// (registry.RegistriesConf): the kubelet hands it over unqualified, only
// ":latest" appended (applyDefaultImageTag keeps the CRI "agnostic wrt
// default hostnames"). containerd nodes keep docker.io defaulting. So when
// registries.registriesConf is set and some eligible nodes run cri-o, the
// eligible nodes are judged in groups (containerd and others; CRI-O that
// enforces short names; CRI-O that tries every candidate), each group with
// the image its runtime pulls. A finding every group shares stands as it
// is; one that only some groups have names them and is a warning, unless
// every group has a denial, when the pull fails on every eligible node.

// loadRegistriesConf loads Registries.RegistriesConf into
// c.LoadedRegistriesConf.
func (c *Config) loadRegistriesConf() error {
	r := c.Registries
	switch r.CRIOShortNameMode {
	case "", "enforcing", "disabled":
	default:
		return fmt.Errorf("registries.crioShortNameMode: %q is not one of enforcing, disabled", r.CRIOShortNameMode)
	}
	if r.RegistriesConf == "" {
		if r.RegistriesConfDir != "" {
			return fmt.Errorf("registries.registriesConfDir needs registries.registriesConf")
		}
		c.LoadedRegistriesConf = nil
		return nil
	}
	conf, err := registry.LoadRegistriesConf(r.RegistriesConf, r.RegistriesConfDir)
	if err != nil {
		return fmt.Errorf("registries.registriesConf: %w", err)
	}
	c.LoadedRegistriesConf = conf
	return nil
}

// isCRIO reports whether the node runs CRI-O.
func (n Node) isCRIO() bool { return strings.HasPrefix(n.Runtime, "cri-o://") }

// enforcesShortNames reports whether the node's CRI-O refuses an ambiguous
// short name: 1.34 and later set short-name-mode enforcing (crio.conf's
// short_name_mode, default enforcing, overrides registries.conf's);
// earlier ones always resolved in mode disabled, trying every candidate. A
// version pullsafe cannot read is taken as trying every candidate: never
// a denial it cannot back. OpenShift's builds (".rhaos4.21") run with
// crio.conf's short_name_mode = "disabled" from the machine-config-operator
// (openshift/machine-config-operator#5628): enforced there only when
// crioShortNameMode says "enforcing".
func (n Node) enforcesShortNames(mode string) bool {
	if mode == "disabled" {
		return false
	}
	if mode == "" && n.isCRIO() && strings.Contains(n.Runtime, ".rhaos") {
		return false
	}
	return n.runtimeAtLeast("cri-o://", 1, 34)
}

// runtimeGroup is eligible nodes that pull one image string alike.
type runtimeGroup struct {
	label string // "CRI-O nodes %s": the nodes' names go in
	nodes []Node
}

// runtimeGroups splits the eligible nodes by how they resolve names, or
// returns nil when no CRI-O node is eligible or no registries.conf is
// configured: every node then resolves as containerd does, as before.
func (c *Checker) runtimeGroups(in Input) []*runtimeGroup {
	if c.cfg.LoadedRegistriesConf == nil || in.Nodes == nil {
		return nil
	}
	eligible := in.eligibleNodes()
	if !slices.ContainsFunc(eligible, Node.isCRIO) {
		return nil
	}
	var other, enforcing, trying []Node
	for _, n := range eligible {
		switch {
		case !n.isCRIO():
			other = append(other, n)
		case n.enforcesShortNames(c.cfg.Registries.CRIOShortNameMode):
			enforcing = append(enforcing, n)
		default:
			trying = append(trying, n)
		}
	}
	var gs []*runtimeGroup
	for _, g := range []runtimeGroup{{label: otherLabel(other), nodes: other},
		{label: "CRI-O nodes %s", nodes: enforcing}, {label: "CRI-O nodes %s", nodes: trying}} {
		if len(g.nodes) > 0 {
			gs = append(gs, &g)
		}
	}
	return gs
}

// otherLabel names the non-CRI-O nodes by their runtime where all agree.
func otherLabel(nodes []Node) string {
	if len(nodes) > 0 && !slices.ContainsFunc(nodes, func(n Node) bool { return !strings.HasPrefix(n.Runtime, "containerd://") }) {
		return "containerd nodes %s"
	}
	return "nodes %s (not CRI-O)"
}

// byRuntime checks ct once per runtime group and merges the outcomes. The
// groups are the review's, shared by its containers: read only.
func (c *Checker) byRuntime(ctx context.Context, in Input, ct Container, ref registry.Reference, groups []*runtimeGroup) result {
	res := make([]result, len(groups))
	for i, g := range groups {
		gin := in
		// A group's nodes are eligible nodes: Eligible keeps them all.
		gin.Nodes, gin.eligible, gin.eligibleSet = g.nodes, g.nodes, true
		if !g.nodes[0].isCRIO() {
			res[i] = c.lookup(ctx, gin, ct, ref)
			continue
		}
		res[i] = c.crioLookup(ctx, gin, ct, g.nodes[0].enforcesShortNames(c.cfg.Registries.CRIOShortNameMode))
	}
	return c.mergeGroups(groups, res)
}

// kubeletImage is the string the kubelet passes to the runtime:
// applyDefaultImageTag appends ":latest" to a reference with neither tag
// nor digest, and changes nothing else.
func kubeletImage(image string) string {
	if r, err := registry.ParseReference(image); err == nil && r.TagDefaulted {
		return image + ":latest"
	}
	return image
}

// crioLookup is what a CRI-O node makes of ct.Image: the candidates of
// registries.conf in order, each through its [[registry]] entry (mirrors,
// then the location); the first source the registry has is the image
// checked. A source the registry definitely lacks (not found,
// unauthorized) sends CRI-O on to the next; an inconclusive answer stops
// there, so pullsafe says "cannot verify" rather than guess.
func (c *Checker) crioLookup(ctx context.Context, in Input, ct Container, enforcing bool) result {
	var out result
	conf := c.cfg.LoadedRegistriesConf
	sn, err := conf.Resolve(kubeletImage(ct.Image))
	switch {
	case err != nil:
		out.add(ct, RuleShortName, "CRI-O cannot resolve it: "+sanitize(err.Error()), c.qualifyFix(ctx, in, nil))
		return out
	case enforcing && sn.Ambiguous():
		out.add(ct, RuleShortName, fmt.Sprintf("ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: %s); CRI-O says \"short name mode is enforcing, but image name %s returns ambiguous list\"",
			firstOf(conf.SearchRegistries()), kubeletImage(ct.Image)), c.qualifyFix(ctx, in, sn.Candidates))
		return out
	}
	var tried []string
	var blocked []string
	for _, cand := range sn.Candidates {
		srcs, err := conf.Sources(cand)
		var b *registry.BlockedError
		if errors.As(err, &b) {
			blocked = append(blocked, b.Prefix)
			continue
		}
		if err != nil {
			out.add(ct, RuleShortName, "CRI-O cannot resolve it: "+sanitize(err.Error()), c.qualifyFix(ctx, in, nil))
			return out
		}
		for _, src := range srcs {
			if len(tried) == maxCRIOSources {
				out.add(ct, RuleUnreachable, fmt.Sprintf("cannot verify: CRI-O tries more than %d sources for it in turn (registries.conf's search registries and mirrors); the %d pullsafe looked up lack it",
					maxCRIOSources, maxCRIOSources), "")
				return out
			}
			tried = append(tried, src)
			_, err := c.res.Resolve(ctx, src, in.Credentials.Keychain)
			var e *registry.Error
			if err != nil && errors.As(err, &e) && (e.Reason == registry.NotFound || e.Reason == registry.Unauthorized) {
				continue
			}
			return c.asPulled(ctx, in, ct, src, tried)
		}
	}
	if len(tried) == 0 {
		out.add(ct, RuleBlockedRegistry, fmt.Sprintf("registry %s is blocked in the CRI-O nodes' registries.conf", firstOf(slices.Compact(blocked))),
			"pull from a registry the nodes allow, or unblock it in registries.conf")
		return out
	}
	// Every source failed: CRI-O reports each; the first candidate's
	// primary answer says why.
	return c.asPulled(ctx, in, ct, tried[0], tried)
}

// asPulled checks src as the image CRI-O pulls for ct, and words the
// findings for the reference as written.
func (c *Checker) asPulled(ctx context.Context, in Input, ct Container, src string, tried []string) result {
	pulled := ct
	pulled.Image = src
	ref, err := registry.ParseReference(src)
	if err != nil {
		var out result
		c.lookupFinding(in, ct, ref, err, &out)
		return out
	}
	out := c.lookup(ctx, in, pulled, ref)
	var prefix string
	switch written, err := registry.ParseReference(ct.Image); {
	case len(tried) > 1:
		prefix = "CRI-O tried " + firstOf(tried) + "; " + src + ": "
	case err != nil || written.String() != ref.String():
		prefix = "CRI-O pulls " + src + ": "
	}
	for i := range out.findings {
		out.findings[i].Image = ct.Image
		out.findings[i].Cause = prefix + out.findings[i].Cause
	}
	if out.pin != nil {
		out.pin.From = ct.Image
		out.pin.To = pinned(ct.Image, digestOf(out.pin.To), c.cfg.Pin.KeepTag)
	}
	return out
}

// firstOf is "a, b, c" or "a, b, c and 45 more": registries.conf may list
// 1000 search registries, and every finding of every container would carry
// them all.
func firstOf(names []string) string {
	const shown = 3
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:shown], ", ") + fmt.Sprintf(" and %d more", len(names)-shown)
}

// digestOf is the digest of a pinned reference.
func digestOf(pinnedRef string) string {
	_, d, _ := strings.Cut(pinnedRef, "@")
	return d
}

// maxFixProbes bounds the candidates looked up to name the one that
// exists in the fix for an ambiguous short name.
const maxFixProbes = 4

// maxCRIOSources bounds the sources (candidates and their mirrors, in
// CRI-O's order) looked up for one container: registries.conf may list
// 1000 search registries of 1000 mirrors each, and CRI-O tries them all.
// Past it pullsafe cannot verify.
const maxCRIOSources = 16

// qualifyFix is "write the full name `registry.corp/team/api:v1`", naming
// the first of CRI-O's candidates the registry has (a candidate CRI-O in
// mode permissive would pull), else the candidates.
func (c *Checker) qualifyFix(ctx context.Context, in Input, candidates []string) string {
	const alias = ", or add an [aliases] entry to the nodes' registries.conf"
	probes := 0
	for _, cand := range candidates[:min(len(candidates), maxFixProbes)] {
		srcs, err := c.cfg.LoadedRegistriesConf.Sources(cand)
		if err != nil {
			continue
		}
		for _, src := range srcs {
			if probes++; probes > maxCRIOSources {
				break
			}
			if _, err := c.res.Resolve(ctx, src, in.Credentials.Keychain); err == nil {
				return "write the full name `" + cand + "`" + alias
			}
		}
	}
	if len(candidates) == 0 {
		return "write the full name, registry host first" + alias
	}
	return "write the full name, registry host first (CRI-O's candidates: " + firstOf(candidates) + ")" + alias
}

// mergeGroups merges the groups' outcomes: see the file comment.
func (c *Checker) mergeGroups(groups []*runtimeGroup, res []result) result {
	if len(groups) == 1 {
		return res[0]
	}
	everyDenies := true
	for _, r := range res {
		if !slices.ContainsFunc(r.findings, func(f Finding) bool { return c.denies(f) }) {
			everyDenies = false
		}
	}
	var out result
	shared := func(f Finding) bool {
		for _, r := range res {
			if !slices.ContainsFunc(r.findings, func(o Finding) bool { return o.Rule == f.Rule && o.Cause == f.Cause }) {
				return false
			}
		}
		return true
	}
	for gi, g := range groups {
		for _, f := range res[gi].findings {
			if shared(f) {
				if gi == 0 {
					out.findings = append(out.findings, f)
				}
				continue
			}
			if named := "on CRI-O nodes (short-name-mode"; g.nodes[0].isCRIO() && strings.HasPrefix(f.Cause, "ambiguous short name "+named) {
				// Name the nodes where the cause already says CRI-O nodes.
				f.Cause = strings.Replace(f.Cause, named, "on CRI-O nodes "+nodeNames(g.nodes)+" (short-name-mode", 1)
			} else {
				f.Cause = "on " + fmt.Sprintf(g.label, nodeNames(g.nodes)) + ": " + f.Cause
			}
			if !everyDenies {
				f.Action = c.cappedAt(f.Rule, ActionWarn)
			}
			out.findings = append(out.findings, f)
		}
		for _, n := range res[gi].notes {
			if !slices.Contains(out.notes, n) {
				out.notes = append(out.notes, n)
			}
		}
	}
	// A pin is kept only when every group would pin the same digest: the
	// groups may resolve to different repositories.
	out.pin = res[0].pin
	for _, r := range res[1:] {
		if out.pin == nil || r.pin == nil || *r.pin != *out.pin {
			out.pin = nil
		}
	}
	return out
}

// denies reports whether f would deny before modes apply.
func (c *Checker) denies(f Finding) bool {
	if f.Action != "" {
		return f.Action == ActionDeny
	}
	return c.action(f.Rule) == ActionDeny
}

// sanitize keeps a library error to one printable line of bounded length.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
