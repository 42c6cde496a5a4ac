package test

// The soak's clients (TestSoak in soak_test.go): each is one pgx
// connection running a weighted mix of operations, pausing for a random
// think time between two. Each client keeps its own tallies, merged once
// every client has stopped; the driver reads nothing else of theirs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// soakCopyRows is the number of rows of a COPY batch.
	soakCopyRows = 20
	// soakOpTimeout bounds an operation (a whole transfer, say): one that
	// takes longer is a hang, an unexpected error.
	soakOpTimeout = 30 * time.Second
)

// soakOp is a kind of operation of a client.
type soakOp int

const (
	opRead soakOp = iota
	opUpdate
	opLocalTransfer
	opCrossTransfer
	opCount
	opTop
	opGroup
	opCancel
	opCancelScatter
	opVanish
	opReconnect
	opCopy
	opConnect
	numSoakOps
)

// soakOpNames name the operations in the report, in order.
var soakOpNames = [numSoakOps]string{
	"point read", "point update", "transfer in one shard", "transfer across shards",
	"scatter count(*)", "scatter ORDER BY LIMIT", "scatter GROUP BY",
	"cancel, one shard", "cancel, all shards", "vanish mid-transaction",
	"reconnect", "COPY batch", "connect",
}

// soakWeights is how often each operation is picked (connect is not: it
// follows a reconnect, a vanish, or a broken connection).
var soakWeights = [numSoakOps]int{
	opRead: 30, opUpdate: 10, opLocalTransfer: 10, opCrossTransfer: 20,
	opCount: 5, opTop: 4, opGroup: 4,
	opCancel: 3, opCancelScatter: 2, opVanish: 2, opReconnect: 3, opCopy: 2,
}

// soakOutcome is what a client knows of a write's fate.
type soakOutcome int8

const (
	// outcomeCommitted: COMMIT (or COPY) succeeded.
	outcomeCommitted soakOutcome = iota + 1
	// outcomeFailed: the write failed before its COMMIT, or COMMIT
	// failed with an error that says it rolled back.
	outcomeFailed
	// outcomeUnknown: COMMIT failed on a lost connection, or with 08007
	// (transaction resolution unknown); it may have committed.
	outcomeUnknown
)

func countOutcome(m map[int64]soakOutcome, o soakOutcome) int {
	n := 0
	for _, v := range m {
		if v == o {
			n++
		}
	}
	return n
}

type soakDriverConfig struct {
	url      string
	clients  int
	think    time.Duration
	accounts int
	shardOf  func(id int64) int
}

// soakDriver runs the clients. start and stop are called once each, from
// the test's goroutine; the tallies may be read after stop.
type soakDriver struct {
	cfg     soakDriverConfig
	byShard [][]int64 // the accounts of each shard
	done    chan struct{}
	wg      sync.WaitGroup
	clients []*soakClient
}

func newSoakDriver(cfg soakDriverConfig) *soakDriver {
	d := &soakDriver{cfg: cfg, done: make(chan struct{})}
	for id := int64(1); id <= int64(cfg.accounts); id++ {
		s := cfg.shardOf(id)
		for len(d.byShard) <= s {
			d.byShard = append(d.byShard, nil)
		}
		d.byShard[s] = append(d.byShard[s], id)
	}
	return d
}

// start starts the clients, each with its own seed.
func (d *soakDriver) start() {
	for i := range d.cfg.clients {
		c := &soakClient{d: d, id: i, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
			transfers: map[int64]soakOutcome{}, batches: map[int64]soakOutcome{}, errs: map[string]*soakErrCount{}}
		d.clients = append(d.clients, c)
		d.wg.Go(c.run)
	}
}

// stop tells the clients to stop and waits until each has finished its
// operation and closed its connection.
func (d *soakDriver) stop() {
	close(d.done)
	d.wg.Wait()
}

func (d *soakDriver) stopped() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// opCounts is, for each operation, how many succeeded and failed.
func (d *soakDriver) opCounts() map[string][2]int64 {
	out := map[string][2]int64{}
	for _, c := range d.clients {
		for op, n := range c.ops {
			v := out[soakOpNames[op]]
			v[0] += n[0]
			v[1] += n[1]
			out[soakOpNames[op]] = v
		}
	}
	return out
}

// cancelsLost counts the cancels after which the statement ran to its end.
func (d *soakDriver) cancelsLost() int64 {
	var n int64
	for _, c := range d.clients {
		n += c.cancelsLost
	}
	return n
}

// soakErrCount counts the errors of one SQLSTATE (or kind of failure
// without one) and names the operations that got it.
type soakErrCount struct {
	n       int64
	example string
}

