package webhook

import (
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// Snapshot is one loaded config and what is built from it. It is never
// changed: a review reads the current one once, at its start, and finishes
// with it even when a reload swaps in another meanwhile.
type Snapshot struct {
	Checker *policy.Checker
	Loaded  time.Time
	// own is pullsafe's namespace: with the config's exclusions
	// (policy.Config.Excluded), allowed untouched whatever the webhook
	// configurations' namespaceSelector says.
	own      string
	resolver *registry.Resolver // kept across reloads that do not reshape it
}

// NewSnapshot wraps checker. ownNamespace is never intercepted, nor are
// kube-system, kube-node-lease and the config's namespaces.exclude.
func NewSnapshot(checker *policy.Checker, ownNamespace string) *Snapshot {
	return &Snapshot{Checker: checker, Loaded: time.Now(), own: ownNamespace}
}

// excluded reports whether objects in ns are never checked.
func (s *Snapshot) excluded(ns string) bool { return s.Config().Excluded(ns, s.own) != "" }

// Config is the snapshot's policy config.
func (s *Snapshot) Config() *policy.Config { return s.Checker.Config() }

// SnapshotBuilder builds the snapshot of a (re)loaded config.
type SnapshotBuilder struct {
	OwnNamespace string
	// NewResolver builds a registry resolver for cfg; prev is the one it
	// replaces (nil at start), whose metrics it should record into.
	NewResolver func(cfg *policy.Config, prev *registry.Resolver) (*registry.Resolver, error)
}

// Build returns the snapshot for cfg. prev's resolver, with its cached
// answers, connections and rate-limit windows, is kept unless a part of the
// config that shapes it changed; then a new one is built, which takes over
// prev's rate-limit and outage windows (its cached answers were made with
// other settings, and are dropped).
func (b SnapshotBuilder) Build(cfg *policy.Config, prev *Snapshot) (*Snapshot, error) {
	var res *registry.Resolver
	if prev != nil && prev.resolver != nil && !reshapesResolver(prev.Config(), cfg) {
		res = prev.resolver
	} else {
		var old *registry.Resolver
		if prev != nil {
			old = prev.resolver
		}
		var err error
		if res, err = b.NewResolver(cfg, old); err != nil {
			return nil, err
		}
		// The registries' 429s and outages are facts about them, not about
		// the config: the new resolver waits them out too.
		res.AdoptWindows(old)
	}
	// One set of lookup slots for the process: reviews still running on
	// the snapshot a reload replaced count against the same fair shares.
	var lookups *policy.Lookups
	if prev != nil {
		lookups = prev.Checker.Lookups()
	}
	s := NewSnapshot(policy.NewChecker(cfg, res, policy.WithLookups(lookups)), b.OwnNamespace)
	s.resolver = res
	return s, nil
}

// reshapesResolver reports whether going from a to b changes a setting the
// registry resolver is built with (see NewResolver).
func reshapesResolver(a, b *policy.Config) bool {
	return !reflect.DeepEqual(a.Registries, b.Registries) || !reflect.DeepEqual(a.Cache, b.Cache) ||
		a.LookupTimeout != b.LookupTimeout || a.OutageWindow != b.OutageWindow
}

// LiveConfig holds the current snapshot and whether the last reload
// failed. Safe for concurrent use.
type LiveConfig struct {
	state   atomic.Pointer[liveState]
	changed chan struct{}
}

type liveState struct {
	snap *Snapshot
	// warning is set while the newest file could not be applied.
	warning string
}

// NewLiveConfig starts with s.
func NewLiveConfig(s *Snapshot) *LiveConfig {
	l := &LiveConfig{changed: make(chan struct{}, 1)}
	l.state.Store(&liveState{snap: s})
	return l
}

// Load returns the current snapshot and, while the last reload failed, the
// warning every review should carry.
func (l *LiveConfig) Load() (*Snapshot, string) {
	st := l.state.Load()
	return st.snap, st.warning
}

// Changed receives after a new snapshot is applied (one pending signal at
// most: a slow reader sees the newest state once).
func (l *LiveConfig) Changed() <-chan struct{} { return l.changed }

// apply makes s current and clears any failure.
func (l *LiveConfig) apply(s *Snapshot) {
	l.state.Store(&liveState{snap: s})
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// fail keeps the current snapshot and records why the newest file was not
// applied. The warning is short: kubectl prints it on one line.
func (l *LiveConfig) fail(err error) {
	cur := l.state.Load().snap
	w := fmt.Sprintf("pullsafe: config reload failed (%v); still using the config loaded at %s",
		err, cur.Loaded.UTC().Format(time.RFC3339))
	l.state.Store(&liveState{snap: cur, warning: registry.Sanitize(w, 512)})
}

// clearFailure drops the warning: the file is valid again and equal in
// effect to the current config.
func (l *LiveConfig) clearFailure() {
	l.state.Store(&liveState{snap: l.state.Load().snap})
}
