package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// A multi-shard SELECT with ORDER BY, LIMIT or OFFSET: each shard runs it
// (with LIMIT limit+offset and no OFFSET, and with any ORDER BY key that
// is not an output column added at the end), and the session merges the
// shards' sorted streams row by row, the smallest head first, skipping
// OFFSET rows and stopping after LIMIT. Each shard has its own sink, so a
// shard whose rows are not wanted yet is held back by TCP, not buffered.

// mergeStream is one shard's stream of rows in a merge.
type mergeStream struct {
	p    *scatterPart
	body []byte   // the current DataRow, nil at the end
	row  [][]byte // its values
}

// gatherSorted relays the shards' rows to the client merged by d.sorted.
func (s *session) gatherSorted(parts []*scatterPart, d decision, extended bool) error {
	var (
		g       = newGathered(parts)
		desc    []byte // the shards' RowDescription, all columns
		ncols   int
		hidden  = d.sorted.Hidden
		emitted int64
	)
	// next reads p's messages up to its next DataRow, which it returns,
	// or to its end (nil).
	next := func(p *scatterPart) []byte {
		for !p.done {
			if len(g.out) > 64<<10 {
				g.out = s.writeClient(g.out)
			}
			m, ok := p.sink.tryNext()
			if !ok {
				g.out = s.writeClient(g.out)
				s.flushClient()
				m = p.sink.next()
			}
			if m.err != nil {
				p.done, p.c = true, nil
				g.fail(errShardLost(m))
				return nil
			}
			var skip bool
			if skip, g.out = p.settingsReply(m, g.out); skip || g.relay(m) {
				continue
			}
			switch m.typ {
			case 'D':
				if g.firstE == nil {
					return m.body
				}
			case 'T':
				if desc == nil {
					desc = m.body
					if !d.hideDesc {
						g.out = appendMsg(g.out, 'T', stripColumns(bytes.Clone(m.body), hidden))
					}
				} else if !sameColumns(desc, m.body) {
					g.fail(errShardColumns(m))
				}
			case 'C':
			case 'Z':
				p.end(m)
			default:
				g.fail(errShardUnexpected(m))
			}
		}
		return nil
	}

	streams := make([]*mergeStream, 0, len(parts))
	for _, p := range parts {
		st := &mergeStream{p: p, body: next(p)}
		streams = append(streams, st)
	}
	var order *routing.RowOrder
	if g.firstE == nil && desc != nil {
		cols, err := rowColumns(desc)
		if err == nil {
			ncols = len(cols)
			order, err = s.rowOrder(cols, d.sorted.Keys)
		}
		if err != nil {
			g.fail(toPgError(err))
		}
	}
	for _, st := range streams {
		if st.body != nil && g.firstE == nil {
			var err error
			if st.row, err = routing.SplitDataRow(st.body, nil); err != nil || len(st.row) != ncols {
				g.fail(&pgError{Severity: "ERROR", Code: codeProtocolViolation, Message: "malformed DataRow from a shard"})
			}
		}
	}
	skip := d.offset
	for g.firstE == nil && (d.limit < 0 || emitted < d.limit) {
		var min *mergeStream
		for _, st := range streams {
			if st.body != nil && (min == nil || order.Compare(st.row, min.row) < 0) {
				min = st
			}
		}
		if min == nil {
			break
		}
		if skip > 0 {
			skip--
		} else {
			g.out = appendMsg(g.out, 'D', stripValues(min.body, hidden))
			emitted++
		}
		min.body = next(min.p)
		if min.body != nil {
			var err error
			if min.row, err = routing.SplitDataRow(min.body, min.row); err != nil || len(min.row) != ncols {
				g.fail(&pgError{Severity: "ERROR", Code: codeProtocolViolation, Message: "malformed DataRow from a shard"})
			}
		}
	}
	// Shards still sending rows that are not wanted are abandoned: their
	// connections close (see scatterRun).
	return s.finishGather(g, fmt.Sprintf("SELECT %d", emitted), extended)
}

