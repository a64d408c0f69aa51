package registry

// AdoptWindows makes r, just built to replace prev after a config reload,
// go on with prev's rate-limit and outage windows: a reload must not let
// pullsafe ask a registry that said "come back in 15 minutes" at once, nor
// forget an outage it is waiting out. Call it before r is used. A nil prev
// adopts nothing.
func (r *Resolver) AdoptWindows(prev *Resolver) {
	if prev == nil || prev == r {
		return
	}
	r.adoptWindows(prev)
}

// adoptWindows moves prev's windows to r. The windows keep their own ends
// (a window's length was decided when it opened), so they carry over
// whatever the new outage window setting; with outages off (0) the outage
// windows are simply never read.
func (r *Resolver) adoptWindows(prev *Resolver) {
	r.windows = prev.windows
	// How long a repository's failure counts towards the host's threshold
	// is one outage window: the new setting's, from now on.
	r.windows.mu.Lock()
	r.windows.tally = r.o.outageWindow
	r.windows.mu.Unlock()
}
