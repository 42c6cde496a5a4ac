package proxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// A scatter runs one simple Query on several shards at once and gives the
// client one result: the shards' rows one after the other, one
// RowDescription, and a command tag that counts all rows. The router only
// scatters statements whose rows need no merging (parser.Analysis.Concat);
// merging is the cross-shard work still to come.

// scatterSink collects the messages of the shards' connections for the
// session goroutine.
type scatterSink struct {
	msgs chan scatterMsg
}

// scatterMsg is one backend message of a scatter, or the loss of a shard's
// connection (err set).
type scatterMsg struct {
	c    *serverConn
	typ  byte
	body []byte
	err  error
}

// read hands one message, whose header is peeked in c.br, to the session.
func (k *scatterSink) read(c *serverConn, typ byte, n int) error {
	if n > maxMessageLen {
		return fmt.Errorf("server message %q too long", typ)
	}
	c.br.Discard(headerLen)
	body, err := readFull(c.br, nil, n)
	if err != nil {
		return err
	}
	k.msgs <- scatterMsg{c: c, typ: typ, body: body}
	return nil
}

func (k *scatterSink) lost(c *serverConn, err error) {
	k.msgs <- scatterMsg{c: c, err: err}
}

// scatterPart is one shard's share of a scatter.
type scatterPart struct {
	c *serverConn
	// skipZ counts the ReadyForQuery of pgshard's own queries sent ahead
	// of the client's (settings).
	skipZ int
	done  bool
	tag   string
}

// scatter runs the Query in body on each shard of d and writes the
// combined result to the client.
func (s *session) scatter(d decision, body []byte) error {
	if err := s.letGo(); err != nil {
		return err
	}
	s.routeNotice(d.shards, false)
	sink := &scatterSink{msgs: make(chan scatterMsg, 64)}
	parts := make([]*scatterPart, 0, len(d.shards))
	release := func() {
		for _, p := range parts {
			if p.c == nil {
				continue
			}
			p.c.sink.Store(nil)
			if p.done {
				s.giveBack(p.c) // its params were brought in line when sent
			} else {
				p.c.p.Discard(p.c)
				p.c.Close()
			}
		}
	}
	defer release()
	sql := bodyString(body)
	home := s.pool
	defer func() { s.pool = home }()
	for i, sh := range d.shards {
		pool, err := s.poolFor(sh, 0)
		if err != nil {
			return err
		}
		s.pool = pool
		c, err := s.acquire()
		if err != nil {
			return err
		}
		p := &scatterPart{c: c}
		parts = append(parts, p)
		c.sink.Store(sink)
		var b []byte
		if set := s.paramsSQL(c); set != "" {
			b = appendQuery(b, set)
			p.skipZ = 1
			c.params = maps.Clone(s.params)
		}
		q := sql
		if d.split != nil {
			q = d.split[i]
		}
		c.unnamed = 0
		b = appendQuery(b, q)
		if _, err := c.bw.Write(b); err == nil {
			err = c.bw.Flush()
		}
	}
	err := s.gather(parts, sink, d.copies)
	if d.write {
		now := time.Now()
		s.mu.Lock()
		if s.lastCommit == nil {
			s.lastCommit = map[int]time.Time{}
		}
		for _, sh := range d.shards {
			s.lastCommit[sh] = now
		}
		s.mu.Unlock()
	}
	return err
}