// writeClient writes b to the client's buffer and returns b emptied.
func (s *session) writeClient(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	s.wmu.Lock()
	if s.clientErr == nil {
		_, s.clientErr = s.clientBuf().Write(b)
	}
	s.wmu.Unlock()
	return b[:0]
}

// flushClient sends what the client's buffer holds.
func (s *session) flushClient() {
	s.wmu.Lock()
	if s.clientErr == nil {
		s.clientErr = s.clientBuf().Flush()
	}
	s.wmu.Unlock()
}

// rowOrder is the order of sortKeys over rows of cols. Text keys are
// compared byte by byte, which is PostgreSQL's order only under the C
// collation: other databases get an error that says so.
func (s *session) rowOrder(cols []routing.Column, sortKeys []parser.SortKey) (*routing.RowOrder, error) {
	var keys []routing.SortKey
	for _, k := range sortKeys {
		c := k.Column
		if c < 0 {
			c += len(cols)
		}
		if c < 0 || c >= len(cols) {
			return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Message: "ORDER BY key out of range of the shards' rows"}
		}
		if routing.IsTextType(cols[c].Type) {
			if err := s.rt.checkByteOrder(s.ctx, s.connectShard); err != nil {
				return nil, err
			}
		}
		keys = append(keys, routing.SortKey{Column: c, Desc: k.Desc, NullsFirst: k.NullsFirst})
	}
	o, err := routing.NewRowOrder(cols, keys)
	if errors.Is(err, routing.ErrNotComparable) {
		return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, err: err,
			Message: fmt.Sprintf("cannot merge the shards' rows: pgshard %v", err),
			Hint:    "Order by columns of numeric, text, date/time, boolean or uuid types, or pin the statement to one shard."}
	}
	return o, err
}

// checkByteOrder checks, once, that the database's default collation on
// its first shard is C or POSIX, so that text sorts byte by byte.
func (rt *routes) checkByteOrder(ctx context.Context, connect func(context.Context, int) (*pgconn.PgConn, error)) error {
	rt.collMu.Lock()
	defer rt.collMu.Unlock()
	if rt.collation == "" {
		conn, err := connect(ctx, 0)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		res := conn.ExecParams(ctx, "SELECT datcollate FROM pg_database WHERE datname = current_database()", nil, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if len(res.Rows) != 1 {
			return errors.New("could not read the database's collation")
		}
		rt.collation = string(res.Rows[0][0])
	}
	switch rt.collation {
	case "C", "POSIX", "C.UTF-8", "C.utf8":
		return nil
	}
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
		Message: fmt.Sprintf("cannot merge text sorted under collation %q across shards: pgshard merges text in byte order (the C collation)", rt.collation),
		Hint:    `Add COLLATE "C" to the ORDER BY key, or pin the statement to one shard.`}
}

// rowColumns reads the column types and formats of a RowDescription.
func rowColumns(desc []byte) ([]routing.Column, error) {
	bad := errors.New("malformed RowDescription")
	if len(desc) < 2 {
		return nil, bad
	}
	n := int(binary.BigEndian.Uint16(desc))
	b := desc[2:]
	cols := make([]routing.Column, 0, n)
	for i := 0; i < n; i++ {
		z := bytes.IndexByte(b, 0)
		if z < 0 || len(b) < z+19 {
			return nil, bad
		}
		f := b[z+1:]
		cols = append(cols, routing.Column{Type: binary.BigEndian.Uint32(f[6:]), Format: int16(binary.BigEndian.Uint16(f[16:]))})
		b = b[z+19:]
	}
	return cols, nil
}

