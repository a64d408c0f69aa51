package policy

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// ImageResolver is what the checker needs of the registry package; the
// network lives behind it.
type ImageResolver interface {
	Resolve(ctx context.Context, image string, kc *registry.Keychain) (*registry.Image, error)
	Platforms(ctx context.Context, img *registry.Image) ([]v1.Platform, error)
	// PullPath checks the manifests and blobs a node fetches after img
	// resolved, for the index entries of platforms (pullpath.go).
	PullPath(ctx context.Context, img *registry.Image, platforms []v1.Platform) error
	HasMirror(registry string) bool
	// PullIdentity is what the credentials for image depend on beyond the
	// pull secrets in kc (registry.Resolver.PullIdentity): lookups with
	// different identities are never shared.
	PullIdentity(image string, kc *registry.Keychain) string
}

// Credentials are the pull secrets the kubelet would use for a workload, and
// what went wrong finding them, for the unauthorized diagnosis.
type Credentials struct {
	Keychain *registry.Keychain
	// Referenced are the secret names the pod uses (its own, or its service
	// account's: ReadCredentials); Missing those absent from the namespace.
	Referenced []string
	Missing    []string
	// Unknown are the referenced secrets whose existence cannot be known
	// (offline, not in the input: ErrUnknown).
	Unknown        []string
	ServiceAccount string // set when Referenced came from the service account
	// ServiceAccountNotFound: ServiceAccount does not exist where it was
	// looked for, so it gave no pull secrets.
	ServiceAccountNotFound bool
	// ServiceAccountUnknown: whether ServiceAccount exists, and with which
	// pull secrets, cannot be known (ErrUnknown).
	ServiceAccountUnknown bool
}

// Input is everything the checker needs about one admission or manifest.
type Input struct {
	Workload    *Workload
	Containers  []Container // the containers to look up (all, or changed ones on UPDATE)
	Mode        Mode
	Pin         Pinning // from Config.Settings, or PinAll for check --pin
	Credentials Credentials
	// Nodes are the cluster's nodes; nil means unknown (no platform check).
	Nodes []Node

	// groups are the eligible nodes by how their runtime resolves names
	// (crio.go), made once per Check: the nodes and the spec are every
	// container's.
	groups []*runtimeGroup
	// eligible is Eligible(Nodes, spec) when eligibleSet, made once per
	// Check (and per runtime group) for the same reason.
	eligible    []Node
	eligibleSet bool
	// judged are the platform rule's verdicts of this Check (platformjudged.go).
	judged *platformJudgements
}

// eligibleNodes is Eligible(in.Nodes, &in.Workload.Spec), once per Check.
func (in *Input) eligibleNodes() []Node {
	if in.eligibleSet {
		return in.eligible
	}
	return Eligible(in.Nodes, &in.Workload.Spec)
}

// Checker applies the rules. Safe for concurrent use.
type Checker struct {
	cfg *Config
	res ImageResolver
	// perReview and lookups bound registry lookups in flight (lookups.go,
	// fairslots.go).
	perReview int
	lookups   *Lookups
}

// NewChecker returns a Checker for cfg using res for lookups.
func NewChecker(cfg *Config, res ImageResolver, opts ...CheckerOption) *Checker {
	c := &Checker{cfg: cfg, res: res, perReview: DefaultLookupsPerReview}
	for _, o := range opts {
		o(c)
	}
	if c.lookups == nil {
		c.lookups = NewLookups(DefaultLookupsTotal)
	}
	return c
}

// Config returns the checker's configuration.
func (c *Checker) Config() *Config { return c.cfg }

// result is one container's outcome before modes are applied.
type result struct {
	findings []Finding
	pin      *Pin
	notes    []string
}

// add records a finding; its action is filled in from the config later
// unless set here.
func (r *result) add(ct Container, rule Rule, cause, fix string) *Finding {
	r.findings = append(r.findings, Finding{Rule: rule, Container: ct.Name, Source: ct.Source, Image: ct.Image, Cause: cause, Fix: fix})
	return &r.findings[len(r.findings)-1]
}

