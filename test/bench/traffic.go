package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// newRepository compares a lookup in a repository never seen, on a registry
// already seen (its ping is reused: only the HEAD), with the registry's own
// HEAD round trip.
func (s *scene) newRepository(ctx context.Context) ([]row, error) {
	const n = 40
	for i := range n + 1 {
		if _, err := s.b.Push(s.b.Open, fmt.Sprintf("newrepo/r%d", i), "v1", bed.Linux("amd64")); err != nil {
			return nil, err
		}
	}
	host := s.b.Open.Addr
	raw, err := headRoundTrips(ctx, host, n, func(i int) string { return fmt.Sprintf("newrepo/r%d/manifests/v1", i) })
	if err != nil {
		return nil, err
	}
	rt := percentile(raw, .5)
	r, err := registry.NewResolver(registry.WithAllowLoopback(true))
	if err != nil {
		return nil, err
	}
	if _, err := r.Resolve(ctx, host+"/newrepo/r"+fmt.Sprint(n)+":v1", nil); err != nil { // the registry is now seen
		return nil, err
	}
	var took []time.Duration
	for i := range n {
		t := time.Now()
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/newrepo/r%d:v1", host, i), nil); err != nil {
			return nil, err
		}
		took = append(took, time.Since(t))
	}
	p50 := percentile(took, .5)
	return []row{{"new repository on a registry already seen (ping reused), p50",
		fmt.Sprintf("%s = %.1f× the round trip", dur(p50), ratio(p50, rt)), "token (bearer only) + HEAD; before (5e397f4): ping + HEAD, 3.8×"}}, nil
}

// rolloutThroughAPIServer creates 100 Pods of a new image through
// kube-apiserver (both webhooks: the mutating one pins, the validating one
// checks the pinned digest) and counts what reached the registry.
func (s *scene) rolloutThroughAPIServer(ctx context.Context) ([]row, error) {
	if _, err := s.b.Push(s.b.Open, "rollout/app", "v1", bed.Linux("amd64"), bed.Linux("arm64")); err != nil {
		return nil, err
	}
	proxy, err := registrytest.NewCountingProxy(s.b.Open.Addr)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	image := proxy.Addr + "/rollout/app:v1"
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := s.b.Client.CoreV1().Pods("bench").Create(ctx, benchPod(fmt.Sprintf("rollout-%d", i), image), metav1.CreateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	c := proxy.Counts()
	return []row{{"rollout via kube-apiserver: HEADs for 100 Pods of a new image (both webhooks)",
		fmt.Sprintf("%d HEAD, %d manifest GET, %d ping", c["HEAD manifests"], c["GET manifests"], c["GET ping"]), "1 HEAD per (image, credential); before (5e397f4): 2"}}, nil
}

func benchPod(name, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways}}}}
}

// outage creates 20 Pods in a row through kube-apiserver, each naming a new
// tag on a registry that accepts connections and never answers.
func (s *scene) outage(ctx context.Context) ([]row, error) {
	bh, err := registrytest.NewBlackhole()
	if err != nil {
		return nil, err
	}
	defer bh.Close()
	var took []time.Duration
	for i := range 20 {
		t := time.Now()
		if _, err := s.b.Client.CoreV1().Pods("bench").Create(ctx, benchPod(fmt.Sprintf("outage-%d", i),
			fmt.Sprintf("%s/team/app:v%d", bh.Addr, i)), metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		took = append(took, time.Since(t))
	}
	var total time.Duration
	for _, d := range took {
		total += d
	}
	rest := append([]time.Duration(nil), took[1:]...)
	return []row{
		{"registry outage (blackhole), first create via kube-apiserver", dur(took[0]),
			"≤ 1 lookupTimeout (3s in the bed) for both webhooks; before (5e397f4): 6.01s"},
		{"registry outage, next 19 creates", fmt.Sprintf("p50 %s, max %s", dur(percentile(rest, .5)), dur(percentile(rest, 1))),
			"answered from memory, ≤ 50 ms; before: p50 6.01s"},
		{"registry outage, 20 creates in a row", fmt.Sprintf("%s, %d connections to the dead registry", dur(total), bh.Connections()),
			"one lookup per outage window; before: 2m0s, 80 connections"},
	}, nil
}

// only parses -only: the sections to run (all when empty).
func only(list string) func(string) bool {
	if list == "" {
		return func(string) bool { return true }
	}
	set := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		set[strings.TrimSpace(s)] = true
	}
	return func(s string) bool { return set[s] }
}

// parseLevels reads -levels: "1,10,50".
func parseLevels(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-levels: %q is not a number of reviews in flight", f)
		}
		out = append(out, n)
	}
	return out, nil
}
