package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// COPY ... FROM STDIN into a table on several shards: every shard of the
// table's rule runs the COPY, and the session cuts the client's data into
// rows (parser.CopySplitter) and sends each row to the shard its key
// says, as it streams in. Outside a transaction the shards' COPYs commit
// together (two-phase, like any write to several shards); inside one
// they are part of it.

// copyPlan is how a COPY FROM STDIN is split.
type copyPlan struct {
	stmt *parser.CopyStmt
	rule *routing.Rule
}

// copyIn is a split COPY FROM STDIN in progress. The session goroutine
// owns it.
type copyIn struct {
	s       *session
	plan    *copyPlan
	parts   []*scatterPart
	byShard map[int]*scatterPart // database shard index → part
	sink    *scatterSink
	split   *parser.CopySplitter
	atomic  bool
	inTx    bool
	// failed: the COPY failed (a shard's error or bad data); the client
	// has its error and its data is dropped until CopyDone or CopyFail.
	failed bool
	hdr    [headerLen]byte
}

// copyInStart starts a split COPY FROM STDIN (the simple Query in body)
// on every shard of d and answers the client with one CopyInResponse.
func (s *session) copyInStart(d decision, body []byte) error {
	cp := d.copyIn
	ru := cp.rule
	key := 0
	if ru.Replicated {
		// Every row goes to every copy: no key to find.
	} else if cols := cp.stmt.Columns; len(cols) > 0 {
		i, ok := cp.stmt.KeyIndex(ru.Key, nil)
		if !ok {
			return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("COPY into %s must include its shard key column %s: pgshard sends each row to the shard its key says", cp.stmt.Table.Name, ru.Key)}
		}
		key = i
	} else {
		i, ok := s.rt.keyPosition(cp.stmt.Table, ru.Key)
		if !ok {
			return &pgError{Severity: "ERROR", Code: codeUndefinedTable,
				Message: fmt.Sprintf("relation %q does not exist on the shards, or has no column %s", cp.stmt.Table.Name, ru.Key)}
		}
		key = i
	}
	if enc := s.params["client_encoding"]; enc != "" && !parser.CopyEncodingSplittable(settingValue(enc)) {
		return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
			Message: "COPY into a table on several shards cannot be split in client_encoding " + settingValue(enc),
			Hint:    "Use UTF8 (or a single-byte encoding) for the COPY."}
	}
	inTx, err := s.startParts()
	if err != nil {
		return err
	}
	ci := &copyIn{s: s, plan: cp, byShard: map[int]*scatterPart{}, sink: newScatterSink(), inTx: inTx,
		atomic: !inTx && len(d.shards) > 1}
	split, err := parser.NewCopySplitter(parser.CopySplitterConfig{Options: cp.stmt.Options, KeyColumn: key,
		KeyName: ru.Key, MaxRowLen: s.srv.current().opts.MaxMessageSize}, ci)
	if err != nil {
		return toCopyError(err)
	}
	ci.split = split
	home := s.pool
	defer func() { s.pool = home }()
	servers := make([]int, 0, len(d.shards))
	for _, sh := range d.shards {
		c, server, begin, err := s.partConn(sh, true, inTx)
		if err != nil {
			ci.abort(toPgError(err))
			return ci.finish()
		}
		servers = append(servers, server)
		p := &scatterPart{c: c, sink: ci.sink, begin: begin, status: 'I'}
		ci.parts = append(ci.parts, p)
		ci.byShard[sh] = p
		s.setRunning(ci.parts)
		b := appendMsg(s.partPrologue(p, ci.atomic), 'Q', body)
		if _, err := c.bw.Write(b); err == nil {
			err = c.bw.Flush()
		}
	}
	s.routeNotice(d.shards, servers)
	// Every shard answers CopyInResponse, or fails.
	var resp []byte
	ready := 0
	for ready < len(ci.parts) {
		m := ci.sink.next()
		p := ci.part(m.c)
		if p == nil || p.done {
			continue
		}
		if p.tag == "G" {
			// Its shard is copying already: what it sends now is an
			// error or its loss, which fails the COPY. Dropped, it would
			// leave finish waiting for the shard's end forever.
			ci.handle(m)
			if ci.failed {
				return ci.finish()
			}
			continue
		}
		switch {
		case m.err != nil:
			p.done, p.c = true, nil
			ci.abort(errShardLost(m))
			return ci.finish()
		case m.typ == 'Z' && p.skipZ > 0:
			p.skipZ--
		case m.typ == 'E' && p.skipZ > 0:
		case m.typ == 'E':
			ci.abort(parseServerError(m.body))
			return ci.finish()
		case m.typ == 'Z':
			// The shard ended the statement without a CopyInResponse:
			// waiting for one would wait for ever.
			p.end(m)
			ci.abort(&pgError{Severity: "ERROR", Code: codeProtocolViolation,
				Message: fmt.Sprintf("shard %s answered COPY FROM STDIN without starting the copy", m.c.p.shard)})
			return ci.finish()
		case m.typ == 'G':
			p.tag = "G"
			ready++
			if resp == nil {
				resp = m.body
			}
		}
	}
	s.copyin = ci
	s.writeClient(appendMsg(nil, 'G', resp))
	s.flushClient()
	return errHandled
}

