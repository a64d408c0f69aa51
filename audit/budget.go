package audit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// budget is the audit's token bucket per registry host: perMinute requests
// a minute, burst 1. Requests are charged as they leave (Spend, never
// blocking: an admission may share the lookup); the audit waits before its
// next lookup until the host's bucket holds a token again. Over any window
// T a host so sees at most 1 + perMinute·T/1m requests, plus the few
// requests of the one lookup in flight when the bucket ran dry.
type budget struct {
	perMinute int
	now       func() time.Time

	mu    sync.Mutex
	hosts map[string]*rate.Limiter
}

func newBudget(perMinute int, now func() time.Time) *budget {
	return &budget{perMinute: perMinute, now: now, hosts: map[string]*rate.Limiter{}}
}

// maxBudgetHosts is where the budget starts forgetting hosts. Hosts are
// whatever images, token realms and redirect targets name, a new one per
// answer if a registry likes, and the budget lives as long as the process.
const maxBudgetHosts = 1024

func (b *budget) limiter(host string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.hosts[host]
	if !ok {
		if len(b.hosts) >= maxBudgetHosts {
			b.forgetFull()
		}
		l = rate.NewLimiter(rate.Limit(float64(b.perMinute)/60), 1)
		b.hosts[host] = l
	}
	return l
}

// forgetFull drops the hosts whose bucket is full again: a full bucket is
// what a host never seen gets, so nothing is lost. Hosts in debt stay (the
// audit waits for them); they are at most the hosts charged within the last
// few refills. Called locked.
func (b *budget) forgetFull() {
	now := b.now()
	for h, l := range b.hosts {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(b.hosts, h)
		}
	}
}

// Spend charges one request to host, going into debt if need be.
func (b *budget) Spend(host string) { b.limiter(host).ReserveN(b.now(), 1) }

// delay is how long until host's bucket holds a whole token; 0 if it does.
func (b *budget) delay(host string) time.Duration {
	l := b.limiter(host)
	t := l.TokensAt(b.now())
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) / float64(l.Limit()) * float64(time.Second))
}
