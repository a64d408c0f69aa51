package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// heldRegistry holds every manifest request for a repository under
// "flood/" until release is closed, and counts those it holds.
type heldRegistry struct {
	*registrytest.Registry
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

// Release lets the held requests, and every later one, through.
func (h *heldRegistry) Release() { h.once.Do(func() { close(h.release) }) }

func newHeldRegistry(t *testing.T) *heldRegistry {
	h := &heldRegistry{Registry: registrytest.New(t), release: make(chan struct{})}
	t.Cleanup(h.Release)
	h.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/flood/") && strings.Contains(r.URL.Path, "/manifests/") {
			h.held.Add(1)
			<-h.release
		}
		return false
	})
	return h
}

// until polls cond a bounded number of times: the lookups it waits for
// are started, not timed.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func podIn(ns string, images ...string) Input {
	in := podWith(images)
	in.Workload.Namespace = ns
	return in
}

// TestFloodInOneNamespaceLeavesOthersTheirSlots is the probe in
// counts: namespace "a" floods with lookups a registry holds in flight;
// "a" gets its share of the slots (2 of 8), its excess waits, and
// namespace "b"'s missing tag still gets a slot and is denied not-found
// rather than "cannot verify" after waiting for slots "a" holds.
func TestFloodInOneNamespaceLeavesOthersTheirSlots(t *testing.T) {
	reg := newHeldRegistry(t)
	reg.Image("shop/api", "v1", "linux", "amd64")
	c := newLimitTestChecker(t, WithLookupLimits(16, 8))
	floodCtx, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	var flood sync.WaitGroup
	verdicts := make([]*Verdict, 4)
	for r := range verdicts {
		var images []string
		for i := range 16 {
			images = append(images, fmt.Sprintf("%s/flood/app%d:v%d", reg.Host, r, i))
		}
		flood.Add(1)
		go func() { defer flood.Done(); verdicts[r] = c.Check(floodCtx, podIn("a", images...)) }()
	}
	until(t, "the flood holds its share of the slots", func() bool { return reg.held.Load() >= 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v := c.Check(ctx, podIn("b", reg.Host+"/shop/api:v1", reg.Host+"/shop/api:v9"))
	var got []string
	for _, f := range v.Findings {
		if f.Rule == RuleMutableTag {
			continue // tags without a digest: a warning whatever the registry says
		}
		got = append(got, f.Container+" "+string(f.Rule)+" "+string(f.Action))
	}
	if diff := cmp.Diff([]string{"c1 not-found deny"}, got); diff != "" {
		t.Errorf("namespace b's findings during namespace a's flood (-want +got):\n%s", diff)
	}
	if n := reg.held.Load(); n != 2 {
		t.Errorf("the registry holds %d of namespace a's lookups, want its share: 2 (of 8 slots)", n)
	}
	// The flood's reviews reach their deadline: "cannot verify", never a
	// denial; their slots are free once the registry lets go.
	stopFlood()
	flood.Wait()
	for i, v := range verdicts {
		if v.Decision() == DecisionDeny {
			t.Errorf("flood review %d denied:\n%s", i, v.DenialMessage())
		}
	}
	reg.Release()
	until(t, "every slot is free", func() bool { return c.LookupsInFlight() == 0 })
}

// grantOrder has each of names (namespace "/" id, one slot each) wait, in
// order, for the single slot held by "held", then frees the slot once per
// name and returns the order in which they got it.
func grantOrder(t *testing.T, l *Lookups, names []string) []string {
	t.Helper()
	ctx := context.Background()
	if err := l.acquire(ctx, "held", "h"); err != nil {
		t.Fatal(err)
	}
	granted := make(chan string)
	for i, n := range names {
		ns, _, _ := strings.Cut(n, "/")
		go func() {
			if err := l.acquire(ctx, ns, "h"); err == nil {
				granted <- n
			}
		}()
		until(t, n+" waits", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			waiting := 0
			for _, q := range l.queues {
				waiting += len(q)
			}
			return waiting == i+1
		})
	}
	release := func(ns string) {
		l.mu.Lock()
		l.releaseLocked(ns, "h")
		l.mu.Unlock()
	}
	release("held")
	var order []string
	for range names {
		n := <-granted
		order = append(order, n)
		ns, _, _ := strings.Cut(n, "/")
		release(ns)
	}
	return order
}

func TestSlotsAreGrantedRoundRobinAcrossNamespaces(t *testing.T) {
	got := grantOrder(t, newLookups(1, 1, 1), []string{"a/1", "a/2", "a/3", "a/4", "b/1", "c/1", "b/2"})
	want := []string{"a/1", "b/1", "c/1", "a/2", "b/2", "a/3", "a/4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grant order (-want +got):\n%s", diff)
	}
}

