package webhook

import (
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
)

// AuditLease is the Lease, in pullsafe's namespace, held by the replica
// that audits running workloads.
const AuditLease = "pullsafe-audit"

// setupAudit adds the audit of running workloads when the config enables
// it at start (a reload may pause it, or change its interval and budget;
// switching it on later needs a restart). Every replica keeps serving
// admissions; the one holding the Lease audits.
func (s *server) setupAudit(cluster *ClientCluster) error {
	if snap, _ := s.live.Load(); !snap.Config().Audit.Enabled {
		return nil
	}
	cs, err := kubernetes.NewForConfig(s.o.RestConfig)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	host, _ := os.Hostname()
	lock := &resourcelock.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: s.o.Namespace, Name: AuditLease},
		Client: cs.CoordinationV1(), LockConfig: resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())}}
	m, err := audit.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	current := func() *policy.Checker { snap, _ := s.live.Load(); return snap.Checker }
	// Pods are listed page by page with the uncached reader: no informer
	// holds every Pod of the cluster in memory between passes.
	a := audit.New(s.mgr.GetAPIReader(), cluster, current, s.o.Namespace)
	// core/v1 Events through client-go's correlator: a finding repeated
	// pass after pass bumps one Event's count instead of adding Events.
	//lint:ignore SA1019 the events.k8s.io recorder replacing it has no such aggregation of identical Events across passes
	recorder := s.mgr.GetEventRecorderFor("pullsafe-audit")
	return s.mgr.Add(&audit.Runner{Auditor: a, Config: func() *policy.Config { return current().Config() },
		Recorder: recorder, Metrics: m, Lock: lock, FirstDelay: 30 * time.Second})
}
