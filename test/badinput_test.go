package test

// Bad input: clients that send malformed, oversized or truncated messages,
// stall, vanish mid-query, mid-transaction or mid-COPY, or come in floods.
// Each case checks what the client gets, that the proxy goes on serving,
// that backends are left neither running nor in a transaction, and (per
// test) that no goroutine is left behind.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgshard/pgshard/proxy"
)

// msgHeader is a message type byte and a length field as sent, whatever
// the length says.
func msgHeader(typ byte, length uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, length)
}

// startupBytes encodes a StartupMessage for protocol 3.0.
func startupBytes(t testing.TB, params map[string]string) []byte {
	t.Helper()
	b, err := (&pgproto3.StartupMessage{ProtocolVersion: proto30, Parameters: params}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startup30 frames body (the parameters) as a protocol 3.0 startup packet
// with a correct length, whatever the body holds.
func startup30(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, proto30)
	return append(b, body...)
}

// expectClosedWithin checks that the proxy closes the connection, sending
// nothing, between min and max from start.
func (c *rawConn) expectClosedWithin(start time.Time, min, max time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(start.Add(max))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	elapsed := time.Since(start)
	switch {
	case n > 0:
		rest, _ := io.ReadAll(io.LimitReader(c.nc, 512))
		c.t.Fatalf("proxy sent %q, want the connection closed without a reply", append(b[:1], rest...))
	case !isClosed(err):
		c.t.Fatalf("after %v: %v; want the connection closed by %v", elapsed.Round(time.Millisecond), err, max)
	case elapsed < min:
		c.t.Fatalf("connection closed after %v, before the %v it should have been given", elapsed.Round(time.Millisecond), min)
	}
}

// createTestTable makes a table owned by app on the backend, dropped when
// the test ends.
func createTestTable(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	if err := backend.Exec(ctx, "app", fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (id int); ALTER TABLE %[1]s OWNER TO app", name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Exec(context.Background(), "app", "DROP TABLE IF EXISTS "+name) })
}

// tableCount is the number of rows in a table, read on the backend.
func tableCount(t testing.TB, name string) int64 {
	t.Helper()
	n, err := backend.QueryInt(context.Background(), "app", "SELECT count(*) FROM "+name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLeftClean is what each client-gone case ends with: no backend of
// app is left running or in a transaction, table holds want rows, and still
// does after the next client has used the pool's (single) backend: a
// transaction left open on a pooled backend would be committed by it.
//
// It also checks that no backend of app has a transaction open
// (pg_stat_activity.xact_start), and, through the next client on the
// pool's backend, that none of the departed client's prepared statements
// (goneStatements) is left there under its own name, and that the next
// client can prepare each of those names itself.
func checkLeftClean(t testing.TB, p *testProxy, table string, want int64) {
	t.Helper()
	waitBackendsClean(t)
	if n, err := backend.QueryInt(context.Background(), "postgres",
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND xact_start IS NOT NULL"); err != nil || n != 0 {
		t.Errorf("%d backends of app have a transaction open once the client left (%v)", n, err)
	}
	if n := tableCount(t, table); n != want {
		t.Errorf("%s has %d rows once the client left, want %d", table, n, want)
	}
	checkProxyServes(t, p)
	if n := tableCount(t, table); n != want {
		t.Errorf("%s has %d rows after the next client used the backend, want %d: the departed client's work was left open on a pooled backend and committed by the next client", table, n, want)
	}
	checkNoLeftoverStatements(t, p)
}

// goneStatements are the names of the prepared statements the clients of
// the client-gone tests make before they vanish.
var goneStatements = []string{"gone_tx", "gone_pipe_1", "gone_pipe_2", "gone_pipe_3", "gone_copy"}

// checkNoLeftoverStatements logs in as the next client (on a pool of one
// backend, the departed client's backend) and checks that the backend
// holds no prepared statement of the client's naming (pgshard's own are
// named pgshard_...), and that each of goneStatements can be prepared
// and run again, with another text.
func checkNoLeftoverStatements(t testing.TB, p *testProxy) {
	t.Helper()
	c := loginTrust(t, p)
	defer c.nc.Close()
	r := c.query(`SELECT name FROM pg_prepared_statements WHERE name NOT LIKE 'pgshard\_%'`)
	if r.err != nil || len(r.rows) != 0 {
		t.Errorf("the next client's backend holds prepared statements %q (%v), want none of the departed client's", r.rows, r.err)
	}
	var msgs []pgproto3.FrontendMessage
	for i, name := range goneStatements {
		msgs = append(msgs, &pgproto3.Parse{Name: name, Query: fmt.Sprintf("SELECT %d AS again", i)},
			&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{})
	}
	c.send(append(msgs, &pgproto3.Sync{})...)
	r = c.readResult()
	if r.err != nil || len(r.rows) != len(goneStatements) || r.status != 'I' {
		t.Errorf("the next client preparing the departed client's statement names: rows %q, status %q, err %+v", r.rows, r.status, r.err)
	}
}

// heapUnder fails the test if the heap has grown beyond limit bytes, or
// more than limit bytes were allocated since before.
func heapUnder(t testing.TB, before *runtime.MemStats, limit uint64) {
	t.Helper()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > limit {
		t.Errorf("heap is %d MiB, want under %d MiB", after.HeapAlloc>>20, limit>>20)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > limit {
		t.Errorf("%d MiB allocated during the case, want under %d MiB", d>>20, limit>>20)
	}
}

// TestBadInputStartupLength: a startup packet whose length is under 8 or
// over 10000 bytes (PostgreSQL's limits), or 8 with nothing in it, is
// refused with FATAL 08P01; one of exactly 10000 bytes is fine.
func TestBadInputStartupLength(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"0", []byte{0, 0, 0, 0}},
		{"4", []byte{0, 0, 0, 4}},
		{"7", []byte{0, 0, 0, 7, 0, 3, 0}},
		{"8-empty", []byte{0, 0, 0, 8, 0, 3, 0, 0}},
		{"10001", []byte{0, 0, 0x27, 0x11}},
		{"2^31-1", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"2^32-1", []byte{0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c := dialRaw(t, p.addr)
			c.write(tc.send)
			c.expectError("FATAL", "08P01")
			heapUnder(t, &before, 100<<20)
			checkProxyServes(t, p)
		})
	}
	t.Run("10000-is-accepted", func(t *testing.T) {
		params := map[string]string{"user": "trustuser", "database": "app", "application_name": "x"}
		pad := 10000 - len(startupBytes(t, params))
		params["application_name"] = strings.Repeat("x", pad+1)
		pkt := startupBytes(t, params)
		if len(pkt) != 10000 {
			t.Fatalf("startup packet is %d bytes", len(pkt))
		}
		c := dialRaw(t, p.addr)
		c.write(pkt)
		c.finishLogin()
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	})
	waitBackendsClean(t)
}

// TestBadInputStalledLogin: a client that stops sending before it has
// logged in is disconnected after ClientLoginTimeout, without a reply
// (PostgreSQL's authentication_timeout does the same), however it stalls.
func TestBadInputStalledLogin(t *testing.T) {
	checkNoGoroutineLeak(t)
	const timeout = 500 * time.Millisecond
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.ClientLoginTimeout = timeout }})
	full := startupBytes(t, map[string]string{"user": "trustuser", "database": "app"})
	for _, tc := range []struct {
		name string
		run  func(c *rawConn)
	}{
		{"nothing-sent", func(c *rawConn) {}},
		{"half-a-length", func(c *rawConn) { c.write([]byte{0, 0}) }},
		{"truncated-startup", func(c *rawConn) { c.write(full[:len(full)/2]) }},
		{"after-SSLRequest", func(c *rawConn) {
			c.write(encRequest(codeSSLRequest))
			if b := c.readByte(); b != 'N' {
				t.Fatalf("SSLRequest answered %q", b)
			}
		}},
		{"during-SCRAM", func(c *rawConn) {
			c.startup(proto30, map[string]string{"user": "app", "database": "app"})
			c.expectSASL()
		}},
		{"during-md5", func(c *rawConn) {
			c.startup(proto30, map[string]string{"user": "md5user", "database": "app"})
			if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.AuthenticationMD5Password" {
				t.Fatalf("got %T", m)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c := dialRaw(t, p.addr)
			tc.run(c)
			c.expectClosedWithin(start, timeout-100*time.Millisecond, timeout+2*time.Second)
			checkProxyServes(t, p)
		})
	}
	// A client that trickles its startup packet a byte at a time does not
	// get more time than one that stalls.
	t.Run("trickle", func(t *testing.T) {
		start := time.Now()
		c := dialRaw(t, p.addr)
		for i := 0; i < len(full)-1 && time.Since(start) < timeout+2*time.Second; i++ {
			if _, err := c.nc.Write(full[i : i+1]); err != nil {
				break // closed, as it should be
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.expectClosedWithin(start, timeout-100*time.Millisecond, timeout+2*time.Second)
		checkProxyServes(t, p)
	})
	// Logged-in clients are not bound by the login timeout.
	t.Run("idle-after-login-stays", func(t *testing.T) {
		c := loginTrust(t, p)
		time.Sleep(2 * timeout)
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	})
	waitBackendsClean(t)
}

// TestBadInputHalfStartupThenClose: a client that sends part of a
// startup-phase message and then closes its side gets nothing back but
// the close; the proxy does not wait for the login timeout to notice.
func TestBadInputHalfStartupThenClose(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	full := startupBytes(t, map[string]string{"user": "app", "database": "app"})
	for _, tc := range []struct {
		name string
		run  func(c *rawConn)
	}{
		{"two-bytes", func(c *rawConn) { c.write([]byte{0, 0}) }},
		{"half-startup", func(c *rawConn) { c.write(full[:len(full)/2]) }},
		{"all-but-one-byte", func(c *rawConn) { c.write(full[:len(full)-1]) }},
		{"after-SSLRequest", func(c *rawConn) {
			c.write(encRequest(codeSSLRequest))
			if b := c.readByte(); b != 'N' {
				t.Fatalf("SSLRequest answered %q", b)
			}
			c.write(full[:10])
		}},
		{"half-SASLInitialResponse", func(c *rawConn) {
			c.write(full)
			c.expectSASL()
			b, _ := (&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abcdefghijkl")}).Encode(nil)
			c.write(b[:len(b)/2])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c := dialRaw(t, p.addr)
			tc.run(c)
			if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.expectClosedWithin(start, 0, 2*time.Second)
			checkProxyServes(t, p)
		})
	}
	waitBackendsClean(t)
}

// TestBadInputHugeMessageLength: after login, a message whose length field
// says 2^31-1 (or anything over MaxMessageSize) is refused at once with
// FATAL 54000, without the proxy allocating or waiting for the body; an
// open transaction is rolled back.
func TestBadInputHugeMessageLength(t *testing.T) {
	checkNoGoroutineLeak(t)
	createTestTable(t, "badinput_huge")
	p := startProxy(t, proxyConfig{poolSize: 1})
	for _, typ := range []byte{'Q', 'P', 'B', 'E', 'x', 'd'} {
		t.Run(fmt.Sprintf("%c", typ), func(t *testing.T) {
			c := loginTrust(t, p)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c.nc.SetDeadline(time.Now().Add(3 * time.Second))
			c.write(append(msgHeader(typ, 1<<31-1), "SELECT 1"...))
			if typ == 'd' {
				// CopyData outside COPY is not held to MaxMessageSize, but
				// PostgreSQL refuses any message over 1 GB (08P01).
				c.expectErrorOneOf("FATAL", "54000", "08P01")
			} else {
				c.expectError("FATAL", "54000")
			}
			heapUnder(t, &before, 100<<20)
			checkProxyServes(t, p)
		})
	}
	t.Run("in-transaction", func(t *testing.T) {
		c := loginTrust(t, p)
		c.query("BEGIN")
		if r := c.query("INSERT INTO badinput_huge VALUES (1)"); r.err != nil || r.status != 'T' {
			t.Fatalf("INSERT: status %q, err %v", r.status, r.err)
		}
		c.write(msgHeader('Q', 1<<31-1))
		c.expectError("FATAL", "54000")
		checkLeftClean(t, p, "badinput_huge", 0)
	})

	// MaxMessageSize set low: just under it works, just over it is refused.
	small := startProxy(t, proxyConfig{poolSize: 1, edit: func(o *proxy.Options) { o.MaxMessageSize = 64 << 10 }})
	t.Run("max-message-size", func(t *testing.T) {
		c := loginTrust(t, small)
		q := "SELECT length('" + strings.Repeat("x", 60<<10) + "')"
		if got := c.queryOne(q); got != fmt.Sprint(60<<10) {
			t.Fatalf("got %q", got)
		}
		c.write(append(msgHeader('Q', 64<<10+4+1), "SELECT"...))
		c.expectError("FATAL", "54000")
		checkProxyServes(t, small)
	})
	waitBackendsClean(t)
}

// TestBadInputShortMessageLength: after login, a length field under 4
// (which counts itself) is a protocol violation: FATAL 08P01.
func TestBadInputShortMessageLength(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 1})
	for _, tc := range []struct {
		typ    byte
		length uint32
	}{{'Q', 0}, {'Q', 3}, {'Q', 0x80000000}, {'Q', 0xffffffff}, {'d', 3}, {'S', 0}, {'X', 2}} {
		t.Run(fmt.Sprintf("%c-%d", tc.typ, tc.length), func(t *testing.T) {
			c := loginTrust(t, p)
			c.write(msgHeader(tc.typ, tc.length))
			c.expectError("FATAL", "08P01")
			checkProxyServes(t, p)
		})
	}
	waitBackendsClean(t)
}

// TestBadInputUnknownMessageType: a frontend message type that does not
// exist after login is FATAL 08P01 (PostgreSQL: "invalid frontend message
// type"); a transaction it interrupts is rolled back.
func TestBadInputUnknownMessageType(t *testing.T) {
	checkNoGoroutineLeak(t)
	createTestTable(t, "badinput_type")
	p := startProxy(t, proxyConfig{poolSize: 1})
	for _, typ := range []byte{'x', 0, 0xff, 'p', 'A'} {
		t.Run(fmt.Sprintf("%q", typ), func(t *testing.T) {
			c := loginTrust(t, p)
			c.write(append(msgHeader(typ, 4+3), "abc"...))
			c.expectError("FATAL", "08P01")
			checkProxyServes(t, p)
		})
	}
	t.Run("in-transaction", func(t *testing.T) {
		c := loginTrust(t, p)
		c.query("BEGIN")
		if r := c.query("INSERT INTO badinput_type VALUES (1)"); r.err != nil || r.status != 'T' {
			t.Fatalf("INSERT: status %q, err %v", r.status, r.err)
		}
		c.write(msgHeader('x', 4))
		c.expectError("FATAL", "08P01")
		checkLeftClean(t, p, "badinput_type", 0)
	})
	waitBackendsClean(t)
}

// readAll reads what the proxy sends until it closes the connection (or
// the deadline passes) and reports whether it did close.
func readAll(nc net.Conn, deadline time.Time) ([]byte, bool) {
	nc.SetReadDeadline(deadline)
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, isClosed(err)
		}
	}
}

