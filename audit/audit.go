// Package audit looks up the images of running Pods again, long after
// their admission, with each Pod's own pull secrets and pullsafe's rules,
// and reports the workloads whose images would fail to pull now (a tag
// deleted, a secret rotated, a node pool of another architecture).
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// Cluster is what a pass reads besides the Pods: pull secrets by get, as
// admission reads them; namespace labels (mode off skips a namespace);
// today's nodes for the platform rule. webhook.ClientCluster is one.
type Cluster interface {
	policy.SecretReader
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
	// Nodes returns nil when nodes are unknown (the platform rule is then
	// skipped with a note, as in admission).
	Nodes(ctx context.Context) ([]policy.Node, error)
}

// Auditor runs audit passes. Passes must not overlap.
type Auditor struct {
	pods    client.Reader // lists Pods page by page, gets ReplicaSets and Jobs
	cluster Cluster
	// checker is admission's current Checker: its config, its resolver
	// (shared cache) and its lookup slots (admission goes first).
	checker  func() *policy.Checker
	own      string
	pageSize int64
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	poll     time.Duration
	budget   *budget
}

// Option configures an Auditor.
type Option func(*Auditor)

// WithPageSize sets how many Pods one List returns (default 500): memory
// holds one page, not the cluster's Pods.
func WithPageSize(n int64) Option { return func(a *Auditor) { a.pageSize = n } }

// WithClock replaces the clock the budget reads and the sleep the audit
// waits with (tests drive both).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(a *Auditor) { a.now, a.sleep = now, sleep }
}

