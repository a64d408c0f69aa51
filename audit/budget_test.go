package audit

import (
	"fmt"
	"testing"
	"time"
)

// The budget keeps a token bucket per host a background lookup sent a
// request to: image hosts, and the token realms and redirect targets a
// registry names, a new one per answer if it likes. It lives as long as the
// process, so it may hold only the hosts whose bucket is not full again: a
// full bucket is what a host never seen starts with, so forgetting it
// changes nothing, while a host in debt keeps its debt.
func TestBudgetHostsAreBounded(t *testing.T) {
	const bound = 1024 // the budget's host bound
	now := time.Unix(1_700_000_000, 0)
	b := newBudget(60, func() time.Time { return now })
	const hosts = 20_000
	for i := range hosts {
		b.Spend(fmt.Sprintf("blob%d.cdn.example", i))
		now = now.Add(100 * time.Millisecond)
	}
	b.mu.Lock()
	n := len(b.hosts)
	b.mu.Unlock()
	if n > bound {
		t.Errorf("%d hosts held after %d hosts asked once each, 100ms apart, want at most %d", n, hosts, bound)
	}

	// Every host in debt at once: none is forgotten, the audit still waits.
	now = now.Add(time.Hour)
	b.Spend("registry.corp.example")
	b.Spend("registry.corp.example")
	for i := range bound + 10 {
		b.Spend(fmt.Sprintf("again%d.cdn.example", i))
	}
	if d := b.delay("registry.corp.example"); d <= 0 {
		t.Errorf("delay of a host in debt = %s, want > 0", d)
	}
}