// Check looks up every container of in.Containers and returns the verdict.
// At most perReview containers are worked on at once, identical lookups are
// made once, and every lookup takes one of the Checker's slots (lookups.go):
// a Pod with thousands of containers costs a bounded number of connections.
// It never fails: lookup errors become findings, a container the deadline
// did not leave time for is "cannot verify", and a panic in a rule becomes
// an internal warning for that container.
func (c *Checker) Check(ctx context.Context, in Input) *Verdict {
	v := &Verdict{Object: in.Workload.Object(), Mode: in.Mode}
	if in.Mode == ModeOff {
		return v
	}
	in.Pin = in.Pin.forWorkload(in.Workload)
	if in.Nodes != nil {
		in.eligible, in.eligibleSet = Eligible(in.Nodes, &in.Workload.Spec), true
	}
	in.groups = c.runtimeGroups(in)
	in.judged = newPlatformJudgements()
	results := make([]result, len(in.Containers))
	missed := c.fromMemory(ctx, in, results)
	if len(missed) > 0 {
		// This review's view of the checker: the same rules, with a
		// resolver that shares identical lookups and takes a slot per
		// lookup.
		review := *c
		review.res = newReviewResolver(c.res, c.lookups, in.Workload.Namespace)
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(c.perReview, len(missed)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					results[i] = review.safeContainer(ctx, in, in.Containers[i])
				}
			}()
		}
		for _, i := range missed {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	// Sized once: a 30-container Pod would grow both slices five times.
	findings, pins := 0, 0
	for _, r := range results {
		findings += len(r.findings)
		if r.pin != nil {
			pins++
		}
	}
	if findings > 0 {
		v.Findings = make([]Finding, 0, findings)
	}
	if pins > 0 {
		v.Pins = make([]Pin, 0, pins)
	}
	for _, r := range results {
		v.Findings = append(v.Findings, r.findings...)
		for _, n := range r.notes {
			if !slices.Contains(v.Notes, n) {
				v.Notes = append(v.Notes, n)
			}
		}
		if r.pin != nil {
			v.Pins = append(v.Pins, *r.pin)
		}
	}
	c.applyMode(v)
	return v
}

// safeContainer is container with a panic turned into an internal warning.
func (c *Checker) safeContainer(ctx context.Context, in Input, ct Container) (out result) {
	defer func() {
		if p := recover(); p != nil {
			out = result{findings: []Finding{{Rule: RuleInternal, Action: ActionWarn, Container: ct.Name, Source: ct.Source,
				Image: ct.Image, Cause: fmt.Sprintf("pullsafe failed internally (%v) and allowed it unchecked", p)}}}
		}
	}()
	return c.container(ctx, in, ct)
}

// applyMode turns rule actions into effective ones: ignored findings go,
// and in warn mode nothing denies.
func (c *Checker) applyMode(v *Verdict) {
	kept := v.Findings[:0]
	for _, f := range v.Findings {
		if f.Action == "" {
			f.Action = c.action(f.Rule)
		}
		if f.Action == ActionIgnore {
			continue
		}
		if v.Mode == ModeWarn && f.Action == ActionDeny {
			f.Action = ActionWarn
		}
		kept = append(kept, f)
	}
	v.Findings = kept
}

func (c *Checker) action(r Rule) Action {
	if a, ok := c.cfg.Rules[r]; ok {
		return a
	}
	return r.DefaultAction()
}

