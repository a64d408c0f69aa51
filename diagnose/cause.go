package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/policy"
)

// Status of one stuck image, as `why` found it now.
const (
	StatusFails   = "fails"    // the lookup now fails the way the kubelet's pull does: the cause is named
	StatusFineNow = "fine-now" // the registry answers now: the kubelet will succeed at its next try
	// StatusCannotTell: pullsafe's own lookup could not see what the
	// node sees (unreachable from this machine while the kubelet's error
	// is not a network one; credentials only the nodes hold): the
	// kubelet's error is the evidence, and no cause is named.
	StatusCannotTell = "cannot-tell"
)

// pullFailing are the rules whose findings make a pull fail, in the order
// a person should read them; the other rules (mutable tags, anonymous
// Docker Hub pulls) are advice about images that pull.
var pullFailing = []policy.Rule{policy.RuleInvalidReference, policy.RuleShortName, policy.RuleBlockedRegistry, policy.RuleNotFound,
	policy.RuleUnauthorized, policy.RuleRateLimited, policy.RuleUnreachable, policy.RulePlatform}

// Configure is cfg for explaining pulls: every pull-failing rule reported
// (whatever the config ignores: the pod is already stuck), the advice
// rules off, mode enforce, and no registry skipped: a skipped image is
// never looked up, and "the registry answered now" would be invented.
func Configure(cfg *policy.Config) {
	cfg.Mode = policy.ModeEnforce
	cfg.Registries.Skip = nil
	rules := map[policy.Rule]policy.Action{}
	for _, r := range policy.AllRules {
		rules[r] = policy.ActionIgnore
	}
	for _, r := range pullFailing {
		rules[r] = policy.ActionDeny
	}
	cfg.Rules = rules
}

// Explanation is pullsafe's answer for one stuck image.
type Explanation struct {
	Source    policy.Source `json:"source"`
	Container string        `json:"container"`
	Image     string        `json:"image"`
	// Kubelet is the container's waiting reason and message (empty for
	// an image volume); LastError the kubelet's last "Failed to pull
	// image" event, when the events still exist.
	KubeletReason  string `json:"kubeletReason,omitempty"`
	KubeletMessage string `json:"kubeletMessage,omitempty"`
	LastError      string `json:"lastError,omitempty"`
	// LastErrorBy is the component the LastError Event names as its
	// reporter: Events are not authenticated, their text is evidence only.
	LastErrorBy    string     `json:"lastErrorReporter,omitempty"`
	LastErrorAt    *time.Time `json:"lastErrorAt,omitempty"`
	LastErrorCount int32      `json:"lastErrorCount,omitempty"`
	Status         string     `json:"status"`
	Rule           string     `json:"rule,omitempty"`
	Cause          string     `json:"cause"`
	Fix            string     `json:"fix,omitempty"`
}

// explain maps what the kubelet said and what the lookup finds now to a
// cause and a fix. findings are the verdict's for this image (any rule);
// node is the pod's node ("" when not scheduled); owned says a controller
// replaces the pod when it is deleted. The steps run in this order: the
// node's own refusals first (a registry lookup cannot see them), then what
// the lookup found, then what only the kubelet's words show; "fine now"
// only when none named anything.
func explain(si stuckImage, findings []policy.Finding, node string, owned bool) Explanation {
	ex := kubeletSaid(si)
	switch {
	case ex.nodeRefused(si, node):
	case ex.lookupFailed(si, findings):
	case ex.kubeletOnly(si, node):
	default:
		ex.fineNow(si, node, owned)
	}
	return ex
}

// kubeletSaid is the explanation's evidence: the image, the container's
// waiting state and the kubelet's last failed pull.
func kubeletSaid(si stuckImage) Explanation {
	ct := si.Container
	ex := Explanation{Source: ct.Source, Container: ct.Name, Image: ct.Image, KubeletReason: si.Reason, KubeletMessage: si.Message}
	if si.LastError != nil {
		ex.LastError, ex.LastErrorCount, ex.LastErrorBy = si.LastError.Message, si.LastError.Count, si.LastError.Reporter
		if !si.LastError.Last.IsZero() {
			t := si.LastError.Last.UTC()
			ex.LastErrorAt = &t
		}
	}
	return ex
}

func (ex *Explanation) set(status, rule, cause, fix string) {
	ex.Status, ex.Rule, ex.Cause, ex.Fix = status, rule, cause, fix
}