func (d *soakDriver) errorCounts() map[string]*soakErrCount {
	out := map[string]*soakErrCount{}
	for _, c := range d.clients {
		for code, e := range c.errs {
			o := out[code]
			if o == nil {
				o = &soakErrCount{}
				out[code] = o
			}
			o.n += e.n
			for _, w := range strings.Split(e.example, ", ") {
				o.addExample(w)
			}
		}
	}
	return out
}

func (e *soakErrCount) addExample(what string) {
	if what == "" || strings.Contains(", "+e.example+", ", ", "+what+", ") {
		return
	}
	if e.example != "" {
		e.example += ", "
	}
	e.example += what
}

func (d *soakDriver) transferOutcomes() map[int64]soakOutcome {
	out := map[int64]soakOutcome{}
	for _, c := range d.clients {
		for id, o := range c.transfers {
			out[id] = o
		}
	}
	return out
}

func (d *soakDriver) batchOutcomes() map[int64]soakOutcome {
	out := map[int64]soakOutcome{}
	for _, c := range d.clients {
		for id, o := range c.batches {
			out[id] = o
		}
	}
	return out
}

// unexpected reports wrong answers, hangs, and errors that the faults do
// not explain (see allowedSoakError).
func (d *soakDriver) unexpected() error {
	var n int
	var first []string
	for _, c := range d.clients {
		n += c.unexpectedN
		for _, u := range c.unexpected {
			if len(first) < 20 {
				first = append(first, u)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d unexpected results; the first:\n%s", n, strings.Join(first, "\n"))
}

// soakClient is one client. Only its goroutine touches it until the
// driver has stopped.
type soakClient struct {
	d   *soakDriver
	id  int
	rng *rand.Rand
	// conn is nil between a broken or closed connection and the next
	// connect.
	conn *pgx.Conn
	seq  int64

	ops         [numSoakOps][2]int64 // succeeded, failed
	errs        map[string]*soakErrCount
	transfers   map[int64]soakOutcome
	batches     map[int64]soakOutcome
	unexpected  []string
	unexpectedN int
	cancelsLost int64
}

// cancelRequests says whether the client's driver sends a CancelRequest
// when a query's context ends (as libpq users do), or breaks the
// connection (pgx's default).
func (c *soakClient) cancelRequests() bool { return c.id%2 == 1 }

// mode is the client's pgx query mode: prepared statements cached per
// connection for half the clients, the simple protocol, or unnamed
// statements described first.
func (c *soakClient) mode() pgx.QueryExecMode {
	switch c.id % 4 {
	case 1:
		return pgx.QueryExecModeSimpleProtocol
	case 2:
		return pgx.QueryExecModeDescribeExec
	default:
		return pgx.QueryExecModeCacheStatement
	}
}

func (c *soakClient) run() {
	defer c.close(false)
	total := 0
	for _, w := range soakWeights {
		total += w
	}
	for !c.d.stopped() {
		if c.conn == nil || c.conn.IsClosed() {
			c.close(false)
			if !c.connect() {
				c.pause(200 * time.Millisecond)
				continue
			}
		}
		pick := c.rng.IntN(total)
		op := soakOp(0)
		for ; pick >= soakWeights[op]; op++ {
			pick -= soakWeights[op]
		}
		c.do(op)
		if c.d.cfg.think > 0 {
			c.pause(time.Duration(c.rng.Int64N(int64(2 * c.d.cfg.think))))
		}
	}
}

// pause sleeps for d or until the driver stops.
func (c *soakClient) pause(d time.Duration) {
	select {
	case <-c.d.done:
	case <-time.After(d):
	}
}

func (c *soakClient) connect() bool {
	cfg, err := pgx.ParseConfig(c.d.cfg.url)
	if err != nil {
		c.fail(opConnect, err)
		return false
	}
	cfg.DefaultQueryExecMode = c.mode()
	if c.cancelRequests() {
		withCancelRequests(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		c.fail(opConnect, err)
		return false
	}
	c.ok(opConnect)
	c.conn = conn
	return true
}

// close ends the connection, with a Terminate message, or abruptly (the
// socket closed under pgx), as a client whose process dies.
func (c *soakClient) close(abrupt bool) {
	if c.conn == nil {
		return
	}
	if abrupt {
		_ = c.conn.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.conn.Close(ctx)
	c.conn = nil
}

func (c *soakClient) ok(op soakOp) { c.ops[op][0]++ }

// fail counts a failed operation by the error's SQLSTATE and notes it as
// unexpected unless faults explain it.
func (c *soakClient) fail(op soakOp, err error) {
	c.ops[op][1]++
	code := soakErrorCode(err)
	e := c.errs[code]
	if e == nil {
		e = &soakErrCount{}
		c.errs[code] = e
	}
	e.n++
	e.addExample(soakOpNames[op])
	if !allowedSoakError(op, code) {
		c.wrong(op, fmt.Sprintf("%s (%s)", err, code))
	}
}

// wrong notes an unexpected result.
func (c *soakClient) wrong(op soakOp, what string) {
	c.unexpectedN++
	if len(c.unexpected) < 5 {
		c.unexpected = append(c.unexpected, fmt.Sprintf("client %d, %s: %s", c.id, soakOpNames[op], what))
	}
}

// The kinds of failure without a SQLSTATE.
const (
	codeLost     = "connection lost"
	codeTimeout  = "timeout"
	codeRollback = "COMMIT answered ROLLBACK"
)

// soakErrorCode is the SQLSTATE of err, or the kind of failure it is.
func soakErrorCode(err error) string {
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, pgx.ErrTxCommitRollback):
		return codeRollback
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return codeTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.As(err, &ne),
		strings.Contains(err.Error(), "conn closed"):
		return codeLost
	}
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return "other: " + msg
}

// allowedSoakError says whether an error is one that a shard restart, or
// the operation itself, explains: the connection exceptions of class 08
// (08006 from pgshard for a shard that is down, 08007 for a commit whose
// outcome is unknown), the server's shutdown and startup (57P01-57P03), a
// lost connection; and for cancels, 57014 and a timeout. Anything else —
// a stray 57014, a protocol violation, a prepared statement that does not
// exist, an internal error, a hang — is a fault of pgshard's.
func allowedSoakError(op soakOp, code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", code == codeLost:
		return true
	case code == "53300":
		return true // a backend wait past query_wait_timeout: the pools are busy while a shard is down
	case code == "57014", code == codeTimeout:
		return op == opCancel || op == opCancelScatter
	}
	return false
}

// commitOutcome is what a failed COMMIT (or COPY) says of the write.
func commitOutcome(err error) soakOutcome {
	code := soakErrorCode(err)
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57P"), code == codeLost, code == codeTimeout:
		return outcomeUnknown
	}
	return outcomeFailed
}

// nextID is a key unique to this client and write.
func (c *soakClient) nextID() int64 {
	c.seq++
	return int64(c.id+1)<<32 | c.seq
}

// account picks an account: of shard s, or of any shard when s < 0.
func (c *soakClient) account(s int) int64 {
	if s < 0 {
		return 1 + c.rng.Int64N(int64(c.d.cfg.accounts))
	}
	ids := c.d.byShard[s]
	return ids[c.rng.IntN(len(ids))]
}

func (c *soakClient) do(op soakOp) {
	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	switch op {
	case opRead:
		id := c.account(-1)
		var got, balance int64
		err := c.conn.QueryRow(ctx, "SELECT id, balance FROM accounts WHERE id = $1", id).Scan(&got, &balance)
		c.check(op, err, err == nil && got != id, func() string { return fmt.Sprintf("account %d read as %d", id, got) })
	case opUpdate:
		id := c.account(-1)
		tag, err := c.conn.Exec(ctx, "UPDATE accounts SET note = $2 WHERE id = $1", id, "c"+strconv.Itoa(c.id%10))
		c.check(op, err, err == nil && tag.RowsAffected() != 1, func() string { return fmt.Sprintf("UPDATE of account %d: %s", id, tag) })
	case opLocalTransfer, opCrossTransfer, opVanish:
		c.transfer(ctx, op)
	case opCount:
		var n int64
		err := c.conn.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n)
		c.check(op, err, err == nil && n != int64(c.d.cfg.accounts), func() string { return fmt.Sprintf("count(*) = %d", n) })
	case opTop:
		rows, err := c.conn.Query(ctx, "SELECT id FROM accounts ORDER BY id DESC LIMIT 5")
		var ids []int64
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		want := []int64{}
		for i := range int64(5) {
			want = append(want, int64(c.d.cfg.accounts)-i)
		}
		c.check(op, err, err == nil && fmt.Sprint(ids) != fmt.Sprint(want), func() string { return fmt.Sprintf("top ids %v, want %v", ids, want) })
	case opGroup:
		rows, err := c.conn.Query(ctx, "SELECT grp, count(*) FROM accounts GROUP BY grp ORDER BY grp")
		var got []string
		if err == nil {
			var g, n int64
			_, err = pgx.ForEachRow(rows, []any{&g, &n}, func() error {
				got = append(got, fmt.Sprintf("%d:%d", g, n))
				return nil
			})
		}
		var want []string
		for g := range 10 {
			want = append(want, fmt.Sprintf("%d:%d", g, c.d.cfg.accounts/10))
		}
		c.check(op, err, err == nil && strings.Join(got, " ") != strings.Join(want, " "),
			func() string { return fmt.Sprintf("groups %v, want %v", got, want) })
	case opCancel, opCancelScatter:
		c.cancel(op)
	case opReconnect:
		c.close(c.rng.IntN(3) == 0)
		c.ok(op)
	case opCopy:
		c.copyBatch(ctx)
	}
	if c.conn != nil && c.conn.IsClosed() {
		c.close(false)
	}
}