// part is the part running on connection c.
func (ci *copyIn) part(c *serverConn) *scatterPart {
	for _, p := range ci.parts {
		if p.c == c {
			return p
		}
	}
	return nil
}

// CopyRow sends a row to the shard of its key (every shard, for a
// replicated table).
func (ci *copyIn) CopyRow(row, key []byte, keyNull bool) error {
	ru := ci.plan.rule
	if ru.Replicated {
		return ci.CopyAll(row)
	}
	if keyNull {
		return &pgError{Severity: "ERROR", Code: codeNotNullViolation,
			Message: fmt.Sprintf("null value in column %q of relation %q: it is the shard key, and pgshard cannot place the row", ru.Key, ci.plan.stmt.Table.Name)}
	}
	v := bytesString(key)
	if ci.plan.stmt.Options.Format == parser.CopyBinary {
		var err error
		if v, err = routing.BindText(ru.Type, 1, key); err != nil {
			return &pgError{Severity: "ERROR", Code: codeInvalidBinaryRepresentation, Message: fmt.Sprintf("shard key %s: %v", ru.Key, err)}
		}
	}
	i, err := ru.Method.Shard(v)
	if err != nil || i < 0 || i >= len(ru.Shards) {
		return routeError(fmt.Errorf("table %s: %w", ci.plan.stmt.Table.Name, err))
	}
	return ci.send(ci.byShard[ru.Shards[i]], row)
}

// CopyAll sends data every shard's COPY needs (a header, a trailer).
func (ci *copyIn) CopyAll(data []byte) error {
	for _, p := range ci.parts {
		if err := ci.send(p, data); err != nil {
			return err
		}
	}
	return nil
}

// send writes one CopyData message to p's shard.
func (ci *copyIn) send(p *scatterPart, data []byte) error {
	if p == nil || p.c == nil {
		return nil
	}
	ci.s.write(p.c, appendHeader(ci.hdr[:0], 'd', len(data)))
	ci.s.write(p.c, data)
	return nil
}

// copyInData takes one CopyData message of the client, whose header is
// peeked in the client reader.
func (s *session) copyInData(n int) error {
	ci := s.copyin
	s.cr.Discard(headerLen)
	var err error
	if s.body, err = readFull(s.cr, s.body, n); err != nil {
		return err
	}
	if !ci.failed {
		if err := ci.split.Write(s.body); err != nil {
			ci.abort(toCopyError(err))
		}
	}
	ci.poll()
	if s.cr.Buffered() == 0 {
		ci.flush()
	}
	return nil
}

// poll handles what the shards sent meanwhile: an error fails the COPY.
func (ci *copyIn) poll() {
	for {
		m, ok := ci.sink.tryNext()
		if !ok {
			return
		}
		ci.handle(m)
	}
}

// handle takes one message of a shard during the COPY.
func (ci *copyIn) handle(m scatterMsg) {
	p := ci.part(m.c)
	if p == nil || p.done {
		return
	}
	switch {
	case m.err != nil:
		p.done, p.c = true, nil
		ci.abort(errShardLost(m))
	case m.typ == 'E':
		ci.abort(parseServerError(m.body))
	case m.typ == 'C':
		p.tag = string(bytes.TrimRight(m.body, "\x00"))
	case m.typ == 'Z':
		p.end(m)
	}
}

// flush sends what is buffered for each shard.
func (ci *copyIn) flush() {
	for _, p := range ci.parts {
		if p.c != nil && p.c.bw.Buffered() > 0 {
			if err := p.c.bw.Flush(); err != nil {
				p.c.nc.Close()
			}
		}
	}
}

