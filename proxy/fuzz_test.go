package proxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

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

// drain sends data, half-closes, and reads until the proxy closes the
// connection. A proxy that neither answers nor closes within the deadline
// is stuck.
func drain(t *testing.T, addr string, prefix, data []byte) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(prefix)
	nc.Write(data)
	nc.(*net.TCPConn).CloseWrite()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("proxy neither answered nor closed the connection within 10s")
		}
	}
}

// FuzzStartup feeds arbitrary bytes to the startup phase.
func FuzzStartup(f *testing.F) {
	f.Add(startupBytes("user", "u", "database", "db"))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47}) // SSLRequest
	f.Add(append([]byte{0, 0, 0, 8, 4, 210, 22, 48}, startupBytes("user", "u")...))
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2}) // CancelRequest
	f.Add([]byte{0, 0, 0, 9, 0, 3, 0, 2, 0})                           // 3.2, no params
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	fb := startFakeBackend(f)
	addr := fakeProxy(f, fb, PoolTransaction, 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		drain(t, addr, nil, data)
	})
}

// FuzzSession feeds arbitrary frontend messages to a logged-in session.
func FuzzSession(f *testing.F) {
	f.Add(encode(&pgproto3.Query{String: "select 1"}))
	f.Add(encode(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "a"},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	f.Add(encode(&pgproto3.Parse{Query: "syntax error"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "begin; select 1/0"}, &pgproto3.Query{String: "rollback"}))
	f.Add(encode(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Flush{},
		&pgproto3.Close{ObjectType: 'S', Name: "a"}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Sync{}))
	f.Add(encode(&pgproto3.Query{String: "SET a.b = 1; RESET ALL; DEALLOCATE ALL; DISCARD ALL"},
		&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "no"}))
	f.Add(encode(&pgproto3.Parse{Query: "die"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}, &pgproto3.Sync{}))
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{'B', 0, 0, 0, 5, 0})
	fb := startFakeBackend(f)
	addr := fakeProxy(f, fb, PoolTransaction, 2)
	login := startupBytes("user", "u", "database", "db")
	f.Fuzz(func(t *testing.T, data []byte) {
		drain(t, addr, login, data)
	})
}
