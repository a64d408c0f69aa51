package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/pullsafe/pullsafe/policy"
)

// Reloader applies changes of the --config file to a LiveConfig.
//
// The kubelet updates a ConfigMap volume by writing a new timestamped
// folder and renaming a `..data` symlink onto it; config.yaml is a symlink
// to ..data/config.yaml, so the file itself is never written and a watch on
// it (inotify follows the symlink to the old inode) sees nothing. The
// Reloader therefore watches the folder, where the rename shows as an
// event, waits for events to settle, and compares the file's bytes. A poll
// backs the watch up, as controller-runtime's certwatcher does, for events
// lost or never delivered (a folder that cannot be watched, inotify limits).
type Reloader struct {
	file  string
	live  *LiveConfig
	build func(cfg *policy.Config, prev *Snapshot) (*Snapshot, error)
	m     *Metrics
	o     reloaderOptions

	last []byte // the file's bytes last seen, applied or not
	// lastErr is why last was not applied, "" if it was. A failure may lie
	// outside the file (a caBundles file not mounted yet): the same bytes
	// are tried again at each poll, and reported again only when the
	// reason changes.
	lastErr string
}

type reloaderOptions struct {
	poll     time.Duration
	debounce time.Duration
}

// ReloaderOption configures a Reloader.
type ReloaderOption func(*reloaderOptions)

// WithPollInterval sets how often the file is read even without an event.
// Default 10s.
func WithPollInterval(d time.Duration) ReloaderOption {
	return func(o *reloaderOptions) { o.poll = d }
}

// WithDebounce sets how long events must stop before the file is read.
// Default 200ms.
func WithDebounce(d time.Duration) ReloaderOption {
	return func(o *reloaderOptions) { o.debounce = d }
}

// NewReloader watches file (whose content is live's current config) and
// applies each valid change with build; m may be nil.
func NewReloader(file string, live *LiveConfig, build func(*policy.Config, *Snapshot) (*Snapshot, error), m *Metrics, opts ...ReloaderOption) *Reloader {
	o := reloaderOptions{poll: 10 * time.Second, debounce: 200 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	return &Reloader{file: file, live: live, build: build, m: m, o: o}
}

// Run watches until ctx ends. It never fails: without a watch it polls.
func (r *Reloader) Run(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithName("config").WithValues("file", r.file)
	ctx = logr.NewContext(ctx, log)
	events, stop := r.watch(log)
	defer stop()
	r.Reload(ctx)
	poll := time.NewTicker(r.o.poll)
	defer poll.Stop()
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			settle = time.After(r.o.debounce) // restarted by each event
		case <-settle:
			settle = nil
			r.Reload(ctx)
		case <-poll.C:
			r.Reload(ctx)
		}
	}
}

// watch watches the file's folder; events carries nothing when that fails.
func (r *Reloader) watch(log logr.Logger) (<-chan fsnotify.Event, func()) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(r.file)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		log.Error(err, "cannot watch the config folder; polling only", "interval", r.o.poll)
		return nil, func() {}
	}
	go func() {
		for err := range w.Errors {
			log.Error(err, "config watch")
		}
	}()
	return w.Events, func() { w.Close() }
}

// Reload reads the file once and applies it if it changed: a valid config
// becomes current at once (reviews in flight finish with the one they
// started with); an invalid or unreadable one is logged, counted and warned
// about on every review while the old one stays in effect.
func (r *Reloader) Reload(ctx context.Context) {
	data, err := os.ReadFile(r.file)
	seen := data
	if err != nil {
		seen = []byte("\x00" + err.Error()) // the same failure is reported once
	}
	same := r.last != nil && bytes.Equal(seen, r.last)
	cur, _ := r.live.Load()
	// The hosts folder (registries.hostsDir) changes apart from the file.
	if same && r.lastErr == "" && !cur.Config().Registries.HostsChanged() {
		return
	}
	first := r.last == nil
	r.last = seen
	var cfg *policy.Config
	if err == nil && len(bytes.TrimSpace(data)) == 0 {
		// At start an empty file means the defaults; here it is more
		// likely an editor's write caught halfway.
		err = errors.New("the file is empty")
	}
	if err == nil {
		if cfg, err = policy.ParseConfig(data); err != nil {
			err = fmt.Errorf("config %s: %w", r.file, err)
		}
	}
	if err == nil && reflect.DeepEqual(cfg, cur.Config()) {
		// Same in effect: a comment changed, or the file is back to what runs.
		r.lastErr = ""
		if !first {
			r.live.clearFailure()
			r.m.loaded(cur.Loaded, false)
		}
		return
	}
	var next *Snapshot
	if err == nil {
		next, err = r.build(cfg, cur)
	}
	log := logr.FromContextOrDiscard(ctx)
	if err != nil {
		if same && err.Error() == r.lastErr {
			return // said already
		}
		r.lastErr = err.Error()
		r.live.fail(err)
		r.m.reloadFailed()
		log.Error(err, "config reload failed; the config loaded before stays in effect", "loaded", cur.Loaded.UTC())
		return
	}
	r.lastErr = ""
	r.live.apply(next)
	if cur.resolver != nil && next.resolver != cur.resolver {
		// Reviews still using it finish; only its idle connections go.
		cur.resolver.CloseIdleConnections()
	}
	r.m.loaded(next.Loaded, true)
	log.Info("config reloaded", "mode", cfg.Mode, "resolverKept", next.resolver == cur.resolver)
}
