package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// process's CPU time, with a cold cache and then a warm one.
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
		if err := s.auditWorkload(ctx, ns, fmt.Sprintf("app%d", w), proxy.Addr+fmt.Sprintf("/audit/app%d:v1", w%images), perWorkload); err != nil {
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
	for _, pass := range []string{"cold cache", "warm cache"} {
		before, cpu0, t0 := proxyTotal(proxy), cpuTime(), time.Now()
		rep, err := a.Pass(ctx)
		if err != nil {
			return nil, err
		}
		cpu, wall, reqs := cpuTime()-cpu0, time.Since(t0), proxyTotal(proxy)-before
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

// auditWorkload creates a Deployment, its ReplicaSet and n Pods linked by
// controller ownerReferences (no controller-manager runs in the bed).
func (s *scene) auditWorkload(ctx context.Context, ns, name, image string, n int) error {
	labels := map[string]string{"app": name}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	d, err := s.b.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	rs, err := s.b.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	return parallel(n, 10, func(i int) error {
		_, err := s.b.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", rs.Name, i), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
			Spec: tmpl.Spec}, metav1.CreateOptions{})
		return err
	})
}

func proxyTotal(p *registrytest.CountingProxy) int {
	n := 0
	for _, c := range p.Counts() {
		n += c
	}
	return n
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
