package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pgshard/pgshard/parser"
)

// A scatter runs one simple Query on several shards at once and gives the
// client one result: the shards' rows one after the other, one
// RowDescription, and a command tag that counts all rows. The router only
// scatters statements whose rows need no merging (parser.Analysis.Concat);
// merging is the cross-shard work still to come.

// scatterSink collects the messages of the shards' connections for the
// session goroutine. A connection's reader hands over, in one batch, the
// messages its buffer already holds (up to the next ReadyForQuery), so a
// stream of rows costs a channel hand-over per buffer, not per row.
// Closing quit releases readers the session no longer listens to.
type scatterSink struct {
	batches chan []scatterMsg
	quit    chan struct{}
	// pending is the rest of the batch the session is reading; owned by
	// the session goroutine.
	pending []scatterMsg
}

func newScatterSink() *scatterSink {
	return &scatterSink{batches: make(chan []scatterMsg, 16), quit: make(chan struct{})}
}

// next returns the next message, waiting for one.
func (k *scatterSink) next() scatterMsg {
	if len(k.pending) == 0 {
		k.pending = <-k.batches
	}
	m := k.pending[0]
	k.pending = k.pending[1:]
	return m
}

// tryNext returns the next message if one has arrived.
func (k *scatterSink) tryNext() (scatterMsg, bool) {
	if len(k.pending) == 0 {
		select {
		case k.pending = <-k.batches:
		default:
			return scatterMsg{}, false
		}
	}
	m := k.pending[0]
	k.pending = k.pending[1:]
	return m, true
}

// errAbandoned ends a connection whose replies the session stopped reading.
var errAbandoned = errors.New("scatter abandoned")

// scatterMsg is one backend message of a scatter, or the loss of a shard's
// connection (err set).
type scatterMsg struct {
	c    *serverConn
	typ  byte
	body []byte
	err  error
}

// maxBatch bounds the messages of one batch.
const maxBatch = 256

// read hands the message whose header is peeked in c.br to the session,
// with the messages after it that c.br holds whole already.
func (k *scatterSink) read(c *serverConn, typ byte, n int) error {
	var batch []scatterMsg
	var slab []byte // the batch's bodies, one allocation for most batches
	for {
		if n > maxMessageLen {
			return fmt.Errorf("server message %q too long", typ)
		}
		c.br.Discard(headerLen)
		if cap(slab)-len(slab) < n {
			slab = make([]byte, 0, max(n, serverBufSize))
		}
		start := len(slab)
		slab = slab[:start+n]
		if _, err := io.ReadFull(c.br, slab[start:]); err != nil {
			return err
		}
		batch = append(batch, scatterMsg{c: c, typ: typ, body: slab[start : start+n : start+n]})
		if typ == 'Z' || len(batch) == maxBatch || c.br.Buffered() < headerLen {
			break
		}
		h, _ := c.br.Peek(headerLen)
		next := int(binary.BigEndian.Uint32(h[1:])) - 4
		if next < 0 || c.br.Buffered() < headerLen+next {
			break // not whole yet: the reader waits for it with the next batch
		}
		typ, n = h[0], next
	}
	select {
	case k.batches <- batch:
		return nil
	case <-k.quit:
		return errAbandoned
	}
}

func (k *scatterSink) lost(c *serverConn, err error) {
	select {
	case k.batches <- []scatterMsg{{c: c, err: err}}:
	case <-k.quit:
	}
}

// scatterPart is one shard's share of a scatter.
type scatterPart struct {
	c    *serverConn
	sink *scatterSink
	// skipZ counts the ReadyForQuery of pgshard's own queries sent ahead
	// of the client's (settings).
	skipZ int
	done  bool
	tag   string
	// begin: the connection joins the client's transaction with this
	// scatter (its BEGIN is sent first); status is the transaction
	// status of its last ReadyForQuery.
	begin  bool
	status byte
}

// end records the ReadyForQuery m that ends p's reply.
func (p *scatterPart) end(m scatterMsg) {
	p.done = true
	if len(m.body) > 0 {
		p.status = m.body[0]
	}
}

