package bed

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// RunningDeployment creates a Deployment of image with n replicas and waits
// until the bed's controllers have made its ReplicaSet and n Pods, each
// through the webhooks registered. No kubelet runs: the Pods stay Pending,
// which the audit counts as running (not finished).
func (b *Bed) RunningDeployment(ctx context.Context, ns, name, image string, n int) error {
	podLabels := map[string]string{"app": name}
	_, err := b.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(n)), Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	return b.WaitPods(ctx, ns, labels.SelectorFromSet(podLabels).String(), n, time.Minute)
}

// WaitPods waits up to timeout for exactly n Pods matching selector in ns,
// none being deleted.
func (b *Bed) WaitPods(ctx context.Context, ns, selector string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	got := -1
	for {
		list, err := b.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		got = 0
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				got++
			}
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pods %s in %s after %s, want %d (are the controllers running? see the bed's kube-controller-manager log)", got, selector, ns, timeout, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
