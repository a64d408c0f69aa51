package registry

import (
	"slices"
	"sync"
	"time"
)

// Windows are what pullsafe remembers of registries that failed: during one,
// lookups are answered from memory instead of asking. Each covers only what
// its evidence is about, so no tenant's image changes another's verdict:
//
//   - a repository window, keyed host + repository + credential fingerprint
//     ("anonymous" for anonymous lookups), is opened by a 5xx, a timeout or
//     a 429 met while asking for that repository (its manifest, a blob, its
//     token); it answers for that key only;
//   - a host window, keyed host, needs evidence about the host itself: no
//     connection to it (refused, connect timeout; DNS and TLS failures are
//     no outage, isOutage: they answer at once), or its
//     /v2/ ping failing (the ping names no repository). Repositories failing
//     one after another are not such evidence by themselves: after
//     hostFailThreshold distinct ones fail with no answer from the host in
//     between, the ping is asked, and only its failure opens the window.
//
// A 429 is never widened beyond its repository and credential: a registry
// does not say which quota it hit (per account, per repository, per proxied
// upstream), the same secret is often copied into many namespaces, and the
// anonymous "credential" is every namespace at once. The cost is one request
// per repository per window.
//
// Anyone who may create a Pod chooses hosts and repositories, so everything
// here is bounded, and a flood pushes out only what has no stronger evidence
// than it brings (see evictHost).
const (
	maxWindowHosts    = 1024 // hosts with any window or failure count
	maxReposPerHost   = 64   // repository windows (outage and 429) on one host
	maxRepoWindows    = 8192 // repository windows over all hosts
	hostFailThreshold = 4    // distinct failing repositories before the ping is asked
	maxTenants        = 8    // distinct repositories counted on a host window
	evictSample       = 64   // hosts looked at to find one to evict
)

// sweepEvery is how often ended windows are removed even when nobody asks
// about their host again.
const sweepEvery = time.Minute

// window is a period during which pullsafe answers from memory.
type window struct {
	since time.Time // first failure of this episode
	until time.Time
	err   *Error    // what opened it, stripped (kept), answered again while it is open
	probe time.Time // when the probe now out started; zero if none
	// length is the last window's duration: how long an unsettled probe
	// holds the window (not the episode's length, which grows with it).
	length time.Duration
}

// inForce reports whether w answers now: open, or ended with its probe out
// for less than one window length (a probe that never settles, because its
// lookup panicked or a mirror used its time, is then replaced).
func (w *window) inForce(now time.Time) bool {
	return w != nil && (now.Before(w.until) || !w.probe.IsZero() && now.Sub(w.probe) <= w.length)
}

// extend starts or extends w to last d from now, never shortening it; an
// episode keeps the time its first failure began (ago before now: a timeout
// began a lookup timeout earlier).
func (w *window) extend(now time.Time, ago, d time.Duration, e *Error) {
	if w.since.IsZero() {
		w.since = now.Add(-ago)
	}
	if t := now.Add(d); t.After(w.until) {
		w.until = t
	}
	w.err, w.probe, w.length = e, time.Time{}, d
}

// held says which window answered a lookup.
type held int

const (
	notHeld   held = iota
	heldLimit      // the repository's 429 back-off
	heldHost       // the host's outage
	heldRepo       // the repository's outage
)

// hostWindows is what is remembered of one host.
type hostWindows struct {
	outage  *window
	tenants []string           // distinct repositories that met outage, at most maxTenants
	repos   map[string]*window // repoKey(kind, repository, fingerprint)
	// failing lists the distinct repositories that failed with repository
	// evidence since failingSince, with no answer from the host in between.
	failing      []string
	failingSince time.Time
}

// strength orders hosts for eviction: level 2 with a host window in force,
// 1 with repository windows, 0 with neither; weight counts the tenants (the
// repositories) that rely on the entry.
func (h *hostWindows) strength(now time.Time) (level, weight int, until time.Time) {
	if h.outage.inForce(now) {
		level, weight, until = 2, len(h.tenants), h.outage.until
	}
	if len(h.repos) > 0 {
		level, weight = max(level, 1), weight+len(h.repos)
	}
	return level, weight, until
}

