package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; make fuzz runs every
// target. One by hand:
//
//	go test ./proxy -run '^$' -fuzz '^FuzzSession$' -fuzztime 30s -parallel 2

// encode appends the wire form of frontend messages.
func encode(msgs ...pgproto3.FrontendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

func startupBytes(params ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, protocol30)
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// fuzzDeadline bounds one input's exchange: a proxy that neither answers
// nor closes the connection by then is stuck.
const fuzzDeadline = 10 * time.Second

// send writes prefix and data to a new connection to addr, half-closes it,
// and returns everything the proxy sends until it closes the connection.
// reset reports a close with data unread, which may cut the reply short.
func send(t *testing.T, addr string, prefix, data []byte) (reply []byte, reset bool) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(fuzzDeadline))
	// The proxy may stop reading (it closed, or waits on a backend):
	// write on the side, so the reply is read meanwhile.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := nc.Write(append(bytes.Clone(prefix), data...)); err == nil {
			nc.(*net.TCPConn).CloseWrite()
		}
	}()
	out, err := io.ReadAll(nc)
	<-wrote
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the proxy neither answered nor closed the connection within %v; it sent %q", fuzzDeadline, out)
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("reading the reply: %v", err)
	}
	return out, err != nil
}

var sqlstate = regexp.MustCompile(`^[0-9A-Z]{5}$`)

// checkReply decodes what the proxy sent a client after the login (whose
// messages it skips), and checks that it is a well-formed stream of
// backend messages, that each ErrorResponse has a severity and a
// SQLSTATE, and that a FATAL one is the last message. cut allows the
// last message to be cut short.
func checkReply(t *testing.T, in, reply []byte, cut bool) {
	t.Helper()
	// Count the whole messages; pgproto3 reports the end of its input as
	// unexpected, so it gets only those.
	n, whole := 0, 0
	for b := reply; ; n++ {
		if len(b) < 5 || len(b) < 1+int(binary.BigEndian.Uint32(b[1:])) {
			if len(b) > 0 && !cut {
				t.Fatalf("the proxy's reply to %q ends with a partial message: %q", in, b)
			}
			break
		}
		l := 1 + int(binary.BigEndian.Uint32(b[1:]))
		if l < 5 {
			t.Fatalf("the proxy's reply to %q has a message of length %d: %q", in, l-1, reply)
		}
		whole += l
		b = b[l:]
	}
	fe := pgproto3.NewFrontend(bytes.NewReader(reply[:whole]), io.Discard)
	fatal := false
	for range n {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("the proxy's reply to %q does not decode: %v\nreply: %q", in, err, reply)
		}
		if fatal {
			t.Fatalf("the proxy sent %T after a FATAL error to %q", m, in)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			if !sqlstate.MatchString(e.Code) {
				t.Fatalf("ErrorResponse %q without a SQLSTATE (%q) in reply to %q", e.Message, e.Code, in)
			}
			switch e.Severity {
			case "ERROR":
			case "FATAL", "PANIC":
				fatal = true
			default:
				t.Fatalf("ErrorResponse of severity %q", e.Severity)
			}
		}
	}
}

// settle waits until no client session of the proxy runs, and the number
// of goroutines is back to at most limit; it fails the input when either
// lasts past the deadline. The backend connections the pools keep, and
// their readers, are counted in limit.
func settle(t *testing.T, limit int) {
	t.Helper()
	deadline := time.Now().Add(fuzzDeadline)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		sessions := bytes.Count(buf[:n], []byte("proxy.(*Server).serveConn("))
		if sessions == 0 && runtime.NumGoroutine() <= limit {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d client sessions and %d goroutines (limit %d) %v after the client left:\n%s",
				sessions, runtime.NumGoroutine(), limit, fuzzDeadline, buf[:n])
		}
		time.Sleep(time.Millisecond)
	}
}