// nodeRefused names a failure on the node's side that a registry lookup
// cannot see: answering "fine now" for it would send a person the wrong
// way. It reports whether it named one.
func (ex *Explanation) nodeRefused(si stuckImage, node string) bool {
	switch si.Reason {
	case "ErrImageNeverPull":
		where := "the node's"
		if node != "" {
			where = fmt.Sprintf("node %s's", node)
		}
		ex.set(StatusFails, "never-pull",
			fmt.Sprintf("imagePullPolicy Never: the kubelet never pulls, and the image is not in %s image store (pullsafe cannot see a node's images)", where),
			"load the image onto the node (ctr -n k8s.io images import, kind load docker-image ...), or set imagePullPolicy: IfNotPresent so the kubelet pulls it")
		return true
	}
	if c, ok := runtimeCause(si, node); ok {
		ex.set(StatusFails, c.rule, c.cause, c.fix)
		return true
	}
	switch si.Reason {
	case "ImageInspectError":
		ex.set(StatusFails, "node-inspect",
			"the node's container runtime failed to inspect the image (a problem on the node, not in the registry: pullsafe cannot see it)",
			"read the kubelet's message above and the runtime's logs on the node (journalctl -u containerd); the registry is not the cause")
		return true
	case "SignatureValidationFailed":
		ex.set(StatusFails, "signature",
			"the node's runtime refused the image's signature (its signature policy; pullsafe does not check signatures)",
			"sign the image as the nodes' policy requires, or use an image that is signed")
		return true
	}
	return false
}

// lookupFailed names the first pull-failing finding of the lookup, unless
// what failed here is not what failed on the node (this machine's network,
// its rate limit, credentials pullsafe does not hold): then it cannot
// tell. It reports whether a finding failed the pull.
func (ex *Explanation) lookupFailed(si stuckImage, findings []policy.Finding) bool {
	for _, r := range pullFailing {
		i := slices.IndexFunc(findings, func(f policy.Finding) bool { return f.Rule == r })
		if i < 0 {
			continue
		}
		f := findings[i]
		ex.set(StatusFails, string(f.Rule), f.Cause, f.Fix)
		switch {
		case r == policy.RuleUnreachable && !networkError(si):
			// This machine's failure is not the node's: the kubelet got
			// further (or said nothing left to read).
			ex.set(StatusCannotTell, ex.Rule, "pullsafe cannot tell: its own lookup from this machine failed ("+f.Cause+"), and the kubelet's error is not a network one",
				"read the kubelet's error above, or run pullsafe why where the registry is reachable as from the nodes (VPN, bastion)")
		case r == policy.RuleRateLimited && !rateLimitedToo(si):
			// Registries count pulls per client IP: this machine's
			// limit is not the node's.
			ex.set(StatusCannotTell, ex.Rule, "pullsafe cannot tell: its own lookup was rate limited ("+f.Cause+"), and the kubelet's error is not a rate limit",
				"read the kubelet's error above, or retry pullsafe why later")
		case r == policy.RuleUnreachable:
			ex.Fix = "check the registry, DNS and egress from the nodes (pullsafe looked it up from this machine; the nodes' network may differ)"
		case r == policy.RuleUnauthorized && f.Action != policy.ActionDeny:
			// Credentials pullsafe does not hold (registries.nodeCredentials,
			// a service account not created yet): not a cause it found.
			ex.set(StatusCannotTell, ex.Rule, "pullsafe cannot tell: "+f.Cause,
				"read the kubelet's error above; check the nodes' credentials for this registry (kubelet credential provider, containerd config)")
		}
		return true
	}
	return false
}

// kubeletOnly names what only the kubelet's words show once the registry
// answered: a name it could not parse, a node-side failure in the
// container's status, a host the node asked that pullsafe did not. It
// reports whether it named one.
func (ex *Explanation) kubeletOnly(si stuckImage, node string) bool {
	if si.Reason == "InvalidImageName" {
		// The kubelet's parse failed and does not retry into success;
		// pullsafe's parser disagreeing is no evidence it will.
		ex.set(StatusCannotTell, string(policy.RuleInvalidReference),
			"pullsafe cannot tell: the kubelet could not parse the image reference (its message above), pullsafe's parser accepts it",
			"rewrite the image as [registry/]repository[:tag][@sha256:digest], lowercase, as the kubelet's message says")
		return true
	}
	if c, ok := nodeSideCause(si, node); ok {
		ex.set(StatusFails, c.rule, c.cause, c.fix)
		return true
	}
	if si.OtherHost != "" {
		ex.set(StatusCannotTell, "mirror",
			"pullsafe cannot tell: the node's runtime asked "+si.OtherHost+" (a mirror configured on the nodes?), pullsafe asked the image's registry, which answers",
			"check the image on "+si.OtherHost+", or give pullsafe why the nodes' mirrors (--config with registries.mirrors)")
		return true
	}
	return false
}