// New returns an Auditor listing Pods with pods (an uncached reader: a pass
// pages through them rather than keeping every Pod in an informer), reading
// credentials, namespaces and nodes from cluster, and looking images up
// with checker's resolver. own is pullsafe's namespace, never audited.
func New(pods client.Reader, cluster Cluster, checker func() *policy.Checker, own string, opts ...Option) *Auditor {
	a := &Auditor{pods: pods, cluster: cluster, checker: checker, own: own, pageSize: 500,
		now: time.Now, sleep: sleepCtx, poll: 50 * time.Millisecond}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Result is one workload whose running Pods would fail to pull an image.
type Result struct {
	Owner Owner `json:"workload"`
	// Pods is how many of its running Pods would fail to pull.
	Pods     int              `json:"pods"`
	Findings []policy.Finding `json:"findings"`
	// Message is admission's denial message for the workload, sanitized
	// and bounded: the Event's message.
	Message string `json:"message"`
}

// Report is one pass.
type Report struct {
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"durationNanoseconds"`
	Pods      int           `json:"pods"`      // running Pods audited
	Workloads int           `json:"workloads"` // distinct workloads they belong to
	Lookups   int           `json:"lookups"`   // lookups passed to the resolver (cache hits included)
	Results   []Result      `json:"results"`
	// Notes are what could not be checked, once each.
	Notes []string `json:"notes,omitempty"`
}

// Failing reports whether any workload would fail to pull.
func (r *Report) Failing() bool { return len(r.Results) > 0 }

// pass is the state of one pass.
type pass struct {
	a       *Auditor
	cfg     *policy.Config
	checker *policy.Checker
	res     *background
	nodes   []policy.Node
	// platforms is each node's platform by name, built on first use.
	platforms map[string]string
	owners    owners
	creds     map[string]credsOrErr
	labels    map[string]map[string]string
	seen      map[string]bool // owner + pod spec signature
	results   map[Owner]*Result
	report    *Report
}

type credsOrErr struct {
	c   policy.Credentials
	err error
}

// Pass audits the running Pods once. An error means the Pods could not be
// listed; everything else becomes a note or "cannot verify".
func (a *Auditor) Pass(ctx context.Context) (*Report, error) {
	admission := a.checker()
	cfg := admission.Config()
	if a.budget == nil || a.budget.perMinute != cfg.Audit.RequestsPerMinute {
		a.budget = newBudget(cfg.Audit.RequestsPerMinute, a.now)
	}
	bg := &background{next: admission.Resolver(), admission: admission, current: a.checker, budget: a.budget, sleep: a.sleep, poll: a.poll,
		images: map[imageKey]resolved{}, platforms: map[string]platforms{}, paths: map[string]error{}}
	p := &pass{a: a, cfg: cfg, res: bg,
		// One lookup at a time: the audit never competes with admission
		// for connections or registry quota beyond one request.
		checker: policy.NewChecker(cfg, bg, policy.WithLookupLimits(1, 1)),
		owners:  owners{reader: a.pods, seen: map[Owner]Owner{}},
		creds:   map[string]credsOrErr{}, labels: map[string]map[string]string{},
		seen: map[string]bool{}, results: map[Owner]*Result{},
		report: &Report{Started: a.now()}}
	var err error
	if p.nodes, err = a.cluster.Nodes(ctx); err != nil {
		p.nodes = nil
	}
	workloads := map[Owner]bool{}
	scopes := cfg.Audit.Namespaces
	if len(scopes) == 0 {
		scopes = []string{""}
	}
	for _, ns := range scopes {
		if err := p.list(ctx, ns, workloads); err != nil {
			return nil, err
		}
	}
	r := p.report
	r.Workloads = len(workloads)
	r.Lookups = bg.lookupCount()
	for _, res := range p.results {
		r.Results = append(r.Results, *res)
	}
	slices.SortFunc(r.Results, func(x, y Result) int {
		return strings.Compare(x.Owner.Namespace+"/"+x.Owner.String(), y.Owner.Namespace+"/"+y.Owner.String())
	})
	r.Duration = a.now().Sub(r.Started)
	return r, nil
}

// list pages through the Pods of ns ("" all).
func (p *pass) list(ctx context.Context, ns string, workloads map[Owner]bool) error {
	var cont string
	for {
		var pods corev1.PodList
		opts := []client.ListOption{client.Limit(p.a.pageSize)}
		if ns != "" {
			opts = append(opts, client.InNamespace(ns))
		}
		if cont != "" {
			opts = append(opts, client.Continue(cont))
		}
		if ctx.Err() != nil {
			p.cutShort()
			return nil
		}
		if err := p.a.pods.List(ctx, &pods, opts...); err != nil {
			if ctx.Err() != nil {
				p.cutShort()
				return nil
			}
			return fmt.Errorf("listing pods: %w", err)
		}
		for i := range pods.Items {
			if ctx.Err() != nil {
				p.cutShort()
				return nil
			}
			pod := &pods.Items[i]
			// A mirror Pod pulls nothing (policy.Pulled); its owner is the
			// Node, no workload.
			if !running(pod) || policy.MirrorPod(pod, p.nodes) || p.cfg.Excluded(pod.Namespace, p.a.own) != "" {
				continue
			}
			p.report.Pods++
			o := p.owners.of(ctx, pod)
			workloads[o] = true
			p.pod(ctx, o, pod)
		}
		if cont = pods.Continue; cont == "" {
			return nil
		}
	}
}

// cutShort notes a pass whose time (one interval) ran out: what it found
// stands, the Pods it did not reach are not audited, never a finding.
func (p *pass) cutShort() {
	p.note(fmt.Sprintf("pass cut short after %d running pods: the interval ended (audit.requestsPerMinute too low for the images to look up?); the other pods were not audited", p.report.Pods))
}

// running: a Pod the kubelet may still (re)start containers of. A finished
// Pod pulls nothing again; a deleted one is going.
func running(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// pod checks one running Pod unless an identical one of the same workload
// (same images, same pull secrets) was checked already this pass.
func (p *pass) pod(ctx context.Context, o Owner, pod *corev1.Pod) {
	w, secrets := p.unseen(o, pod)
	if w == nil || len(w.Containers) == 0 {
		return
	}
	s := p.cfg.Settings(p.namespaceLabels(ctx, pod.Namespace), false)
	if s.Mode == policy.ModeOff {
		return
	}
	creds, ok := p.credentials(ctx, pod, w, secrets)
	if !ok {
		return
	}
	// The workload, not the Pod, is named: its Pods are many and fleeting.
	w.Kind, w.Name = o.Kind, o.Name
	// Enforce: a finding whose rule denies is one the kubelet would fail
	// on, whatever the namespace's mode says admission does about it.
	v := p.checker.Check(ctx, policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce,
		Pin: s.Pin, Credentials: creds, Nodes: p.nodes})
	p.record(o, v)
}

// unseen is what the kubelet would pull for pod, and its pull secrets'
// names; nil when an identical Pod of the same workload was seen this pass
// (counted with it) or pod cannot be read.
func (p *pass) unseen(o Owner, pod *corev1.Pod) (*policy.Workload, string) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, ""
	}
	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
	if err != nil || w == nil {
		return nil, ""
	}
	w.Namespace = pod.Namespace
	policy.ConfirmMirror(w, p.nodes) // as admission and check do
	w.Containers = policy.Pulled(w, &pod.Status)
	secrets := secretNames(pod)
	// The platform of the Pod's node is part of it: a DaemonSet's Pods are
	// alike but for the node, and the platform rule asks about that node.
	sig := o.Namespace + "/" + o.String() + "|" + secrets + "|" + images(w.Containers) + "|" + p.platformOf(pod.Spec.NodeName)
	if p.seen[sig] {
		if r := p.results[o]; r != nil {
			r.Pods++
		}
		return nil, ""
	}
	p.seen[sig] = true
	return w, secrets
}

// namespaceLabels are the namespace's labels, read once a pass; unreadable,
// none (the config's defaults), with a note.
func (p *pass) namespaceLabels(ctx context.Context, ns string) map[string]string {
	labels, ok := p.labels[ns]
	if !ok {
		var err error
		labels, err = p.a.cluster.NamespaceLabels(ctx, ns)
		if err != nil {
			p.note(fmt.Sprintf("namespace %s: cannot read its labels (%v); audited with the config's defaults", ns, err))
		}
		p.labels[ns] = labels
	}
	return labels
}

// credentials are pod's pull credentials, read once a pass per namespace,
// service account and pull secrets: the keychain carries the pod's
// identity, which a credential provider that takes service-account tokens
// asks with. Pods with the same credentials still share a lookup whatever
// their namespace (background's imageKey): an image they name is looked up
// once a pass, not once per namespace (the audit skips admission's cache).
// Unreadable, ok is false and a note says why.
func (p *pass) credentials(ctx context.Context, pod *corev1.Pod, w *policy.Workload, secrets string) (policy.Credentials, bool) {
	ckey := pod.Namespace + "|" + pod.Spec.ServiceAccountName + "|" + secrets
	ce, ok := p.creds[ckey]
	if !ok {
		// A running Pod holds its service account's pull secrets already:
		// the ServiceAccount admission plugin copied them at creation.
		ce.c, ce.err = policy.ReadCredentials(ctx, p.a.cluster, w, policy.Admitted)
		p.creds[ckey] = ce
	}
	if ce.err != nil {
		p.note(registry.Sanitize(ce.err.Error(), 512))
		return policy.Credentials{}, false
	}
	return ce.c, true
}

// record keeps v's notes, and its findings that would fail a pull as o's
// result; a risk (anonymous Docker Hub, a mutable tag) or an answer not
// got is a note.
func (p *pass) record(o Owner, v *policy.Verdict) {
	for _, n := range v.Notes {
		p.note(n)
	}
	for i, f := range v.Findings {
		if f.Action == policy.ActionDeny && !f.Rule.FailsPull() {
			v.Findings[i].Action = policy.ActionWarn
			p.note(registry.Sanitize(fmt.Sprintf("%s %s: [%s] %s", o.Namespace, o, f.Rule, f.Line()), 512))
		}
	}
	if v.Decision() != policy.DecisionDeny {
		return
	}
	r := p.results[o]
	if r == nil {
		r = &Result{Owner: o}
		p.results[o] = r
	}
	r.Pods++
	for _, f := range v.Findings {
		if f.Action == policy.ActionDeny && !slices.Contains(r.Findings, f) {
			r.Findings = append(r.Findings, f)
		}
	}
	if r.Message == "" {
		r.Message = v.DenialMessage()
	}
}

// platformOf is the platform of the named node ("" for none or unknown).
func (p *pass) platformOf(node string) string {
	if p.platforms == nil {
		p.platforms = make(map[string]string, len(p.nodes))
		for _, n := range p.nodes {
			p.platforms[n.Name] = n.Platform()
		}
	}
	return p.platforms[node]
}

func (p *pass) note(n string) {
	if !slices.Contains(p.report.Notes, n) && len(p.report.Notes) < 100 {
		p.report.Notes = append(p.report.Notes, n)
	}
}

func secretNames(pod *corev1.Pod) string {
	var b strings.Builder
	for _, s := range pod.Spec.ImagePullSecrets {
		b.WriteString(s.Name)
		b.WriteByte(',')
	}
	return b.String()
}

func images(cs []policy.Container) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.Image)
		b.WriteByte(',')
	}
	return b.String()
}