func (c *Checker) container(ctx context.Context, in Input, ct Container) result {
	var out result
	find := func(r Rule, cause, fix string) { out.add(ct, r, cause, fix) }
	// The kubelet parses before anything else, whatever the pull policy:
	// an invalid reference is InvalidImageName even with Never.
	ref, err := registry.ParseReference(ct.Image)
	if err != nil {
		c.lookupFinding(in, ct, ref, err, &out)
		return out
	}
	if c.skipped(ct.Image, ref) || !Contacts(ct) {
		return out
	}
	if f := brokenSecret(in.Credentials); f != "" {
		find(RuleUnauthorized, f, "fix the secret's data (kubectl create secret docker-registry ... --dry-run=client -o yaml) or remove it from imagePullSecrets")
		return out
	}
	if in.groups != nil {
		return c.byRuntime(ctx, in, ct, ref, in.groups)
	}
	return c.lookup(ctx, in, ct, ref)
}

// lookup resolves ct.Image as containerd nodes do and applies the rules
// that need the registry's answer.
func (c *Checker) lookup(ctx context.Context, in Input, ct Container, ref registry.Reference) result {
	var out result
	find := func(r Rule, cause, fix string) { out.add(ct, r, cause, fix) }
	img, err := c.res.Resolve(ctx, ct.Image, in.Credentials.Keychain)
	if err != nil {
		c.lookupFinding(in, ct, ref, err, &out)
		var providers []registry.ProviderOutcome
		if e := (*registry.Error)(nil); errors.As(err, &e) {
			providers = e.Providers
		}
		c.dockerHub(in, ct, ref, nil, providers, &out)
		return out
	}
	c.dockerHub(in, ct, ref, img, img.Providers, &out)
	pinned := c.pin(in, ct, ref, img, &out)
	if !pinned {
		c.mutableTag(in, ct, ref, img, find)
	}
	c.platform(ctx, in, ct, img, find, &out)
	c.pullPath(ctx, in, ct, img, find)
	return out
}

// skipped matches registries.skip against the kubelet's normalised name
// (docker.io/library/nginx), with and without tag and digest, and, so
// patterns written for the short form keep working, against the reference
// as written.
func (c *Checker) skipped(image string, ref registry.Reference) bool {
	for _, p := range c.cfg.Registries.Skip {
		for _, s := range []string{ref.Name, ref.String(), ref.Written, image} {
			if globMatch(p, s) {
				return true
			}
		}
	}
	return false
}

// globMatch is path.Match ("*" stays within one path segment), plus a
// trailing "/*" matching everything below: the pattern's leading segments
// are matched against as many leading segments of s.
func globMatch(pattern, s string) bool {
	if ok, _ := path.Match(pattern, s); ok {
		return true
	}
	prefix, ok := strings.CutSuffix(pattern, "/*")
	if !ok {
		return false
	}
	n := strings.Count(prefix, "/") + 1
	parts := strings.SplitN(s, "/", n+1)
	if len(parts) <= n {
		return false
	}
	ok, _ = path.Match(prefix, strings.Join(parts[:n], "/"))
	return ok
}

