package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/pullsafe/pullsafe/policy"
)

// How often the webhook configurations are checked without a reload
// (someone may have applied older manifests over them), and again after a
// failure (say, they are not created yet).
const (
	webhookResync = 10 * time.Minute
	webhookRetry  = 10 * time.Second
)

// registration is what the server registers for cfg.
func (s *server) registration(cfg *policy.Config) Registration {
	r := RegistrationFor(cfg, s.o.ConfigName, s.o.Namespace)
	r.URL, r.CABundle = s.o.WebhookURL, s.caBundle
	return r
}

// keepWebhookConfigurations keeps the rules and namespaceSelector of both
// webhook configurations in line with the live config: at start, after
// every applied reload, and every webhookResync. Out of cluster it first
// registers them, once the server serves TLS.
func (s *server) keepWebhookConfigurations(ctx context.Context) error {
	log := ctrl.Log.WithName("webhookconfigurations")
	var unserved []string
	if s.o.WebhookURL != "" {
		if err := s.registerWhenReady(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
	for {
		next := webhookResync
		snap, _ := s.live.Load()
		reg := s.registration(snap.Config())
		changed, err := reg.Reconcile(ctx, s.direct)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error(err, "cannot bring the webhook configurations in line with the config; retrying", "retry", webhookRetry)
			next = webhookRetry
		case changed:
			log.Info("webhook configurations follow the config", "name", reg.Name, "pinTemplates", reg.PinTemplates, "exclude", reg.Exclude)
		}
		// Repeated with the resync: a CRD installed after pullsafe is
		// found then; the same problems are not logged again.
		if problems := UnservedWorkloads(s.mgr.GetRESTMapper(), snap.Config().Workloads); !slices.Equal(problems, unserved) {
			for _, p := range problems {
				log.Error(errors.New(p), "config workloads: objects of this kind are not checked")
			}
			unserved = problems
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.live.Changed():
		case <-time.After(next):
		}
	}
}

// registerWhenReady registers the configurations once the server serves TLS:
// registered earlier, the API server would call a closed port.
func (s *server) registerWhenReady(ctx context.Context) error {
	started := s.mgr.GetWebhookServer().StartedChecker()
	probe, _ := http.NewRequest(http.MethodGet, "/", nil)
	for started(probe) != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	snap, _ := s.live.Load()
	reg := s.registration(snap.Config())
	if err := reg.Apply(ctx, s.direct); err != nil {
		return err
	}
	ctrl.Log.WithName("register").Info("registered webhook configurations", "name", reg.Name, "url", reg.URL)
	return nil
}
