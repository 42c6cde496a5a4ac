// Package faultproxy is a TCP proxy for tests that puts network faults
// between a client (pgshard) and a server (a PostgreSQL shard): it
// forwards bytes both ways until told to stall, cut, refuse, close a
// connection during its login, delay, or fail when the client sends a
// given text. It knows nothing of the PostgreSQL protocol beyond matching
// bytes.
//
// A Proxy is safe for concurrent use. Every goroutine it starts ends by
// Close.
package faultproxy

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy listens on 127.0.0.1 and forwards each connection to its target.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	accepted atomic.Int64

	mu    sync.Mutex
	links map[*link]struct{}
	// resume is closed when a stall ends; nil while not stalled.
	resume chan struct{}
	// refuse closes new connections as soon as they are accepted.
	refuse bool
	// closeAfter closes a new connection once this many bytes came from
	// the server (0: off).
	closeAfter int
	delay      time.Duration
	trigger    *trigger
	closed     bool
}

// trigger is a one-shot fault on a text the client sends.
type trigger struct {
	pattern []byte
	forward bool
	fired   chan struct{}
}

// link is one proxied connection: the client's and the server's side.
type link struct {
	client, server net.Conn
	// fromServer counts bytes forwarded from the server.
	fromServer int
	// tail holds the last bytes the client sent, so that a pattern split
	// between two reads is still found.
	tail []byte
}

// Start listens on a free port of 127.0.0.1 and forwards connections to
// target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// Accepted counts the connections accepted so far, refused ones included.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Open counts the connections open now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Stall stops forwarding, both ways, on every connection, new ones
// included (they are accepted and hear nothing), until Heal. Nothing is
// closed.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
}

// Cut closes every open connection, both sides. New connections are
// still forwarded.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

func (p *Proxy) cutLocked() {
	for l := range p.links {
		l.client.Close()
		l.server.Close()
	}
}

// Refuse closes new connections as soon as they are accepted, until Heal.
// Open ones go on.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	p.refuse = true
	p.mu.Unlock()
}

// CloseAfterServerBytes closes each new connection once n bytes came from
// the server (the first bytes of its login, say), without forwarding
// more, until Heal.
func (p *Proxy) CloseAfterServerBytes(n int) {
	p.mu.Lock()
	p.closeAfter = n
	p.mu.Unlock()
}

// Delay holds every chunk of bytes, both ways, for d before forwarding
// it, until Heal.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// FailOn arms a one-shot fault: the first time a client sends pattern,
// the proxy forwards the bytes that carry it (when forward) or drops them,
// then cuts every connection and refuses new ones until Heal: the server
// becomes unreachable at that point of the conversation. The returned
// channel is closed when the fault fires.
func (p *Proxy) FailOn(pattern string, forward bool) <-chan struct{} {
	tr := &trigger{pattern: []byte(pattern), forward: forward, fired: make(chan struct{})}
	p.mu.Lock()
	p.trigger = tr
	p.mu.Unlock()
	return tr.fired
}

// Heal ends every fault: a stall resumes, connections are accepted and
// forwarded whole and at once again, an armed FailOn is disarmed.
// Connections already cut stay closed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
	p.refuse = false
	p.closeAfter = 0
	p.delay = 0
	p.trigger = nil
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
	p.cutLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects c to the target and forwards until either side ends.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	l := &link{client: c, server: s}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.links[l] = struct{}{}
	closeAfter := p.closeAfter
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(l, c, s, false, 0); done <- struct{}{} }()
	go func() { p.pipe(l, s, c, true, closeAfter); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pipe copies from src to dst, applying the faults in force at each
// chunk. fromServer says the direction; closeAfter is the link's login
// fault (0: none).
func (p *Proxy) pipe(l *link, src, dst net.Conn, fromServer bool, closeAfter int) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if !p.wait() {
				return
			}
			if fromServer && closeAfter > 0 {
				if left := closeAfter - l.fromServer; n >= left {
					dst.Write(chunk[:left])
					return
				}
			}
			fire, forward := false, true
			if !fromServer {
				fire, forward = p.match(l, chunk)
			}
			if forward {
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
			}
			if fromServer {
				l.fromServer += n
			}
			if fire {
				p.mu.Lock()
				p.refuse = true
				p.cutLocked()
				p.mu.Unlock()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait blocks while the proxy is stalled and then sleeps the delay; it
// reports false when the proxy closed meanwhile.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	resume, delay, closed := p.resume, p.delay, p.closed
	p.mu.Unlock()
	if resume != nil {
		<-resume
		p.mu.Lock()
		closed = p.closed
		p.mu.Unlock()
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	return !closed
}

// match checks a client chunk against the armed trigger: fire says it
// matched (and is now spent), forward whether the chunk still goes on.
func (p *Proxy) match(l *link, chunk []byte) (fire, forward bool) {
	p.mu.Lock()
	tr := p.trigger
	p.mu.Unlock()
	if tr == nil {
		return false, true
	}
	hay := append(append([]byte(nil), l.tail...), chunk...)
	if keep := len(tr.pattern) - 1; len(hay) > keep {
		l.tail = append(l.tail[:0], hay[len(hay)-keep:]...)
	} else {
		l.tail = hay
	}
	if !bytes.Contains(hay, tr.pattern) {
		return false, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.trigger != tr {
		return false, true // another connection fired it first
	}
	p.trigger = nil
	close(tr.fired)
	return true, tr.forward
}

// String describes the proxy for test logs.
func (p *Proxy) String() string { return fmt.Sprintf("faultproxy %s -> %s", p.Addr(), p.target) }