// TestBadInputGarbageStartup: bytes that are not a startup packet. Known
// shapes get their exact error; random ones get, at most, one FATAL
// ErrorResponse and are closed, and never hang past the login timeout.
func TestBadInputGarbageStartup(t *testing.T) {
	checkNoGoroutineLeak(t)
	const timeout = 500 * time.Millisecond
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.ClientLoginTimeout = timeout }})
	for _, tc := range []struct {
		name string
		send []byte
		code string
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"), "08P01"},
		{"tls-client-hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, "08P01"},
		{"protocol-4660.22136", []byte{0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78}, "0A000"},
		{"key-without-value", startup30("user\x00"), "08P01"},
		{"no-terminator", startup30("user\x00trustuser\x00database\x00app\x00"), "08P01"},
		{"unterminated-value", startup30("user\x00trustuser\x00database\x00app"), "08P01"},
		{"text-after-terminator", startup30("user\x00trustuser\x00database\x00app\x00\x00abc"), "08P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := binary.BigEndian.Uint32(tc.send); n >= 8 && n <= 10000 && int(n) != len(tc.send) {
				t.Fatalf("test case length field %d, packet %d bytes", n, len(tc.send))
			}
			c := dialRaw(t, p.addr)
			c.write(tc.send)
			c.expectError("FATAL", tc.code)
			checkProxyServes(t, p)
		})
	}

	t.Run("random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 200
		blobs := make([][]byte, n)
		for i := range blobs {
			blobs[i] = make([]byte, 1+rng.IntN(300))
			for j := range blobs[i] {
				blobs[i][j] = byte(rng.Uint32())
			}
			if i%2 == 0 && len(blobs[i]) >= 8 {
				// A plausible length and protocol, garbage after.
				binary.BigEndian.PutUint32(blobs[i], uint32(len(blobs[i])))
				binary.BigEndian.PutUint32(blobs[i][4:], proto30)
			}
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, blob := range blobs {
			wg.Go(func() {
				nc, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err != nil {
					errs[i] = err
					return
				}
				defer nc.Close()
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write(blob); err != nil {
					return // the proxy already refused it
				}
				got, closed := readAll(nc, time.Now().Add(timeout+3*time.Second))
				if !closed {
					errs[i] = fmt.Errorf("still open %v after the login timeout; got %q", timeout+3*time.Second, got)
					return
				}
				if len(got) == 0 {
					return
				}
				if got[0] != 'E' || len(got) < 5 || int(binary.BigEndian.Uint32(got[1:]))+1 != len(got) {
					errs[i] = fmt.Errorf("got %q, want nothing or one ErrorResponse", got)
					return
				}
				var e pgproto3.ErrorResponse
				if err := e.Decode(got[5:]); err != nil || e.Severity != "FATAL" {
					errs[i] = fmt.Errorf("got %q (%v), want a FATAL ErrorResponse", got, err)
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("blob %d %x: %v", i, blobs[i][:min(len(blobs[i]), 16)], err)
			}
		}
		checkProxyServes(t, p)
	})
	waitBackendsClean(t)
}

// TestBadInputClientGoneMidQuery: a client that sends a query and
// disconnects while it runs leaves no backend running it or in a
// transaction, and with a pool of one backend the next client is served.
func TestBadInputClientGoneMidQuery(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, mode := range []proxy.PoolMode{proxy.PoolTransaction, proxy.PoolSession} {
		p := startProxy(t, proxyConfig{mode: mode, poolSize: 1})
		for _, tc := range []struct {
			name   string
			before []string
		}{
			{"autocommit", nil},
			{"in-transaction", []string{"BEGIN"}},
			{"in-failed-transaction", []string{"BEGIN", "SELECT 1/0"}},
		} {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				c := loginTrust(t, p)
				for _, q := range tc.before {
					c.query(q)
				}
				c.send(&pgproto3.Query{String: "SELECT pg_sleep(1)"})
				time.Sleep(100 * time.Millisecond) // let it start
				c.nc.Close()
				waitBackendsClean(t)
				checkProxyServes(t, p)
			})
		}
		// Same with the extended protocol, and no reads at all.
		t.Run(string(mode)+"/extended", func(t *testing.T) {
			c := loginTrust(t, p)
			c.send(&pgproto3.Parse{Query: "SELECT pg_sleep(1)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			time.Sleep(100 * time.Millisecond)
			c.nc.Close()
			waitBackendsClean(t)
			checkProxyServes(t, p)
		})
	}
}

// TestBadInputClientGoneMidTransaction: a client that disconnects inside a
// transaction block has it rolled back, in every pool mode and whichever
// protocol it used.
func TestBadInputClientGoneMidTransaction(t *testing.T) {
	checkNoGoroutineLeak(t)
	createTestTable(t, "badinput_tx")
	for _, mode := range []proxy.PoolMode{proxy.PoolTransaction, proxy.PoolSession} {
		p := startProxy(t, proxyConfig{mode: mode, poolSize: 1})
		for _, tc := range []struct {
			name string
			run  func(c *rawConn)
		}{
			{"simple", func(c *rawConn) {
				c.query("BEGIN")
				if r := c.query("INSERT INTO badinput_tx VALUES (1)"); r.err != nil || r.status != 'T' {
					t.Fatalf("INSERT: status %q, err %v", r.status, r.err)
				}
			}},
			{"extended", func(c *rawConn) {
				c.query("BEGIN")
				c.send(&pgproto3.Parse{Name: "gone_tx", Query: "INSERT INTO badinput_tx VALUES ($1)"},
					&pgproto3.Bind{PreparedStatement: "gone_tx", Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if r := c.readResult(); r.err != nil || r.status != 'T' {
					t.Fatalf("INSERT: status %q, err %v", r.status, r.err)
				}
			}},
			{"one-message", func(c *rawConn) {
				if r := c.query("BEGIN; INSERT INTO badinput_tx VALUES (3)"); r.err != nil || r.status != 'T' {
					t.Fatalf("INSERT: status %q, err %v", r.status, r.err)
				}
			}},
			{"terminate", func(c *rawConn) {
				c.query("BEGIN")
				c.query("INSERT INTO badinput_tx VALUES (4)")
				c.send(&pgproto3.Terminate{})
			}},
		} {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				c := loginTrust(t, p)
				tc.run(c)
				c.nc.Close()
				checkLeftClean(t, p, "badinput_tx", 0)
			})
		}
	}
	// The control: the same INSERT committed is seen, so the checks above
	// look at the right table.
	p := startProxy(t, proxyConfig{poolSize: 1})
	c := loginTrust(t, p)
	c.query("BEGIN; INSERT INTO badinput_tx VALUES (5); COMMIT")
	if n := tableCount(t, "badinput_tx"); n != 1 {
		t.Errorf("control: %d rows after a committed INSERT, want 1", n)
	}
}

// TestBadInputClientGoneMidCopy: a client that disconnects during COPY
// FROM STDIN, between or inside CopyData messages, commits nothing and
// leaves the backend clean.
func TestBadInputClientGoneMidCopy(t *testing.T) {
	checkNoGoroutineLeak(t)
	createTestTable(t, "badinput_copy")
	for _, mode := range []proxy.PoolMode{proxy.PoolTransaction, proxy.PoolSession} {
		p := startProxy(t, proxyConfig{mode: mode, poolSize: 1})
		for _, tc := range []struct {
			name    string
			inBlock bool
			tail    []byte // sent after the complete CopyData
		}{
			{"between-messages", false, nil},
			{"inside-a-message", false, append(msgHeader('d', 4+100), "4\n5\n"...)},
			{"in-transaction", true, nil},
		} {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				c := loginTrust(t, p)
				if tc.inBlock {
					c.query("BEGIN")
				}
				c.send(&pgproto3.Parse{Name: "gone_copy", Query: "SELECT 1"}, &pgproto3.Sync{})
				if r := c.readResult(); r.err != nil {
					t.Fatalf("Parse: %+v", r.err)
				}
				c.send(&pgproto3.Query{String: "COPY badinput_copy FROM STDIN"})
				if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.CopyInResponse" {
					t.Fatalf("got %T %+v, want CopyInResponse", m, m)
				}
				c.send(&pgproto3.CopyData{Data: []byte("1\n2\n3\n")})
				if tc.tail != nil {
					c.write(tc.tail)
				}
				time.Sleep(50 * time.Millisecond)
				c.nc.Close()
				checkLeftClean(t, p, "badinput_copy", 0)
			})
		}
		// The control: a finished COPY commits its rows.
		t.Run(string(mode)+"/control", func(t *testing.T) {
			c := loginTrust(t, p)
			c.send(&pgproto3.Query{String: "COPY badinput_copy FROM STDIN"})
			if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.CopyInResponse" {
				t.Fatalf("got %T %+v, want CopyInResponse", m, m)
			}
			c.send(&pgproto3.CopyData{Data: []byte("1\n2\n3\n")}, &pgproto3.CopyDone{})
			if r := c.readResult(); r.err != nil || len(r.tags) != 1 || r.tags[0] != "COPY 3" {
				t.Fatalf("COPY: tags %q, err %v", r.tags, r.err)
			}
			if n := tableCount(t, "badinput_copy"); n != 3 {
				t.Errorf("control: %d rows after COPY 3", n)
			}
			backend.Exec(context.Background(), "app", "TRUNCATE badinput_copy")
		})
	}
}

