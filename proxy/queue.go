package proxy

import (
	"sync/atomic"

	"github.com/pgshard/pgshard/parser"
)

// entryKind is the frontend message (or proxy reply) an entry of the
// response queue stands for.
type entryKind uint8

const (
	eParse entryKind = iota
	eBind
	eDescribe
	eExecute
	eClose
	eSync
	eQuery
	eFunction
	// eFake is a reply the proxy makes itself (ParseComplete for a statement
	// the backend already has, an error of its own). It is written when it
	// reaches the head of the queue, so it keeps its place among the
	// backend's replies.
	eFake
)

// entry is one frontend message sent to the backend, or one reply the proxy
// owes the client, in the order the client is owed replies.
type entry struct {
	kind entryKind
	// swallow: the proxy sent this message itself; the client sees none of
	// its replies. Errors still reach the client, unless quiet.
	swallow bool
	// quiet: for swallowed queries, errors are dropped too.
	quiet bool
	// fake holds the bytes of an eFake entry; readyAfter appends a
	// ReadyForQuery with the transaction status at the time it is written.
	fake       []byte
	readyAfter bool
	// sn is the server statement an eParse entry adds to the backend's
	// cache; it is dropped again if the Parse fails.
	sn string
	// cname and cs name the client statement an eParse entry (or the
	// proxy's ParseComplete for it) creates; if the server skips or fails
	// the Parse, the session forgets the name again.
	cname string
	cs    *clientStmt
	// stmts classify what the CommandCompletes of an eQuery (one per
	// statement, in order) or eExecute confirm; next is the index of the
	// next one.
	stmts []parser.Statement
	next  int
	// done is closed when the entry is answered (proxy-internal queries).
	done chan struct{}
}

// respQueue is a FIFO of entries. The session goroutine appends; the backend
// reader pops. Both hold session.mu.
type respQueue struct {
	items []entry
	head  int
	// fakes counts eFake entries. The backend reader reads it without the
	// lock to skip looking for them after each message: one pushed after
	// it looked is written before the next backend message, and the
	// session makes sure one comes (see endBatch).
	fakes atomic.Int32
}

func (q *respQueue) len() int { return len(q.items) - q.head }

func (q *respQueue) push(e entry) {
	if e.kind == eFake {
		q.fakes.Add(1)
	}
	q.items = append(q.items, e)
}

// front returns the oldest entry, or nil.
func (q *respQueue) front() *entry {
	if q.head < len(q.items) {
		return &q.items[q.head]
	}
	return nil
}

// back returns the newest entry, or nil.
func (q *respQueue) back() *entry {
	if q.head < len(q.items) {
		return &q.items[len(q.items)-1]
	}
	return nil
}

func (q *respQueue) pop() {
	e := &q.items[q.head]
	if e.kind == eFake {
		q.fakes.Add(-1)
	}
	if e.done != nil {
		close(e.done)
	}
	*e = entry{}
	q.head++
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	}
}
