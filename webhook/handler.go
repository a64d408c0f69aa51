// Package webhook translates between AdmissionReviews and pullsafe's policy:
// which pod specs an object holds, in which namespace, with which
// credentials and nodes; and back into responses, warnings and JSON patches.
package webhook

import (
	"context"
	"fmt"
	"k8s.io/utils/ptr"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// Handler reviews admissions. The same type serves the validating webhook
// (decisions, warnings) and the mutating one (digest pins only).
type Handler struct {
	live     *LiveConfig // read once per review
	cluster  Cluster
	mutating bool
	metrics  *Metrics
}

// NewHandler returns a validating (mutating=false) or mutating handler with
// a fixed config. ownNamespace is never intercepted, nor are kube-system,
// kube-node-lease and the config's namespaces.exclude.
func NewHandler(checker *policy.Checker, cluster Cluster, mutating bool, ownNamespace string, m *Metrics) *Handler {
	return NewLiveHandler(NewLiveConfig(NewSnapshot(checker, ownNamespace)), cluster, mutating, m)
}

// NewLiveHandler returns a handler that reviews each request with live's
// snapshot at the request's start, so a reload applies from the next review.
func NewLiveHandler(live *LiveConfig, cluster Cluster, mutating bool, m *Metrics) *Handler {
	return &Handler{live: live, cluster: cluster, mutating: mutating, metrics: m}
}

var _ admission.Handler = (*Handler)(nil)

// Handle never returns an error response: controller-runtime's Errored is a
// denial that failurePolicy: Ignore does not turn into an admission, so any
// internal failure, a panic included, is an explicit allow with a warning.
func (h *Handler) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer h.metrics.observe(h.mutating, req.Kind.Kind, time.Now())
	defer func() {
		if p := recover(); p != nil {
			logr.FromContextOrDiscard(ctx).Error(fmt.Errorf("%v", p), "panic in admission handler", "uid", req.UID)
			resp = failOpen(fmt.Sprintf("internal error (%v)", p))
			h.metrics.review(h.mutating, req.Kind.Kind, policy.DecisionWarn)
		}
	}()
	resp, decision := h.handle(ctx, req)
	h.metrics.review(h.mutating, req.Kind.Kind, decision)
	// Debug level: a busy cluster reviews thousands of objects a minute.
	// The logger in ctx (Reviews) already carries the path and UID. Checked
	// first: the key/values are built (boxed) even for a disabled level.
	if log := logr.FromContextOrDiscard(ctx).V(1); log.Enabled() {
		log.Info("reviewed", "mutating", h.mutating, "kind", req.Kind.Kind,
			"namespace", req.Namespace, "name", req.Name, "operation", req.Operation, "decision", decision,
			"findings", resp.AuditAnnotations["findings"], "pinned", resp.AuditAnnotations["pinned"], "dryRun", ptr.Deref(req.DryRun, false))
	}
	return resp
}

// failOpen allows with a warning. why may quote an error built from a
// user's object or a panic, so it is sanitized as every other warning is
// (512 bytes, as one finding's line).
func failOpen(why string) admission.Response {
	return admission.Allowed("").WithWarnings(registry.Sanitize("pullsafe: "+why+"; allowed unchecked", 512))
}

