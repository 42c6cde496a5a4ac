package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeBackend is a scripted PostgreSQL server for unit tests of the session
// state machine. It answers like PostgreSQL would, deterministically:
//
//   - Query: each ;-separated statement answers CommandComplete "OK <stmt>";
//     "fail" and "select 1/0" fail (22012); "die" closes the connection
//     without a reply; "select then shut down" answers, then sends FATAL
//     57P01 and closes, in one write; BEGIN/COMMIT/ROLLBACK move the transaction status and
//     statements in a failed transaction fail with 25P02.
//   - Parse fails (42601) when the query contains "syntax error"; Bind of an
//     unknown statement fails (26000); Execute answers "EXEC <query>".
//   - Replies are buffered until Sync or Flush, like PostgreSQL's.
//
// It records every frontend message it receives.
type fakeBackend struct {
	t  testing.TB
	ln net.Listener

	mu    sync.Mutex
	conns int
	log   []string // "<conn>:<type> <detail>"

	// rows, when set, is the reply (RowDescription, DataRows,
	// CommandComplete) to a Query that starts with "SELECT abalance",
	// written as is: the fake allocates nothing per row it sends.
	rows atomic.Pointer[[]byte]
}

// setRows makes the fake answer "SELECT abalance ..." with n one-column rows.
func (fb *fakeBackend) setRows(n int) {
	var b []byte
	b, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}).Encode(b)
	for i := range n {
		b, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte(strconv.Itoa(i))}}).Encode(b)
	}
	b, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT " + strconv.Itoa(n))}).Encode(b)
	fb.rows.Store(&b)
}

func startFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{t: t, ln: ln}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fb.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return fb
}

func (fb *fakeBackend) url() string {
	return "postgres://" + fb.ln.Addr().String() + "/db?sslmode=disable"
}

func (fb *fakeBackend) record(id int, format string, args ...any) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.log = append(fb.log, fmt.Sprintf("%d:", id)+fmt.Sprintf(format, args...))
}

// received returns the recorded messages that contain substr.
func (fb *fakeBackend) received(substr string) []string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	var out []string
	for _, l := range fb.log {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (fb *fakeBackend) serve(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		c.Write([]byte{'N'})
		if msg, err = be.ReceiveStartupMessage(); err != nil {
			return
		}
	}
	if sm, ok := msg.(*pgproto3.StartupMessage); ok && sm.Parameters["application_name"] == "pgshard health check" {
		fb.serveHealthCheck(be)
		return
	}
	// Connections are numbered in the log; the health checks' are not.
	fb.mu.Lock()
	fb.conns++
	id := fb.conns
	fb.mu.Unlock()
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0-fake"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: uint32(1000 + id), SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	status := byte('I')
	stmts := map[string]string{}
	portals := map[string]string{}
	skipping := false
	fail := func(code, msg string) {
		be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg})
		if status == 'T' {
			status = 'E'
		}
	}
	// run executes one statement and reports whether it succeeded.
	run := func(q string) (string, bool) {
		lq := strings.ToLower(strings.TrimSpace(q))
		switch {
		case status == 'E' && lq != "rollback" && lq != "commit":
			fail("25P02", "current transaction is aborted, commands ignored until end of transaction block")
			return "", false
		case lq == "fail" || lq == "select 1/0":
			fail("22012", "division by zero")
			return "", false
		case strings.HasPrefix(lq, "begin"):
			status = 'T'
		case lq == "commit" || lq == "rollback":
			tag := strings.ToUpper(lq)
			if status == 'E' {
				tag = "ROLLBACK"
			}
			status = 'I'
			return tag, true
		}
		return "OK " + q, true
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			fb.record(id, "Q %s", m.String)
			if m.String == "die" {
				return
			}
			if m.String == "select then shut down" {
				// Answers, then goes away as a server shutting down
				// does: its FATAL right behind the ReadyForQuery.
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("OK " + m.String)})
				be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"})
				be.Flush()
				return
			}
			if rows := fb.rows.Load(); rows != nil && strings.HasPrefix(m.String, "SELECT abalance") {
				be.Flush()
				c.Write(*rows)
				be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
				be.Flush()
				continue
			}
			for _, q := range strings.Split(m.String, ";") {
				if strings.TrimSpace(q) == "" {
					continue
				}
				tag, ok := run(q)
				if !ok {
					break
				}
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
			be.Flush()
			continue
		case *pgproto3.Sync:
			fb.record(id, "S")
			skipping = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
			be.Flush()
			continue
		case *pgproto3.Flush:
			fb.record(id, "H")
			be.Flush()
			continue
		case *pgproto3.Terminate:
			return
		}
		if skipping {
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.Parse:
			fb.record(id, "P %s %s", m.Name, m.Query)
			if strings.Contains(m.Query, "syntax error") {
				fail("42601", "syntax error")
				skipping = true
				continue
			}
			if _, dup := stmts[m.Name]; dup && m.Name != "" {
				fail("42P05", "prepared statement already exists")
				skipping = true
				continue
			}
			stmts[m.Name] = m.Query
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			fb.record(id, "B %s %s", m.DestinationPortal, m.PreparedStatement)
			q, ok := stmts[m.PreparedStatement]
			if !ok {
				fail("26000", fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement))
				skipping = true
				continue
			}
			portals[m.DestinationPortal] = q
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			fb.record(id, "D %c %s", m.ObjectType, m.Name)
			if m.ObjectType == 'S' {
				if _, ok := stmts[m.Name]; !ok {
					fail("26000", "prepared statement does not exist")
					skipping = true
					continue
				}
				be.Send(&pgproto3.ParameterDescription{})
			}
			be.Send(&pgproto3.NoData{})
		case *pgproto3.Execute:
			fb.record(id, "E %s", m.Portal)
			q := portals[m.Portal]
			if q == "die" {
				return
			}
			if _, ok := run(q); !ok {
				skipping = true
				continue
			}
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("EXEC " + q)})
		case *pgproto3.Close:
			fb.record(id, "C %c %s", m.ObjectType, m.Name)
			if m.ObjectType == 'S' {
				delete(stmts, m.Name)
			}
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Outside COPY, PostgreSQL accepts and ignores these.
		default:
			fb.record(id, "? %T", msg)
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "08P01", Message: "invalid frontend message type"})
			be.Flush()
			return
		}
	}
}

