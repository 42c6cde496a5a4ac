package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("pool is closed")

// ErrWaitTimeout is returned by Acquire when no connection became free within
// Options.WaitTimeout. It wraps context.DeadlineExceeded.
var ErrWaitTimeout = fmt.Errorf("timed out waiting for a free connection: %w", context.DeadlineExceeded)

// Conn is what a pool holds: anything that can be closed. Pools compare
// connections by identity, so C is normally a pointer type.
type Conn interface {
	comparable
	Close() error
}

// Options configures a Pool. The zero value of each duration means "never".
type Options[C Conn] struct {
	// Size is the most connections open at once (idle and in use). Must be >= 1.
	Size int
	// MinIdle connections are kept open even when unused.
	MinIdle int
	// IdleTimeout closes a connection that sat idle longer than this.
	IdleTimeout time.Duration
	// Lifetime closes a connection older than this when it is released.
	Lifetime time.Duration
	// WaitTimeout bounds how long Acquire waits for a free connection when
	// the pool is full; 0 waits until the caller's context ends.
	WaitTimeout time.Duration
	// Dial opens a new connection; it must honour ctx.
	Dial func(ctx context.Context) (C, error)
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	Total   int // open connections, idle and in use, including ones being dialled
	Idle    int
	Waiting int // callers blocked in Acquire
}

type entry struct {
	created  time.Time
	released time.Time
	acquired time.Time
	idle     bool
}

type result[C Conn] struct {
	c   C
	err error
}

// Pool is a bounded set of connections handed out one caller at a time. It
// is safe for concurrent use. Idle connections are reused most recently
// released first, so a busy pool keeps its warm connections warm.
type Pool[C Conn] struct {
	opts Options[C]

	mu      sync.Mutex
	conns   map[C]*entry
	idle    []C // stack: the last element is the most recently released
	total   int // len(conns) plus dials in progress
	waiters []chan result[C]
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// New returns a pool and starts its maintenance goroutine, which ends when
// Close is called.
func New[C Conn](opts Options[C]) *Pool[C] {
	if opts.Size < 1 {
		opts.Size = 1
	}
	if opts.MinIdle > opts.Size {
		opts.MinIdle = opts.Size
	}
	p := &Pool[C]{
		opts:  opts,
		conns: make(map[C]*entry),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.maintain()
	return p
}

// Acquire returns a connection for the caller's exclusive use until it calls
// Release or Discard. It dials a new one when the pool has room, and
// otherwise waits for one to be released, up to WaitTimeout.
func (p *Pool[C]) Acquire(ctx context.Context) (C, error) {
	var zero C
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return zero, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		e := p.conns[c]
		e.idle, e.acquired = false, time.Now()
		p.mu.Unlock()
		return c, nil
	}
	if p.total < p.opts.Size {
		p.total++
		p.mu.Unlock()
		return p.dial(ctx)
	}
	ch := make(chan result[C], 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()

	var timeout <-chan time.Time
	if p.opts.WaitTimeout > 0 {
		t := time.NewTimer(p.opts.WaitTimeout)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrWaitTimeout
	}
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return zero, err
		}
	}
	p.mu.Unlock()
	// A connection (or an error) was handed to us while we gave up.
	if r := <-ch; r.err == nil {
		p.Release(r.c)
	}
	return zero, err
}

// dial opens a connection for a slot already counted in p.total.
func (p *Pool[C]) dial(ctx context.Context) (C, error) {
	c, err := p.opts.Dial(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.total--
		var zero C
		return zero, err
	}
	if p.closed {
		p.total--
		go c.Close()
		var zero C
		return zero, ErrClosed
	}
	now := time.Now()
	p.conns[c] = &entry{created: now, released: now, acquired: now}
	return c, nil
}