// gather relays the shards' replies to the client as one result. copies
// says the shards ran the same write on copies of one table: the first
// shard's rows and tag stand for all.
func (s *session) gather(parts []*scatterPart, sink *scatterSink, copies bool) error {
	var (
		desc    []byte // the RowDescription sent, if any
		firstE  []byte // the first error
		pending = len(parts)
		out     []byte
	)
	byConn := map[*serverConn]*scatterPart{}
	for _, p := range parts {
		byConn[p.c] = p
	}
	flush := func() {
		if len(out) == 0 {
			return
		}
		s.wmu.Lock()
		if s.clientErr == nil {
			_, s.clientErr = s.cw.Write(out)
		}
		s.wmu.Unlock()
		out = out[:0]
	}
	for pending > 0 {
		var m scatterMsg
		select {
		case m = <-sink.msgs:
		default:
			flush()
			s.wmu.Lock()
			if s.clientErr == nil {
				s.clientErr = s.cw.Flush()
			}
			s.wmu.Unlock()
			m = <-sink.msgs
		}
		p := byConn[m.c]
		if p == nil || p.done {
			continue
		}
		if m.err != nil {
			p.done, p.c = true, nil
			pending--
			if firstE == nil {
				firstE = appendErrorResponse(nil, &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: m.err,
					Message: fmt.Sprintf("lost connection to server %s (%s)", m.c.p.shard, m.c.p.addr)})
			}
			continue
		}
		if p.skipZ > 0 {
			switch m.typ {
			case 'Z':
				p.skipZ--
			case 'E':
				out = appendMsg(out, 'N', m.body) // a failed settings replay: warn
			}
			continue
		}
		switch m.typ {
		case 'T':
			if desc == nil {
				desc = m.body
				out = appendMsg(out, 'T', m.body)
			} else if !sameColumns(desc, m.body) && firstE == nil {
				firstE = appendErrorResponse(nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
					Message: fmt.Sprintf("shard %s returned different columns than the other shards", m.c.p.shard),
					Hint:    "Check that the table has the same definition on every shard."})
			}
		case 'D':
			if firstE == nil && (!copies || p == parts[0]) {
				out = appendMsg(out, 'D', m.body)
				if len(out) > 64<<10 {
					flush()
				}
			}
		case 'C':
			p.tag = string(bytes.TrimRight(m.body, "\x00"))
		case 'E':
			if firstE == nil {
				firstE = appendMsg(nil, 'E', m.body)
			}
		case 'N', 'A':
			out = appendMsg(out, m.typ, m.body)
		case 'Z':
			p.done = true
			pending--
		case 'S', 'I':
		default:
			if firstE == nil {
				firstE = appendErrorResponse(nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
					Message: fmt.Sprintf("unexpected message %q from shard %s in a multi-shard statement", m.typ, m.c.p.shard)})
			}
		}
	}
	if firstE != nil {
		out = append(out, firstE...)
	} else {
		var tags []string
		for _, p := range parts {
			tags = append(tags, p.tag)
		}
		out = appendCommandComplete(out, combineTags(tags, !copies))
	}
	out = appendReadyForQuery(out, 'I')
	flush()
	s.wmu.Lock()
	if s.clientErr == nil {
		s.clientErr = s.cw.Flush()
	}
	s.wmu.Unlock()
	return errHandled
}

func appendMsg(b []byte, typ byte, body []byte) []byte {
	b = appendHeader(b, typ, len(body))
	return append(b, body...)
}

// sameColumns reports whether two RowDescriptions have the same column
// names and types (table OIDs differ between servers).
func sameColumns(a, b []byte) bool {
	if len(a) < 2 || len(b) < 2 || !bytes.Equal(a[:2], b[:2]) {
		return false
	}
	n := int(binary.BigEndian.Uint16(a))
	a, b = a[2:], b[2:]
	for i := 0; i < n; i++ {
		ia, ib := bytes.IndexByte(a, 0), bytes.IndexByte(b, 0)
		if ia < 0 || ib < 0 || !bytes.Equal(a[:ia], b[:ib]) || len(a) < ia+19 || len(b) < ib+19 {
			return false
		}
		// Skip table OID (4) and column number (2); compare type OID,
		// size, modifier and format (4+2+4+2).
		if !bytes.Equal(a[ia+7:ia+19], b[ib+7:ib+19]) {
			return false
		}
		a, b = a[ia+19:], b[ib+19:]
	}
	return true
}

// combineTags makes one command tag of the shards' tags: with sum, the row
// counts add up ("INSERT 0 n", "UPDATE n", "SELECT n"); without, the first
// shard's tag stands for all (a write to every copy of a replicated table).
func combineTags(tags []string, sum bool) string {
	if !sum || len(tags) == 0 {
		if len(tags) == 0 {
			return ""
		}
		return tags[0]
	}
	var total int64
	prefix := ""
	for _, t := range tags {
		i := strings.LastIndexByte(t, ' ')
		if i < 0 {
			return tags[0]
		}
		n, err := strconv.ParseInt(t[i+1:], 10, 64)
		if err != nil {
			return tags[0]
		}
		total += n
		prefix = t[:i+1]
	}
	return prefix + strconv.FormatInt(total, 10)
}

// letGo detaches a backend the session holds outside a transaction, once
// its replies are in, so that the session holds none.
func (s *session) letGo() error { return s.releaseHeld(nil) }