// goroutineSlack is how many goroutines above the count after the seed
// inputs settle may tolerate: backend connections opened for a later input
// (at most the pools' sizes) and a cancel request in flight.
const goroutineSlack = 40

// FuzzStartup feeds arbitrary bytes to the startup phase: after nothing,
// after an SSLRequest (answered N: no TLS), after a GSSENCRequest
// (answered N), and as a CancelRequest. The proxy must answer or close
// within the deadline, and its session must end.
func FuzzStartup(f *testing.F) {
	ssl := []byte{0, 0, 0, 8, 4, 210, 22, 47}
	gss := []byte{0, 0, 0, 8, 4, 210, 22, 48}
	f.Add(uint8(0), startupBytes("user", "u", "database", "db"))
	f.Add(uint8(0), ssl)
	f.Add(uint8(0), append(slicesConcat(gss, ssl), startupBytes("user", "u")...))
	f.Add(uint8(0), []byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2}) // CancelRequest
	f.Add(uint8(0), []byte{0, 0, 0, 9, 0, 3, 0, 2, 0})                           // 3.2, no params
	f.Add(uint8(0), []byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(uint8(1), startupBytes("user", "u", "database", "db", "_pq_.x", "1"))
	f.Add(uint8(1), ssl)
	f.Add(uint8(2), startupBytes("user", "u", "database", "nosuch"))
	f.Add(uint8(3), []byte{0, 0, 0, 1, 0, 0, 0, 2, 9, 9})
	f.Add(uint8(3), make([]byte, 300))
	f.Add(uint8(0), encode(&pgproto3.StartupMessage{ProtocolVersion: 0x00030002,
		Parameters: map[string]string{"user": "u", "database": "db", "_pq_.grease": "1", "options": "-c search_path=x"}}))
	fb := startFakeBackend(f)
	addr := fakeProxy(f, fb, PoolTransaction, 2)
	limit := 0
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		var prefix []byte
		switch kind % 4 {
		case 1:
			prefix = ssl
		case 2:
			prefix = gss
		case 3:
			// A CancelRequest whose key is the data (4 to 256 bytes in
			// protocol 3.2).
			n := min(len(data), 300)
			prefix = binary.BigEndian.AppendUint32(nil, uint32(12+n))
			prefix = binary.BigEndian.AppendUint32(prefix, cancelRequestCode)
			prefix = append(prefix, 0, 0, 0, 7)
		}
		send(t, addr, prefix, data)
		if limit == 0 {
			settle(t, 1<<30)
			limit = runtime.NumGoroutine() + goroutineSlack
		}
		settle(t, limit)
	})
}

func slicesConcat(a, b []byte) []byte { return append(bytes.Clone(a), b...) }

// fuzzSQL are the statements the structured half of FuzzSession sends:
// the fake backend's scripted answers (fail, die, transactions) and the
// routed database's cases (one shard, all shards, merges, COPY, hints).
var fuzzSQL = []string{
	"select 1", "begin", "commit", "rollback", "fail", "die", "select 1/0", "syntax error", "",
	"SELECT * FROM users WHERE id = 1", "SELECT * FROM users", "SELECT * FROM users WHERE id = $1",
	"SELECT * FROM users ORDER BY id LIMIT 2", "SELECT name, count(*) FROM users GROUP BY name",
	"INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b')", "UPDATE users SET name = 'x'",
	"COPY users (id, name) FROM STDIN", "COPY users TO STDOUT", "SET pgshard.shard = 's1'",
	"SET pgshard.key = '5'", "SET LOCAL x.y = 1", "RESET ALL", "DISCARD ALL", "DEALLOCATE ALL",
	"PREPARE p AS select 1", "EXECUTE p", "LISTEN x", "select 1; select 2", "BEGIN; SELECT * FROM users",
	"CREATE TABLE t (id int)", "SHOW pgshard.shard", "select pg_cancel_backend(1)",
}

// opReader reads the structured half of a FuzzSession input.
type opReader struct{ b []byte }

