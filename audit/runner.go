package audit

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// Event reason and size: core/v1 Events are shown whole by kubectl
// describe; the message is admission's denial message, cut to fit.
const (
	EventReason     = "ImageWouldFailToPull"
	maxEventMessage = 1024
)

// Runner runs audit passes in `pullsafe serve` on the one replica that
// holds Lock. It elects itself rather than through the manager's leader
// election: with that, every runnable not saying otherwise (certificate
// rotation, config reload, webhook configuration upkeep) would run on the
// leader only, and a lost lease would stop the whole process, webhook
// included. Here a lost lease only stops the audit, which campaigns again.
type Runner struct {
	Auditor *Auditor
	// Config is the current config (it is reloaded): audit.enabled false
	// pauses the passes, audit.interval spaces them.
	Config   func() *policy.Config
	Recorder record.EventRecorder
	Metrics  *Metrics
	// Lock is the Lease; nil runs passes without election (one replica).
	Lock resourcelock.Interface
	// FirstDelay is how long a new leader waits before its first pass (the
	// node informer syncs meanwhile).
	FirstDelay time.Duration
}

// NeedLeaderElection is false: the Runner elects itself (see Runner).
func (r *Runner) NeedLeaderElection() bool { return false }

// Start runs until ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	if r.Lock == nil {
		r.loop(ctx)
		return nil
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: r.Lock, Name: "pullsafe-audit", ReleaseOnCancel: true,
			LeaseDuration: 60 * time.Second, RenewDeadline: 40 * time.Second, RetryPeriod: 10 * time.Second,
			Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: r.loop, OnStoppedLeading: func() {}},
		})
		if err != nil {
			return err
		}
		le.Run(ctx) // returns when the lease is lost: campaign again
	}
	return nil
}

// loop runs a pass every interval while ctx lasts.
func (r *Runner) loop(ctx context.Context) {
	logger := log.FromContext(ctx).WithName("audit")
	wait := r.FirstDelay
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cfg := r.Config()
		wait = cfg.Audit.Interval.Duration
		if !cfg.Audit.Enabled {
			continue
		}
		// A pass never runs into the next: what it has not looked up by
		// then is "cannot verify" (a note), never a finding.
		pctx, cancel := context.WithTimeout(ctx, wait)
		rep, err := r.Auditor.Pass(pctx)
		cancel()
		if ctx.Err() != nil {
			return // the lease is lost or serve stops: the next leader reports
		}
		r.Metrics.record(rep, err, time.Now())
		if err != nil {
			logger.Error(err, "audit pass failed")
			continue
		}
		r.Publish(rep)
		logger.Info("audit pass done", "pods", rep.Pods, "workloads", rep.Workloads, "failing", len(rep.Results), "lookups", rep.Lookups, "duration", rep.Duration)
	}
}

// Publish records a Warning Event on each failing workload. The recorder
// (client-go's) counts an identical event again instead of adding one, so
// a finding that stays costs one Event whose count grows each pass.
func (r *Runner) Publish(rep *Report) {
	if r.Recorder == nil {
		return
	}
	for _, res := range rep.Results {
		r.Recorder.Event(res.Owner.object(), corev1.EventTypeWarning, EventReason, registry.Sanitize(res.Message, maxEventMessage))
	}
}
