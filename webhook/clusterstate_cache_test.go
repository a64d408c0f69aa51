package webhook

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/metadata/metadatainformer"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pullsafe/pullsafe/policy"
)

// fatNode is a Node as kubelets report it: every image on the node in
// status.images, conditions, volumes, managed fields. About 50 KB of JSON.
func fatNode(i int) *corev1.Node {
	n := &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%04d", i), UID: "uid", ResourceVersion: "7",
			Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64", corev1.LabelHostname: fmt.Sprintf("node-%04d", i),
				corev1.LabelTopologyZone: "eu-west-1a", corev1.LabelInstanceTypeStable: "m6i.2xlarge", "node.kubernetes.io/pool": "general"},
			Annotations: map[string]string{"csi.volume.kubernetes.io/nodeid": `{"ebs.csi.aws.com":"i-0123456789abcdef0"}`, "node.alpha.kubernetes.io/ttl": "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
		Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24", ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0"},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7910m"), corev1.ResourceMemory: resource.MustParse("30Gi")},
			NodeInfo: corev1.NodeSystemInfo{MachineID: strings.Repeat("a", 32), SystemUUID: strings.Repeat("b", 36), BootID: strings.Repeat("c", 36),
				KernelVersion: "6.1.0", OSImage: "Bottlerocket OS 1.20.0", ContainerRuntimeVersion: "containerd://1.7.20", KubeletVersion: "v1.36.3",
				OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
	for c := range 6 {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeConditionType(fmt.Sprintf("Condition%d", c)),
			Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()})
	}
	for v := range 20 {
		name := corev1.UniqueVolumeName(fmt.Sprintf("kubernetes.io/csi/ebs.csi.aws.com^vol-%017d", v))
		n.Status.VolumesInUse = append(n.Status.VolumesInUse, name)
		n.Status.VolumesAttached = append(n.Status.VolumesAttached, corev1.AttachedVolume{Name: name, DevicePath: "/dev/xvdba"})
	}
	for img := range 170 {
		repo := fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team-%d/service-%d", img%7, img)
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{SizeBytes: 123456789,
			Names: []string{repo + "@sha256:" + fmt.Sprintf("%064x", img), repo + ":v1." + fmt.Sprint(img)}})
	}
	return n
}

func TestFatNodeIsRealistic(t *testing.T) {
	data, _ := json.Marshal(fatNode(1))
	if len(data) < 40<<10 || len(data) > 70<<10 {
		t.Errorf("fat node is %d bytes of JSON, want about 50 KB", len(data))
	}
}

// TestCacheKeepsOnlyWhatIsRead: the Node informer stores only what
// policy.NodeOf reads, and the Namespace informer is a metadata-only
// watch that keeps the labels.
func TestCacheKeepsOnlyWhatIsRead(t *testing.T) {
	opts := CacheOptions()
	var slimNode, slimNamespace toolscache.TransformFunc
	for obj, by := range opts.ByObject {
		switch o := obj.(type) {
		case *corev1.Node:
			slimNode = by.Transform
		case *metav1.PartialObjectMetadata:
			if o.GroupVersionKind() == corev1.SchemeGroupVersion.WithKind("Namespace") {
				slimNamespace = by.Transform
			}
		}
	}
	if slimNode == nil || slimNamespace == nil {
		t.Fatalf("cache options without a Node transform or a metadata-only Namespace entry: %+v", opts.ByObject)
	}
	fat := fatNode(1)
	got, err := slimNode(fat.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{TypeMeta: fat.TypeMeta, ObjectMeta: metav1.ObjectMeta{Name: fat.Name, UID: fat.UID, ResourceVersion: fat.ResourceVersion, Labels: fat.Labels},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://1.7.20"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(policy.NodeOf(fat), policy.NodeOf(got.(*corev1.Node)), cmp.AllowUnexported(policy.Node{})); diff != "" {
		t.Errorf("policy sees another node (-fat +slim):\n%s", diff)
	}
	ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"pullsafe.io/mode": "enforce"},
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	gotNS, err := slimNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	if m := gotNS.(*metav1.PartialObjectMetadata); m.Name != "shop" || m.Labels["pullsafe.io/mode"] != "enforce" || m.Annotations != nil || m.ManagedFields != nil {
		t.Errorf("stored namespace = %+v", m)
	}
	// Tombstones pass through untouched.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "x"}
	if o, _ := slimNode(tomb); o != tomb {
		t.Errorf("tombstone transformed to %v", o)
	}
}

// recordingInformers records which objects informers are asked for.
type recordingInformers struct {
	*informertest.FakeInformers
	asked []string
}

func (r *recordingInformers) GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	r.asked = append(r.asked, fmt.Sprintf("%T", obj))
	return metadataInformers{r.FakeInformers}.GetInformer(ctx, obj, opts...)
}

// metadataInformers serves metadata-only informer requests by their GVK,
// which informertest.FakeInformers cannot (its scheme has no
// PartialObjectMetadata).
type metadataInformers struct{ *informertest.FakeInformers }

func (m metadataInformers) GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	if p, ok := obj.(*metav1.PartialObjectMetadata); ok {
		return m.InformersByGVK[p.GroupVersionKind()], nil
	}
	return m.FakeInformers.GetInformer(ctx, obj, opts...)
}