func (r *opReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *opReader) pick(list []string) string { return list[int(r.next())%len(list)] }

var fuzzNames = []string{"", "a", "b", "pgshard_1"}

// opMessages decodes ops into frontend messages, a byte choosing each
// message and the bytes after it its fields: every message type a client
// may send, in and out of place, and a few malformed ones.
func opMessages(ops []byte) []byte {
	r := &opReader{ops}
	var out []byte
	for n := 0; len(r.b) > 0 && n < 64; n++ {
		var m pgproto3.FrontendMessage
		switch r.next() % 18 {
		case 0:
			m = &pgproto3.Query{String: r.pick(fuzzSQL)}
		case 1:
			p := &pgproto3.Parse{Name: r.pick(fuzzNames), Query: r.pick(fuzzSQL)}
			for range r.next() % 3 {
				p.ParameterOIDs = append(p.ParameterOIDs, []uint32{0, 20, 23, 25}[r.next()%4])
			}
			m = p
		case 2:
			b := &pgproto3.Bind{DestinationPortal: r.pick(fuzzNames), PreparedStatement: r.pick(fuzzNames)}
			for range r.next() % 3 {
				b.ParameterFormatCodes = append(b.ParameterFormatCodes, int16(r.next()%3))
			}
			for range r.next() % 3 {
				switch r.next() % 4 {
				case 0:
					b.Parameters = append(b.Parameters, nil)
				case 1:
					b.Parameters = append(b.Parameters, binary.BigEndian.AppendUint64(nil, uint64(r.next())))
				default:
					b.Parameters = append(b.Parameters, []byte(r.pick([]string{"1", "x", "{1,2}", "-5", ""})))
				}
			}
			for range r.next() % 3 {
				b.ResultFormatCodes = append(b.ResultFormatCodes, int16(r.next()%3))
			}
			m = b
		case 3:
			m = &pgproto3.Describe{ObjectType: "SPX"[r.next()%3], Name: r.pick(fuzzNames)}
		case 4:
			m = &pgproto3.Execute{Portal: r.pick(fuzzNames), MaxRows: uint32(r.next() % 3)}
		case 5:
			m = &pgproto3.Close{ObjectType: "SPX"[r.next()%3], Name: r.pick(fuzzNames)}
		case 6:
			m = &pgproto3.Sync{}
		case 7:
			m = &pgproto3.Flush{}
		case 8:
			m = &pgproto3.CopyData{Data: []byte(r.pick([]string{"1\ta\n", "2\tb\n3\tc\n", "\\.\n", "x"}))}
		case 9:
			m = &pgproto3.CopyDone{}
		case 10:
			m = &pgproto3.CopyFail{Message: "client gave up"}
		case 11:
			m = &pgproto3.FunctionCall{Function: 1598, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("1")}}
		case 12:
			m = &pgproto3.PasswordMessage{Password: "secret"}
		case 13:
			if r.next()%4 != 0 {
				continue
			}
			m = &pgproto3.Terminate{}
		case 14:
			m = &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abc")}
		case 15:
			// An unknown message type.
			out = append(out, "zXk0\x00"[r.next()%5], 0, 0, 0, 4)
			continue
		case 16:
			// A length shorter than the length field.
			out = append(out, "QPBDESHdcfCFp"[r.next()%13], 0, 0, 0, r.next()%4)
			continue
		case 17:
			// A length past max_message_size, or past any.
			out = append(out, "QPBdp"[r.next()%5])
			out = binary.BigEndian.AppendUint32(out, []uint32{64<<20 + 5, 1<<31 - 1, 1 << 31, 0xffffffff}[r.next()%4])
			continue
		}
		out, _ = m.Encode(out)
	}
	return out
}