// nodeCredentials matches the registry host as the kubelet names it
// (docker.io, not index.docker.io).
func (c *Checker) nodeCredentials(host string) bool {
	for _, p := range c.cfg.Registries.NodeCredentials {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

func (c *Checker) lookupFinding(in Input, ct Container, ref registry.Reference, err error, out *result) {
	find := func(r Rule, cause, fix string) { out.add(ct, r, cause, fix) }
	var e *registry.Error
	if !errors.As(err, &e) {
		find(RuleInternal, fmt.Sprintf("lookup failed: %v; allowed unchecked", err), "")
		return
	}
	words := e.Message
	switch {
	case e.Reason == registry.InvalidReference:
		find(RuleInvalidReference, "not a valid image reference ("+words+"); the kubelet would report InvalidImageName",
			"write the image as [registry/]repository[:tag][@sha256:digest], lowercase")
	case e.Reason == registry.NotFound:
		find(RuleNotFound, notFoundCause(ref, e), notFoundFix(e))
	case e.Reason == registry.Unauthorized:
		host := hostOf(ref, e)
		// The kubelet tries the node's own credentials before the
		// credential providers' (its node keyring, then the plugins):
		// whatever a provider gave, a refusal proves nothing here.
		if c.nodeCredentials(host) {
			cause, _ := withProviderNotes(e, "cannot verify: nodes pull from "+host+" with their own credentials (registries.nodeCredentials); pullsafe does not", "")
			f := out.add(ct, RuleUnauthorized, cause, "")
			f.Action = c.cappedAt(RuleUnauthorized, ActionWarn)
			return
		}
		cause, fix := diagnoseUnauthorized(in, ref, e)
		cause, fix = withProviderNotes(e, cause, fix)
		if why := in.Credentials.unverifiable(in.Workload); why != "" {
			if words == "" {
				words = "unauthorized"
			}
			f := out.add(ct, RuleUnauthorized, fmt.Sprintf("cannot verify: %s and %s", words, why), fix)
			f.Action = c.cappedAt(RuleUnauthorized, ActionWarn)
			c.offlineNote(in, out)
			return
		}
		find(RuleUnauthorized, cause, fix)
	case e.Reason == registry.RateLimited:
		find(RuleRateLimited, fmt.Sprintf("registry %s is rate limiting pulls (%s); pulls are likely to fail now", e.Registry, words),
			"authenticate pulls with a pull secret, use a mirror, or retry after "+e.RetryAfter.String())
	case e.Flavour == registry.FlavourProvider:
		find(RuleUnreachable, "cannot verify: "+words, providerFix)
	case e.Flavour == registry.FlavourUnsupported:
		find(RuleUnreachable, fmt.Sprintf("cannot verify %s: %s", ref, words), "")
	default:
		find(RuleUnreachable, fmt.Sprintf("cannot verify: registry %s unreachable (%s: %s)", e.Registry, e.Flavour, words),
			"check the registry, DNS and egress from the nodes; pullsafe allowed it unchecked")
	}
}

// hostOf is the registry as the kubelet names it: the image's, not the
// mirror's or ggcr's spelling (index.docker.io).
func hostOf(ref registry.Reference, e *registry.Error) string {
	if ref.Domain != "" {
		return ref.Domain
	}
	return e.Registry
}

func notFoundCause(ref registry.Reference, e *registry.Error) string {
	words := e.Message
	if words == "" {
		words = "not found"
	}
	switch e.Flavour {
	case registry.FlavourRepository:
		return fmt.Sprintf("%s — the repository does not exist in %s (or is hidden from these credentials)", words, e.Registry)
	case registry.FlavourDigest:
		return fmt.Sprintf("%s — the digest is not in the repository (deleted, or pushed elsewhere)%s", words, answeredBy(ref, e))
	case registry.FlavourNoHosts:
		return words
	}
	cause := fmt.Sprintf("%s — the tag does not exist in %s%s", words, ref.Name, answeredBy(ref, e))
	if len(e.Suggestions) > 0 {
		cause += "; nearest tags: " + strings.Join(e.Suggestions, ", ")
	}
	return cause
}

// answeredBy names the host that said not found when it is not the
// image's registry: a hosts.toml (registries.hostsDir) whose hosts replace
// the registry, so that host's word is the nodes' verdict.
func answeredBy(ref registry.Reference, e *registry.Error) string {
	hub := ref.Domain == "docker.io" && (e.Registry == "index.docker.io" || e.Registry == "registry-1.docker.io")
	if e.Registry == "" || e.Registry == ref.Domain || hub {
		return ""
	}
	return " (answered by " + e.Registry + ", the host the nodes pull " + ref.Domain + " from)"
}

func notFoundFix(e *registry.Error) string {
	if e.Flavour == registry.FlavourNoHosts {
		return "give a host of the registry's hosts.toml on the nodes (and its copy in registries.hostsDir) the pull and resolve capabilities"
	}
	if len(e.Suggestions) > 0 {
		return "did you mean " + e.Suggestions[0] + "? correct the tag, or push the image before applying"
	}
	return "correct the image name or tag, or push the image before applying"
}

// offlineNote notes, once per verdict, that unknowns come from checking
// offline.
func (c *Checker) offlineNote(in Input, out *result) {
	if cr := in.Credentials; len(cr.Unknown) > 0 || cr.ServiceAccountUnknown {
		out.notes = append(out.notes, OfflineNote)
	}
}

func (c *Checker) dockerHub(in Input, ct Container, ref registry.Reference, img *registry.Image, providers []registry.ProviderOutcome, out *result) {
	if img != nil && img.Credential != "" {
		return
	}
	if img == nil && len(in.Credentials.Keychain.Lookup(ref.Name)) > 0 {
		return
	}
	// A credential provider that gave credentials for the image, or that
	// pullsafe could not run, may hand the kubelet credentials: the pull is
	// not known to be anonymous.
	for _, o := range providers {
		if o.Credentials > 0 || o.Problem != "" {
			return
		}
	}
	// Nodes that hold their own Docker Hub credentials
	// (registries.nodeCredentials) do not pull anonymously.
	if ref.Domain != "docker.io" || c.res.HasMirror("docker.io") || c.nodeCredentials(ref.Domain) {
		return
	}
	fix := "add a docker-registry pull secret for docker.io, configure a Docker Hub mirror, or copy the image to your own registry"
	if why := in.Credentials.unverifiable(in.Workload); why != "" {
		// The secrets still to come may hold Docker Hub credentials.
		f := out.add(ct, RuleDockerHubAnonymous, "cannot verify: pulled from Docker Hub anonymously with the pull secrets at hand, and "+why, fix)
		f.Action = c.cappedAt(RuleDockerHubAnonymous, ActionWarn)
		c.offlineNote(in, out)
		return
	}
	out.add(ct, RuleDockerHubAnonymous, "pulled from Docker Hub anonymously: anonymous pulls share one IP's rate limit and fail fleet-wide with toomanyrequests", fix)
}

// pin records a pin when in.Pin (Config.Settings: the one place that
// decides it) says this object is pinned and the reference is a tag.
func (c *Checker) pin(in Input, ct Container, ref registry.Reference, img *registry.Image, out *result) bool {
	if !in.Pin.On || img.Tag == "" || ref.Digest != "" {
		return false
	}
	out.pin = &Pin{Path: ct.Path, From: ct.Image, To: pinned(ct.Image, img.DigestString(), c.cfg.Pin.KeepTag)}
	return true
}

// pinned keeps the user's spelling of the reference and appends the digest.
func pinned(image, digest string, keepTag bool) string {
	if r, err := registry.ParseReference(image); err == nil && !keepTag {
		image = r.Written
	}
	return image + "@" + digest
}

// mutableTag advises what would pin this object (in.Pin.Fix): the
// namespace label helps a Pod, not a template.
func (c *Checker) mutableTag(in Input, ct Container, ref registry.Reference, img *registry.Image, find func(Rule, string, string)) {
	if ref.Digest != "" || PullPolicy(ct) != corev1.PullIfNotPresent {
		return
	}
	fix := in.Pin.Fix
	if fix == "" {
		fix = "pin the digest"
	}
	field := "imagePullPolicy"
	if ct.Source == SourceVolume {
		field = "pullPolicy" // spec.volumes[].image.pullPolicy
	}
	now := img.DigestString()
	find(RuleMutableTag, "mutable tag "+strconv.Quote(ref.Tag)+" with "+field+" IfNotPresent: nodes may run different bits (now "+now[:min(19, len(now))]+"…)",
		fix)
}

// isIndex reports whether a manifest's Content-Type (parameters aside) is
// an OCI index or a Docker manifest list.
func isIndex(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(mt) {
	case "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

// schema1 are the media types of Docker image manifest v2 schema 1.
var schema1 = []string{
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
}

func (c *Checker) platform(ctx context.Context, in Input, ct Container, img *registry.Image, find func(Rule, string, string), out *result) {
	if c.action(RulePlatform) == ActionIgnore {
		return
	}
	if slices.Contains(schema1, img.MediaType) {
		c.schema1(in, ct, img, out)
		return
	}
	if ct.Source == SourceVolume && !isIndex(img.MediaType) {
		// A volume's content is mounted, not executed, and may be an OCI
		// artifact: only an index makes the runtime pick a platform (and
		// fail when none matches). A single manifest's platform is not
		// known to stop every runtime, so it never refuses a volume.
		return
	}
	eligible := eligibleNodes(in, out)
	if len(eligible) == 0 {
		return
	}
	platforms, ok := c.offered(ctx, img, find, out)
	if !ok {
		return
	}
	judged, ok := in.judged.get(img.Digest, eligible)
	if !ok {
		c.judgePlatforms(in, eligible, platforms, &judged)
		in.judged.put(img.Digest, eligible, judged)
	}
	for _, f := range judged.findings {
		out.add(ct, f.Rule, f.Cause, f.Fix).Action = f.Action
	}
	out.notes = append(out.notes, judged.notes...)
}

// judgePlatforms is the platform rule's verdict on the platforms an image
// states (offered), for the eligible nodes, into out: findings without a
// container, which platform gives to each container that runs the image.
func (c *Checker) judgePlatforms(in Input, eligible []Node, platforms []v1.Platform, out *result) {
	var ct Container
	find := func(r Rule, cause, fix string) { out.add(ct, r, cause, fix) }
	handler := buildUncertain(&in.Workload.Spec)
	can, cannot, unsure := splitNodes(platforms, eligible, handler)
	if builds, run := windowsOnly(platforms, unsure); builds != "" {
		f := out.add(ct, RulePlatform, fmt.Sprintf("cannot verify the Windows build: offers windows %s only; eligible nodes (%s) run %s, and %s may pull for another build (a Hyper-V runtime handler's guest platform)",
			builds, nodeNames(unsure), run, handler), windowsFix(builds))
		f.Action = c.cappedAt(RulePlatform, ActionWarn)
	}
	offers := platformList(platforms)
	if builds, run := windowsOnly(platforms, cannot); builds != "" {
		c.windowsBuildFinding(ct, builds, run, can, cannot, eligible, out)
		return
	}
	switch {
	case len(cannot) == 0:
	case len(can) == 0:
		find(RulePlatform, "offers "+offers+" only; no node it may run on can run it (nodes: "+nodeSummary(eligible)+")",
			"build a multi-arch image (docker buildx build --platform linux/amd64,linux/arm64) or use one that offers the nodes' platform")
	default:
		f := out.add(ct, RulePlatform,
			"offers "+offers+" only; "+strconv.Itoa(len(cannot))+" of "+strconv.Itoa(len(eligible))+" eligible nodes ("+nodeSummary(cannot)+") cannot run it",
			narrowing(can, cannot))
		f.Action = c.cappedAt(RulePlatform, ActionWarn)
	}
}

// eligibleNodes are the nodes the workload may run on, or none with a
// note saying why the platform is not checked.
func eligibleNodes(in Input, out *result) []Node {
	if in.Nodes == nil {
		out.notes = append(out.notes, "platform not checked: nodes unknown")
		return nil
	}
	if len(in.Nodes) == 0 {
		out.notes = append(out.notes, "platform not checked: the cluster has no nodes yet")
		return nil
	}
	eligible := in.eligibleNodes()
	if len(eligible) == 0 {
		out.notes = append(out.notes, "platform not checked: no node matches the nodeSelector/affinity")
	}
	return eligible
}

// offered are the platforms img states, ok false when there is nothing to
// compare the nodes with (said as a finding or a note where it matters).
func (c *Checker) offered(ctx context.Context, img *registry.Image, find func(Rule, string, string), out *result) (platforms []v1.Platform, ok bool) {
	platforms, err := c.res.Platforms(ctx, img)
	if err != nil {
		cause := fmt.Sprintf("cannot verify platforms: %v", err)
		if e := (*registry.Error)(nil); errors.As(err, &e) && e.Flavour == registry.FlavourDigestMismatch && out.pin != nil {
			// The registry's own bytes contradict the digest its HEAD
			// gave: pinning it would make every pull of this Pod fail.
			out.pin = nil
			cause += "; not pinned"
		}
		if c.pullPathNames(err) {
			return nil, false
		}
		find(RuleUnreachable, cause, "")
		return nil, false
	}
	all := platforms
	if platforms = stated(platforms); len(platforms) == 0 {
		return nil, false // an artifact, or an index whose entries state no platform: nothing to compare
	}
	if slices.ContainsFunc(all, func(p v1.Platform) bool {
		return p.OS == "" && p.Architecture == "" && p.Variant == "" && p.OSVersion == ""
	}) {
		// An index entry without a platform: containerd reads its config
		// to decide, so it may serve any node.
		out.notes = append(out.notes, "platform not checked: an index entry states no platform (the runtime reads its config)")
		return nil, false
	}
	return platforms, true
}

// splitNodes sorts the eligible nodes into those that can run one of
// platforms and those that cannot; unsure are among can, kept out only by
// their Windows build while the Pod's runtime handler may pull for another.
//
// When every node runs it (most reviews), can is eligible itself, capped
// against appends: the usual answer copies no Node.
func splitNodes(platforms []v1.Platform, eligible []Node, handler string) (can, cannot, unsure []Node) {
	first := slices.IndexFunc(eligible, func(n Node) bool { return !runs(platforms, n) })
	if first < 0 {
		return eligible[:len(eligible):len(eligible)], nil, nil
	}
	can = append(can, eligible[:first]...)
	for _, n := range eligible[first:] {
		switch {
		case runs(platforms, n):
			can = append(can, n)
		case handler != "" && n.WindowsBuild != "" && runs(platforms, withoutBuild(n)):
			// Only its build keeps the node out, and the Pod's runtime
			// handler may pull for another: cannot verify.
			can = append(can, n)
			unsure = append(unsure, n)
		default:
			cannot = append(cannot, n)
		}
	}
	return can, cannot, unsure
}

// schema1 reports a Docker schema 1 manifest, which only the registry's
// answer can reveal: containerd 2.1 removed it ("schema 1 image manifests
// are no longer supported"), 2.0 disables it unless re-enabled, 1.x still
// converts it. A denial only when every eligible node is known to run
// containerd 2.1 or later; otherwise a warning, as the nodes' runtimes are
// not all known to refuse it.
func (c *Checker) schema1(in Input, ct Container, img *registry.Image, out *result) {
	cause := fmt.Sprintf("the registry serves a Docker schema 1 manifest (%s); containerd 2 refuses it by default, 2.1 and later always: \"schema 1 image manifests are no longer supported\"", img.MediaType)
	fix := "rebuild and push the image with a current builder (docker buildx, or pull and push it with Docker 20+), or use a newer tag"
	eligible := in.eligibleNodes()
	refuse := 0
	for _, n := range eligible {
		if n.refusesSchema1() {
			refuse++
		}
	}
	if len(eligible) > 0 && refuse == len(eligible) {
		out.add(ct, RulePlatform, cause+fmt.Sprintf("; all %d eligible nodes run containerd 2.1 or later", refuse), fix)
		return
	}
	if refuse > 0 {
		cause += fmt.Sprintf("; %d of %d eligible nodes run containerd 2.1 or later", refuse, len(eligible))
	}
	f := out.add(ct, RulePlatform, cause, fix)
	f.Action = c.cappedAt(RulePlatform, ActionWarn)
}

// cappedAt is the rule's action but never stronger than max.
func (c *Checker) cappedAt(r Rule, max Action) Action {
	a := c.action(r)
	if a == ActionDeny {
		return max
	}
	return a
}