// TestNamespacesAreWatchedMetadataOnly: TrackInformers asks the cache for
// a metadata-only Namespace informer, and namespace labels read through
// the cache (a namespace the informer has not delivered yet) use the same
// one, never a second, full informer.
func TestNamespacesAreWatchedMetadataOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"pullsafe.io/mode": "enforce"}}}
	factory := informers.NewSharedInformerFactory(k8sfake.NewClientset(fatNode(1)), 0)
	nsMeta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: ns.ObjectMeta}
	sch := metadatafake.NewTestScheme()
	sch.AddKnownTypeWithName(corev1.SchemeGroupVersion.WithKind("Namespace"), &metav1.PartialObjectMetadata{})
	sch.AddKnownTypeWithName(corev1.SchemeGroupVersion.WithKind("NamespaceList"), &metav1.PartialObjectMetadataList{})
	metaFactory := metadatainformer.NewSharedInformerFactory(metadatafake.NewSimpleMetadataClient(sch, nsMeta), 0)
	rec := &recordingInformers{FakeInformers: &informertest.FakeInformers{InformersByGVK: map[schema.GroupVersionKind]toolscache.SharedIndexInformer{
		corev1.SchemeGroupVersion.WithKind("Node"):      factory.Core().V1().Nodes().Informer(),
		corev1.SchemeGroupVersion.WithKind("Namespace"): metaFactory.ForResource(corev1.SchemeGroupVersion.WithResource("namespaces")).Informer(),
	}}}
	var asked []string
	fc := fake.NewClientBuilder().WithObjects(ns.DeepCopy()).WithInterceptorFuncs(interceptGet(&asked)).Build()
	c := NewClientCluster(fc, fc)
	if err := c.TrackInformers(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"*v1.Node", "*v1.PartialObjectMetadata"}, rec.asked); diff != "" {
		t.Errorf("informers asked for (-want +got):\n%s", diff)
	}
	factory.Start(ctx.Done())
	metaFactory.Start(ctx.Done())
	for i := 0; c.Synced() != nil; i++ {
		if i == 2000 {
			t.Fatalf("informers never synced: %v", c.Synced())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l, err := c.NamespaceLabels(ctx, "shop"); err != nil || l["pullsafe.io/mode"] != "enforce" {
		t.Errorf("labels from the informer = %v, %v", l, err)
	}
	if l, err := c.NamespaceLabels(ctx, "not-delivered-yet"); err != nil || l != nil {
		t.Errorf("unknown namespace = %v, %v", l, err)
	}
	if diff := cmp.Diff([]string{"*v1.PartialObjectMetadata"}, asked); diff != "" {
		t.Errorf("cached reads of a namespace (-want +got):\n%s", diff)
	}
}

// BenchmarkNodeInformerMemory holds N fat nodes in a client-go informer,
// as the cache does, with and without CacheOptions' Node transform, and
// reports the live heap per node (decoded from JSON, as from an API
// server). Run: go test -run XXX -bench NodeInformerMemory -benchtime 3x ./webhook
func BenchmarkNodeInformerMemory(b *testing.B) {
	const nodes = 500
	var slim toolscache.TransformFunc
	for obj, by := range CacheOptions().ByObject {
		if _, ok := obj.(*corev1.Node); ok {
			slim = by.Transform
		}
	}
	for _, tt := range []struct {
		name      string
		transform toolscache.TransformFunc
	}{{"full", nil}, {"transformed", slim}} {
		b.Run(tt.name, func(b *testing.B) {
			var perNode float64
			for b.Loop() {
				objs := make([]k8sruntime.Object, 0, nodes)
				for i := range nodes {
					objs = append(objs, fatNode(i))
				}
				cs := k8sfake.NewClientset(objs...)
				objs = nil
				before := liveHeap()
				inf := toolscache.NewSharedIndexInformer(fromTheWire(cs), &corev1.Node{}, 0, toolscache.Indexers{})
				if tt.transform != nil {
					if err := inf.SetTransform(tt.transform); err != nil {
						b.Fatal(err)
					}
				}
				stop := make(chan struct{})
				go inf.Run(stop)
				toolscache.WaitForCacheSync(stop, inf.HasSynced)
				perNode = float64(settledHeap()-before) / nodes
				if len(inf.GetStore().List()) != nodes {
					b.Fatal("not every node stored")
				}
				close(stop)
				runtime.KeepAlive(cs)
			}
			b.ReportMetric(perNode, "heapB/node")
		})
	}
}

// fromTheWire lists nodes as a real API server's do: decoded from JSON,
// so no string is shared with the fake clientset's own copy.
func fromTheWire(cs *k8sfake.Clientset) *toolscache.ListWatch {
	return &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (k8sruntime.Object, error) {
			list, err := cs.CoreV1().Nodes().List(ctx, opts)
			if err != nil {
				return nil, err
			}
			data, err := json.Marshal(list)
			if err != nil {
				return nil, err
			}
			var decoded corev1.NodeList
			return &decoded, json.Unmarshal(data, &decoded)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
				return nil, errors.New("no watch-list: LIST then WATCH") // the reflector falls back to LIST
			}
			return watch.NewRaceFreeFake(), nil // nodes do not change here
		},
	}
}

// interceptGet records the type of every object read with Get.
func interceptGet(asked *[]string) interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		*asked = append(*asked, fmt.Sprintf("%T", obj))
		return c.Get(ctx, key, obj, opts...)
	}}
}

// settledHeap is the live heap once the reflector has let go of its LIST
// response (it holds it for a moment after the informer has synced).
func settledHeap() int64 {
	h := liveHeap()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		next := liveHeap()
		if next > h-h/100 {
			return min(h, next)
		}
		h = next
	}
	return h
}

func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
