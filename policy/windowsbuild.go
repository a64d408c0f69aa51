package policy

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
)

// A Windows node pulls only the index entries its OS build runs, as
// containerd's own matcher decides (github.com/containerd/platforms
// NewMatcher, platform_windows_compat.go, which applies on any GOOS): a host
// below build 20348 (Windows Server 2022) needs the image's exact
// major.minor.build; from 20348 on, any image build from the previous LTSC
// (at least 20348) up to the host's own. An index that offers only
// windows/amd64 10.0.20348.* has no entry for a 10.0.17763 node: the pull
// fails with "no match for platform in manifest".

// WindowsBuildOf is the node's Windows build as major.minor.build: the
// kubelet's node.kubernetes.io/windows-build label, else the first three
// parts of status.nodeInfo.kernelVersion (the kubelet reports
// "10.0.17763.1234" there on Windows). Empty when the node is not Windows
// or says nothing parseable: unknown, never a mismatch.
func WindowsBuildOf(n *corev1.Node) string {
	if n.Labels[corev1.LabelOSStable] != "windows" {
		return ""
	}
	if b := windowsBuild(n.Labels[corev1.LabelWindowsBuild]); b != "" {
		return b
	}
	return windowsBuild(n.Status.NodeInfo.KernelVersion)
}

// windowsBuild is "10.0.17763" of "10.0.17763[.rev]", or "" when v is not
// three or four dot-separated numbers that fit containerd's fields.
func windowsBuild(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) < 3 || len(parts) > 4 {
		return ""
	}
	for i, bits := range []int{8, 8, 16} {
		if _, err := strconv.ParseUint(parts[i], 10, bits); err != nil {
			return ""
		}
	}
	return strings.Join(parts[:3], ".")
}

// buildRuns reports whether a Windows node of build runs an image entry of
// osVersion: containerd's matcher, on the OS version alone (os and
// architecture are compared by pulls). An entry without os.version, or a
// node whose build is unknown, runs.
func buildRuns(build, osVersion string) bool {
	if build == "" {
		return true
	}
	node := specs.Platform{OS: "windows", Architecture: "amd64", OSVersion: build}
	return platforms.NewMatcher(node).Match(specs.Platform{OS: "windows", Architecture: "amd64", OSVersion: osVersion})
}

// windowsOnly is the cause when every node in cannot is a Windows node of
// known build whose architecture the image offers, so only the OS build
// keeps them out: "offers windows 10.0.20348 only; ...". Empty otherwise,
// and the rule words it as a platform mismatch.
func windowsOnly(ps []v1.Platform, cannot []Node) (offers, run string) {
	var builds []string
	for _, n := range cannot {
		if n.WindowsBuild == "" {
			return "", ""
		}
		arch := n.Labels[corev1.LabelArchStable]
		if !slices.ContainsFunc(ps, func(p v1.Platform) bool { return pulls(p, "windows", arch, n.Variant) }) {
			return "", ""
		}
		if !slices.Contains(builds, n.WindowsBuild) {
			builds = append(builds, n.WindowsBuild)
		}
	}
	var offered []string
	for _, p := range ps {
		if normalOS(p.OS) != "windows" {
			continue
		}
		b := windowsBuild(p.OSVersion)
		if b == "" {
			b = strings.TrimSpace(p.OSVersion)
		}
		if b != "" && !slices.Contains(offered, b) {
			offered = append(offered, b)
		}
	}
	if len(builds) == 0 || len(offered) == 0 {
		return "", ""
	}
	sort.Strings(builds)
	sort.Strings(offered)
	return strings.Join(offered, ", "), strings.Join(builds, ", ")
}

// windowsFix names the builds the image offers, for the nodeSelector fix.
func windowsFix(offers string) string {
	return fmt.Sprintf("use a tag built for the nodes' Windows build (mcr.microsoft.com images: ltsc2019 is 10.0.17763, ltsc2022 10.0.20348, ltsc2025 10.0.26100), build a multi-build index, or add nodeSelector %s: <a build the image runs on> (it offers %s)",
		corev1.LabelWindowsBuild, offers)
}

// windowsBuildFinding words a platform finding whose only cause is the
// Windows build: a denial when no eligible node runs it, a warning naming
// the nodes that cannot when some can.
func (c *Checker) windowsBuildFinding(ct Container, offers, run string, can, cannot, eligible []Node, out *result) {
	if len(can) == 0 {
		out.add(ct, RulePlatform, fmt.Sprintf("offers windows %s only; eligible nodes run %s", offers, run), windowsFix(offers))
		return
	}
	f := out.add(ct, RulePlatform, fmt.Sprintf("offers windows %s only; %d of %d eligible nodes (%s) run %s", offers, len(cannot), len(eligible), nodeNames(cannot), run),
		narrowing(can, cannot))
	f.Action = c.cappedAt(RulePlatform, ActionWarn)
}

// nodeNames is "a, b, c" or "a, b, c and 4 more".
func nodeNames(nodes []Node) string {
	const shown = 3
	names := make([]string, 0, shown)
	for i, n := range nodes {
		if i == shown {
			return strings.Join(names, ", ") + fmt.Sprintf(" and %d more", len(nodes)-shown)
		}
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}

// buildUncertain is "runtimeClassName <name>" when the Pod names a runtime
// class, else "". containerd pulls for a runtime handler's own guest
// platform where one is configured (GuestPlatform; KEP 4216, image pull
// per runtime class): a Hyper-V-isolated Pod runs other builds than its
// host's, and the nodes' handler configuration is not in the API.
func buildUncertain(spec *corev1.PodSpec) string {
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName == "" {
		return ""
	}
	return "runtimeClassName " + sanitize(*spec.RuntimeClassName)
}

// withoutBuild is n with its Windows build unknown.
func withoutBuild(n Node) Node {
	n.WindowsBuild = ""
	return n
}
