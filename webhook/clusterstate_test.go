package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// track feeds objects through the informer event handlers, as
// TrackInformers' informers would.
func track(c *ClientCluster, objs []client.Object) {
	for _, o := range objs {
		switch o.(type) {
		case *corev1.Node:
			c.nodeEvent(o, false)
		case *corev1.Namespace:
			c.namespaceEvent(o, false)
		}
	}
	synced := func() bool { return true }
	c.state.nodesSynced, c.state.namespacesSynced = synced, synced
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

// gatedInformer is a real client-go informer whose handlers stall before
// the second object until open is closed: the informer has synced (its
// store holds every node) while pullsafe's handler has seen only one, as
// happens at start-up in a large cluster.
type gatedInformer struct {
	toolscache.SharedIndexInformer
	open chan struct{}
	// stalled is closed when the handler has received the first node and
	// stalls before the second: the test's join, no polling.
	stalled chan struct{}
	seen    atomic.Int32
}

func (g *gatedInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return g.SharedIndexInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if g.seen.Add(1) == 2 {
				close(g.stalled)
				<-g.open
			}
			h.OnAdd(o, false)
		},
		UpdateFunc: h.OnUpdate,
		DeleteFunc: h.OnDelete,
	})
}

// TestNoReviewAgainstAPartialNodeList: until the node handler has received
// the informer's whole initial list, readiness fails and a review skips the
// platform rule with a note; a partial list would deny an arm64-only image
// because the arm64 node had not arrived yet.
func TestNoReviewAgainstAPartialNodeList(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	amd := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a-amd", Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}
	arm := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b-arm", Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "arm64"}}}
	cs := k8sfake.NewClientset(amd, arm, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	factory := informers.NewSharedInformerFactory(cs, 0)
	nodes := &gatedInformer{SharedIndexInformer: factory.Core().V1().Nodes().Informer(), open: make(chan struct{}), stalled: make(chan struct{})}
	namespaces := factory.Core().V1().Namespaces().Informer()
	cache := &informertest.FakeInformers{InformersByGVK: map[schema.GroupVersionKind]toolscache.SharedIndexInformer{
		corev1.SchemeGroupVersion.WithKind("Node"):      nodes,
		corev1.SchemeGroupVersion.WithKind("Namespace"): namespaces,
	}}

	b := newBed(t) // registries and handlers; its cluster is replaced below
	fc := fake.NewClientBuilder().Build()
	c := NewClientCluster(fc, fc)
	if err := c.TrackInformers(ctx, metadataInformers{cache}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	defer close(nodes.open)
	if !toolscache.WaitForCacheSync(ctx.Done(), nodes.HasSynced, namespaces.HasSynced) {
		t.Fatal("informers never synced")
	}
	<-nodes.stalled // the first node is in, the second stalled
	validate := NewHandler(b.checker, c, false, "pullsafe-system", nil)
	p := pod("team-a", b.open.Host+"/arm/app:v1")
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	review := func() admission.Response {
		return validate.Handle(ctx, request(t, admissionv1.Create, p, nil, ""))
	}

	var draining atomic.Bool
	ready := readiness(&draining, func(*http.Request) error { return nil }, c)
	probe := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	if err := ready(probe); err == nil {
		t.Error("ready while the node handler has seen 1 of 2 nodes")
	}
	if got, err := c.Nodes(ctx); err == nil || got != nil {
		t.Errorf("nodes while loading = %+v, %v; want none and an error", got, err)
	}
	resp := review()
	if !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, "\n"), "platform not checked") {
		t.Errorf("review during start-up: allowed %v, warnings %q; want allowed with \"platform not checked\"", resp.Allowed, resp.Warnings)
	}

	nodes.open <- struct{}{}
	for i := 0; c.Synced() != nil; i++ {
		if i == 2000 {
			t.Fatalf("never synced: %v", c.Synced())
		}
		time.Sleep(5 * time.Millisecond) // the handler's goroutine takes the second node
	}
	if got, _ := c.Nodes(ctx); len(got) != 2 {
		t.Errorf("nodes once synced = %+v", got)
	}
	if err := ready(probe); err != nil {
		t.Errorf("not ready once synced: %v", err)
	}
	draining.Store(true)
	if err := ready(probe); err == nil {
		t.Error("ready while draining")
	}
	if resp := review(); !resp.Allowed || strings.Contains(strings.Join(resp.Warnings, "\n"), "platform not checked") {
		t.Errorf("review once synced: allowed %v, warnings %q; want allowed (an arm64 node exists) and checked", resp.Allowed, resp.Warnings)
	}
}