// stripColumns drops the last n fields of a RowDescription, in place.
func stripColumns(desc []byte, n int) []byte {
	if n == 0 || len(desc) < 2 {
		return desc
	}
	total := int(binary.BigEndian.Uint16(desc))
	b, end := desc[2:], 2
	for i := 0; i < total-n; i++ {
		z := bytes.IndexByte(b, 0)
		if z < 0 || len(b) < z+19 {
			return desc
		}
		b, end = b[z+19:], end+z+19
	}
	binary.BigEndian.PutUint16(desc, uint16(total-n))
	return desc[:end]
}

// stripValues drops the last n values of a DataRow, in place.
func stripValues(body []byte, n int) []byte {
	if n == 0 || len(body) < 2 {
		return body
	}
	total := int(binary.BigEndian.Uint16(body))
	b, end := body[2:], 2
	for i := 0; i < total-n; i++ {
		if len(b) < 4 {
			return body
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		if l < 0 {
			l = 0
		}
		b, end = b[4+l:], end+4+l
	}
	binary.BigEndian.PutUint16(body, uint16(total-n))
	return body[:end]
}

// gatherGrouped reads every shard's groups, combines the rows of equal
// keys by d.grouped, keeps the groups its HAVING holds for, computes the
// output columns, and relays the result to the client: sorted by the
// ORDER BY keys, after OFFSET, up to LIMIT. The shards send text; formats
// are the result formats the client asked for.
func (s *session) gatherGrouped(parts []*scatterPart, sink *scatterSink, d decision, extended bool, formats func(col int) int16) error {
	spec := d.grouped
	var (
		desc    []byte
		m       *groupMerge
		g       = newGathered(parts)
		pending = len(parts)
		groups  = map[string]int{}
		rows    [][][]byte
		sets    [][]map[string]struct{} // per group, per count(DISTINCT) column
		held    int
	)
	limit := s.srv.current().opts.MaxMergeMemory
	tooBig := func() {
		g.fail(&pgError{Severity: "ERROR", Code: codeProgramLimit,
			Message: fmt.Sprintf("the shards' groups need more than max_merge_memory (%d kB) to merge", limit>>10),
			Hint:    "Narrow the statement with a shard key or a WHERE clause, group by fewer distinct values, or raise max_merge_memory."})
	}
	byConn := partsByConn(parts)
	var key []byte
	for pending > 0 {
		msg := sink.next()
		p := byConn[msg.c]
		if p == nil || p.done {
			continue
		}
		if msg.err != nil {
			p.done, p.c = true, nil
			pending--
			g.fail(errShardLost(msg))
			continue
		}
		var skip bool
		if skip, g.out = p.settingsReply(msg, g.out); skip || g.relay(msg) {
			continue
		}
		switch msg.typ {
		case 'T':
			if desc == nil {
				desc = msg.body
				var err error
				if m, err = s.newGroupMerge(desc, spec, formats); err != nil {
					g.fail(toPgError(err))
				}
			} else if !sameColumns(desc, msg.body) {
				g.fail(errShardColumns(msg))
			}
		case 'D':
			if g.firstE != nil || m == nil {
				continue
			}
			row, err := routing.SplitDataRow(msg.body, nil)
			if err != nil || len(row) != len(m.cols) {
				g.fail(&pgError{Severity: "ERROR", Code: codeProtocolViolation, Message: "malformed DataRow from a shard"})
				continue
			}
			key = key[:0]
			for i, a := range m.aggs {
				if a != routing.AggKey {
					continue
				}
				if row[i] == nil {
					key = append(key, 'N')
				} else {
					k := routing.GroupKey(m.cols[i].Type, row[i])
					key = binary.BigEndian.AppendUint32(append(key, 'V'), uint32(len(k)))
					key = append(key, k...)
				}
			}
			at, seen := groups[string(key)]
			if !seen {
				at = len(rows)
				groups[string(key)] = at
				rows = append(rows, row)
				held += len(msg.body) + len(key) + 64
			} else {
				for i, fold := range m.folds {
					v, err := fold(rows[at][i], row[i])
					if err != nil {
						g.fail(mergeError(err))
						break
					}
					rows[at][i] = v
				}
			}
			if len(m.distinct) > 0 {
				if !seen {
					sets = append(sets, make([]map[string]struct{}, len(m.distinct)))
				}
				for j, i := range m.distinct {
					if row[i] == nil {
						continue
					}
					if sets[at][j] == nil {
						sets[at][j] = map[string]struct{}{}
					}
					k := routing.GroupKey(m.cols[i].Type, row[i])
					if _, dup := sets[at][j][k]; !dup {
						sets[at][j][k] = struct{}{}
						held += len(k) + 48
					}
				}
			}
			if held > limit {
				tooBig()
			}
		case 'C':
		case 'Z':
			p.end(msg)
			pending--
		default:
			g.fail(errShardUnexpected(msg))
		}
	}
	if g.firstE == nil && m != nil {
		if spec.OneRow && len(rows) == 0 {
			// Aggregates without GROUP BY over no rows: one row, counts 0.
			row := make([][]byte, len(m.cols))
			for i, a := range m.aggs {
				if a == routing.AggCount {
					row[i] = []byte("0")
				}
			}
			rows = append(rows, row)
			sets = append(sets, make([]map[string]struct{}, len(m.distinct)))
		}
		out := rows[:0]
		for at, row := range rows {
			for j, i := range m.distinct {
				row[i] = strconv.AppendInt(nil, int64(len(sets[at][j])), 10)
			}
			if len(sets) > at {
				sets[at] = nil // counted: the values may go
			}
			res, err := m.output(row)
			if err != nil {
				g.fail(mergeError(err))
				break
			}
			if res != nil {
				out = append(out, res)
			}
		}
		rows = out
	}
	if g.firstE == nil && len(spec.Keys) > 0 && m != nil {
		order, err := s.rowOrder(textColumns(m.outCols), spec.Keys)
		if err != nil {
			g.fail(toPgError(err))
		} else {
			slices.SortStableFunc(rows, order.Compare)
		}
	}
	if g.firstE == nil {
		if d.offset > 0 {
			rows = rows[min(int64(len(rows)), d.offset):]
		}
		if d.limit >= 0 && int64(len(rows)) > d.limit {
			rows = rows[:d.limit]
		}
		if m != nil && !d.hideDesc {
			g.out = appendMsg(g.out, 'T', withFormats(m.desc, formats))
		}
		var vals [][]byte
		for _, row := range rows {
			vals = vals[:0]
			for i, v := range row {
				if v != nil && formats(i) == 1 {
					b, err := routing.EncodeBinary(m.outCols[i].Type, v)
					if err != nil {
						g.fail(toPgError(err))
						break
					}
					v = b
				}
				vals = append(vals, v)
			}
			if g.firstE != nil {
				break
			}
			g.out = appendDataRow(g.out, vals)
			if len(g.out) > 64<<10 {
				g.out = s.writeClient(g.out)
			}
		}
	}
	return s.finishGather(g, fmt.Sprintf("SELECT %d", len(rows)), extended)
}

// groupMerge is how a grouped merge combines the shards' columns and
// computes its output from them.
type groupMerge struct {
	cols     []routing.Column // the shards' columns
	aggs     []routing.Agg
	folds    []routing.Fold
	distinct []int // the count(DISTINCT) columns
	having   *routing.Compiled
	out      []*routing.Compiled
	outCols  []routing.Column
	desc     []byte // the client's RowDescription
}

// newGroupMerge reads the shards' RowDescription and checks that pgshard
// can combine each column as spec says, compute the HAVING predicate and
// the output columns, and send them in the client's formats.
func (s *session) newGroupMerge(desc []byte, spec *parser.Grouped, formats func(int) int16) (*groupMerge, error) {
	cols, err := rowColumns(desc)
	if err != nil {
		return nil, err
	}
	if len(cols) != len(spec.Cols) {
		return nil, fmt.Errorf("the shards returned %d columns, the statement has %d", len(cols), len(spec.Cols))
	}
	m := &groupMerge{cols: cols, aggs: make([]routing.Agg, len(cols)), folds: make([]routing.Fold, len(cols))}
	merged := textColumns(cols) // the columns' types once merged
	for i, k := range spec.Cols {
		m.aggs[i] = routing.Agg(k) // the same order of kinds
		if m.folds[i] = routing.Folder(m.aggs[i], cols[i].Type); m.folds[i] == nil {
			return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("cannot combine %s of column %d (type OID %d) across shards", k, i+1, cols[i].Type),
				Hint:    "Pin the statement to one shard with its shard key."}
		}
		if k == parser.AggCountDistinct {
			m.distinct = append(m.distinct, i)
			merged[i].Type = 20 // count is bigint
		}
	}
	byteOrder := false
	if spec.Having != nil {
		if m.having, err = routing.CompilePredicate(exprOf(*spec.Having), merged); err != nil {
			return nil, exprError(err, "HAVING")
		}
		byteOrder = m.having.ByteOrder
	}
	n := len(cols) - spec.Hidden
	m.desc = stripColumns(bytes.Clone(desc), spec.Hidden)
	for i, e := range spec.Out {
		c, err := routing.Compile(exprOf(e), merged)
		if err != nil {
			return nil, exprError(err, fmt.Sprintf("output column %d", i+1))
		}
		byteOrder = byteOrder || c.ByteOrder
		m.out = append(m.out, c)
		m.outCols = append(m.outCols, routing.Column{Type: c.Type})
		if e.Op != parser.ExprCol || e.Col != i || c.Type != cols[i].Type {
			m.desc = setColumnType(m.desc, i, c.Type)
		}
		if formats(i) == 1 && !routing.CanEncodeBinary(c.Type) {
			return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("cannot send column %d (type OID %d) of a merged result in binary format", i+1, c.Type),
				Hint:    "Ask for text results, or pin the statement to one shard."}
		}
	}
	if len(m.out) != n {
		return nil, fmt.Errorf("the merge computes %d output columns of %d", len(m.out), n)
	}
	if byteOrder {
		if err := s.rt.checkByteOrder(s.ctx, s.connectShard); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// output is the client's row of a merged group, or nil when HAVING drops
// the group.
func (m *groupMerge) output(row [][]byte) ([][]byte, error) {
	if m.having != nil {
		v, err := m.having.Eval(row)
		if err != nil {
			return nil, err
		}
		if !routing.IsTrue(v) {
			return nil, nil
		}
	}
	out := make([][]byte, len(m.out))
	for i, c := range m.out {
		v, err := c.Eval(row)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// exprOf is e for routing.
func exprOf(e parser.Expr) routing.Expr {
	r := routing.Expr{Op: routing.ExprOp(e.Op), Col: e.Col, Name: e.Name} // the same order of ops
	switch e.Lit.Kind {
	case parser.ValueInt:
		r.Lit = routing.Literal{Kind: routing.LitInt, Text: e.Lit.Text}
	case parser.ValueNumeric:
		r.Lit = routing.Literal{Kind: routing.LitNumeric, Text: e.Lit.Text}
	case parser.ValueString:
		r.Lit = routing.Literal{Kind: routing.LitString, Text: e.Lit.Text}
	case parser.ValueBool:
		r.Lit = routing.Literal{Kind: routing.LitBool, Text: e.Lit.Text}
	}
	for _, a := range e.Args {
		r.Args = append(r.Args, exprOf(a))
	}
	return r
}

// exprError is the client's error for an expression pgshard cannot
// compute over merged groups.
func exprError(err error, where string) error {
	if errors.Is(err, routing.ErrNotComparable) {
		return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, err: err,
			Message: fmt.Sprintf("cannot compute %s over the merged groups: pgshard %v", where, err),
			Hint:    "Compare and compute values of numeric, text, date/time, boolean or uuid types, or pin the statement to one shard."}
	}
	return mergeError(err)
}

// mergeError is the client's error for a value a merge cannot compute,
// with PostgreSQL's SQLSTATE for it.
func mergeError(err error) *pgError {
	var re *routing.RangeError
	var ie *routing.InputError
	switch {
	case errors.Is(err, routing.ErrOutOfRange) || errors.As(err, &re):
		return &pgError{Severity: "ERROR", Code: "22003", Message: err.Error(), err: err}
	case errors.Is(err, routing.ErrDivisionByZero):
		return &pgError{Severity: "ERROR", Code: "22012", Message: err.Error(), err: err}
	case errors.As(err, &ie):
		return &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: err.Error(), err: err}
	case errors.Is(err, routing.ErrNotComparable):
		return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Message: "cannot merge the shards' rows: pgshard " + err.Error(), err: err}
	}
	return toPgError(err)
}