// check counts an operation that returned err, and a wrong answer when
// bad is set.
func (c *soakClient) check(op soakOp, err error, bad bool, what func() string) {
	switch {
	case err != nil:
		c.fail(op, err)
	case bad:
		c.ops[op][1]++
		c.wrong(op, "wrong answer: "+what())
	default:
		c.ok(op)
	}
}

// transfer moves an amount between two accounts of one shard or two, and
// records it in the ledger, in one transaction; the rows are locked in
// the order of their ids, so transfers cannot deadlock. For opVanish the
// client closes its socket instead of committing.
func (c *soakClient) transfer(ctx context.Context, op soakOp) {
	s := c.rng.IntN(len(c.d.byShard))
	src := c.account(s)
	var dst int64
	for dst == 0 || dst == src {
		other := s
		if op != opLocalTransfer {
			other = (s + 1 + c.rng.IntN(len(c.d.byShard)-1)) % len(c.d.byShard)
		}
		dst = c.account(other)
	}
	amount := 1 + c.rng.Int64N(50)
	id := c.nextID()
	lo, hi, dlo, dhi := src, dst, -amount, amount
	if lo > hi {
		lo, hi, dlo, dhi = hi, lo, dhi, dlo
	}
	tx, err := c.conn.Begin(ctx)
	if err != nil {
		c.transfers[id] = outcomeFailed
		c.fail(op, err)
		return
	}
	for _, step := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE accounts SET balance = balance + $2 WHERE id = $1", []any{lo, dlo}},
		{"UPDATE accounts SET balance = balance + $2 WHERE id = $1", []any{hi, dhi}},
		{"INSERT INTO transfers (id, src, dst, amount) VALUES ($1, $2, $3, $4)", []any{id, src, dst, amount}},
	} {
		tag, err := tx.Exec(ctx, step.sql, step.args...)
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("wrong answer: %s for %v", tag, step.args)
		}
		if err != nil {
			c.transfers[id] = outcomeFailed
			_ = tx.Rollback(ctx)
			if strings.HasPrefix(err.Error(), "wrong answer") {
				c.ops[op][1]++
				c.wrong(op, err.Error())
				return
			}
			c.fail(op, err)
			return
		}
	}
	if op == opVanish {
		c.transfers[id] = outcomeFailed
		c.close(true)
		c.ok(op)
		return
	}
	if err := tx.Commit(ctx); err != nil {
		c.transfers[id] = commitOutcome(err)
		c.fail(op, err)
		return
	}
	c.transfers[id] = outcomeCommitted
	c.ok(op)
}