func (h *hostWindows) addTenant(repo string) {
	if len(h.tenants) < maxTenants && !slices.Contains(h.tenants, repo) {
		h.tenants = append(h.tenants, repo)
	}
}

// windows holds every window of a Resolver in one place, so a resolver
// replaced by a config reload can hand them to its successor.
type windows struct {
	mu  sync.Mutex
	now func() time.Time
	// tally is how long a repository's failure counts towards
	// hostFailThreshold: one outage window.
	tally     time.Duration
	hosts     map[string]*hostWindows
	repoCount int
	lastSweep time.Time
}

func newWindows(now func() time.Time, tally time.Duration) *windows {
	return &windows{now: now, tally: tally, hosts: map[string]*hostWindows{}, lastSweep: now()}
}

func repoKey(kind, repo, fingerprint string) string { return kind + "|" + repo + "|" + fingerprint }

// check returns the window that answers a lookup of repo with credential
// fingerprint fp on host, if one does; outages false looks at 429s only.
// When none is in force, the lookup becomes the probe of every ended window
// that concerns it, so the probe of a host window goes to a lookup whose own
// repository is not held (a repository that keeps failing cannot take it
// and answer for the host).
func (w *windows) check(host, repo, fp string, outages bool) (window, held) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hosts[host]
	if h == nil {
		return window{}, notHeld
	}
	now := w.now()
	lk := repoKey("limit", repo, fp)
	if lw := h.repos[lk]; lw != nil {
		if now.Before(lw.until) {
			return *lw, heldLimit
		}
		w.dropRepo(h, lk)
	}
	if !outages {
		return window{}, notHeld
	}
	rw := h.repos[repoKey("outage", repo, fp)]
	switch {
	case h.outage.inForce(now):
		h.addTenant(repo)
		return *h.outage, heldHost
	case rw.inForce(now):
		return *rw, heldRepo
	}
	if h.outage != nil {
		h.outage.probe = now
	}
	if rw != nil {
		rw.probe = now
	}
	return window{}, notHeld
}

// openHost opens or extends host's window on evidence about the host itself.
func (w *windows) openHost(host, repo string, ago, d time.Duration, e *Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	h := w.entry(host, now, 2)
	if h == nil {
		return
	}
	if h.outage == nil {
		h.outage = &window{}
	}
	h.outage.extend(now, ago, d, e)
	h.addTenant(repo)
	h.failing = nil
}

// openRepo opens or extends the window of (repo, fp) on host. The host
// answered, so a host window that has ended is closed (this is its probe's
// answer, or a lookup that started before it); one still open stays. It
// reports whether hostFailThreshold distinct repositories have now failed
// with no answer from the host in between: the caller then asks the ping.
func (w *windows) openRepo(host, repo, fp string, ago, d time.Duration, e *Error) (askPing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	h := w.entry(host, now, 1)
	if h == nil {
		return false
	}
	w.repo(h, repoKey("outage", repo, fp), now).extend(now, ago, d, e)
	if h.outage != nil && !now.Before(h.outage.until) {
		h.outage, h.tenants = nil, nil
	}
	if h.outage != nil {
		return false
	}
	if now.Sub(h.failingSince) > w.tally {
		h.failing, h.failingSince = nil, now
	}
	if !slices.Contains(h.failing, repo) {
		h.failing = append(h.failing, repo)
	}
	if len(h.failing) < hostFailThreshold {
		return false
	}
	h.failing = nil
	return true
}

// limit opens the 429 back-off of (repo, fp) on host for d.
func (w *windows) limit(host, repo, fp string, d time.Duration, e *Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if h := w.entry(host, now, 1); h != nil {
		w.repo(h, repoKey("limit", repo, fp), now).extend(now, 0, d, e)
	}
}

// answered records that host answered a lookup of (repo, fp) with anything
// but an outage: the host is there (its window closes, its failure count
// starts again) and so is that repository.
func (w *windows) answered(host, repo, fp string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hosts[host]
	if h == nil {
		return
	}
	w.dropRepo(h, repoKey("outage", repo, fp))
	h.outage, h.tenants, h.failing = nil, nil, nil
	if len(h.repos) == 0 {
		delete(w.hosts, host)
	}
}