// abort fails the COPY: the client gets pe now, as PostgreSQL sends it,
// and the shards still copying get CopyFail.
func (ci *copyIn) abort(pe *pgError) {
	if ci.failed {
		return
	}
	ci.failed = true
	s := ci.s
	s.writeClient(appendErrorResponse(nil, pe))
	s.noteError(pe)
	s.flushClient()
	for _, p := range ci.parts {
		if p.c != nil && !p.done {
			s.write(p.c, appendMsg3(nil, 'f', []byte("COPY aborted by pgshard: another shard failed\x00")))
		}
	}
	ci.flush()
}

// copyInEnd ends the COPY at the client's CopyDone or CopyFail (typ 'c'
// or 'f').
func (s *session) copyInEnd(typ byte, body []byte) error {
	ci := s.copyin
	if !ci.failed {
		switch typ {
		case 'c':
			if err := ci.split.Close(); err != nil {
				ci.abort(toCopyError(err))
			}
		case 'f':
			msg, _, _ := cstring(body)
			ci.abort(&pgError{Severity: "ERROR", Code: codeQueryCanceled, Message: "COPY from stdin failed: " + string(msg)})
		}
	}
	if !ci.failed {
		for _, p := range ci.parts {
			if p.c != nil {
				s.write(p.c, msgCopyDone)
			}
		}
		ci.flush()
	}
	return ci.finish()
}

// finish waits for every shard's end of the COPY, commits or rolls back
// outside a transaction, and answers the client.
func (ci *copyIn) finish() error {
	s := ci.s
	s.copyin = nil
	for _, p := range ci.parts {
		for !p.done {
			ci.handle(ci.sink.next())
		}
	}
	if ci.atomic {
		if err := s.endScatterTx(ci.parts, !ci.failed); err != nil {
			ci.abort(toPgError(err))
		}
	}
	var total int64
	for _, p := range ci.parts {
		if n, err := strconv.ParseInt(strings.TrimPrefix(p.tag, "COPY "), 10, 64); err == nil {
			total += n
			if ci.plan.rule.Replicated {
				break // every copy has every row: one counts
			}
		}
	}
	// The connections go back, or stay in the client's transaction.
	s.setRunning(nil)
	close(ci.sink.quit)
	lost := false
	for _, p := range ci.parts {
		if p.c == nil {
			lost = true
			continue
		}
		p.c.sink.Store(nil)
		switch {
		case ci.inTx:
			s.parkPart(p)
		case p.status == 'I':
			s.giveBack(p.c)
		default:
			p.c.p.Discard(p.c)
		}
	}
	status := byte('I')
	if ci.inTx {
		status = s.afterParts(lost, ci.failed)
	}
	var out []byte
	if !ci.failed {
		out = appendCommandComplete(out, "COPY "+strconv.FormatInt(total, 10))
	}
	s.writeClient(appendReadyForQuery(out, status))
	s.flushClient()
	return errHandled
}

// toCopyError turns the splitter's errors into the client's.
func toCopyError(err error) *pgError {
	var ce *parser.CopyError
	if errors.As(err, &ce) {
		return &pgError{Severity: "ERROR", Code: ce.Code, Message: ce.Error(), Hint: ce.Hint}
	}
	return toPgError(err)
}

var msgCopyDone = []byte{'c', 0, 0, 0, 4}

// copyOut is how a COPY ... TO STDOUT on several shards is gathered: one
// header line (text, csv) or signature (binary) and one binary trailer.
type copyOut struct {
	header bool // the shards send a header line
	binary bool
	sent   bool // a shard's first CopyData went out
	seen   map[*scatterPart]bool
}

// binaryHeaderLen is the signature, flags and extension length of the
// binary COPY format that PostgreSQL sends.
const binaryHeaderLen = 19

// data returns what of a shard's CopyData goes to the client: the first
// of each shard holds the header, which goes out once; a binary trailer
// goes out once, at the end.
func (co *copyOut) data(p *scatterPart, body []byte) []byte {
	first := !co.seen[p]
	co.seen[p] = true
	switch {
	case co.binary && len(body) == 2 && binary.BigEndian.Uint16(body) == 0xFFFF:
		return nil
	case co.binary && first && co.sent && len(body) >= binaryHeaderLen:
		return body[binaryHeaderLen:]
	case co.header && first && co.sent:
		return nil
	}
	co.sent = true
	return body
}
