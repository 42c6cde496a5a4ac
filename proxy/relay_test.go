package proxy

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A cached single-shard simple Query through a real Server: two shards
// (both the fake backend) and a hash rule on users.id, so each query is
// parsed (from the cache), routed to one shard and its reply relayed
// message by message.

// relayClient is a raw protocol client that sends pre-encoded queries and
// reads replies without decoding them, so that it allocates nothing itself.
type relayClient struct {
	c       *client
	br      *bufio.Reader
	queries [][]byte
	i       int
}

func newRelayClient(t testing.TB, rows int) *relayClient {
	return newRelayClientFor(t, rows, "SELECT abalance FROM users WHERE id = %d")
}

// newRelayClientFor sends query, whose %d is replaced by a new literal
// each time.
func newRelayClientFor(t testing.TB, rows int, query string) *relayClient {
	t.Helper()
	fb := startFakeBackend(t)
	fb.setRows(rows)
	addr := serveProxy(t, Options{
		PoolMode:         PoolTransaction,
		ServerResetQuery: "DISCARD ALL",
		QueryWaitTimeout: 5 * time.Second,
		Users:            []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", PoolSize: 1,
			Shards: []Shard{{Name: "s0", Primary: fb.url()}, {Name: "s1", Primary: fb.url()}},
			Tables: []TableRule{{Name: "users", Key: "id", Method: "hash", KeyType: "bigint"}}}},
	})
	rc := &relayClient{c: dialClient(t, addr)}
	rc.br = bufio.NewReaderSize(rc.c.nc, 8192)
	// Different literals, one cache entry: pgbench -S in simple mode.
	for i := range 64 {
		rc.queries = append(rc.queries, appendQuery(nil, strings.ReplaceAll(query, "%d", strconv.Itoa(i*7919))))
	}
	rc.roundTrip() // warm the parse cache and the backend pool
	return rc
}

// roundTrip sends one query and reads its reply up to ReadyForQuery; it
// returns the number of messages read.
func (rc *relayClient) roundTrip() int {
	q := rc.queries[rc.i%len(rc.queries)]
	rc.i++
	if _, err := rc.c.nc.Write(q); err != nil {
		rc.c.t.Fatal(err)
	}
	for n := 1; ; n++ {
		typ, bodyLen, err := peekHeader(rc.br)
		if err != nil || bodyLen < 0 {
			rc.c.t.Fatalf("reading reply: %v (length %d)", err, bodyLen)
		}
		if _, err := rc.br.Discard(headerLen + bodyLen); err != nil {
			rc.c.t.Fatal(err)
		}
		switch typ {
		case 'E':
			rc.c.t.Fatal("error reply")
		case 'Z':
			return n
		}
	}
}

// relayAllocs is the allocations of one round trip of a query answered
// with the given number of rows, over the whole process (proxy, fake
// backend and client).
func relayAllocs(t *testing.T, rows int) float64 {
	rc := newRelayClient(t, rows)
	if n := rc.roundTrip(); n != rows+3 {
		t.Fatalf("round trip read %d messages, want %d", n, rows+3)
	}
	return testing.AllocsPerRun(200, func() { rc.roundTrip() })
}

// TestRelayAllocsPerMessage: relaying a backend's messages to the client
// costs no allocation per message. The round trip's own allocations (the
// fake backend's decoding of the Query among them) are the same with 1 row
// as with 100.
func TestRelayAllocsPerMessage(t *testing.T) {
	one, hundred := relayAllocs(t, 1), relayAllocs(t, 100)
	if perMsg := (hundred - one) / 99; perMsg > 0.05 {
		t.Errorf("a round trip allocates %v times with 1 row and %v with 100: %.2f per message", one, hundred, perMsg)
	}
}

// BenchmarkRelay is a cached single-shard simple Query round trip through
// the proxy; allocs/op counts the proxy, the fake backend and the client.
// Messages per round trip: RowDescription, the rows, CommandComplete,
// ReadyForQuery.
func BenchmarkRelay(b *testing.B) {
	for _, rows := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			rc := newRelayClient(b, rows)
			msgs := 0
			b.ReportAllocs()
			for b.Loop() {
				msgs += rc.roundTrip()
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
		})
	}
}

// BenchmarkMergeSorted is a two-shard SELECT with ORDER BY: the shards'
// sorted rows are merged by the session (merge.go). allocs/op counts the
// proxy, the fake backend and the client.
func BenchmarkMergeSorted(b *testing.B) {
	for _, rows := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d per shard", rows), func(b *testing.B) {
			rc := newRelayClientFor(b, rows, "SELECT abalance FROM users WHERE abalance > %d ORDER BY abalance")
			msgs := 0
			b.ReportAllocs()
			for b.Loop() {
				msgs += rc.roundTrip()
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
		})
	}
}

// TestWriteHeader: writeHeader writes what appendHeader appends, without
// allocating (writeMsg sends every Parse, Bind and Execute through it).
func TestWriteHeader(t *testing.T) {
	var out strings.Builder
	w := bufio.NewWriter(&out)
	if err := writeHeader(w, 'Q', 300); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if want := string(appendHeader(nil, 'Q', 300)); out.String() != want {
		t.Errorf("writeHeader wrote %q, want %q", out.String(), want)
	}
	w = bufio.NewWriter(io.Discard)
	if n := testing.AllocsPerRun(100, func() { writeHeader(w, 'B', 20) }); n != 0 {
		t.Errorf("writeHeader allocates %v times", n)
	}
}