// scatter runs the Query in body on each shard of d and writes the
// combined result to the client.
func (s *session) scatter(d decision, body []byte) error {
	sql, err := shardQuery(d, bodyString(body))
	if err != nil {
		return err
	}
	return s.scatterRun(d, false, mergeOf(d, true), textFormats, func(i int, b []byte) []byte {
		if d.split != nil {
			return appendQuery(b, d.split[i])
		}
		return appendQuery(b, sql)
	})
}

// extScatter is a multi-shard statement of the extended protocol, held
// from its Bind until the client's Execute (or Sync) says what to run.
type extScatter struct {
	d        decision
	query    string
	types    []byte // the Parse's parameter type section
	params   []byte // the Bind from its parameter format codes on
	portal   string
	describe bool // the client sent Describe of the portal
}

// holdScatter answers the messages of the extended protocol that arrive
// while a multi-shard Bind waits for its Execute. It reports whether it
// handled the message.
func (s *session) holdScatter(typ byte, body []byte) (bool, error) {
	x := s.xscatter
	portal, rest, _ := cstring(body)
	switch {
	case typ == 'D' && len(body) > 1 && body[0] == 'P' && string(portal[1:]) == x.portal:
		x.describe = true
		return true, nil
	case typ == 'E' && string(portal) == x.portal:
		s.xscatter = nil
		if len(rest) < 4 || binary.BigEndian.Uint32(rest) != 0 {
			return true, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: "cannot fetch the rows of a multi-shard statement in batches (Execute with a row limit)",
				Hint:    "Fetch all rows at once, or pin the statement to one shard key."}
		}
		return true, s.scatterExt(x, true)
	case typ == 'S':
		s.xscatter = nil
		return false, s.scatterExt(x, false) // Bind without Execute; then the Sync
	}
	s.xscatter = nil
	return true, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
		Message: "a multi-shard statement in the extended query protocol must be followed by Describe and Execute of its portal, then Sync",
		Hint:    "Send Bind, Describe, Execute and Sync together, or pin the statement to one shard key."}
}

// scatterExt runs a held multi-shard statement on its shards: Parse, Bind,
// Describe if asked and Execute if exec, each closed by a Sync of
// pgshard's own. The client's own Sync follows.
func (s *session) scatterExt(x *extScatter, exec bool) error {
	merge := mergeOf(x.d, exec)
	query, params, formats := x.query, x.params, textFormats
	if merge != gatherConcat {
		var err error
		if query, err = shardQuery(x.d, query); err != nil {
			return err
		}
		if !x.describe {
			// The merge needs the column types: the shards describe the
			// portal, and the client, which did not ask, does not see it.
			x.d.hideDesc = true
		}
	}
	types := x.types
	if merge == gatherGrouped {
		// The shards send text, which pgshard combines; it sends the
		// client the formats it asked for.
		formats, params = resultFormats(params)
		// LIMIT and OFFSET parameters are gone from the shards' query;
		// declared, the Bind's values for them are still accepted.
		types = declareLimitParams(types, params, x.d.grouped.Limit, x.d.grouped.Offset)
	}
	return s.scatterRun(x.d, true, merge, formats, func(i int, b []byte) []byte {
		query, types, params := query, types, params
		if x.d.split != nil {
			keep := x.d.splitParams[i]
			query, types, params = x.d.split[i], cutTypes(types, keep), cutBind(params, keep)
		}
		b = appendMsg3(b, 'P', []byte{0}, []byte(query), []byte{0}, types)
		b = appendMsg3(b, 'B', []byte{0, 0}, params)
		if x.describe || merge != gatherConcat {
			b = appendMsg3(b, 'D', []byte{'P', 0})
		}
		if exec {
			b = appendMsg3(b, 'E', []byte{0, 0, 0, 0, 0})
		}
		return append(b, msgSync...)
	})
}