// setColumnType sets the type of field i of a RowDescription, in place:
// its type OID, its size (-1: variable) and no type modifier.
func setColumnType(desc []byte, i int, oid uint32) []byte {
	if len(desc) < 2 {
		return desc
	}
	b := desc[2:]
	for j := 0; j <= i; j++ {
		z := bytes.IndexByte(b, 0)
		if z < 0 || len(b) < z+19 {
			return desc
		}
		if j == i {
			f := b[z+1:]
			binary.BigEndian.PutUint32(f[6:], oid)
			size := int16(-1)
			if oid == 701 { // float8
				size = 8
			}
			binary.BigEndian.PutUint16(f[10:], uint16(size))
			binary.BigEndian.PutUint32(f[12:], 0xFFFFFFFF)
		}
		b = b[z+19:]
	}
	return desc
}

// textColumns is cols as the shards sent them in a grouped merge: text.
func textColumns(cols []routing.Column) []routing.Column {
	out := slices.Clone(cols)
	for i := range out {
		out[i].Format = 0
	}
	return out
}

// withFormats sets the format codes of a RowDescription's fields.
func withFormats(desc []byte, formats func(int) int16) []byte {
	if len(desc) < 2 {
		return desc
	}
	n := int(binary.BigEndian.Uint16(desc))
	b := desc[2:]
	for i := 0; i < n; i++ {
		z := bytes.IndexByte(b, 0)
		if z < 0 || len(b) < z+19 {
			return desc
		}
		binary.BigEndian.PutUint16(b[z+17:], uint16(formats(i)))
		b = b[z+19:]
	}
	return desc
}

