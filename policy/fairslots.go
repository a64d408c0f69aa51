package policy

import (
	"context"
	"slices"
	"sync"
)

// Lookups are the registry lookup slots of a pullsafe process, shared by
// every review and kept across config reloads. First come, first served
// let one namespace's flood of slow lookups take every slot, so another
// namespace's review waited past its deadline and answered "cannot
// verify" for a tag that does not exist. Here:
//
//   - a namespace holds at most perNamespace slots (a quarter of them) and
//     a registry host at most perHost (half): a flood in one namespace, or
//     at one registry, always leaves room for the others;
//   - lookups that wait are granted in round-robin order across
//     namespaces, so a namespace with one lookup waiting is served after at
//     most one lookup of each other namespace that waits;
//   - an identical lookup in flight (same image and credentials; anonymous
//     ones are identical across namespaces) is joined without a slot of its
//     own: one registry request, one slot. Only a lookup that holds its slot
//     is joined; one still waiting is not, so a flooder's queue never
//     delays another namespace's lookup.
//
// Key: namespace and registry host; bound: the slot counts (queues are
// bounded by the reviews' workers, perReview each); who fills them: every
// namespace, each within its share.
type Lookups struct {
	total, perNamespace, perHost int

	mu      sync.Mutex
	used    int
	byNS    map[string]int
	byHost  map[string]int
	queues  map[string][]*ticket // namespace -> waiting lookups, in arrival order
	ring    []string             // namespaces with lookups waiting, in turn order
	turn    int                  // index in ring of the namespace served next
	flights map[string]*flight   // running lookups others may join, by key
}

// ticket is one lookup waiting for a slot; granted is closed when it has one.
type ticket struct {
	ns, host string
	granted  chan struct{}
}

// flight is one lookup holding a slot, which identical lookups join.
type flight struct {
	done     chan struct{}
	val      any
	err      error
	panicked any
	joined   int // callers that found it running (under Lookups.mu)
}

// NewLookups returns total slots (below 1: DefaultLookupsTotal), a quarter
// of them (at least one) per namespace and half per registry host.
func NewLookups(total int) *Lookups {
	if total < 1 {
		total = DefaultLookupsTotal
	}
	return newLookups(total, max(1, total/4), max(1, total/2))
}

func newLookups(total, perNamespace, perHost int) *Lookups {
	return &Lookups{total: total, perNamespace: perNamespace, perHost: perHost,
		byNS: map[string]int{}, byHost: map[string]int{}, queues: map[string][]*ticket{}, flights: map[string]*flight{}}
}

// InFlight is how many slots are taken.
func (l *Lookups) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

// do runs fn with a slot charged to ns and host, or joins the identical
// lookup (same key) already running; key "" is never joined. answered is
// false when ctx ended first. fn runs apart from ctx (the registry bounds
// each lookup with its own lookup timeout): a review giving up at its
// deadline, a short one perhaps, neither fails the reviews that joined
// its lookup nor frees a slot whose request is still out.
func (l *Lookups) do(ctx context.Context, ns, host, key string, fn func() (any, error)) (val any, err error, answered bool) {
	for {
		f := l.running(key)
		if f == nil {
			if l.acquire(ctx, ns, host) != nil {
				return nil, nil, false
			}
			f = l.start(ns, host, key, fn)
		}
		if f == nil {
			continue // an identical lookup started while this one waited: join it
		}
		select {
		case <-f.done:
			if f.panicked != nil {
				panic(f.panicked)
			}
			return f.val, f.err, true
		case <-ctx.Done():
			return nil, nil, false
		}
	}
}

// start runs fn for key with the slot just granted, or gives the slot back
// and returns nil when an identical lookup is running already.
func (l *Lookups) start(ns, host, key string, fn func() (any, error)) *flight {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.flights[key]; ok && key != "" {
		l.releaseLocked(ns, host)
		return nil
	}
	f := &flight{done: make(chan struct{})}
	if key != "" {
		l.flights[key] = f
	}
	go func() {
		defer func() {
			// Passed on to every waiter, whose container turns it into an
			// internal warning; here it would end the process.
			f.panicked = recover()
			l.mu.Lock()
			if key != "" {
				delete(l.flights, key)
			}
			l.releaseLocked(ns, host)
			l.mu.Unlock()
			close(f.done)
		}()
		f.val, f.err = fn()
	}()
	return f
}

func (l *Lookups) running(key string) *flight {
	if key == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.flights[key]
	if f != nil {
		f.joined++
	}
	return f
}

// acquire takes a slot for ns and host, waiting in ns's queue while none
// is free for them.
func (l *Lookups) acquire(ctx context.Context, ns, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if len(l.queues[ns]) == 0 && l.fits(ns, host) {
		l.take(ns, host)
		l.mu.Unlock()
		return nil
	}
	t := &ticket{ns: ns, host: host, granted: make(chan struct{})}
	if len(l.queues[ns]) == 0 {
		l.ring = append(l.ring, ns)
	}
	l.queues[ns] = append(l.queues[ns], t)
	l.mu.Unlock()
	select {
	case <-t.granted:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-t.granted: // granted meanwhile: hand the slot on
			l.releaseLocked(ns, host)
		default:
			l.withdraw(t)
		}
		return ctx.Err()
	}
}

func (l *Lookups) fits(ns, host string) bool {
	return l.used < l.total && l.byNS[ns] < l.perNamespace && l.byHost[host] < l.perHost
}

func (l *Lookups) take(ns, host string) {
	l.used++
	l.byNS[ns]++
	l.byHost[host]++
}

// releaseLocked frees a slot and grants what now fits, in turn.
func (l *Lookups) releaseLocked(ns, host string) {
	l.used--
	if l.byNS[ns]--; l.byNS[ns] == 0 {
		delete(l.byNS, ns)
	}
	if l.byHost[host]--; l.byHost[host] == 0 {
		delete(l.byHost, host)
	}
	l.dispatch()
}

// dispatch grants waiting lookups round-robin across namespaces: each
// namespace in turn gets its oldest lookup that fits (its host may be
// full while another of its hosts is not), until a whole round grants
// nothing.
func (l *Lookups) dispatch() {
	for idle := 0; idle < len(l.ring) && l.used < l.total; {
		l.turn %= len(l.ring)
		ns := l.ring[l.turn]
		q := l.queues[ns]
		i := slices.IndexFunc(q, func(t *ticket) bool { return l.fits(t.ns, t.host) })
		if i < 0 {
			l.turn++
			idle++
			continue
		}
		t := q[i]
		l.take(t.ns, t.host)
		close(t.granted)
		// When ns leaves the ring, the next namespace moves into its place.
		if !l.dequeue(ns, i) {
			l.turn++
		}
		idle = 0
	}
}

// withdraw removes a ticket whose waiter gave up.
func (l *Lookups) withdraw(t *ticket) {
	if i := slices.Index(l.queues[t.ns], t); i >= 0 {
		l.dequeue(t.ns, i)
	}
}

// dequeue removes the i-th ticket of ns's queue and reports whether the
// queue, now empty, left the ring.
func (l *Lookups) dequeue(ns string, i int) bool {
	q := slices.Delete(l.queues[ns], i, i+1)
	if len(q) > 0 {
		l.queues[ns] = q
		return false
	}
	delete(l.queues, ns)
	j := slices.Index(l.ring, ns)
	l.ring = slices.Delete(l.ring, j, j+1)
	if j < l.turn {
		l.turn--
	}
	return true
}