// cancel runs a query that sleeps for 2s on one shard, or on every shard,
// and gives up on it after 100-300ms. A client with cancel requests must
// get 57014 and keep its connection; another loses its connection.
func (c *soakClient) cancel(op soakOp) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+c.rng.IntN(200))*time.Millisecond)
	defer cancel()
	var err error
	if op == opCancel {
		_, err = c.conn.Exec(ctx, "SELECT pg_sleep(2) FROM accounts WHERE id = $1", c.account(-1))
	} else {
		_, err = c.conn.Exec(ctx, "SELECT pg_sleep(2) FROM accounts WHERE id IN ($1, $2, $3)", c.account(0), c.account(1), c.account(2))
	}
	code := ""
	if err != nil {
		code = soakErrorCode(err)
	}
	switch {
	case err == nil:
		// The cancel came too early to stop it: as PostgreSQL does, a
		// backend that has not read the query yet ignores it, and so
		// does pgshard in the moment between taking a backend and
		// sending the query on it. Counted and reported, not failed.
		c.ops[op][1]++
		c.cancelsLost++
	case c.cancelRequests() && code == "57014", !c.cancelRequests() && code == codeTimeout:
		c.ok(op)
	default:
		c.fail(op, err)
	}
}

// copyBatch copies soakCopyRows events, over every shard, in one COPY
// (binary, as pgx sends it), which pgshard commits on every shard at once.
func (c *soakClient) copyBatch(ctx context.Context) {
	batch := c.nextID()
	rows := make([][]any, soakCopyRows)
	for i := range rows {
		rows[i] = []any{batch*32 + int64(i), c.account(-1), batch}
	}
	n, err := c.conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "account", "batch"}, pgx.CopyFromRows(rows))
	switch {
	case err != nil:
		c.batches[batch] = commitOutcome(err)
		c.fail(opCopy, err)
	case n != soakCopyRows:
		c.batches[batch] = outcomeCommitted
		c.ops[opCopy][1]++
		c.wrong(opCopy, fmt.Sprintf("COPY of %d rows reports %d", soakCopyRows, n))
	default:
		c.batches[batch] = outcomeCommitted
		c.ok(opCopy)
	}
}