// FuzzSession sends frontend messages to a logged-in session: a structured
// part (opMessages: every message type, in and out of place) followed by
// raw bytes, to a database of one shard and to a routed database of two
// (users hashed by id), both in front of the scripted fake backend. The
// proxy must answer with a well-formed stream whose errors carry a
// SQLSTATE (checkReply), close the connection once the client has, within
// the deadline, and leave no session goroutine behind.
func FuzzSession(f *testing.F) {
	f.Add(encode(&pgproto3.Query{String: "select 1"}), []byte{})
	f.Add(encode(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "a"},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}), []byte{})
	f.Add(encode(&pgproto3.Parse{Query: "syntax error"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "begin; select 1/0"}, &pgproto3.Query{String: "rollback"}), []byte{})
	f.Add(encode(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Flush{},
		&pgproto3.Close{ObjectType: 'S', Name: "a"}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Sync{}), []byte{})
	f.Add(encode(&pgproto3.Query{String: "SET a.b = 1; RESET ALL; DEALLOCATE ALL; DISCARD ALL"},
		&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "no"}), []byte{})
	f.Add(encode(&pgproto3.Parse{Query: "die"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}, &pgproto3.Sync{}), []byte{})
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff}, []byte{})
	f.Add([]byte{'B', 0, 0, 0, 5, 0}, []byte{})
	f.Add(encode(&pgproto3.FunctionCall{Function: 1598}, &pgproto3.PasswordMessage{Password: "x"}, &pgproto3.Sync{}), []byte{})
	// Structured: every message type once, then in a pipeline.
	for op := range byte(18) {
		f.Add([]byte{}, []byte{op, 1, 2, 1, 0, 6})
	}
	f.Add([]byte{}, []byte{1, 1, 9, 0, 2, 1, 1, 1, 1, 3, 1, 1, 4, 1, 0, 6, 0, 10, 0, 11, 6})
	f.Add([]byte{}, []byte{0, 16, 8, 8, 9, 0, 17, 8, 10, 0, 12, 13, 0})
	f.Add([]byte{}, []byte{0, 1, 0, 12, 0, 13, 1, 2, 11, 3, 1, 5, 0, 18, 6, 0, 21})
	fb := startFakeBackend(f)
	single := fakeProxy(f, fb, PoolTransaction, 2)
	routed := serveProxy(f, Options{
		PoolMode:         PoolTransaction,
		ServerResetQuery: "DISCARD ALL",
		QueryWaitTimeout: 5 * time.Second,
		Users:            []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", PoolSize: 2,
			Shards: []Shard{{Name: "s0", Primary: fb.url()}, {Name: "s1", Primary: fb.url()}},
			Tables: []TableRule{{Name: "users", Key: "id", Method: "hash", KeyType: "bigint"}}}},
	})
	login := startupBytes("user", "u", "database", "db")
	limit := 0
	f.Fuzz(func(t *testing.T, raw, ops []byte) {
		in := append(opMessages(ops), raw...)
		for _, addr := range []string{single, routed} {
			reply, cut := send(t, addr, login, in)
			// The login's reply ends at its ReadyForQuery.
			i := bytes.Index(reply, []byte{'Z', 0, 0, 0, 5, 'I'})
			if i < 0 {
				t.Fatalf("no login reply: %q", reply)
			}
			checkReply(t, in, reply[i+6:], cut)
		}
		if limit == 0 {
			settle(t, 1<<30)
			limit = runtime.NumGoroutine() + goroutineSlack
		}
		settle(t, limit)
	})
}

// The proxy tells a client whose message is malformed why it closes.
func TestSessionMalformedMessages(t *testing.T) {
	fb := startFakeBackend(t)
	addr := fakeProxy(t, fb, PoolTransaction, 2)
	login := startupBytes("user", "u", "database", "db")
	for _, tc := range []struct {
		in   []byte
		code string
	}{
		{[]byte{'Q', 0, 0, 0, 2}, "08P01"},
		{[]byte{'Q', 0x7f, 0xff, 0xff, 0xff}, "54000"},
		{[]byte{'z', 0, 0, 0, 4}, "08P01"},
	} {
		reply, _ := send(t, addr, login, tc.in)
		if !strings.Contains(string(reply), "C"+tc.code+"\x00") || !strings.Contains(string(reply), "FATAL") {
			t.Errorf("%q: reply %q, want a FATAL %s", tc.in, reply, tc.code)
		}
	}
}