// Release gives a healthy connection back. A connection past its lifetime
// is closed instead.
func (p *Pool[C]) Release(c C) {
	p.mu.Lock()
	e, ok := p.conns[c]
	if !ok || e.idle {
		p.mu.Unlock()
		return
	}
	if p.closed || (p.opts.Lifetime > 0 && time.Since(e.created) > p.opts.Lifetime) {
		p.removeLocked(c)
		p.mu.Unlock()
		c.Close()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		e.acquired = time.Now()
		p.mu.Unlock()
		w <- result[C]{c: c}
		return
	}
	e.idle = true
	e.released = time.Now()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Discard closes a connection and forgets it, whether it is idle or in use.
// It is safe to call more than once. A caller waiting for a connection gets a
// newly dialled one in its place.
func (p *Pool[C]) Discard(c C) {
	p.mu.Lock()
	_, ok := p.conns[c]
	if ok {
		p.removeLocked(c)
	}
	p.mu.Unlock()
	if ok {
		c.Close()
	}
}

// removeLocked forgets c and, when callers are waiting, dials a replacement
// for the first of them.
func (p *Pool[C]) removeLocked(c C) {
	e := p.conns[c]
	delete(p.conns, c)
	p.total--
	if e.idle {
		for i, ic := range p.idle {
			if ic == c {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
	}
	if len(p.waiters) > 0 && !p.closed && p.total < p.opts.Size {
		p.total++
		go p.dialForWaiter()
	}
}

func (p *Pool[C]) dialForWaiter() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := p.dial(ctx)
	p.mu.Lock()
	if len(p.waiters) == 0 {
		p.mu.Unlock()
		if err == nil {
			p.Release(c)
		}
		return
	}
	w := p.waiters[0]
	p.waiters = p.waiters[1:]
	p.mu.Unlock()
	w <- result[C]{c: c, err: err}
}

// Stats returns the pool's counters.
func (p *Pool[C]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Total: p.total, Idle: len(p.idle), Waiting: len(p.waiters)}
}

// ConnInfo describes one open connection of a pool.
type ConnInfo[C Conn] struct {
	Conn C
	// Created is when it was dialled; Acquired when it was last handed
	// out (Created if never); Released when it was last given back.
	Created, Acquired, Released time.Time
	Idle                        bool
}

// Conns returns the pool's open connections, idle and in use (not those
// being dialled), oldest first. It is a snapshot: the connections may
// change hands at once, and the caller must not use them.
func (p *Pool[C]) Conns() []ConnInfo[C] {
	p.mu.Lock()
	out := make([]ConnInfo[C], 0, len(p.conns))
	for c, e := range p.conns {
		out = append(out, ConnInfo[C]{Conn: c, Created: e.created, Acquired: e.acquired, Released: e.released, Idle: e.idle})
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b ConnInfo[C]) int { return a.Created.Compare(b.Created) })
	return out
}

// Close closes the idle connections, fails waiting callers with ErrClosed and
// stops maintenance. Connections in use are closed when they are released or
// discarded.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		delete(p.conns, c)
		p.total--
	}
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	for _, w := range waiters {
		w <- result[C]{err: ErrClosed}
	}
	for _, c := range idle {
		c.Close()
	}
}

// maintain closes connections idle or alive too long and keeps MinIdle open.
func (p *Pool[C]) maintain() {
	defer close(p.done)
	interval := time.Second
	if p.opts.IdleTimeout > 0 && p.opts.IdleTimeout/2 < interval {
		interval = max(p.opts.IdleTimeout/2, 10*time.Millisecond)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p.prune()
		p.fill()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (p *Pool[C]) prune() {
	now := time.Now()
	var victims []C
	p.mu.Lock()
	// Oldest released first: they sit at the bottom of the stack.
	for i := 0; i < len(p.idle); {
		c := p.idle[i]
		e := p.conns[c]
		old := p.opts.Lifetime > 0 && now.Sub(e.created) > p.opts.Lifetime
		stale := p.opts.IdleTimeout > 0 && now.Sub(e.released) > p.opts.IdleTimeout && p.total > p.opts.MinIdle
		if old || stale {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			delete(p.conns, c)
			p.total--
			victims = append(victims, c)
			continue
		}
		i++
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
}

func (p *Pool[C]) fill() {
	for {
		p.mu.Lock()
		if p.closed || len(p.idle) >= p.opts.MinIdle || p.total >= p.opts.Size {
			p.mu.Unlock()
			return
		}
		p.total++
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := p.dial(ctx)
		cancel()
		if err != nil {
			return // the next tick tries again
		}
		p.Release(c)
	}
}