// serveHealthCheck answers pgshard's health checks: a primary at WAL
// position 0/1.
func (fb *fakeBackend) serveHealthCheck(be *pgproto3.Backend) {
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.Query); !ok {
			return
		}
		be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
			{Name: []byte("pg_is_in_recovery"), DataTypeOID: 16, DataTypeSize: 1, TypeModifier: -1},
			{Name: []byte("lsn"), DataTypeOID: 3220, DataTypeSize: 8, TypeModifier: -1}}})
		be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("f"), []byte("0/1")}})
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
	}
}

// fakeProxy runs a Server in front of fb with a trust user "u" and database
// "db".
func fakeProxy(t testing.TB, fb *fakeBackend, mode PoolMode, poolSize int) string {
	t.Helper()
	return serveProxy(t, Options{
		PoolMode:         mode,
		ServerResetQuery: "DISCARD ALL",
		QueryWaitTimeout: 5 * time.Second,
		Users:            []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", PoolSize: poolSize,
			Shards: []Shard{{Name: "s0", Primary: fb.url()}}}},
	})
}

// serveProxy runs a Server with opts on a loopback port until the test
// ends and returns its address.
func serveProxy(t testing.TB, opts Options) string {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// client is a raw protocol client for the tests.
type client struct {
	t  testing.TB
	nc net.Conn
	fe *pgproto3.Frontend
}

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "u", "database": "db"}})
	c.flush()
	for {
		if _, ok := c.recv().(*pgproto3.ReadyForQuery); ok {
			return c
		}
	}
}

func (c *client) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	c.flush()
}

func (c *client) flush() {
	c.t.Helper()
	if err := c.fe.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() pgproto3.BackendMessage {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := c.fe.Receive()
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return m
}

// until reads messages up to and including a ReadyForQuery and returns a
// compact description of each: "1" ParseComplete, "2" BindComplete, "3"
// CloseComplete, "t", "n", "C:<tag>", "E:<code>", "Z:<status>", "N:<code>".
func (c *client) until() []string {
	c.t.Helper()
	var out []string
	for {
		m := c.recv()
		out = append(out, describe(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return out
		}
	}
}

// next reads n messages.
func (c *client) next(n int) []string {
	c.t.Helper()
	var out []string
	for range n {
		out = append(out, describe(c.recv()))
	}
	return out
}

func describe(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		return "1"
	case *pgproto3.BindComplete:
		return "2"
	case *pgproto3.CloseComplete:
		return "3"
	case *pgproto3.ParameterDescription:
		return "t"
	case *pgproto3.NoData:
		return "n"
	case *pgproto3.CommandComplete:
		return "C:" + string(m.CommandTag)
	case *pgproto3.ErrorResponse:
		return "E:" + m.Code
	case *pgproto3.NoticeResponse:
		return "N:" + m.Code
	case *pgproto3.ReadyForQuery:
		return "Z:" + string(m.TxStatus)
	case *pgproto3.ParameterStatus:
		return "S:" + m.Name
	default:
		return fmt.Sprintf("%T", m)
	}
}

// errTimeout is what a read that gets nothing within d reports.
var errTimeout = errors.New("timeout")

func (c *client) recvWithin(d time.Duration) (pgproto3.BackendMessage, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	m, err := c.fe.Receive()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, errTimeout
	}
	return m, err
}