// count reports how many hosts and repository windows are held.
func (w *windows) count() (hosts, repos int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.hosts), w.repoCount
}

// entry returns host's entry, making one if the bound allows: a new entry
// at level (1 repository, 2 host evidence) may take the place of a weaker
// one only. nil when it may not. Called locked.
func (w *windows) entry(host string, now time.Time, level int) *hostWindows {
	if h := w.hosts[host]; h != nil {
		return h
	}
	w.sweep(now)
	if len(w.hosts) >= maxWindowHosts && !w.evictHost(now, level) {
		return nil
	}
	h := &hostWindows{repos: map[string]*window{}}
	w.hosts[host] = h
	return h
}

// evictHost makes room for a new host entry of the given level, which has
// one tenant: the weakest entry goes (fewest tenants, then lower level, then
// soonest end), but only if it has at most one tenant and no stronger
// evidence than the newcomer. So a host window on which two repositories
// relied is never pushed out by a flood of hosts named once, and no amount
// of repository-level noise pushes out a host window; a flood past the
// bound then goes unremembered, which costs lookups time, not verdicts.
// It looks at evictSample hosts from a random place in the map (Go starts
// each range at one), not all of them: a flood of new hosts would otherwise
// cost a scan of every host each; the rule above holds for any sample.
func (w *windows) evictHost(now time.Time, level int) bool {
	var (
		victim string
		vl, vw int
		vu     time.Time
		seen   int
	)
	for k, h := range w.hosts {
		if seen++; seen > evictSample {
			break
		}
		l, wt, u := h.strength(now)
		if victim == "" || wt < vw || wt == vw && (l < vl || l == vl && u.Before(vu)) {
			victim, vl, vw, vu = k, l, wt, u
		}
	}
	if victim == "" || vw > 1 || vl > level {
		return false
	}
	w.repoCount -= len(w.hosts[victim].repos)
	delete(w.hosts, victim)
	return true
}

// repo returns h's window under key, making room for it within both
// bounds: on this host, and over all hosts (from the host holding most).
func (w *windows) repo(h *hostWindows, key string, now time.Time) *window {
	if cur := h.repos[key]; cur != nil {
		return cur
	}
	if len(h.repos) >= maxReposPerHost {
		w.dropSoonest(h, now)
	}
	if w.repoCount >= maxRepoWindows {
		var busiest *hostWindows
		for _, o := range w.hosts {
			if busiest == nil || len(o.repos) > len(busiest.repos) {
				busiest = o
			}
		}
		w.dropSoonest(busiest, now)
	}
	cur := &window{}
	h.repos[key] = cur
	w.repoCount++
	return cur
}

// dropSoonest drops one of h's repository windows: one no longer in force,
// else the one that ends soonest.
func (w *windows) dropSoonest(h *hostWindows, now time.Time) {
	var (
		first string
		end   time.Time
	)
	for k, cur := range h.repos {
		if !cur.inForce(now) {
			first = k
			break
		}
		if first == "" || cur.until.Before(end) {
			first, end = k, cur.until
		}
	}
	if first != "" {
		w.dropRepo(h, first)
	}
}

func (w *windows) dropRepo(h *hostWindows, key string) {
	if _, ok := h.repos[key]; ok {
		delete(h.repos, key)
		w.repoCount--
	}
}

// sweep drops, every sweepEvery, the windows no longer in force and the
// hosts left with nothing to remember. Called locked.
func (w *windows) sweep(now time.Time) {
	if now.Sub(w.lastSweep) < sweepEvery {
		return
	}
	w.lastSweep = now
	for host, h := range w.hosts {
		for k, cur := range h.repos {
			if !cur.inForce(now) {
				w.dropRepo(h, k)
			}
		}
		if !h.outage.inForce(now) {
			h.outage, h.tenants = nil, nil
		}
		if now.Sub(h.failingSince) > w.tally {
			h.failing = nil
		}
		if h.outage == nil && len(h.repos) == 0 && len(h.failing) == 0 {
			delete(w.hosts, host)
		}
	}
}
