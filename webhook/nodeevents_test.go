package webhook

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// slimNodes are n nodes as the informer holds them (slimNode of a kubelet's
// Node), each with a labels map of its own, as decoded objects have.
func slimNodes(n int) []*corev1.Node {
	o, _ := slimNode(fatNode(0))
	proto := o.(*corev1.Node)
	out := make([]*corev1.Node, n)
	for i := range out {
		nd := proto.DeepCopy()
		nd.Name = fmt.Sprintf("node-%04d", i)
		nd.Labels = maps.Clone(proto.Labels)
		nd.Labels[corev1.LabelHostname] = nd.Name
		out[i] = nd
	}
	return out
}

// heartbeat is the object a status-only update (the kubelet's heartbeat,
// every 10 s per node) delivers after slimNode: a new object, a new
// resourceVersion, the same labels and runtime.
func heartbeat(n *corev1.Node) *corev1.Node {
	hb := n.DeepCopy()
	hb.ResourceVersion += "1"
	return hb
}

// trackedCluster is a ClientCluster whose node list is complete (synced).
func trackedCluster() *ClientCluster {
	c := NewClientCluster(nil, nil)
	synced := func() bool { return true }
	c.state.nodesSynced, c.state.namespacesSynced = synced, synced
	c.state.tracking.Store(true)
	return c
}

// BenchmarkNodeEvents: absorbing a 5,000-node cluster's initial list (the
// readiness probe waits for it) and a status update, each followed by a
// review reading the node list.
func BenchmarkNodeEvents(b *testing.B) {
	const n = 5000
	nodes := slimNodes(n)
	b.Run("initial-list-5000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := trackedCluster()
			for _, nd := range nodes {
				c.nodeEvent(nd, false)
			}
			if got, _ := c.state.nodeList(); len(got) != n {
				b.Fatalf("%d nodes", len(got))
			}
		}
	})
	b.Run("status-update-of-5000", func(b *testing.B) {
		c := trackedCluster()
		for _, nd := range nodes {
			c.nodeEvent(nd, false)
		}
		c.state.nodeList()
		beats := make([]*corev1.Node, n)
		for i, nd := range nodes {
			beats[i] = heartbeat(nd)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.nodeEvent(beats[i%n], false)
			if got, _ := c.state.nodeList(); len(got) != n {
				b.Fatalf("%d nodes", len(got))
			}
			i++
		}
	})
}

// TestNodeSnapshotRebuiltOnlyWhenItChanges: a heartbeat (a status-only
// update) allocates nothing and rebuilds nothing; the initial list costs
// one build at the first read, not one per node; a change pullsafe reads
// (a label, the runtime version, a node going) is seen by the next read.
func TestNodeSnapshotRebuiltOnlyWhenItChanges(t *testing.T) {
	const n = 500
	nodes := slimNodes(n)
	c := trackedCluster()
	for _, nd := range nodes {
		c.nodeEvent(nd, false)
	}
	if got, _ := c.state.nodeList(); len(got) != n || c.state.rebuilds != 1 {
		t.Fatalf("initial list: %d nodes, %d rebuilds; want %d nodes, 1 rebuild", len(got), c.state.rebuilds, n)
	}
	beat := heartbeat(nodes[7])
	if allocs := testing.AllocsPerRun(100, func() {
		c.nodeEvent(beat, false)
		c.state.nodeList()
	}); allocs != 0 || c.state.rebuilds != 1 {
		t.Errorf("heartbeat: %v allocations, %d rebuilds; want 0 and still 1", allocs, c.state.rebuilds)
	}

	relabelled := heartbeat(nodes[7])
	relabelled.Labels = maps.Clone(relabelled.Labels)
	relabelled.Labels[corev1.LabelArchStable] = "arm64"
	upgraded := heartbeat(nodes[8])
	upgraded.Status.NodeInfo.ContainerRuntimeVersion = "containerd://2.1.4"
	for _, nd := range []*corev1.Node{relabelled, upgraded} {
		c.nodeEvent(nd, false)
	}
	c.nodeEvent(nodes[9], true)
	got, _ := c.state.nodeList()
	if len(got) != n-1 || got[7].Labels[corev1.LabelArchStable] != "arm64" || got[8].Runtime != "containerd://2.1.4" || got[9].Name != "node-0010" {
		t.Errorf("changes not seen: %d nodes, %+v %+v %+v", len(got), got[7], got[8], got[9])
	}
	if c.state.rebuilds != 2 {
		t.Errorf("%d rebuilds after three changes and one read, want 2", c.state.rebuilds)
	}
	c.nodeEvent(nodes[9], true) // already gone: nothing changes
	if c.state.nodeList(); c.state.rebuilds != 2 {
		t.Errorf("deleting an absent node rebuilt the snapshot (%d rebuilds)", c.state.rebuilds)
	}
}

// TestNodeSnapshotUnderConcurrentEvents: reviews read the node list while
// the informer relabels and deletes nodes (run with -race). Once the events
// stop, the next read sees the last of them: a snapshot built by a reader
// racing a change is never kept past that change. A delete arriving as a
// tombstone (DeletedFinalStateUnknown) removes the node too.
func TestNodeSnapshotUnderConcurrentEvents(t *testing.T) {
	const n, rounds = 50, 200
	nodes := slimNodes(n)
	c := trackedCluster()
	for _, nd := range nodes {
		c.nodeEvent(nd, false)
	}
	arch := func(a string) *corev1.Node {
		nd := heartbeat(nodes[7])
		nd.Labels = maps.Clone(nd.Labels)
		nd.Labels[corev1.LabelArchStable] = a
		return nd
	}
	arm, amd := arch("arm64"), arch("amd64")
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := c.state.nodeList(); err != nil || len(got) < n-1 {
					t.Errorf("a read during events: %d nodes, %v", len(got), err)
					return
				}
			}
		}()
	}
	for i := range rounds {
		if i%2 == 0 {
			c.nodeEvent(arm, false)
			c.nodeEvent(nodes[9], true)
		} else {
			c.nodeEvent(amd, false)
			c.nodeEvent(nodes[9], false)
		}
	}
	c.nodeEvent(toolscache.DeletedFinalStateUnknown{Key: nodes[9].Name, Obj: nodes[9]}, true)
	c.nodeEvent(arm, false)
	close(stop)
	readers.Wait()
	got, _ := c.state.nodeList()
	if len(got) != n-1 || got[7].Labels[corev1.LabelArchStable] != "arm64" || got[9].Name != "node-0010" {
		t.Errorf("after the events: %d nodes, node 7 %v, node at 9 %s; want %d, arm64, node-0010", len(got), got[7].Labels, got[9].Name, n-1)
	}
}