// An identical lookup in flight is joined, not run again nor charged a
// second slot, whichever namespace joins it; a lookup still waiting in the
// flooder's queue is not joined, so the other namespace is not held up.
func TestJoinedLookupsCostOneSlot(t *testing.T) {
	l := newLookups(4, 1, 4)
	ctx := context.Background()
	var runs atomic.Int64
	release := make(chan struct{})
	held := func() (any, error) { runs.Add(1); <-release; return "answer", nil }

	results := make(chan any, 3)
	go func() { v, _, _ := l.do(ctx, "a", "h", "same", held); results <- v }()
	until(t, "a's lookup runs", func() bool { return runs.Load() == 1 })
	// "a" is at its share now: its next lookup waits in its queue.
	go func() { v, _, _ := l.do(ctx, "a", "h", "queued", held); results <- v }()
	until(t, "a's second lookup waits", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.queues["a"]) == 1 })

	go func() { v, _, _ := l.do(ctx, "b", "h", "same", held); results <- v }()
	until(t, "b joins a's lookup", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		f := l.flights["same"]
		return f != nil && f.joined >= 1
	})
	// b's lookup of "queued" is not stuck behind a's queue: it runs on b's slot.
	ran := make(chan any)
	go func() {
		v, _, _ := l.do(ctx, "b", "h", "queued", func() (any, error) { runs.Add(1); return "b ran it", nil })
		ran <- v
	}()
	if v := <-ran; v != "b ran it" {
		t.Errorf("b's lookup answered %v", v)
	}
	if n := l.InFlight(); n != 1 {
		t.Errorf("%d slots taken while one lookup runs and another namespace joined it, want 1", n)
	}
	close(release)
	for range 3 {
		<-results
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("%d runs, want 3: \"same\" once for a and b, \"queued\" by b, then by a once b's was done", n)
	}
	if n := l.InFlight(); n != 0 {
		t.Errorf("%d slots taken after every lookup ended", n)
	}
}

// A lookup whose review gives up while waiting leaves the queue and holds
// no slot.
func TestGivingUpLeavesNoSlotNorTicket(t *testing.T) {
	l := newLookups(1, 1, 1)
	release := make(chan struct{})
	go l.do(context.Background(), "a", "h", "k1", func() (any, error) { <-release; return nil, nil })
	until(t, "a's lookup runs", func() bool { return l.InFlight() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { _, _, answered := l.do(ctx, "b", "h", "k2", nil); done <- answered }()
	until(t, "b waits", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.queues["b"]) == 1 })
	cancel()
	if <-done {
		t.Error("a lookup whose context ended while waiting was answered")
	}
	close(release)
	until(t, "a's slot is free", func() bool { return l.InFlight() == 0 })
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queues) != 0 || len(l.ring) != 0 || len(l.byNS) != 0 || len(l.byHost) != 0 {
		t.Errorf("left behind: queues %v ring %v byNS %v byHost %v", l.queues, l.ring, l.byNS, l.byHost)
	}
}

// heldResolver holds every lookup until release is closed, counting those
// it holds.
type heldResolver struct {
	held    atomic.Int64
	release chan struct{}
}

func (h *heldResolver) Resolve(context.Context, string, *registry.Keychain) (*registry.Image, error) {
	h.held.Add(1)
	<-h.release
	return nil, errors.New("released")
}
func (h *heldResolver) Platforms(context.Context, *registry.Image) ([]v1.Platform, error) {
	return nil, nil
}
func (h *heldResolver) PullPath(context.Context, *registry.Image, []v1.Platform) error { return nil }
func (h *heldResolver) HasMirror(string) bool                                          { return false }
func (h *heldResolver) PullIdentity(string, *registry.Keychain) string                 { return "" }

// One registry spelled three ways is one host for its share of the slots:
// a flood from several namespaces cannot take three host shares by writing
// its host in capitals or with HTTPS's default port.
func TestHostShareIgnoresHowTheHostIsWritten(t *testing.T) {
	next := &heldResolver{release: make(chan struct{})}
	l := newLookups(8, 8, 2)
	var done sync.WaitGroup
	for i, image := range []string{"Slow.Example.com/x:v1", "slow.example.com/y:v1", "SLOW.example.com:443/z:v1"} {
		done.Add(1)
		go func() {
			defer done.Done()
			ns := fmt.Sprintf("ns%d", i)
			_, _ = newReviewResolver(next, l, ns).Resolve(context.Background(), image, nil)
		}()
	}
	until(t, "two lookups run and one waits", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		waiting := 0
		for _, q := range l.queues {
			waiting += len(q)
		}
		return next.held.Load() == 2 && waiting == 1
	})
	if n := l.InFlight(); n != 2 {
		t.Errorf("%d slots taken for one host with a share of 2", n)
	}
	close(next.release)
	done.Wait()
}