// declareLimitParams returns a Parse's parameter type section that also
// declares the parameters limit and offset refer to, as bigint, so that a
// query without them still takes the Bind's values.
func declareLimitParams(types, params []byte, limit, offset *parser.Value) []byte {
	var oids []uint32
	if len(types) >= 2 {
		n := int(binary.BigEndian.Uint16(types))
		for i := 0; i < n && len(types) >= 2+4*(i+1); i++ {
			oids = append(oids, binary.BigEndian.Uint32(types[2+4*i:]))
		}
	}
	if p, err := parseBindParams(params); err == nil {
		for len(oids) < len(p.values) {
			oids = append(oids, 0)
		}
	}
	for _, v := range []*parser.Value{limit, offset} {
		if v != nil && v.Kind == parser.ValueParam && v.Param <= len(oids) && oids[v.Param-1] == 0 {
			oids[v.Param-1] = 20 // int8
		}
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(oids)))
	for _, o := range oids {
		out = binary.BigEndian.AppendUint32(out, o)
	}
	return out
}

// appendMsg3 appends a message whose body is the concatenation of parts.
func appendMsg3(b []byte, typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b = appendHeader(b, typ, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// cutTypes keeps, of a Parse's parameter type section, the types of the
// parameters numbered in keep (1-based), in that order.
func cutTypes(types []byte, keep []int) []byte {
	n := 0
	if len(types) >= 2 {
		n = int(binary.BigEndian.Uint16(types))
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(keep)))
	for _, k := range keep {
		var oid uint32 // unspecified: the server infers it
		if k <= n && len(types) >= 2+4*k {
			oid = binary.BigEndian.Uint32(types[2+4*(k-1):])
		}
		out = binary.BigEndian.AppendUint32(out, oid)
	}
	return out
}

// cutBind keeps, of a Bind's section from the parameter format codes on,
// the parameters numbered in keep (1-based), in that order. The caller has
// checked the section with parseBindParams.
func cutBind(params []byte, keep []int) []byte {
	p, err := parseBindParams(params)
	if err != nil {
		return params
	}
	nf := int(binary.BigEndian.Uint16(params))
	rest := params[2+2*nf+2:]
	for range p.values {
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l > 0 {
			rest = rest[l:]
		}
	}
	var out []byte
	if len(p.formats) <= 1 {
		out = append(out, params[:2+2*nf]...)
	} else {
		out = binary.BigEndian.AppendUint16(out, uint16(len(keep)))
		for _, k := range keep {
			out = binary.BigEndian.AppendUint16(out, uint16(p.format(k-1)))
		}
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(keep)))
	for _, k := range keep {
		v := []byte(nil)
		if k <= len(p.values) {
			v = p.values[k-1]
		}
		if v == nil {
			out = binary.BigEndian.AppendUint32(out, 0xFFFFFFFF)
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return append(out, rest...) // the result format codes
}

// endScatterTx commits (ok) or rolls back the transaction each shard of a
// multi-shard write ran in, once every shard has answered: two-phase when
// the database says so (see commitParts). An error is the client's.
func (s *session) endScatterTx(parts []*scatterPart, ok bool) error {
	var tps []*txPart
	for _, p := range parts {
		if p.c != nil {
			tps = append(tps, &txPart{c: p.c, status: p.status})
		}
	}
	var err error
	if ok {
		err = s.commitParts(tps)
	} else {
		s.rollbackParts(tps)
	}
	for i, tp := range tps {
		parts[i].done = tp.status == 'I'
	}
	return err
}

// gatherKind is how the shards' rows of a scatter make the result.
type gatherKind uint8

const (
	gatherConcat  gatherKind = iota // one after the other
	gatherSorted                    // merged in ORDER BY order
	gatherGrouped                   // rows of equal keys combined
)

// mergeOf is how d's rows make the result; rows says rows are wanted
// (an Execute, not only a Bind).
func mergeOf(d decision, rows bool) gatherKind {
	switch {
	case !rows:
		return gatherConcat
	case d.sorted != nil:
		return gatherSorted
	case d.grouped != nil:
		return gatherGrouped
	}
	return gatherConcat
}

// shardQuery is what the shards run for sql under decision d.
func shardQuery(d decision, sql string) (string, error) {
	switch {
	case d.sorted != nil && d.sorted.Rewrite:
		return parser.ShardQuery(sql)
	case d.grouped != nil && d.grouped.Rewrite:
		return parser.GroupedShardQuery(sql, d.grouped)
	}
	return sql, nil
}

func textFormats(int) int16 { return 0 }

func (s *session) scatterRun(d decision, extended bool, merge gatherKind, formats func(int) int16, msgs func(i int, b []byte) []byte) error {
	// Inside a transaction the shards' backends are the transaction's:
	// those it has already, parked, and new ones that join it here.
	inTx, err := s.startParts()
	if err != nil {
		return err
	}
	s.mu.Lock()
	failed := inTx && s.failedTx
	s.mu.Unlock()
	if failed {
		return errAbortedTx // a shard of the transaction was lost
	}
	s.scatterTx, s.scatterFailed = inTx, false
	// Outside a transaction a write to several shards runs in a
	// transaction on each, committed only when every shard succeeded
	// (else rolled back everywhere).
	atomic := d.write && len(d.shards) > 1 && merge == gatherConcat && !inTx && !d.noTxBlock
	// Merging reads each shard's stream on its own: a sink a shard. Else
	// the rows go out as they come, from one sink.
	sink := newScatterSink()
	parts := make([]*scatterPart, 0, len(d.shards))
	release := func() {
		s.setRunning(nil)
		lost := false
		// The rest of what the shards send is read, not cut off, when it
		// is bounded (a LIMIT the shards got too): their connections then
		// stay open for the next statement. In a transaction it must be.
		if inTx || d.limit >= 0 {
			drainParts(parts)
		}
		for _, p := range parts {
			select {
			case <-p.sink.quit:
			default:
				close(p.sink.quit)
			}
			if p.c == nil {
				lost = true
				continue
			}
			if p.c.qt.Swap(0) != 0 {
				p.c.nc.SetReadDeadline(time.Time{})
			}
			p.c.sink.Store(nil)
			switch {
			case inTx:
				s.parkPart(p)
			case p.done:
				s.giveBack(p.c) // its params were brought in line when sent
			default:
				p.c.p.Discard(p.c)
				p.c.Close()
			}
		}
		if inTx {
			s.afterParts(lost, s.scatterFailed)
		}
		s.scatterTx = false
	}
	defer release()
	defer s.scatterDone(d, &parts, inTx, time.Now())
	home := s.pool
	defer func() { s.pool = home }()
	servers := make([]int, len(d.shards))
	qt := s.srv.current().opts.QueryTimeout
	for i, sh := range d.shards {
		c, server, begin, err := s.partConn(sh, d.write || inTx, inTx)
		if err != nil {
			s.scatterFailed = true
			return err
		}
		servers[i] = server
		p := &scatterPart{c: c, sink: sink, begin: begin, status: 'I'}
		if merge == gatherSorted {
			p.sink = newScatterSink()
		}
		parts = append(parts, p)
		s.setRunning(parts)
		b := msgs(i, s.partPrologue(p, atomic))
		if qt > 0 {
			c.qt.Store(int64(qt))
			c.nc.SetReadDeadline(time.Now().Add(qt))
		}
		if _, err := c.bw.Write(b); err == nil {
			err = c.bw.Flush()
		}
	}
	s.routeNotice(d.shards, servers)
	switch merge {
	case gatherSorted:
		err = s.gatherSorted(parts, d, extended)
	case gatherGrouped:
		err = s.gatherGrouped(parts, sink, d, extended, formats)
	default:
		var finish func(bool) error
		if atomic {
			finish = func(ok bool) error { return s.endScatterTx(parts, ok) }
		}
		var co *copyOut
		if d.copyTo != nil {
			co = &copyOut{header: d.copyTo.Options.Header != parser.CopyHeaderNone, binary: d.copyTo.Options.Format == parser.CopyBinary,
				seen: map[*scatterPart]bool{}}
		}
		err = s.gather(parts, sink, d.copies, co, extended, finish)
	}
	if d.write && !inTx {
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

// partPrologue starts p's messages to its shard, ahead of the statement:
// the session's settings, and BEGIN when the statement runs in a
// transaction of its own there (atomic) or joins the client's (p.begin).
// It sets the connection to deliver its replies to p's sink.
func (s *session) partPrologue(p *scatterPart, atomic bool) []byte {
	c := p.c
	c.sink.Store(p.sink)
	if c.closed.Load() {
		// The connection died while it waited (parked in the client's
		// transaction, or idle in the pool) and its reader, gone, told no
		// sink: tell this one, as the reader would have. (A reader that
		// ends after the Store above tells it itself; the part ignores a
		// second loss.)
		go p.sink.lost(c, net.ErrClosed)
	}
	var b []byte
	if set := s.paramsSQL(c); set != "" {
		b = appendQuery(b, set)
		p.skipZ = 1
		c.params = maps.Clone(s.params)
	}
	c.unnamed = 0
	switch {
	case atomic:
		b = appendQuery(b, "BEGIN")
		p.skipZ++
	case p.begin:
		b = appendQuery(b, s.beginSQL())
		p.skipZ++
	}
	return b
}

// setRunning records the connections of parts for cancel requests (nil:
// none any more).
func (s *session) setRunning(parts []*scatterPart) {
	s.mu.Lock()
	s.running = s.running[:0]
	for _, p := range parts {
		if p.c != nil {
			s.running = append(s.running, p.c)
		}
	}
	s.mu.Unlock()
}

// parkPart keeps the connection of a part for the client's transaction,
// once cancel requests aimed at it are delivered.
func (s *session) parkPart(p *scatterPart) {
	p.c.cancels.Wait()
	s.mu.Lock()
	if s.parked == nil {
		s.parked = map[int]*txPart{}
	}
	s.parked[p.c.p.shardIdx] = &txPart{c: p.c, status: p.status}
	s.noteShard(p.c.p.shardIdx)
	s.mu.Unlock()
}

// afterParts sets the client's transaction status once a statement's
// parts are parked: failed when a part was lost or the statement failed.
// It returns the status.
func (s *session) afterParts(lost, failed bool) byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lost {
		s.failedTx = true
	}
	s.vtxStatus = s.partsStatusLocked()
	if failed {
		s.vtxStatus = 'E'
	}
	s.vtxFailed = s.vtxStatus == 'E'
	return s.vtxStatus
}

// startParts readies the session for a statement that runs on several
// shards: it reports whether the client is in a transaction (which the
// shards' connections then join), lets go of the backend it holds (parks
// it, in a transaction), and takes up the BEGIN of a transaction not
// bound to a shard yet.
func (s *session) startParts() (inTx bool, err error) {
	inTx = s.inTx()
	if err := s.letGo(); err != nil {
		return inTx, err
	}
	if s.vtx != nil {
		s.txBegin = strings.Join(s.vtx, ";")
		s.vtx = nil
	}
	return inTx, nil
}

// partConn takes the connection a scatter runs on for shard: inside a
// transaction the transaction's own there (begin false) or a new one of
// the primary that joins it (begin true); else as acquireFor.
func (s *session) partConn(shard int, write, inTx bool) (c *serverConn, server int, begin bool, err error) {
	if inTx {
		if tp := s.parked[shard]; tp != nil {
			s.mu.Lock()
			delete(s.parked, shard)
			lost := tp.c.closed.Load()
			if lost {
				s.failedTx = true // lost while parked: nobody was told
			}
			s.mu.Unlock()
			if lost {
				tp.c.p.Discard(tp.c)
				pe := errPartLost(tp.c)
				pe.Detail, pe.Hint = lostDetail, lostHint
				return nil, 0, false, pe
			}
			return tp.c, tp.c.p.server, false, nil
		}
	}
	c, server, err = s.acquireFor(shard, write)
	return c, server, inTx, err
}

// drainParts reads the rest of the parts' replies, up to their
// ReadyForQuery, so that their connections can stay in the client's
// transaction.
func drainParts(parts []*scatterPart) {
	byConn := partsByConn(parts)
	for _, p := range parts {
		for !p.done {
			m := p.sink.next()
			q := byConn[m.c]
			if q == nil || q.done {
				continue
			}
			switch {
			case m.err != nil:
				q.done, q.c = true, nil
			case m.typ == 'Z' && q.skipZ > 0:
				q.skipZ--
			case m.typ == 'Z':
				q.end(m)
			}
		}
	}
}

// acquireFor takes a connection to the server of shard that a statement
// outside a transaction reads from (a replica, when the split allows) or
// writes to, and reports which server that is.
func (s *session) acquireFor(shard int, write bool) (*serverConn, int, error) {
	server := s.pickServer(shard, write)
	for {
		pool, err := s.poolFor(shard, server)
		if err != nil {
			return nil, 0, err
		}
		s.pool = pool
		c, err := s.acquire()
		if err == nil || server == 0 {
			return c, server, err
		}
		// The replica is unusable: the primary serves the read.
		s.srv.replicaFailed(s.db, pool)
		server = 0
	}
}

// gather relays the shards' replies to the client as one result. copies
// says the shards ran the same write on copies of one table: the first
// shard's rows and tag stand for all. In the extended protocol (extended)
// the client's Sync, not this, brings ReadyForQuery.
//
// finish, when set, ends the shards' transaction once every shard has
// answered: it is told whether all succeeded, and an error it returns is
// the client's.
func (s *session) gather(parts []*scatterPart, sink *scatterSink, copies bool, co *copyOut, extended bool, finish func(ok bool) error) error {
	var (
		g       = newGathered(parts)
		desc    []byte // the RowDescription sent, if any
		pending = len(parts)
	)
	byConn := partsByConn(parts)
	for pending > 0 {
		m, ok := sink.tryNext()
		if !ok {
			g.out = s.writeClient(g.out)
			s.flushClient()
			m = sink.next()
		}
		p := byConn[m.c]
		if p == nil || p.done {
			continue
		}
		if m.err != nil {
			p.done, p.c = true, nil
			pending--
			g.fail(errShardLost(m))
			continue
		}
		var skip bool
		if skip, g.out = p.settingsReply(m, g.out); skip || g.relay(m) {
			continue
		}
		switch m.typ {
		case 'T':
			if desc == nil {
				desc = m.body
				g.out = appendMsg(g.out, 'T', m.body)
			} else if !sameColumns(desc, m.body) {
				g.fail(errShardColumns(m))
			}
		case 'D':
			if g.firstE == nil && (!copies || p == parts[0]) {
				g.out = appendMsg(g.out, 'D', m.body)
				if len(g.out) > 64<<10 {
					g.out = s.writeClient(g.out)
				}
			}
		case 'C':
			p.tag = string(bytes.TrimRight(m.body, "\x00"))
		case 'Z':
			p.end(m)
			pending--
		case 'H': // COPY ... TO STDOUT: one CopyOutResponse for all
			if co != nil && !g.sent['H'] && g.firstE == nil {
				g.sent['H'] = true
				g.out = appendMsg(g.out, 'H', m.body)
			}
		case 'd':
			if co != nil && g.firstE == nil {
				if b := co.data(p, m.body); b != nil {
					g.out = appendMsg(g.out, 'd', b)
				}
				if len(g.out) > 64<<10 {
					g.out = s.writeClient(g.out)
				}
			}
		case 'c': // one CopyDone, at the end
		default:
			g.fail(errShardUnexpected(m))
		}
	}
	if co != nil && g.sent['H'] && g.firstE == nil {
		if co.binary && co.sent {
			g.out = appendMsg(g.out, 'd', []byte{0xFF, 0xFF})
		}
		g.out = append(g.out, msgCopyDone...)
	}
	if finish != nil {
		if err := finish(g.firstE == nil); err != nil {
			g.fail(toPgError(err))
		}
	}
	var tags []string
	for _, p := range parts {
		if p.tag != "" {
			tags = append(tags, p.tag)
		}
	}
	tag := ""
	if len(tags) > 0 {
		tag = combineTags(tags, !copies)
	}
	return s.finishGather(g, tag, extended)
}

// partsByConn indexes the parts of a scatter by their connections.
func partsByConn(parts []*scatterPart) map[*serverConn]*scatterPart {
	m := make(map[*serverConn]*scatterPart, len(parts))
	for _, p := range parts {
		if p.c != nil {
			m[p.c] = p
		}
	}
	return m
}

// gathered is what a gather has for the client: the replies so far and
// the first error, which ends the result.
type gathered struct {
	out    []byte
	firstE []byte
	sent   map[byte]bool // the replies sent once for all shards
	parts  []*scatterPart
}

func newGathered(parts []*scatterPart) *gathered {
	return &gathered{sent: map[byte]bool{}, parts: parts}
}

// fail keeps pe as the client's error unless there is one already.
func (g *gathered) fail(pe *pgError) {
	if g.firstE == nil {
		g.setError(appendErrorResponse(nil, pe))
	}
}

// setError keeps the client's error, and cancels what the other shards
// still run: their rows no longer matter.
func (g *gathered) setError(e []byte) {
	g.firstE = e
	for _, p := range g.parts {
		if c := p.c; c != nil && !p.done {
			c.cancels.Add(1)
			go func() {
				defer c.cancels.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c.cancel(ctx)
			}()
		}
	}
}

// relay handles the shard replies every way of gathering treats alike, and
// reports whether m was one: BindComplete, NoData and EmptyQueryResponse
// go out once for all shards; ParseComplete (of pgshard's own Parse: the
// client's was answered when it was sent) and ParameterStatus are
// dropped; notices go out; the first error is kept.
func (g *gathered) relay(m scatterMsg) bool {
	switch m.typ {
	case '2', 'n', 'I':
		if !g.sent[m.typ] && g.firstE == nil {
			g.sent[m.typ] = true
			g.out = appendMsg(g.out, m.typ, m.body)
		}
	case '1', 'S':
	case 'N', 'A':
		g.out = appendMsg(g.out, m.typ, m.body)
	case 'E':
		if g.firstE == nil {
			g.setError(appendMsg(nil, 'E', m.body))
		}
	default:
		return false
	}
	return true
}

// finishGather ends the client's result with the first error or the tag
// (none when empty), then ReadyForQuery in the simple protocol; in the
// extended protocol an error skips the client's messages to Sync, as the
// server does.
func (s *session) finishGather(g *gathered, tag string, extended bool) error {
	switch {
	case g.firstE != nil:
		g.out = append(g.out, g.firstE...)
		s.noteServerError(g.firstE)
		if extended {
			s.skipToSync = true
		}
	case tag != "":
		g.out = appendCommandComplete(g.out, tag)
	}
	if !extended {
		status := byte('I')
		if s.scatterTx {
			// The client's transaction goes on; an error fails it.
			status = 'T'
			if g.firstE != nil {
				status = 'E'
			}
		}
		g.out = appendReadyForQuery(g.out, status)
	}
	if g.firstE != nil {
		s.scatterFailed = true
	}
	s.writeClient(g.out)
	s.flushClient()
	return errHandled
}

// The errors of a scatter's shards that pgshard reports itself.
func errShardLost(m scatterMsg) *pgError {
	if d := m.c.qt.Load(); d > 0 && timedOut(m.err) {
		return errQueryTimeout(m.c.p.shard, m.c.p.addr, time.Duration(d), m.err)
	}
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: m.err,
		Message: fmt.Sprintf("lost connection to server %s (%s)", m.c.p.shard, m.c.p.addr)}
}

func errShardColumns(m scatterMsg) *pgError {
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
		Message: fmt.Sprintf("shard %s returned different columns than the other shards", m.c.p.shard),
		Hint:    "Check that the table has the same definition on every shard."}
}

func errShardUnexpected(m scatterMsg) *pgError {
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
		Message: fmt.Sprintf("unexpected message %q from shard %s in a multi-shard statement", m.typ, m.c.p.shard)}
}

// settingsReply consumes, into out, a reply to the settings pgshard sent
// a shard ahead of the statement (a failed one warns the client), and
// reports whether m was one.
func (p *scatterPart) settingsReply(m scatterMsg, out []byte) (bool, []byte) {
	if p.skipZ == 0 {
		return false, out
	}
	switch m.typ {
	case 'Z':
		p.skipZ--
	case 'E':
		out = appendMsg(out, 'N', m.body)
	}
	return true, out
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