func (h *Handler) handle(ctx context.Context, req admission.Request) (admission.Response, policy.Decision) {
	snap, reloadWarning := h.live.Load()
	if snap.excluded(req.Namespace) {
		return admission.Allowed(""), policy.DecisionAllow
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed(""), policy.DecisionAllow
	}
	kind := req.Kind.Kind
	if req.SubResource != "" && !(kind == "Pod" && req.SubResource == "ephemeralcontainers") {
		return admission.Allowed(""), policy.DecisionAllow // e.g. pods/status, deployments/scale
	}
	gk, custom := schema.GroupKind{Group: req.Kind.Group, Kind: kind}, snap.Config().Workloads
	w, err := policy.ExtractWorkload(gk, req.Object.Raw, custom...)
	if err != nil {
		return failOpen(fmt.Sprintf("cannot decode the %s: %v", kind, err)), policy.DecisionWarn
	}
	// A template its controller wrote is never pinned (policy.Workload.
	// WrittenByController): the mutating webhook has nothing to do there.
	if w == nil || h.mutating && w.WrittenByController() {
		return admission.Allowed(""), policy.DecisionAllow
	}
	w.Namespace = req.Namespace // always the request's: secrets never cross namespaces
	if w.Mirror {
		if nodes, err := h.cluster.Nodes(ctx); err == nil {
			policy.ConfirmMirror(w, nodes)
		}
	}
	containers, err := h.toLookUp(req, gk, w, custom)
	if err != nil {
		return failOpen(err.Error()), policy.DecisionWarn
	}
	if len(containers) == 0 {
		return admission.Allowed(""), policy.DecisionAllow
	}
	in, warn, err := h.input(ctx, snap.Config(), w, containers)
	if err != nil {
		return failOpen(err.Error()), policy.DecisionWarn
	}
	v := snap.Checker.Check(ctx, in)
	if h.mutating {
		return h.pinResponse(v), policy.DecisionAllow
	}
	h.metrics.recordFindings(kind, v.Findings)
	resp := validateResponse(v, warn)
	if reloadWarning != "" {
		resp.Warnings = append(resp.Warnings, reloadWarning)
	}
	return resp, v.Decision()
}

// toLookUp is what the kubelet would pull because of this request
// (policy.Pulled: nothing for a mirror Pod). On UPDATE, the mutating webhook
// pins only images that changed; the validating one also re-checks every
// image whose pull context changed (policy.Recheck).
func (h *Handler) toLookUp(req admission.Request, gk schema.GroupKind, w *policy.Workload, custom []policy.WorkloadKind) ([]policy.Container, error) {
	w.Containers = policy.Pulled(w, nil)
	if req.Operation != admissionv1.Update {
		return w.Containers, nil
	}
	old, err := policy.ExtractWorkload(gk, req.OldObject.Raw, custom...)
	if err != nil {
		return nil, fmt.Errorf("cannot decode the old %s: %v", gk.Kind, err)
	}
	if h.mutating {
		return policy.ChangedImages(w, old), nil
	}
	return policy.Recheck(w, old), nil
}

// input gathers what the policy needs: namespace settings, credentials, nodes.
func (h *Handler) input(ctx context.Context, cfg *policy.Config, w *policy.Workload, containers []policy.Container) (policy.Input, []string, error) {
	labels, err := h.cluster.NamespaceLabels(ctx, w.Namespace)
	if err != nil {
		return policy.Input{}, nil, fmt.Errorf("cannot read namespace %q: %w", w.Namespace, err)
	}
	s := cfg.Settings(labels, w.Template)
	in := policy.Input{Workload: w, Containers: containers, Mode: s.Mode, Pin: s.Pin}
	if s.Mode == policy.ModeOff {
		return in, s.Problems, nil
	}
	// The API server's ServiceAccount plugin has already copied a Pod's
	// service account pull secrets in: policy.Admitted.
	if in.Credentials, err = policy.ReadCredentials(ctx, h.cluster, w, policy.Admitted); err != nil {
		return policy.Input{}, nil, err
	}
	if in.Nodes, err = h.cluster.Nodes(ctx); err != nil {
		in.Nodes = nil // platform rule skipped with a note; not worth failing open over
	}
	return in, s.Problems, nil
}

func validateResponse(v *policy.Verdict, problems []string) admission.Response {
	warnings := v.Warnings()
	for _, p := range problems {
		warnings = append(warnings, "pullsafe: "+p)
	}
	var resp admission.Response
	if v.Decision() == policy.DecisionDeny {
		resp = admission.Denied(v.DenialMessage())
		resp.Result.Code = http.StatusForbidden
	} else {
		resp = admission.Allowed("")
	}
	resp.AuditAnnotations = v.Annotations()
	if len(warnings) > 0 {
		// WithWarnings would copy them into a new slice: they are this
		// response's own already.
		resp.Warnings = warnings
	}
	return resp
}
