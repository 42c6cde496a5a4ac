package faultproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers every line with "hello\n" first, then echoes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hello\n"))
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func line(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func TestFaults(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Forwarding.
	c, r := dial(t, p)
	if l, err := line(r); l != "hello" || err != nil {
		t.Fatalf("greeting: %q, %v", l, err)
	}
	c.Write([]byte("one\n"))
	if l, err := line(r); l != "one" || err != nil {
		t.Fatalf("echo: %q, %v", l, err)
	}

	// Stall: nothing comes back until Heal.
	p.Stall()
	c.Write([]byte("two\n"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if l, err := line(r); err == nil {
		t.Fatalf("read %q while stalled", l)
	}
	p.Heal()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, err := line(bufio.NewReader(io.MultiReader(strings.NewReader(""), c))); l != "two" || err != nil {
		t.Fatalf("after the stall: %q, %v", l, err)
	}

	// Cut closes what is open.
	p.Cut()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection open after Cut")
	}

	// Refuse closes new connections; Heal accepts them again.
	p.Refuse()
	_, r = dial(t, p)
	if l, err := line(r); err == nil {
		t.Fatalf("read %q from a refused connection", l)
	}
	p.Heal()
	_, r = dial(t, p)
	if l, err := line(r); l != "hello" || err != nil {
		t.Fatalf("after Refuse and Heal: %q, %v", l, err)
	}

	// CloseAfterServerBytes: three bytes of the greeting, then closed.
	p.CloseAfterServerBytes(3)
	_, r = dial(t, p)
	got, err := io.ReadAll(r)
	if string(got) != "hel" {
		t.Fatalf("CloseAfterServerBytes(3): got %q, %v", got, err)
	}
	p.Heal()

	// FailOn: the matching bytes are dropped, the connection cut, new ones
	// refused.
	c, r = dial(t, p)
	line(r)
	fired := p.FailOn("boom", false)
	c.Write([]byte("bo"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("om\n"))
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("FailOn did not fire on a pattern split over two writes")
	}
	// "bo" went through before the pattern was whole; "om" must not.
	if rest, _ := io.ReadAll(r); strings.Contains(string(rest), "om") {
		t.Fatalf("read %q after FailOn fired", rest)
	}
	_, r = dial(t, p)
	if l, err := line(r); err == nil {
		t.Fatalf("read %q from a connection after FailOn", l)
	}
	p.Heal()
	deadline := time.Now().Add(5 * time.Second)
	for p.Open() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := p.Open(); n != 0 {
		t.Errorf("%d connections open after every client left", n)
	}
}
