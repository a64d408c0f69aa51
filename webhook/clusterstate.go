package webhook

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/policy"
)

// state is what informers tell about nodes and namespaces, kept as
// immutable snapshots: a review reads them without listing or deep-copying
// objects, so its cost does not grow with the number of nodes.
type state struct {
	mu    sync.Mutex
	nodes map[string]policy.Node
	// nodeSnap is the sorted node list, nil after a change that matters
	// (dirty): the next read rebuilds it. A 5,000-node cluster's initial
	// list then costs one build, not one per node, and heartbeats, which
	// change nothing pullsafe reads, none.
	nodeSnap atomic.Pointer[[]policy.Node]
	// rebuilds counts node snapshot builds.
	rebuilds   int
	namespaces sync.Map // name -> map[string]string (labels, read-only)
	tracking   atomic.Bool
	// nodesSynced and namespacesSynced are the event-handler registrations'
	// HasSynced: true once every object of the informer's initial list has
	// reached our handler. The informer's own HasSynced turns true earlier,
	// while the handler may still be filling the snapshot: a review reading
	// a half-filled node list would deny an image some missing node can run.
	nodesSynced, namespacesSynced func() bool
}

// errNodesLoading: the node snapshot is not complete yet (pullsafe is
// starting); the platform rule is then not checked, never guessed.
var errNodesLoading = errors.New("node list still loading")

// setNode records n unless it changes nothing pullsafe reads of a node
// (policy.NodeOf: name, labels, runtime version, UID, Windows build); most node updates are
// status heartbeats, which slimNode has already reduced to an equal node.
func (s *state) setNode(n *corev1.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.nodes[n.Name]; ok && old.Runtime == n.Status.NodeInfo.ContainerRuntimeVersion && old.UID == string(n.UID) &&
		maps.Equal(old.Labels, n.Labels) && old.WindowsBuild == policy.WindowsBuildOf(n) {
		return
	}
	if s.nodes == nil {
		s.nodes = map[string]policy.Node{}
	}
	// Informer objects are shared and never mutated: keeping the labels map is safe.
	s.nodes[n.Name] = policy.NodeOf(n)
	s.nodeSnap.Store(nil)
}

func (s *state) deleteNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[name]; !ok {
		return
	}
	delete(s.nodes, name)
	s.nodeSnap.Store(nil)
}

// snapshot is the sorted node list, built if a change made it stale.
func (s *state) snapshot() []policy.Node {
	if snap := s.nodeSnap.Load(); snap != nil {
		return *snap
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap := s.nodeSnap.Load(); snap != nil {
		return *snap // built by another reader meanwhile
	}
	snap := make([]policy.Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		snap = append(snap, n)
	}
	slices.SortFunc(snap, func(a, b policy.Node) int { return strings.Compare(a.Name, b.Name) })
	s.rebuilds++
	s.nodeSnap.Store(&snap)
	return snap
}

// namespaceMeta is how Namespaces are watched and read: metadata only
// (pullsafe reads nothing but their labels), so the API server sends and
// the cache holds ObjectMeta, not whole objects.
func namespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

// CacheOptions are the manager's cache options: its informers hold only
// what pullsafe reads. Nodes cannot be watched metadata-only (policy.Node
// needs status.nodeInfo.containerRuntimeVersion), so they are stripped by a
// transform before they are stored: a kubelet's Node is ~50 KB (its
// status.images lists every image on the node), of which pullsafe keeps
// the name, the labels, the runtime version and, of a Windows node, the
// kernel version (its build, when it has no windows-build label). Namespaces are a
// metadata-only watch stripped to their labels (annotations such as
// kubectl's last-applied-configuration can be large).
func CacheOptions() crcache.Options {
	return crcache.Options{ByObject: map[client.Object]crcache.ByObject{
		&corev1.Node{}:  {Transform: slimNode},
		namespaceMeta(): {Transform: slimMeta},
	}}
}

// slimNode keeps what policy.NodeOf reads. Anything else (a tombstone)
// passes through.
func slimNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	info := corev1.NodeSystemInfo{ContainerRuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion}
	if n.Labels[corev1.LabelOSStable] == "windows" {
		info.KernelVersion = n.Status.NodeInfo.KernelVersion // its build, without a windows-build label
	}
	return &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: slimObjectMeta(n.ObjectMeta), Status: corev1.NodeStatus{NodeInfo: info}}, nil
}

// slimMeta keeps a metadata-only object's name and labels.
func slimMeta(o any) (any, error) {
	m, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		return o, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: slimObjectMeta(m.ObjectMeta)}, nil
}

// slimObjectMeta keeps identity (the cache and client-go read namespace,
// name, UID and resourceVersion) and labels.
func slimObjectMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion, Labels: m.Labels}
}

// TrackInformers keeps the snapshots from the cache's Node and Namespace
// informers (see CacheOptions for what they hold). Without it,
// ClientCluster reads through its cached client.
func (c *ClientCluster) TrackInformers(ctx context.Context, cache crcache.Informers) error {
	ni, err := cache.GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return err
	}
	nsi, err := cache.GetInformer(ctx, namespaceMeta())
	if err != nil {
		return err
	}
	nreg, err := ni.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.nodeEvent(o, false) },
		UpdateFunc: func(_, o any) { c.nodeEvent(o, false) },
		DeleteFunc: func(o any) { c.nodeEvent(o, true) },
	})
	if err != nil {
		return err
	}
	nsreg, err := nsi.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.namespaceEvent(o, false) },
		UpdateFunc: func(_, o any) { c.namespaceEvent(o, false) },
		DeleteFunc: func(o any) { c.namespaceEvent(o, true) },
	})
	if err != nil {
		return err
	}
	c.state.nodesSynced, c.state.namespacesSynced = nreg.HasSynced, nsreg.HasSynced
	c.state.tracking.Store(true)
	return nil
}

// Synced reports whether the node and namespace snapshots are complete:
// readiness waits on it, so no review is answered from a partial node list.
func (c *ClientCluster) Synced() error {
	if !c.state.tracking.Load() {
		return nil // reads go through the cache, which waits for its own sync
	}
	if !c.state.nodesSynced() {
		return errNodesLoading
	}
	if !c.state.namespacesSynced() {
		return errors.New("namespace list still loading")
	}
	return nil
}

// nodeList is the snapshot once complete (empty, not nil, when the cluster
// has no nodes); errNodesLoading before.
func (s *state) nodeList() ([]policy.Node, error) {
	if !s.nodesSynced() {
		return nil, errNodesLoading
	}
	return s.snapshot(), nil
}

func unwrap(o any) any {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return o
}

func (c *ClientCluster) nodeEvent(o any, deleted bool) {
	n, ok := unwrap(o).(*corev1.Node)
	if !ok {
		return
	}
	if deleted {
		c.state.deleteNode(n.Name)
		return
	}
	c.state.setNode(n)
}

func (c *ClientCluster) namespaceEvent(o any, deleted bool) {
	ns, ok := unwrap(o).(metav1.Object) // PartialObjectMetadata from the cache
	if !ok {
		return
	}
	if deleted {
		c.state.namespaces.Delete(ns.GetName())
		return
	}
	labels := ns.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	c.state.namespaces.Store(ns.GetName(), labels)
}