// fineNow says the registry answers now, claiming only what was checked,
// and how to retry.
func (ex *Explanation) fineNow(si stuckImage, node string, owned bool) {
	ex.Status = StatusFineNow
	ex.Cause = "the registry answered now: the image exists and these credentials can pull it"
	switch {
	case si.PlatformUnchecked:
		ex.Cause += " (the node's platform not checked)"
	case node != "":
		ex.Cause += " on node " + node + "'s platform"
	}
	if si.LastError != nil {
		// The Event's text is shown on its own, labelled, never as
		// pullsafe's words.
		ex.Cause += "; the last failed pull is the Event above"
	}
	retry := "delete the pod to retry now"
	if owned {
		retry = "delete the pod (its controller makes a new one) to retry now"
	}
	ex.Fix = "nothing to change: the kubelet retries at the end of its back-off (up to 5 minutes), or " + retry
	if networkError(si) {
		ex.Fix += "; if it fails again, the nodes may not reach the registry as this machine does (DNS, egress, proxy)"
	}
}

// nodeCause is a failure the kubelet's words place on the node itself.
type nodeCause struct{ rule, cause, fix string }

// nodeSideCauses are containerd's and Go's texts for failures a registry
// lookup from elsewhere cannot see and a retry does not cure: the image is
// fine, the node is not.
var nodeSideCauses = []struct {
	texts []string
	nodeCause
}{
	{[]string{"no space left on device"}, nodeCause{"node-disk",
		"the node's disk is full (\"no space left on device\" in the kubelet's error): the registry answered pullsafe, the node cannot store the image",
		"free space on the node (crictl rmi --prune; check the kubelet's imageGCHighThresholdPercent and /var/lib/containerd), or drain it"}},
	{[]string{"x509: ", "failed to verify certificate"}, nodeCause{"node-tls",
		"the node does not trust the registry's certificate (x509 in the kubelet's error): pullsafe trusts it from this machine, the node's runtime does not",
		"give the nodes the registry's CA (containerd: /etc/containerd/certs.d/HOST/hosts.toml ca = ..., or the node's trust store), then delete the pod to retry"}},
	// containerd's (and Docker's) words when no index entry matches the
	// node: pullsafe's platform rule names it when it can; this is for a
	// node it could not judge (its Windows build unknown, a variant).
	{[]string{"no match for platform in manifest"}, nodeCause{"platform",
		"the node's runtime found no image for its platform in the index (\"no match for platform in manifest\"); a Windows node needs an os.version it runs: its exact build below 10.0.20348, else one from 10.0.20348 up to its own build",
		"use a tag built for the node's OS, architecture and Windows build, or a nodeSelector (kubernetes.io/arch, node.kubernetes.io/windows-build) to nodes that run it"}},
	{[]string{"server gave HTTP response to HTTPS client"}, nodeCause{"node-http",
		"the registry speaks plain HTTP and the node's runtime asked with HTTPS (\"server gave HTTP response to HTTPS client\")",
		"declare the registry as plain HTTP on the nodes (containerd: /etc/containerd/certs.d/HOST/hosts.toml server = \"http://HOST\"), or serve it over TLS"}},
}

// nodeSideCause reports a node-side failure in the kubelet's words, read
// from the container's status only: the kubelet writes it (tenants cannot),
// while an Event's text may be anyone's who can create Events in the
// namespace. An image volume, which has no status, never gets one.
func nodeSideCause(si stuckImage, node string) (nodeCause, bool) {
	text := si.Message
	for _, c := range nodeSideCauses {
		for _, t := range c.texts {
			if strings.Contains(text, t) {
				if node != "" {
					c.cause += " (node " + node + ")"
				}
				return c.nodeCause, true
			}
		}
	}
	return nodeCause{}, false
}

// rateLimitedToo reports whether the kubelet's words are a rate limit.
func rateLimitedToo(si stuckImage) bool {
	text := si.Message
	if si.LastError != nil {
		text += " " + si.LastError.Message
	}
	return strings.Contains(text, "toomanyrequests") || strings.Contains(text, "429") || strings.Contains(strings.ToLower(text), "rate limit")
}

// networkError reports whether the kubelet's words describe a failure to
// reach the registry (containerd's and Go's net errors), not an answer.
func networkError(si stuckImage) bool {
	text := si.Message
	if si.LastError != nil {
		text += " " + si.LastError.Message
	}
	for _, s := range []string{"no such host", "i/o timeout", "dial tcp", "connection refused", "TLS handshake", "registry is unavailable",
		"connection reset by peer", "context deadline exceeded", "network is unreachable", "no route to host"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// findingsFor are the verdict's findings for one container or volume.
func findingsFor(v *policy.Verdict, ct policy.Container) []policy.Finding {
	var out []policy.Finding
	for _, f := range v.Findings {
		if f.Source == ct.Source && f.Container == ct.Name && f.Image == ct.Image {
			out = append(out, f)
		}
	}
	return out
}

// owned reports whether a controller (ReplicaSet, Job, ...) recreates pod
// when it is deleted.
func owned(pod *corev1.Pod) bool {
	for _, o := range pod.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return true
		}
	}
	return false
}
