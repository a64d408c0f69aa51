package webhook

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// track feeds objects through the informer event handlers, as
// TrackInformers' informers would.
func track(c *ClientCluster, objs []client.Object) {
	empty := c.state.nodeSnap.Load()
	if empty == nil {
		c.state.publish()
	}
	for _, o := range objs {
		switch o.(type) {
		case *corev1.Node:
			c.nodeEvent(o, false)
		case *corev1.Namespace:
			c.namespaceEvent(o, false)
		}
	}
	c.state.tracking.Store(true)
}

func TestInformerSnapshots(t *testing.T) {
	ctx := context.Background()
	fc := fake.NewClientBuilder().Build() // empty: answers must come from the snapshots
	c := NewClientCluster(fc, fc)
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{corev1.LabelArchStable: "amd64"}}}
	n2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{corev1.LabelArchStable: "arm64"}}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"pullsafe.io/mode": "warn"}}}
	track(c, []client.Object{n1, n2, ns})

	nodes, _ := c.Nodes(ctx)
	if len(nodes) != 2 || nodes[0].Name != "a" || nodes[1].Labels[corev1.LabelArchStable] != "arm64" {
		t.Fatalf("nodes = %+v", nodes)
	}
	c.nodeEvent(toolscache.DeletedFinalStateUnknown{Key: "a", Obj: n1}, true)
	if nodes, _ := c.Nodes(ctx); len(nodes) != 1 || nodes[0].Name != "b" {
		t.Errorf("after tombstone delete: %+v", nodes)
	}
	if l, _ := c.NamespaceLabels(ctx, "shop"); l["pullsafe.io/mode"] != "warn" {
		t.Errorf("labels = %v", l)
	}
	ns2 := ns.DeepCopy()
	ns2.Labels = map[string]string{"pullsafe.io/mode": "enforce"}
	c.namespaceEvent(ns2, false)
	if l, _ := c.NamespaceLabels(ctx, "shop"); l["pullsafe.io/mode"] != "enforce" {
		t.Errorf("label update not seen: %v", l)
	}
	// A namespace the informer has not delivered yet falls back to the cache.
	if l, err := c.NamespaceLabels(ctx, "brand-new"); err != nil || l != nil {
		t.Errorf("unknown namespace: %v %v", l, err)
	}
}
