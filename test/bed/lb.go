package bed

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// LB is a TCP load balancer on loopback standing in for a Service: each new
// connection goes to one of the ready backends (round robin), and a backend
// leaves the rotation as soon as its readiness URL fails, as an endpoint
// turns NotReady and kube-proxy stops sending new connections to it.
// Connections already open stay with their backend, as conntrack keeps
// them; nothing is retried on another backend.
type LB struct {
	Addr string // host:port to put in the webhook configuration

	ln       net.Listener
	interval time.Duration
	mu       sync.Mutex
	backends []*lbBackend
	next     int
	stop     context.CancelFunc
	wg       sync.WaitGroup

	// DialFailures counts connections the LB could not hand to a backend
	// (none ready, or the dial failed): each is a failed webhook call.
	DialFailures atomic.Int64
}

type lbBackend struct {
	name, addr, readyURL string
	ready                atomic.Bool
}

// StartLB listens on a free loopback port and probes backends every interval.
func StartLB(interval time.Duration) (*LB, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lb := &LB{Addr: ln.Addr().String(), ln: ln, interval: interval, stop: cancel}
	lb.wg.Add(2)
	go func() { defer lb.wg.Done(); lb.accept() }()
	go func() { defer lb.wg.Done(); lb.probe(ctx) }()
	return lb, nil
}

// Add puts a backend behind the LB; it takes connections once readyURL
// answers 200.
func (lb *LB) Add(name, addr, readyURL string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.backends = append(lb.backends, &lbBackend{name: name, addr: addr, readyURL: readyURL})
}

// Ready lists the backends in rotation.
func (lb *LB) Ready() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []string
	for _, b := range lb.backends {
		if b.ready.Load() {
			out = append(out, b.name)
		}
	}
	return out
}

// Stop closes the listener and stops probing; open connections end with
// their peers.
func (lb *LB) Stop() {
	if lb == nil {
		return
	}
	lb.stop()
	lb.ln.Close()
	lb.wg.Wait()
}

func (lb *LB) probe(ctx context.Context) {
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(lb.interval)
	defer t.Stop()
	for {
		lb.mu.Lock()
		bs := append([]*lbBackend(nil), lb.backends...)
		lb.mu.Unlock()
		for _, b := range bs {
			resp, err := client.Get(b.readyURL)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			b.ready.Store(ok)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pick returns the next ready backend, round robin.
func (lb *LB) pick() *lbBackend {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for range lb.backends {
		b := lb.backends[lb.next%len(lb.backends)]
		lb.next++
		if b.ready.Load() {
			return b
		}
	}
	return nil
}

func (lb *LB) accept() {
	for {
		c, err := lb.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		go lb.forward(c)
	}
}

func (lb *LB) forward(c net.Conn) {
	defer c.Close()
	b := lb.pick()
	if b == nil {
		lb.DialFailures.Add(1)
		return
	}
	s, err := net.DialTimeout("tcp", b.addr, time.Second)
	if err != nil {
		lb.DialFailures.Add(1)
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // pass the half-close on, as a NAT does
		}
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	<-done
}