// appendDataRow appends a DataRow of vals (nil for NULL).
func appendDataRow(b []byte, vals [][]byte) []byte {
	n := 2
	for _, v := range vals {
		n += 4 + len(v)
	}
	b = appendHeader(b, 'D', n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

// resultFormats returns the result format codes of a Bind's section from
// its parameter formats on, and that section asking for text results.
func resultFormats(params []byte) (func(col int) int16, []byte) {
	text := func(int) int16 { return 0 }
	p, err := parseBindParams(params)
	if err != nil {
		return text, params
	}
	off := 2 + 2*len(p.formats) + 2
	for _, v := range p.values {
		off += 4 + len(v)
	}
	if off+2 > len(params) {
		return text, params
	}
	n := int(binary.BigEndian.Uint16(params[off:]))
	codes := make([]int16, 0, n)
	for i := 0; i < n && off+4+2*i <= len(params); i++ {
		codes = append(codes, int16(binary.BigEndian.Uint16(params[off+2+2*i:])))
	}
	asText := append(bytes.Clone(params[:off]), 0, 0)
	return func(col int) int16 {
		switch len(codes) {
		case 0:
			return 0
		case 1:
			return codes[0]
		}
		if col < len(codes) {
			return codes[col]
		}
		return 0
	}, asText
}
