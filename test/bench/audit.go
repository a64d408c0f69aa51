package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
	"github.com/pullsafe/pullsafe/webhook"
)

// auditCost measures one audit pass over 1,000 running Pods (50
// Deployments of 20 Pods, 20 distinct multi-arch images) created through
// the real API server: registry requests (counting proxy) and this
// process's CPU time, twice: the second pass asks the registries again
// (the audit does not trust admission's cached answers), but finds the
// platforms of each digest cached.
func (s *scene) auditCost(ctx context.Context) ([]row, error) {
	const ns, workloads, perWorkload, images = "bench-audit", 50, 20, 20
	proxy, err := registrytest.NewCountingProxy(s.b.Open.Addr)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	for i := range images {
		if _, err := s.b.Push(s.b.Open, fmt.Sprintf("audit/app%d", i), "v1", bed.Linux("amd64"), bed.Linux("arm64")); err != nil {
			return nil, err
		}
	}
	if err := s.b.Namespace(ctx, ns, nil); err != nil {
		return nil, err
	}
	for w := range workloads {
		if err := s.b.RunningDeployment(ctx, ns, fmt.Sprintf("app%d", w), proxy.Addr+fmt.Sprintf("/audit/app%d:v1", w%images), perWorkload); err != nil {
			return nil, err
		}
	}
	cfg := policy.DefaultConfig()
	cfg.Registries.AllowLoopback = ptr.To(true)
	cfg.Audit.RequestsPerMinute = policy.MaxAuditRequestsRate
	cfg.Audit.Namespaces = []string{ns}
	res, err := webhook.NewResolver(cfg, nil)
	if err != nil {
		return nil, err
	}
	checker := policy.NewChecker(cfg, res)
	c, err := client.New(s.b.RestConfig(), client.Options{})
	if err != nil {
		return nil, err
	}
	a := audit.New(c, webhook.NewClientCluster(c, c), func() *policy.Checker { return checker }, "pullsafe-system")
	var rows []row
	for _, pass := range []string{"first pass", "second pass"} {
		before, cpu0, t0 := proxy.Total(), cpuTime(), time.Now()
		rep, err := a.Pass(ctx)
		if err != nil {
			return nil, err
		}
		cpu, wall, reqs := cpuTime()-cpu0, time.Since(t0), proxy.Total()-before
		if rep.Pods != workloads*perWorkload || rep.Failing() {
			return nil, fmt.Errorf("audit pass: %d pods, %d failing workloads", rep.Pods, len(rep.Results))
		}
		rows = append(rows,
			row{fmt.Sprintf("audit pass, 1,000 running Pods (50 Deployments, 20 images), %s: registry requests", pass),
				fmt.Sprintf("%d (%d lookups)", reqs, rep.Lookups), "≤ 1 HEAD (+1 index GET, platform rule) per distinct image"},
			row{fmt.Sprintf("audit pass, 1,000 running Pods, %s: CPU time / wall time", pass),
				fmt.Sprintf("%s / %s", dur(cpu), dur(wall)), "budget 600 req/min/registry"})
	}
	return rows, nil
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