// FuzzLogin sends arbitrary bytes as the authentication exchange of a
// SCRAM-SHA-256 user, an md5 user and a user that does not exist (whose
// exchange pgshard plays out with a mock verifier). Without the password
// the login must never succeed; the proxy must end it with a FATAL error
// of class 28 (or 08P01 for a malformed message) and close the
// connection within the deadline.
func FuzzLogin(f *testing.F) {
	sasl := func(mech, data string) []byte {
		return encode(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: []byte(data)})
	}
	f.Add(uint8(0), sasl("SCRAM-SHA-256", "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"))
	f.Add(uint8(0), append(sasl("SCRAM-SHA-256", "n,,n=u,r=abc"), encode(&pgproto3.SASLResponse{Data: []byte("c=biws,r=abc,p=AAAA")})...))
	f.Add(uint8(0), sasl("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"))
	f.Add(uint8(0), sasl("SCRAM-SHA-256", "y,,n=,r=abc"))
	f.Add(uint8(0), sasl("", ""))
	f.Add(uint8(0), encode(&pgproto3.PasswordMessage{Password: "secret"}))
	f.Add(uint8(1), encode(&pgproto3.PasswordMessage{Password: "md5" + strings.Repeat("0", 32)}))
	f.Add(uint8(1), sasl("SCRAM-SHA-256", "n,,n=,r=abc"))
	f.Add(uint8(2), sasl("SCRAM-SHA-256", "n,,n=,r=abc"))
	f.Add(uint8(2), []byte{'p', 0x7f, 0xff, 0xff, 0xff})
	f.Add(uint8(0), []byte{'p', 0, 0, 0, 4})
	fb := startFakeBackend(f)
	addr := serveProxy(f, Options{
		PoolMode: PoolTransaction,
		Users: []User{
			{Name: "s", Password: "secret", Auth: AuthSCRAM},
			{Name: "m", Password: "secret", Auth: AuthMD5},
		},
		Databases: []Database{{Name: "db", BackendUser: "s", PoolSize: 1,
			Shards: []Shard{{Name: "s0", Primary: fb.url()}}}},
	})
	// With the password, both log in.
	for _, u := range []string{"s", "m"} {
		ctx, cancel := context.WithTimeout(context.Background(), fuzzDeadline)
		conn, err := pgconn.Connect(ctx, "postgres://"+u+":secret@"+addr+"/db?sslmode=disable")
		cancel()
		if err != nil {
			f.Fatalf("user %s with the password: %v", u, err)
		}
		conn.Close(context.Background())
	}
	limit := 0
	f.Fuzz(func(t *testing.T, user uint8, data []byte) {
		name := []string{"s", "m", "nobody"}[user%3]
		reply, cut := send(t, addr, startupBytes("user", name, "database", "db"), data)
		checkReply(t, data, reply, cut)
		fe := pgproto3.NewFrontend(bytes.NewReader(reply), io.Discard)
		for {
			m, err := fe.Receive()
			if err != nil {
				break
			}
			switch m := m.(type) {
			case *pgproto3.AuthenticationOk, *pgproto3.ReadyForQuery:
				t.Fatalf("user %s logged in without the password with %q", name, data)
			case *pgproto3.ErrorResponse:
				if !strings.HasPrefix(m.Code, "28") && m.Code != "08P01" && m.Code != "0A000" {
					t.Fatalf("login of %s failed with SQLSTATE %s (%s)", name, m.Code, m.Message)
				}
			}
		}
		if limit == 0 {
			settle(t, 1<<30)
			limit = runtime.NumGoroutine() + goroutineSlack
		}
		settle(t, limit)
	})
}
