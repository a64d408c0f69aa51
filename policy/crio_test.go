package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// registriesConf writes conf as a registries.conf and returns the config
// change that loads it as Validate does.
func registriesConf(t *testing.T, conf string, extra ...func(*Config)) func(*Config) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		c.Registries.RegistriesConf = file
		for _, e := range extra {
			e(c)
		}
		if err := c.loadRegistriesConf(); err != nil {
			t.Fatal(err)
		}
	}
}

func crioNode(name, version string) Node {
	n := node(name, "amd64")
	n.Runtime = "cri-o://" + version
	return n
}

func containerdNode(name string) Node {
	n := node(name, "amd64")
	n.Runtime = "containerd://2.1.4"
	return n
}

// images answers each reference as written with an amd64 image.
func images(refs ...string) fakeResolver {
	f := fakeResolver{images: map[string]*registry.Image{}, platforms: map[v1.Hash][]v1.Platform{digest1: {linux("amd64")}}}
	for _, r := range refs {
		repo, tag, _ := strings.Cut(r, ":")
		f.images[r] = img(repo, tag, digest1)
	}
	return f
}

const twoSearch = `unqualified-search-registries = ["registry.corp", "docker.io"]
`

// TestCRIOShortNames: short names and [[registry]] entries judged as CRI-O
// nodes judge them, through the Checker, with registries.conf read by
// containers/image.
func TestCRIOShortNames(t *testing.T) {
	pullAlways := func(image string) Container { return Container{Image: image, PullPolicy: corev1.PullAlways} }
	crio134 := []Node{crioNode("c1", "1.34.1"), crioNode("c2", "1.34.1")}
	tests := []fixture{
		{name: "no registriesConf: CRI-O nodes resolve as containerd nodes", ct: pullAlways("team/api:v1"), nodes: crio134,
			res: images("team/api:v1"), lookups: []string{"team/api:v1"},
			want: Verdict{Findings: []Finding{{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
				Cause: "pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
				Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		{name: "ambiguous short name on CRI-O 1.34 nodes: denied, naming the candidate that exists",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("team/api:v1"), nodes: crio134,
			res: images("registry.corp/team/api:v1"),
			want: Verdict{Findings: []Finding{{Rule: RuleShortName, Action: ActionDeny,
				Cause: `ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: registry.corp, docker.io); CRI-O says "short name mode is enforcing, but image name team/api:v1 returns ambiguous list"`,
				Fix:   "write the full name `registry.corp/team/api:v1`, or add an [aliases] entry to the nodes' registries.conf"}}}},
		{name: "ambiguous, tag defaulted: the kubelet appends :latest",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("team/api"), nodes: crio134[:1],
			want: Verdict{Findings: []Finding{{Rule: RuleShortName, Action: ActionDeny,
				Cause: `ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: registry.corp, docker.io); CRI-O says "short name mode is enforcing, but image name team/api:latest returns ambiguous list"`,
				Fix:   "write the full name, registry host first (CRI-O's candidates: registry.corp/team/api:latest, docker.io/team/api:latest), or add an [aliases] entry to the nodes' registries.conf"}}}},
		{name: "one search registry is no ambiguity", cfg: registriesConf(t, `unqualified-search-registries = ["registry.corp"]`),
			ct: pullAlways("team/api:v1"), nodes: crio134, res: images("registry.corp/team/api:v1"), lookups: []string{"registry.corp/team/api:v1"}},
		{name: "an alias resolves it", cfg: registriesConf(t, twoSearch+"[aliases]\n\"team/api\" = \"registry.corp/team/api\"\n"),
			ct: pullAlways("team/api:v1"), nodes: crio134, res: images("registry.corp/team/api:v1"), lookups: []string{"registry.corp/team/api:v1"}},
		{name: "the alias's image is missing: not-found for what CRI-O pulls",
			cfg: registriesConf(t, twoSearch+"[aliases]\n\"team/api\" = \"registry.corp/team/api\"\n"),
			ct:  pullAlways("team/api:v1"), nodes: crio134,
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "CRI-O pulls registry.corp/team/api:v1: manifest unknown — the tag does not exist in registry.corp/team/api",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "CRI-O before 1.34 tries the candidates in order: the second has it",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("team/api:v1"), nodes: []Node{crioNode("c1", "1.33.4")},
			res: images("docker.io/team/api:v1"), lookups: []string{"registry.corp/team/api:v1", "docker.io/team/api:v1"},
			want: Verdict{Findings: []Finding{{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
				Cause: "CRI-O tried registry.corp/team/api:v1, docker.io/team/api:v1; docker.io/team/api:v1: pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
				Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"}}}},
		{name: "crioShortNameMode disabled: CRI-O 1.34 tries them too",
			cfg: registriesConf(t, twoSearch, func(c *Config) { c.Registries.CRIOShortNameMode = "disabled" }),
			ct:  pullAlways("team/api:v1"), nodes: crio134, res: images("registry.corp/team/api:v1"), lookups: []string{"registry.corp/team/api:v1"}},
		// OpenShift's machine-config-operator writes short_name_mode =
		// "disabled" into crio.conf from 4.21 on (openshift/machine-config-operator#5628,
		// OCPBUGS-75916): its CRI-O builds (".rhaos4.21") try every candidate.
		{name: "OpenShift CRI-O 1.34 tries them unless crioShortNameMode says enforcing",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("team/api:v1"), nodes: []Node{crioNode("o1", "1.34.2-2.rhaos4.21.git5d1a2b3.el9")},
			res: images("registry.corp/team/api:v1"), lookups: []string{"registry.corp/team/api:v1"}},
		{name: "OpenShift CRI-O with crioShortNameMode enforcing written out: enforced",
			cfg: registriesConf(t, twoSearch, func(c *Config) { c.Registries.CRIOShortNameMode = "enforcing" }), ct: pullAlways("team/api:v1"),
			nodes: []Node{crioNode("o1", "1.34.2-2.rhaos4.21.git5d1a2b3.el9")}, res: images("registry.corp/team/api:v1"),
			want: Verdict{Findings: []Finding{{Rule: RuleShortName, Action: ActionDeny,
				Cause: `ambiguous short name on CRI-O nodes (short-name-mode enforcing; search: registry.corp, docker.io); CRI-O says "short name mode is enforcing, but image name team/api:v1 returns ambiguous list"`,
				Fix:   "write the full name `registry.corp/team/api:v1`, or add an [aliases] entry to the nodes' registries.conf"}}}},
		{name: "a CRI-O version pullsafe cannot read never enforces", cfg: registriesConf(t, twoSearch),
			ct: pullAlways("team/api:v1"), nodes: []Node{crioNode("c1", "main-dev")}, res: images("registry.corp/team/api:v1")},
		{name: "mixed cluster: only the CRI-O nodes fail, a warning naming them",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("registry.corp/team/api:v1"),
			nodes: []Node{containerdNode("d1"), crioNode("c1", "1.34.1")}, res: images("registry.corp/team/api:v1")},
		{name: "mixed cluster, short name: CRI-O nodes refuse, containerd nodes pull: a warning naming the CRI-O nodes",
			cfg: registriesConf(t, twoSearch, func(c *Config) { c.Registries.NodeCredentials = []string{"docker.io"} }), ct: pullAlways("team/api:v1"),
			nodes: []Node{containerdNode("d1"), crioNode("c1", "1.34.1"), crioNode("c2", "1.34.1")},
			res:   images("team/api:v1", "docker.io/team/api:v1"),
			want: Verdict{Findings: []Finding{{Rule: RuleShortName, Action: ActionWarn,
				Cause: `ambiguous short name on CRI-O nodes c1, c2 (short-name-mode enforcing; search: registry.corp, docker.io); CRI-O says "short name mode is enforcing, but image name team/api:v1 returns ambiguous list"`,
				Fix:   "write the full name `docker.io/team/api:v1`, or add an [aliases] entry to the nodes' registries.conf"}}}},
		{name: "mixed cluster, short name, Docker Hub anonymous on containerd nodes: every group denies",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("team/api:v1"),
			nodes: []Node{containerdNode("d1"), crioNode("c1", "1.34.1")},
			res:   images("team/api:v1", "docker.io/team/api:v1"),
			want: Verdict{Findings: []Finding{
				{Rule: RuleDockerHubAnonymous, Action: ActionDeny,
					Cause: "on containerd nodes d1: pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests",
					Fix:   "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"},
				{Rule: RuleShortName, Action: ActionDeny,
					Cause: `ambiguous short name on CRI-O nodes c1 (short-name-mode enforcing; search: registry.corp, docker.io); CRI-O says "short name mode is enforcing, but image name team/api:v1 returns ambiguous list"`,
					Fix:   "write the full name `docker.io/team/api:v1`, or add an [aliases] entry to the nodes' registries.conf"}}}},
		{name: "mixed cluster, every group fails: still a denial",
			cfg: registriesConf(t, twoSearch), ct: pullAlways("registry.corp/team/api:v9"),
			nodes: []Node{containerdNode("d1"), crioNode("c1", "1.34.1")},
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionDeny,
				Cause: "manifest unknown — the tag does not exist in registry.corp/team/api",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "mixed cluster, CRI-O pulls another name that is missing: a warning on the CRI-O nodes",
			cfg: registriesConf(t, "[[registry]]\nprefix = \"registry.corp/team\"\nlocation = \"registry2.corp/team\"\n"),
			ct:  pullAlways("registry.corp/team/api:v1"), nodes: []Node{containerdNode("d1"), crioNode("c1", "1.34.1")},
			res: images("registry.corp/team/api:v1"),
			want: Verdict{Findings: []Finding{{Rule: RuleNotFound, Action: ActionWarn,
				Cause: "on CRI-O nodes c1: CRI-O pulls registry2.corp/team/api:v1: manifest unknown — the tag does not exist in registry2.corp/team/api",
				Fix:   "correct the image name or tag, or push the image before applying"}}}},
		{name: "blocked registry: denied on CRI-O nodes",
			cfg: registriesConf(t, "[[registry]]\nprefix = \"registry.corp\"\nlocation = \"registry.corp\"\nblocked = true\n"),
			ct:  pullAlways("registry.corp/team/api:v1"), nodes: crio134, res: images("registry.corp/team/api:v1"), lookups: []string{},
			want: Verdict{Findings: []Finding{{Rule: RuleBlockedRegistry, Action: ActionDeny,
				Cause: "registry registry.corp is blocked in the CRI-O nodes' registries.conf",
				Fix:   "pull from a registry the nodes allow, or unblock it in registries.conf"}}}},
		{name: "a mirror is tried first and has it",
			cfg: registriesConf(t, "[[registry]]\nprefix = \"registry.corp\"\nlocation = \"registry.corp\"\n[[registry.mirror]]\nlocation = \"mirror.corp\"\n"),
			ct:  pullAlways("registry.corp/team/api:v1"), nodes: crio134, res: images("mirror.corp/team/api:v1"),
			lookups: []string{"mirror.corp/team/api:v1"}},
		{name: "the location is rewritten",
			cfg: registriesConf(t, "[[registry]]\nprefix = \"registry.corp/team\"\nlocation = \"registry2.corp/shared/team\"\n"),
			ct:  pullAlways("registry.corp/team/api:v1"), nodes: crio134, res: images("registry2.corp/shared/team/api:v1"),
			lookups: []string{"registry2.corp/shared/team/api:v1"}},
		{name: "no search registry and no alias: CRI-O cannot resolve a short name",
			cfg: registriesConf(t, "unqualified-search-registries = []\n"), ct: pullAlways("team/api:v1"), nodes: crio134,
			want: Verdict{Findings: []Finding{{Rule: RuleShortName, Action: ActionDeny}}}},
	}
	for _, tt := range tests {
		if tt.name == "no search registry and no alias: CRI-O cannot resolve a short name" {
			t.Run(tt.name, func(t *testing.T) {
				cfg := DefaultConfig()
				tt.cfg(cfg)
				w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{tt.ct}}
				v := NewChecker(cfg, &fakeResolver{}).Check(t.Context(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Nodes: tt.nodes})
				if len(v.Findings) != 1 || v.Findings[0].Rule != RuleShortName || v.Findings[0].Action != ActionDeny ||
					!strings.Contains(v.Findings[0].Cause, `did not resolve to an alias and no unqualified-search registries are defined`) {
					t.Errorf("findings = %+v", v.Findings)
				}
			})
			continue
		}
		t.Run(tt.name, tt.run)
	}
}

// TestCRIOCandidateLookupsBounded: CRI-O before 1.34 tries every search
// registry and every mirror in turn; registries.conf may list 1000 of
// each. pullsafe looks up at most maxCRIOSources per container (the fix's
// probes included) and says "cannot verify" for the rest: never a denial
// it did not check, never a million lookups held against the review.
func TestCRIOCandidateLookupsBounded(t *testing.T) {
	var search, want []string
	for i := range 3 * maxCRIOSources {
		search = append(search, fmt.Sprintf("%q", fmt.Sprintf("r%d.registry-with-a-long-name.corp", i)))
		if i < maxCRIOSources {
			want = append(want, fmt.Sprintf("r%d.registry-with-a-long-name.corp/team/api:v1", i))
		}
	}
	conf := "unqualified-search-registries = [" + strings.Join(search, ", ") + "]\n"
	tests := []fixture{
		{name: "CRI-O 1.33 tries them all: the first maxCRIOSources lack it, the rest unknown",
			cfg: registriesConf(t, conf), ct: Container{Image: "team/api:v1", PullPolicy: corev1.PullAlways},
			nodes: []Node{crioNode("c1", "1.33.2")}, lookups: want,
			want: Verdict{Findings: []Finding{{Rule: RuleUnreachable, Action: ActionWarn,
				Cause: fmt.Sprintf("cannot verify: CRI-O tries more than %d sources for it in turn (registries.conf's search registries and mirrors); the %d pullsafe looked up lack it", maxCRIOSources, maxCRIOSources)}}}},
		{name: "CRI-O 1.34 refuses it: the fix probes at most maxCRIOSources",
			cfg: registriesConf(t, conf), ct: Container{Image: "team/api:v1", PullPolicy: corev1.PullAlways},
			nodes: []Node{crioNode("c1", "1.34.1")}, lookups: want[:maxFixProbes]},
	}
	for _, tt := range tests {
		if tt.want.Findings == nil {
			t.Run(tt.name, func(t *testing.T) {
				res := &fakeResolver{asked: &asked{}}
				cfg := DefaultConfig()
				tt.cfg(cfg)
				w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop", Containers: []Container{tt.ct}}
				v := NewChecker(cfg, res).Check(t.Context(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Nodes: tt.nodes})
				if len(v.Findings) != 1 || v.Findings[0].Rule != RuleShortName || len(v.Findings[0].Cause) > maxFindingBytes {
					t.Errorf("findings = %+v", v.Findings)
				}
				if len(res.asked.images) > maxCRIOSources {
					t.Errorf("%d lookups for the fix, at most %d", len(res.asked.images), maxCRIOSources)
				}
			})
			continue
		}
		t.Run(tt.name, tt.run)
	}
}

// TestRuntimeGroupsOncePerReview: the eligible nodes are grouped by
// runtime once per review, not once per container: a Pod of many
// containers on 5000 nodes must not cost a node list per container.
func TestRuntimeGroupsOncePerReview(t *testing.T) {
	var nodes []Node
	for i := range 2500 {
		nodes = append(nodes, crioNode(fmt.Sprintf("c%d", i), "1.34.1"), containerdNode(fmt.Sprintf("d%d", i)))
	}
	cfg := DefaultConfig()
	registriesConf(t, twoSearch)(cfg)
	checker := NewChecker(cfg, &fakeResolver{})
	allocated := func(containers int) uint64 {
		w := &Workload{Kind: "Pod", Name: "web", Namespace: "shop"}
		for i := range containers {
			w.Containers = append(w.Containers, Container{Name: fmt.Sprintf("c%d", i), Image: fmt.Sprintf("registry.corp/team/api%d:v1", i), PullPolicy: corev1.PullAlways})
		}
		in := Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce, Nodes: nodes}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		checker.Check(t.Context(), in)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	allocated(1) // warm up
	one, many := allocated(1), allocated(41)
	// The groups of 5000 nodes are ~3.5 MB; a container's own lookup and
	// findings are ~10 KB (~140 KB under -race).
	if per := (many - min(one, many)) / 40; per > 512<<10 {
		t.Errorf("each further container allocates %d bytes (one container: %d)", per, one)
	}
}
