package registrytest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Blackhole is a registry in an outage as nodes often meet one: it accepts
// TCP connections on loopback and never answers a byte. It counts the
// connections, so a test can tell how often a client came knocking. Forward
// ends the outage: later connections are piped to a real registry, at the
// same address.
type Blackhole struct {
	Addr string // host:port

	l     net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
	to    string // forward target, "" while in the outage
	done  chan struct{}
}

// NewBlackhole listens on 127.0.0.1 until Close.
func NewBlackhole() (*Blackhole, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Blackhole{Addr: l.Addr().String(), l: l, done: make(chan struct{})}
	go b.serve()
	return b, nil
}

func (b *Blackhole) serve() {
	defer close(b.done)
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		b.conns.Add(1)
		b.mu.Lock()
		b.open = append(b.open, c) // held open, never read, never written
		to := b.to
		b.mu.Unlock()
		if to != "" {
			go pipe(c, to)
		}
	}
}

func pipe(c net.Conn, to string) {
	defer c.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
}

// Forward ends the outage: connections accepted from now on are piped to
// addr (host:port); the ones already held stay silent.
func (b *Blackhole) Forward(addr string) { b.mu.Lock(); b.to = addr; b.mu.Unlock() }

// Connections is how many connections were accepted so far.
func (b *Blackhole) Connections() int { return int(b.conns.Load()) }

// Close stops listening and drops every connection held.
func (b *Blackhole) Close() {
	b.l.Close()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.open {
		c.Close()
	}
	b.open = nil
}
