package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeConn struct {
	id     int
	closed atomic.Bool
}

func (c *fakeConn) Close() error { c.closed.Store(true); return nil }

type dialer struct {
	mu    sync.Mutex
	n     int
	fail  error
	delay time.Duration
}

func (d *dialer) dial(ctx context.Context) (*fakeConn, error) {
	if d.delay > 0 {
		select {
		case <-time.After(d.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	d.n++
	return &fakeConn{id: d.n}, nil
}

func (d *dialer) dials() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func newPool(t *testing.T, d *dialer, opts Options[*fakeConn]) *Pool[*fakeConn] {
	t.Helper()
	opts.Dial = d.dial
	p := New(opts)
	t.Cleanup(p.Close)
	return p
}

func TestReuseMostRecentlyReleased(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 3})
	ctx := context.Background()
	a, _ := p.Acquire(ctx)
	b, _ := p.Acquire(ctx)
	p.Release(a)
	p.Release(b)
	c, _ := p.Acquire(ctx)
	if c != b {
		t.Fatalf("got conn %d, want the most recently released %d", c.id, b.id)
	}
	if d.dials() != 2 {
		t.Fatalf("dialled %d times, want 2", d.dials())
	}
}

func TestWaitTimeout(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 1, WaitTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	a, _ := p.Acquire(ctx)
	start := time.Now()
	_, err := p.Acquire(ctx)
	if !errors.Is(err, ErrWaitTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrWaitTimeout", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("waited far longer than WaitTimeout")
	}
	if st := p.Stats(); st.Waiting != 0 {
		t.Fatalf("waiters left behind: %+v", st)
	}
	p.Release(a)
	if _, err := p.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaiterGetsReleasedConn(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 1})
	ctx := context.Background()
	a, _ := p.Acquire(ctx)
	got := make(chan *fakeConn)
	go func() {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	p.Release(a)
	if c := <-got; c != a {
		t.Fatalf("waiter got %v, want the released conn", c)
	}
}

func TestDiscardDialsForWaiter(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 1})
	ctx := context.Background()
	a, _ := p.Acquire(ctx)
	got := make(chan *fakeConn)
	go func() {
		c, _ := p.Acquire(ctx)
		got <- c
	}()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	p.Discard(a)
	c := <-got
	if c == nil || c == a || !a.closed.Load() {
		t.Fatalf("waiter got %v; discarded conn closed=%v", c, a.closed.Load())
	}
	p.Discard(a) // twice is harmless
	if st := p.Stats(); st.Total != 1 {
		t.Fatalf("total = %d, want 1", st.Total)
	}
}

func TestDialErrorFreesSlot(t *testing.T) {
	boom := errors.New("connection refused")
	d := &dialer{fail: boom}
	p := newPool(t, d, Options[*fakeConn]{Size: 1})
	for i := 0; i < 3; i++ {
		if _, err := p.Acquire(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	}
	if st := p.Stats(); st.Total != 0 {
		t.Fatalf("failed dials still counted: %+v", st)
	}
}

func TestContextCancelWhileWaiting(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 1})
	a, _ := p.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := p.Acquire(ctx)
		errc <- err
	}()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	p.Release(a)
	if st := p.Stats(); st.Idle != 1 || st.Waiting != 0 {
		t.Fatalf("stats after cancel: %+v", st)
	}
}

func TestIdleTimeoutAndMinIdle(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 4, MinIdle: 1, IdleTimeout: 30 * time.Millisecond})
	ctx := context.Background()
	var cs []*fakeConn
	for i := 0; i < 3; i++ {
		c, _ := p.Acquire(ctx)
		cs = append(cs, c)
	}
	for _, c := range cs {
		p.Release(c)
	}
	waitFor(t, func() bool { return p.Stats().Total == 1 })
	closed := 0
	for _, c := range cs {
		if c.closed.Load() {
			closed++
		}
	}
	if closed != 2 {
		t.Fatalf("%d idle conns closed, want 2 (MinIdle keeps one)", closed)
	}
}

func TestMinIdleFilled(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 4, MinIdle: 2})
	waitFor(t, func() bool { st := p.Stats(); return st.Idle == 2 && st.Total == 2 })
}

func TestLifetime(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 2, Lifetime: 20 * time.Millisecond})
	a, _ := p.Acquire(context.Background())
	time.Sleep(30 * time.Millisecond)
	p.Release(a)
	if !a.closed.Load() {
		t.Fatal("conn past its lifetime went back to the pool")
	}
	if st := p.Stats(); st.Total != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestCloseFailsWaiters(t *testing.T) {
	d := &dialer{}
	p := New(Options[*fakeConn]{Size: 1, Dial: d.dial})
	a, _ := p.Acquire(context.Background())
	errc := make(chan error)
	go func() {
		_, err := p.Acquire(context.Background())
		errc <- err
	}()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	p.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	p.Release(a)
	if !a.closed.Load() {
		t.Fatal("conn released after Close was not closed")
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
}

// TestConcurrent hammers the pool; run with -race.
func TestConcurrent(t *testing.T) {
	d := &dialer{}
	p := newPool(t, d, Options[*fakeConn]{Size: 3})
	var inUse atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				c, err := p.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n := inUse.Add(1); n > 3 {
					t.Errorf("%d conns in use, pool size 3", n)
				}
				inUse.Add(-1)
				if i%50 == 0 {
					p.Discard(c)
				} else {
					p.Release(c)
				}
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.Total > 3 || st.Waiting != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	d := &dialer{}
	p := New(Options[*fakeConn]{Size: 8, Dial: d.dial})
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, _ := p.Acquire(ctx)
		p.Release(c)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