// TestBadInputClientGoneMidPipeline: a client that pipelines extended
// protocol messages and leaves before its last Sync: what was synced is
// committed, what was not is not, and the backend is clean.
func TestBadInputClientGoneMidPipeline(t *testing.T) {
	checkNoGoroutineLeak(t)
	createTestTable(t, "badinput_pipe")
	insert := func(id string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "gone_pipe_" + id, Query: "INSERT INTO badinput_pipe VALUES ($1)"},
			&pgproto3.Bind{PreparedStatement: "gone_pipe_" + id, Parameters: [][]byte{[]byte(id)}},
			&pgproto3.Execute{},
		}
	}
	for _, mode := range []proxy.PoolMode{proxy.PoolTransaction, proxy.PoolSession} {
		p := startProxy(t, proxyConfig{mode: mode, poolSize: 1})
		t.Run(string(mode)+"/after-flush", func(t *testing.T) {
			c := loginTrust(t, p)
			var msgs []pgproto3.FrontendMessage
			msgs = append(append(msgs, insert("1")...), &pgproto3.Sync{})
			msgs = append(append(msgs, insert("2")...), &pgproto3.Flush{})
			c.send(msgs...)
			if r := c.readResult(); r.err != nil || r.status != 'I' {
				t.Fatalf("first batch: status %q, err %v", r.status, r.err)
			}
			// The second batch ran (Flush) but was never synced.
			for _, want := range []string{"*pgproto3.ParseComplete", "*pgproto3.BindComplete", "*pgproto3.CommandComplete"} {
				if m := c.receive(); fmt.Sprintf("%T", m) != want {
					t.Fatalf("got %T %+v, want %s", m, m, want)
				}
			}
			c.nc.Close()
			checkLeftClean(t, p, "badinput_pipe", 1) // the synced batch only
		})
		backend.Exec(context.Background(), "app", "TRUNCATE badinput_pipe")
		t.Run(string(mode)+"/no-sync-no-flush", func(t *testing.T) {
			c := loginTrust(t, p)
			c.send(insert("1")...)
			time.Sleep(200 * time.Millisecond) // the proxy may pass it on
			c.nc.Close()
			checkLeftClean(t, p, "badinput_pipe", 0)
		})
		backend.Exec(context.Background(), "app", "TRUNCATE badinput_pipe")
		t.Run(string(mode)+"/no-reads", func(t *testing.T) {
			c := loginTrust(t, p)
			var msgs []pgproto3.FrontendMessage
			for _, id := range []string{"1", "2", "3"} {
				msgs = append(msgs, insert(id)...)
			}
			msgs = append(msgs, &pgproto3.Parse{Query: "SELECT pg_sleep(0.5)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
			c.send(msgs...)
			time.Sleep(100 * time.Millisecond)
			c.nc.Close()
			checkLeftClean(t, p, "badinput_pipe", 0)
		})
		backend.Exec(context.Background(), "app", "TRUNCATE badinput_pipe")
	}
}

// TestBadInputTooManyClients: past MaxClientConn, a client gets FATAL
// 53300; when one leaves, a new one gets in.
func TestBadInputTooManyClients(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.MaxClientConn = 3 }})
	ctx := context.Background()
	var conns []*pgconn.PgConn
	defer func() {
		for _, c := range conns {
			c.Close(ctx)
		}
	}()
	for i := range 3 {
		c, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
		if err != nil {
			t.Fatalf("client %d of 3: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	_, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
	wantPgError(t, err, "FATAL", "53300")
	// By hand too, and whatever the user: the limit comes first.
	for _, user := range []string{"trustuser", "nosuchuser"} {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"user": user, "database": "app"})
		c.expectError("FATAL", "53300")
	}
	// The three are still fine.
	for _, c := range conns {
		if got := pgconnQuery(t, c, "SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	}
	conns[0].Close(ctx)
	conns = conns[1:]
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
		if err == nil {
			if got := pgconnQuery(t, c, "SELECT 1"); got != "1" {
				t.Fatalf("got %q", got)
			}
			conns = append(conns, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3s after a client left, a new one is still refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close(ctx)
	}
	conns = nil
	deadline = time.Now().Add(3 * time.Second)
	for {
		c, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
		if err == nil {
			c.Close(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("all clients left 3s ago, a new one is still refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestBadInputBackendDown: a database whose primary refuses connections
// gives its clients FATAL 08006 quickly, every time, and other databases
// keep working.
func TestBadInputBackendDown(t *testing.T) {
	checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) {
		o.Databases = append(o.Databases, proxy.Database{Name: "down", BackendUser: "app", BackendPassword: "app", PoolSize: 2,
			Shards: []proxy.Shard{{Name: "s0", Primary: "postgres://app@" + dead + "/app?sslmode=disable"}}})
	}})
	ctx := context.Background()
	for i := range 3 {
		start := time.Now()
		conn, err := pgconn.Connect(ctx, p.url("app", "app", "down"))
		if err == nil {
			conn.Close(ctx)
			t.Fatal("connected to a database whose backend is down")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("attempt %d: refused after %v, want under 2s", i+1, d)
		}
		wantPgError(t, err, "FATAL", "08006")
	}
	// A trust user, by hand: the error replaces the end of the login.
	c := dialRaw(t, p.addr)
	c.startup(proto30, map[string]string{"user": "trustuser", "database": "down"})
	for {
		m := c.receive()
		if _, ok := m.(*pgproto3.AuthenticationOk); ok {
			continue
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			if e.Severity != "FATAL" || e.Code != "08006" {
				t.Errorf("got %s %s %q, want FATAL 08006", e.Severity, e.Code, e.Message)
			}
			c.expectClosed()
			break
		}
		t.Fatalf("got %T %+v before the error", m, m)
	}
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestBadInputCancelRequest: a CancelRequest with the right key cancels
// the running query (the control); with a wrong key, or for a client that
// is idle, it does nothing, even to another client's query on the same
// backend. The cancel connection is closed without a reply.
func TestBadInputCancelRequest(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 1})
	login := func() (*rawConn, loginResult) {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
		return c, c.finishLogin()
	}
	sendCancel := func(pkt []byte) {
		t.Helper()
		cc := dialRaw(t, p.addr)
		cc.write(pkt)
		cc.expectClosed()
	}
	cancelPkt := func(pid uint32, secret []byte) []byte {
		b, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 1
		return b
	}

	t.Run("right-key-cancels", func(t *testing.T) {
		c, lr := login()
		c.send(&pgproto3.Query{String: "SELECT pg_sleep(3)"})
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		sendCancel(cancelPkt(lr.pid, lr.secret))
		r := c.readResult()
		if r.err == nil || r.err.Code != "57014" || r.err.Severity != "ERROR" {
			t.Fatalf("query after a cancel: err %+v, want ERROR 57014", r.err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancel took %v", d)
		}
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("wrong-key", func(t *testing.T) {
		c, lr := login()
		c.send(&pgproto3.Query{String: "SELECT pg_sleep(1), 'survived'"})
		time.Sleep(200 * time.Millisecond)
		for _, pkt := range [][]byte{
			cancelPkt(lr.pid, flip(lr.secret)),
			cancelPkt(lr.pid^1, lr.secret),
			cancelPkt(lr.pid, append(bytes.Clone(lr.secret), 0, 0, 0, 0)), // a 3.2-length key
			cancelPkt(lr.pid, lr.secret[:2]),
			cancelPkt(0, nil),
		} {
			sendCancel(pkt)
		}
		r := c.readResult()
		if r.err != nil || len(r.rows) != 1 || r.rows[0][1] != "survived" {
			t.Fatalf("query cancelled by a wrong key: rows %q, err %+v", r.rows, r.err)
		}
	})

	t.Run("idle-client", func(t *testing.T) {
		a, la := login()
		b, _ := login()
		// a has used the only backend and is idle; b now runs on it.
		if got := a.queryOne("SELECT 'a'"); got != "a" {
			t.Fatalf("got %q", got)
		}
		sendCancel(cancelPkt(la.pid, la.secret)) // a is idle: nothing to cancel
		b.send(&pgproto3.Query{String: "SELECT pg_sleep(1), 'b survived'"})
		time.Sleep(200 * time.Millisecond)
		sendCancel(cancelPkt(la.pid, la.secret)) // a is still idle, b runs on a's old backend
		r := b.readResult()
		if r.err != nil || len(r.rows) != 1 || r.rows[0][1] != "b survived" {
			t.Fatalf("b's query was hit by a cancel for idle a: rows %q, err %+v", r.rows, r.err)
		}
		// And a's next query is not cancelled by the earlier request.
		if r := a.query("SELECT pg_sleep(0.3), 'a survived'"); r.err != nil || r.rows[0][1] != "a survived" {
			t.Fatalf("a's next query: rows %q, err %+v", r.rows, r.err)
		}
	})
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// openFiles is the number of file descriptors the test process has open.
func openFiles(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// stormEnv, when set in the environment of the test binary, makes it the
// client side of TestBadInputConnectionStorm (see TestMain) instead of
// running tests: "addr n".
const stormEnv = "PGSHARD_TEST_STORM"

// stormKinds is how many ways a storm's connection ends: connection i
// ends the (i % stormKinds)-th way (see stormClients).
const stormKinds = 10

// stormClients opens n connections to addr at once and drops each at a
// stage of startup chosen by its number, and reports how each failed
// (nil: as it should) and how long it took until all were connected.
func stormClients(addr string, n int) ([]error, time.Duration) {
	enc := func(m pgproto3.FrontendMessage) []byte {
		b, err := m.Encode(nil)
		if err != nil {
			panic(err)
		}
		return b
	}
	trust := enc(&pgproto3.StartupMessage{ProtocolVersion: proto30, Parameters: map[string]string{"user": "trustuser", "database": "app"}})
	scram := enc(&pgproto3.StartupMessage{ProtocolVersion: proto30, Parameters: map[string]string{"user": "app", "database": "app"}})
	query := enc(&pgproto3.Query{String: "SELECT pg_sleep(0.2)"})
	errs := make([]error, n)
	start := make(chan struct{})
	began := time.Now()
	var dialed atomic.Int64
	var connected atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			nc, err := net.DialTimeout("tcp", addr, 20*time.Second)
			if err != nil {
				errs[i] = err
				return
			}
			if dialed.Add(1) == int64(n) {
				connected.Store(int64(time.Since(began)))
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(40 * time.Second))
			switch i % stormKinds {
			case 0: // nothing
			case 1:
				nc.Write(trust[:len(trust)/2])
			case 2:
				nc.Write(trust)
			case 3:
				nc.Write(encRequest(codeSSLRequest))
				var b [1]byte
				if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'N' {
					errs[i] = fmt.Errorf("SSLRequest: %q, %v", b, err)
				}
			case 4:
				nc.Write(scram)
				fe := pgproto3.NewFrontend(nc, nc)
				if _, err := fe.Receive(); err != nil {
					errs[i] = fmt.Errorf("waiting for AuthenticationSASL: %w", err)
				}
			default:
				nc.Write(trust)
				fe := pgproto3.NewFrontend(nc, nc)
				for {
					m, err := fe.Receive()
					if err != nil {
						errs[i] = fmt.Errorf("login: %w", err)
						return
					}
					if e, ok := m.(*pgproto3.ErrorResponse); ok {
						errs[i] = fmt.Errorf("login: %s %s %s", e.Severity, e.Code, e.Message)
						return
					}
					if _, ok := m.(*pgproto3.ReadyForQuery); ok {
						break
					}
				}
				if i%100 == 99 {
					// And leave while it runs: its backend is closed and
					// replaced, so only a few do.
					nc.Write(query)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	return errs, time.Duration(connected.Load())
}

// stormChild is the test binary run as the storm's client side: it runs
// stormClients and prints one line per failed connection ("error <i>
// <message>") and a last line "connected <duration>".
func stormChild(spec string) int {
	addr, count, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(count)
	if err != nil {
		fmt.Fprintln(os.Stderr, stormEnv, err)
		return 2
	}
	errs, connected := stormClients(addr, n)
	for i, err := range errs {
		if err != nil {
			fmt.Printf("error %d %s\n", i, strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
	fmt.Printf("connected %s\n", connected.Round(time.Millisecond))
	return 0
}

// TestBadInputConnectionStorm: 10,000 connections opened at once and
// dropped at every stage of startup (before a byte, mid-packet, after
// SSLRequest, after the StartupMessage, mid-SCRAM, logged in, logged in
// with a query running). The clients run in a process of their own (the
// test binary again), as real clients do, so that the proxy's process
// holds only its own side of each connection. The proxy survives, every
// client that finished logging in was served, and afterwards its
// goroutines and file descriptors are back to what they were (give or
// take the backend connections the storm's queries opened), no backend is
// left busy, and new clients are served at once.
func TestBadInputConnectionStorm(t *testing.T) {
	checkNoGoroutineLeak(t)
	n := 10000
	if raceEnabled {
		// Each connection is a goroutine or two on either side, and the
		// race detector allows 8128 at once.
		n = 3000
		t.Logf("under the race detector: a storm of %d connections", n)
	}
	const poolSize = 20
	p := startProxy(t, proxyConfig{poolSize: poolSize, edit: func(o *proxy.Options) {
		o.MaxClientConn = 2 * n
		// Long enough for thousands of first logins on a cold pool under -race.
		o.ClientLoginTimeout = 30 * time.Second
		o.Logger = nil // tens of thousands of lines, even with -v
	}})
	// The baseline: the pool has learned the server's parameters.
	checkProxyServes(t, p)
	runtime.GC()
	goroutinesBefore, filesBefore := runtime.NumGoroutine(), openFiles(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", stormEnv, p.addr, n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	began := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("storm clients: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "connected ") {
		t.Fatalf("storm clients ended without their summary:\n%s\n%s", out, stderr.String())
	}
	t.Logf("%d connections opened (all %s) and dropped in %v", n, last, time.Since(began).Round(time.Millisecond))
	if failed := lines[:len(lines)-1]; len(failed) > 0 {
		for _, l := range failed[:min(10, len(failed))] {
			t.Errorf("storm connection: %s", l)
		}
		t.Errorf("%d of %d connections failed", len(failed), n)
	}
	// Clients that left with a query sent still have it run, so the
	// proxy may take a moment to catch up; it must then serve normally.
	stormEnd := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
		if err == nil {
			err = conn.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			break
		}
		if time.Since(stormEnd) > 30*time.Second {
			t.Fatalf("no normal client served in the 30s after the storm: %v", err)
		}
	}
	t.Logf("first normal client served %v after the storm", time.Since(stormEnd).Round(time.Millisecond))
	waitBackendsClean(t)

	// Back to the baseline: each backend connection the storm opened is
	// one descriptor and one reader goroutine.
	var goroutines, files int
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		goroutines, files = runtime.NumGoroutine(), openFiles(t)
		if goroutines <= goroutinesBefore+poolSize && files <= filesBefore+poolSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the storm: %d goroutines (%d before), %d open files (%d before); want at most %d more of each (the pool's backends)",
				goroutines, goroutinesBefore, files, filesBefore, poolSize)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after the storm: %d goroutines (%d before), %d open files (%d before)", goroutines, goroutinesBefore, files, filesBefore)
	checkProxyServes(t, p)
	// The proxy can take a set of new clients, each served at once.
	var conns []*rawConn
	for range 20 {
		conns = append(conns, loginTrust(t, p))
	}
	for _, c := range conns {
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	}
}

// waitShardsClean waits until no backend of app on any shard primary is
// running a statement or has a transaction open, and no shard holds a
// prepared transaction; it fails the test if that takes over 10s (a
// two-phase commit cut short is finished by recovery).
func waitShardsClean(t testing.TB, rc *routingCluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dirty []string
		for i, s := range rc.shards {
			busy := directRows(t, s, `SELECT state || coalesce(' since ' || xact_start::text, '') FROM pg_stat_activity
				WHERE usename = 'app' AND (state <> 'idle' OR xact_start IS NOT NULL)`)
			xacts := directRows(t, s, "SELECT gid FROM pg_prepared_xacts")
			if len(busy) > 0 || len(xacts) > 0 {
				dirty = append(dirty, fmt.Sprintf("s%d: backends %q, prepared transactions %q", i, busy, xacts))
			}
		}
		if len(dirty) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("10s after the client left: %s", strings.Join(dirty, "; "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBadInputClientGoneCrossShard: a client that vanishes inside a
// transaction that spans shards (after its writes, after one failed, while
// its COMMIT is being sent, in a pipeline not yet synced) or in a COPY
// split over the shards leaves every shard rolled back (or, once COMMIT
// was sent, committed on all or none), no backend in a transaction, and no
// prepared transaction; the next client is served.
func TestBadInputClientGoneCrossShard(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	keys := rc.intKeys(t, usersRule, 8000, 1) // one key per shard
	insert := func(shard int) string {
		return fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'gone')", keys[shard][0])
	}
	login := func() *rawConn {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
		c.finishLogin()
		return c
	}
	mustQuery := func(c *rawConn, sql string, status byte) {
		t.Helper()
		if r := c.query(sql); r.err != nil || r.status != status {
			t.Fatalf("%s: status %q, err %+v", sql, r.status, r.err)
		}
	}
	rows := func() []string {
		var all []string
		for _, r := range rc.onShards(t, "SELECT id::text FROM users") {
			all = append(all, r...)
		}
		return all
	}
	for _, tc := range []struct {
		name string
		run  func(c *rawConn)
		// committed: the rows may be all there (COMMIT was sent); else none.
		committed bool
	}{
		{"after-writes", func(c *rawConn) {
			mustQuery(c, "BEGIN", 'T')
			for s := range keys {
				mustQuery(c, insert(s), 'T')
			}
		}, false},
		{"after-a-failure", func(c *rawConn) {
			mustQuery(c, "BEGIN", 'T')
			mustQuery(c, insert(0), 'T')
			mustQuery(c, insert(1), 'T')
			if r := c.query(fmt.Sprintf("SELECT 1/0 FROM users WHERE id = %d", keys[2][0])); r.err == nil || r.status != 'E' {
				t.Fatalf("1/0: status %q, err %+v", r.status, r.err)
			}
		}, false},
		{"commit-sent", func(c *rawConn) {
			mustQuery(c, "BEGIN", 'T')
			mustQuery(c, insert(0), 'T')
			mustQuery(c, insert(2), 'T')
			c.send(&pgproto3.Query{String: "COMMIT"})
		}, true},
		{"pipeline-unsynced", func(c *rawConn) {
			mustQuery(c, "BEGIN", 'T')
			mustQuery(c, insert(1), 'T')
			c.send(&pgproto3.Parse{Name: "gone_x", Query: "INSERT INTO users (id, name) VALUES ($1, 'gone')"},
				&pgproto3.Bind{PreparedStatement: "gone_x", Parameters: [][]byte{[]byte(strconv.Itoa(keys[0][0]))}},
				&pgproto3.Execute{}, &pgproto3.Flush{})
			time.Sleep(100 * time.Millisecond)
		}, false},
		{"mid-copy", func(c *rawConn) {
			c.send(&pgproto3.Query{String: "COPY users (id, name) FROM STDIN"})
			if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.CopyInResponse" {
				t.Fatalf("got %T %+v, want CopyInResponse", m, m)
			}
			var b strings.Builder
			for s := range keys {
				fmt.Fprintf(&b, "%d\tgone\n", keys[s][0])
			}
			c.send(&pgproto3.CopyData{Data: []byte(b.String())})
			time.Sleep(100 * time.Millisecond)
		}, false},
		{"mid-copy-in-transaction", func(c *rawConn) {
			mustQuery(c, "BEGIN", 'T')
			mustQuery(c, insert(2), 'T')
			c.send(&pgproto3.Query{String: "COPY users (id, name) FROM STDIN"})
			if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.CopyInResponse" {
				t.Fatalf("got %T %+v, want CopyInResponse", m, m)
			}
			c.send(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\tgone\n%d\tgone\n", keys[0][0], keys[1][0]))})
			time.Sleep(100 * time.Millisecond)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.truncate(t, "users")
			c := login()
			tc.run(c)
			c.nc.Close()
			waitShardsClean(t, rc)
			got := rows()
			if tc.committed {
				t.Logf("COMMIT sent, client gone: %d of 2 rows committed", len(got))
			}
			if len(got) != 0 && !(tc.committed && len(got) == 2) {
				t.Errorf("rows on the shards once the client left: %q; want none%s", got,
					map[bool]string{true: " or both", false: ""}[tc.committed])
			}
			// The next client, on the same pools, commits nothing of the
			// departed client's and gets its statement name.
			c2 := login()
			mustQuery(c2, "BEGIN", 'T')
			for s := range keys {
				if r := c2.query(fmt.Sprintf("SELECT count(*) FROM users WHERE id = %d", keys[s][0])); r.err != nil {
					t.Fatalf("next client: %+v", r.err)
				}
			}
			mustQuery(c2, "COMMIT", 'I')
			c2.send(&pgproto3.Parse{Name: "gone_x", Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: "gone_x"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if r := c2.readResult(); r.err != nil {
				t.Errorf("next client preparing gone_x: %+v", r.err)
			}
			c2.nc.Close()
			if again := rows(); !slices.Equal(again, got) {
				t.Errorf("rows after the next client: %q, before %q", again, got)
			}
			waitShardsClean(t, rc)
		})
	}
}
