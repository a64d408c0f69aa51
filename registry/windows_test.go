package registry

import (
	"fmt"
	"testing"
	"time"
)

// A probe that never settles (its lookup panicked, or a mirror used its time)
// holds the window for one more window length, not for the whole episode:
// after an hour-long outage the registry is asked again within a window.
func TestUnsettledProbeHoldsOneWindowLength(t *testing.T) {
	clock := newTestClock()
	w := newWindows(clock.Now, 30*time.Second)
	e := &Error{Reason: Unreachable, Flavour: FlavourTimeout}
	for range 120 { // an hour of failed probes, 30 s windows
		w.openHost("reg", "team/app", 0, 30*time.Second, e)
		clock.Add(30 * time.Second)
	}
	if _, held := w.check("reg", "team/app", "anonymous", true); held != notHeld {
		t.Fatal("the window ended but no probe was let through")
	}
	clock.Add(10 * time.Second)
	if _, held := w.check("reg", "team/app", "anonymous", true); held != heldHost {
		t.Error("a second probe while the first is out")
	}
	clock.Add(25 * time.Second)
	if _, held := w.check("reg", "team/app", "anonymous", true); held != notHeld {
		t.Error("35 s after an unsettled probe of a 30 s window, still no new probe")
	}
}

// The probe of an ended host window goes to a lookup whose own repository
// is not held, and a repository-level answer to it closes the host window.
func TestHostProbeIsNotTakenByAHeldRepository(t *testing.T) {
	clock := newTestClock()
	w := newWindows(clock.Now, 30*time.Second)
	e := &Error{Reason: Unreachable, Flavour: FlavourServerError, Status: 503}
	w.openHost("reg", "team-b/api", 0, 10*time.Second, e)
	w.openRepo("reg", "team-a/app", "anonymous", 0, 20*time.Second, e)
	clock.Add(11 * time.Second)
	if _, held := w.check("reg", "team-a/app", "anonymous", true); held != heldRepo {
		t.Fatalf("the broken repository: %v, want its own window", held)
	}
	if _, held := w.check("reg", "team-b/api", "anonymous", true); held != notHeld {
		t.Fatal("the healthy repository was not let through as the host's probe")
	}
	clock.Add(10 * time.Second)
	w.openRepo("reg", "team-a/app", "anonymous", 0, 20*time.Second, e) // the broken one, answered by the host
	if _, held := w.check("reg", "team-c/web", "anonymous", true); held != notHeld {
		t.Errorf("after a repository-level answer: %v, want the host window closed", held)
	}
}

func TestWindowsAreBounded(t *testing.T) {
	clock := newTestClock()
	w := newWindows(clock.Now, 30*time.Second)
	e := &Error{Reason: Unreachable, Flavour: FlavourRefused}
	w.openHost("real", "team-a/app", 0, 30*time.Second, e)
	w.check("real", "team-b/api", "anonymous", true) // a second tenant meets it
	clock.Add(time.Second)
	for i := range 2 * maxRepoWindows / maxReposPerHost { // past the bound over all hosts
		for j := range maxReposPerHost {
			w.openRepo(fmt.Sprintf("busy%d", i), fmt.Sprintf("r/%d", j), "anonymous", 0, time.Hour, e)
		}
	}
	for i := range maxWindowHosts + 64 {
		w.openHost(fmt.Sprintf("junk%d", i), "x/y", 0, time.Hour, e)
		w.limit(fmt.Sprintf("quota%d", i), "x/y", "anonymous", maxBackoff, e)
	}
	for i := range maxReposPerHost + 64 {
		w.openRepo("real", fmt.Sprintf("noise/%d", i), "anonymous", 0, time.Hour, e)
		w.openRepo("shared", fmt.Sprintf("noise/%d", i), "anonymous", 0, time.Hour, e)
	}
	hosts, repos := w.count()
	if hosts > maxWindowHosts || repos > maxRepoWindows {
		t.Errorf("%d hosts and %d repository windows held, bounds %d and %d", hosts, repos, maxWindowHosts, maxRepoWindows)
	}
	for h, s := range w.hosts {
		if len(s.repos) > maxReposPerHost {
			t.Errorf("host %s holds %d repository windows, bound %d", h, len(s.repos), maxReposPerHost)
		}
	}
	if _, held := w.check("real", "team-c/web", "anonymous", true); held != heldHost {
		t.Errorf("the real outage: %v, want its host window kept", held)
	}
	clock.Add(2 * time.Hour)
	w.openHost("fresh", "x/y", 0, time.Second, e)
	if hosts, repos := w.count(); hosts != 1 || repos != 0 {
		t.Errorf("%d hosts and %d repository windows after all ended, want 1 and 0", hosts, repos)
	}
}

// BenchmarkWindowsFullOfHosts is the cost of a new host's window when the
// host bound is full: one scan of the hosts to find what may be evicted.
func BenchmarkWindowsFullOfHosts(b *testing.B) {
	clock := newTestClock()
	w := newWindows(clock.Now, 30*time.Second)
	e := &Error{Reason: Unreachable, Flavour: FlavourRefused}
	for i := range maxWindowHosts {
		w.openHost(fmt.Sprintf("junk%d", i), "x/y", 0, time.Hour, e)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.openHost(fmt.Sprintf("new%d", i), "x/y", 0, time.Hour, e)
	}
}
