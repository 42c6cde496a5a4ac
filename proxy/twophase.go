package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Two-phase commit of a transaction that spans shards, and the recovery
// that finishes what a crash left prepared.
//
// COMMIT of such a transaction:
//
//  1. the first shard it touched (the coordinator) records the decision,
//     a row of pgshard.commit_decisions, inside the client's own
//     transaction, while every other shard runs PREPARE TRANSACTION;
//  2. the coordinator runs PREPARE TRANSACTION;
//  3. the coordinator runs COMMIT PREPARED: this commits the decision,
//     and with it the transaction;
//  4. every other shard runs COMMIT PREPARED.
//
// A failure before 3 rolls back everywhere and the client gets the error.
// pgshard keeps nothing on its own disk: the decision lives on the
// coordinator, and a prepared transaction's gid,
// "pgshard:<instance>:<xid>:<part>" (part 0 is the coordinator), says
// whose it is. Recovery (at startup and every recoveryInterval) reads
// pg_prepared_xacts of every shard: a transaction whose coordinator part
// is still prepared was not decided, and is rolled back (the coordinator
// first, so the decision can never commit after); otherwise the decision
// row says commit, its absence rollback. A transaction is recovered only
// when no live instance can still be committing it: an instance's own at
// its startup or once it no longer runs it, another instance's once its
// parts are older than TwoPhaseTimeout.

// decisionTable records commit decisions on the shards.
const decisionTable = "pgshard.commit_decisions"

// decisionDDL creates the decision table; every shard has it, since any
// may coordinate.
const decisionDDL = `CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.commit_decisions (
	xid text PRIMARY KEY,
	decided_at timestamptz NOT NULL DEFAULT now()
);
GRANT USAGE ON SCHEMA pgshard TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON pgshard.commit_decisions TO PUBLIC`

// recoveryInterval is how often recovery looks for leftovers.
const recoveryInterval = 10 * time.Second

// DefaultTwoPhaseTimeout is how old another instance's prepared
// transactions must be before recovery decides them.
const DefaultTwoPhaseTimeout = 60 * time.Second

// instanceIDPattern is what an instance id may hold: it goes into gids.
var instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// DefaultInstanceID is the host name, made fit for a gid.
func DefaultInstanceID() string {
	h, _ := os.Hostname()
	h = regexp.MustCompile(`[^A-Za-z0-9_.-]`).ReplaceAllString(h, "-")
	if h == "" {
		h = "pgshard"
	}
	if len(h) > 64 {
		h = h[:64]
	}
	return h
}

// twoPhase is the server's two-phase commit state.
type twoPhase struct {
	instance string
	timeout  time.Duration
	start    string // this process's start, in every xid
	seq      atomic.Uint64
	mu       sync.Mutex
	inflight map[string]bool // xids this process is committing
}

func newTwoPhase(instance string, timeout time.Duration) *twoPhase {
	return &twoPhase{instance: instance, timeout: timeout,
		start: strconv.FormatInt(time.Now().UnixNano(), 36), inflight: map[string]bool{}}
}

// begin allocates the xid of a commit and marks it in flight.
func (t *twoPhase) begin() string {
	xid := t.start + "-" + strconv.FormatUint(t.seq.Add(1), 10)
	t.mu.Lock()
	t.inflight[xid] = true
	t.mu.Unlock()
	return xid
}

func (t *twoPhase) end(xid string) {
	t.mu.Lock()
	delete(t.inflight, xid)
	t.mu.Unlock()
}

func (t *twoPhase) running(xid string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inflight[xid]
}

func (t *twoPhase) gid(xid string, part int) string {
	return "pgshard:" + t.instance + ":" + xid + ":" + strconv.Itoa(part)
}

// parseGID splits a gid of pgshard's; ok is false for any other.
func parseGID(gid string) (instance, xid string, part int, ok bool) {
	f := strings.Split(gid, ":")
	if len(f) != 4 || f[0] != "pgshard" {
		return "", "", 0, false
	}
	part, err := strconv.Atoi(f[3])
	if err != nil || part < 0 {
		return "", "", 0, false
	}
	return f[1], f[2], part, true
}

// commitParts commits the client's transaction on each of parts, the
// coordinator first in the slice: two-phase when there are several and
// the database says so.
func (s *session) commitParts(parts []*txPart) (err error) {
	if len(parts) == 0 {
		return nil
	}
	if len(parts) == 1 || !s.db.TwoPhaseCommit {
		res := s.runSimple(parts, func(*txPart) string { return "COMMIT" })
		s.setStatuses(parts, res)
		for i, r := range res {
			if r.err != nil {
				return onShard(r.err, parts[i], "COMMIT")
			}
		}
		return nil
	}
	tpc := s.srv.tpc
	xid := tpc.begin()
	defer tpc.end(xid)
	defer func() { s.srv.metrics.twoPhaseDone(err) }()
	gids := map[*txPart]string{}
	for i, tp := range parts {
		gids[tp] = tpc.gid(xid, i)
	}
	coord, others := parts[0], parts[1:]
	sqlOf := func(f string) func(*txPart) string {
		return func(tp *txPart) string { return fmt.Sprintf(f, quoteLiteral(gids[tp])) }
	}

	// 1. The decision goes into the coordinator's transaction while the
	// others prepare.
	res := s.runSimple(parts, func(tp *txPart) string {
		if tp == coord {
			return fmt.Sprintf("INSERT INTO %s (xid) VALUES (%s)", decisionTable, quoteLiteral(tpc.instance+":"+xid))
		}
		return sqlOf("PREPARE TRANSACTION %s")(tp)
	})
	s.setStatuses(parts, res)
	fail := func(i int, r partResult, what string) error {
		// Undo what was prepared; the rest rolls back with its session.
		var prepared []*txPart
		for j, tp := range others {
			if res[j+1].err == nil && !res[j+1].lost {
				prepared = append(prepared, tp)
			}
		}
		s.setStatuses(prepared, s.runSimple(prepared, sqlOf("ROLLBACK PREPARED %s")))
		if coord.status == 'T' || coord.status == 'E' {
			s.rollbackParts([]*txPart{coord})
		}
		return onShard(r.err, parts[i], what)
	}
	for i, r := range res {
		if r.err != nil {
			if i == 0 {
				return fail(0, r, "recording the commit decision")
			}
			return fail(i, r, "PREPARE TRANSACTION")
		}
	}
	// 2. The coordinator prepares.
	r := s.runSimple([]*txPart{coord}, sqlOf("PREPARE TRANSACTION %s"))[0]
	coord.status = r.status
	if r.err != nil {
		return fail(0, r, "PREPARE TRANSACTION")
	}
	// 3. The decision.
	r = s.runSimple([]*txPart{coord}, sqlOf("COMMIT PREPARED %s"))[0]
	coord.status = r.status
	switch {
	case r.lost:
		s.log.Warn("two-phase commit: lost the coordinator during COMMIT PREPARED; recovery decides the transaction", "xid", xid, "shard", coord.c.p.shard)
		return &pgError{Severity: "ERROR", Code: codeTxResolutionUnknown,
			Message: fmt.Sprintf("lost connection to shard %s while committing; the transaction may or may not have committed", coord.c.p.shard),
			Hint:    "pgshard's recovery finishes it on every shard once the shard is back; check the data before retrying."}
	case r.err != nil:
		res = s.runSimple(others, sqlOf("ROLLBACK PREPARED %s"))
		s.setStatuses(others, res)
		s.runSimple([]*txPart{coord}, sqlOf("ROLLBACK PREPARED %s"))
		return onShard(r.err, coord, "COMMIT PREPARED")
	}
	// 4. The others commit. The transaction is committed already: a
	// failure here is recovery's to finish.
	res = s.runSimple(others, sqlOf("COMMIT PREPARED %s"))
	s.setStatuses(others, res)
	for i, r := range res {
		if r.err != nil {
			s.log.Warn("two-phase commit: COMMIT PREPARED failed on a shard; recovery finishes it", "xid", xid, "shard", others[i].c.p.shard, "error", r.err.Message)
		}
	}
	return nil
}

// setStatuses records the transaction status each part was left in.
func (s *session) setStatuses(parts []*txPart, res []partResult) {
	for i, tp := range parts {
		tp.status = res[i].status
	}
}

// onShard prefixes a shard's error with where and when it happened.
func onShard(pe *pgError, tp *txPart, what string) *pgError {
	e := *pe
	e.Message = fmt.Sprintf("%s on shard %s: %s", what, tp.c.p.shard, pe.Message)
	return &e
}

// recoverTwoPhase runs recovery for every database with two-phase commit:
// once now (startup: this instance's leftovers are decided whatever their
// age, and a shard without max_prepared_transactions is an error), then
// every recoveryInterval until ctx ends.
func (s *Server) recoverTwoPhase(ctx context.Context, startup bool) error {
	var errs []error
	for _, d := range s.current().dbs {
		if !d.TwoPhaseCommit || len(d.Shards) < 2 {
			continue
		}
		if err := s.recoverDB(ctx, d, startup); err != nil {
			errs = append(errs, fmt.Errorf("database %q: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}

// errNoPrepared says a shard cannot take part in two-phase commit.
var errNoPrepared = errors.New("max_prepared_transactions is 0")

// preparedPart is one prepared transaction of pgshard's on a server.
type preparedPart struct {
	conn     *pgconn.PgConn
	gid      string
	instance string
	xid      string
	part     int
	age      time.Duration
}

// recoverDB decides the leftover prepared transactions of one database.
func (s *Server) recoverDB(ctx context.Context, d *database, startup bool) error {
	// Shards that share a server database (schema shards) are visited once.
	var conns []*pgconn.PgConn
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	seen := map[string]bool{}
	reachable := true
	var fatal []error
	for i := range d.Shards {
		p, err := s.pool(d, d.BackendUser, d.BackendPassword, i, 0)
		if err != nil {
			return err
		}
		key := net.JoinHostPort(p.cfg.Host, strconv.Itoa(int(p.cfg.Port))) + "/" + p.cfg.Database
		if seen[key] {
			continue
		}
		seen[key] = true
		cctx, cancel := context.WithTimeout(ctx, s.opts.ServerConnectTimeout)
		c, err := pgconn.ConnectConfig(cctx, p.cfg)
		cancel()
		if err != nil {
			reachable = false
			s.log.Warn("two-phase recovery: shard unreachable; its prepared transactions wait", "database", d.Name, "shard", p.shard, "error", err)
			continue
		}
		conns = append(conns, c)
		if err := checkTwoPhase(ctx, c); err != nil {
			if errors.Is(err, errNoPrepared) {
				fatal = append(fatal, fmt.Errorf("shard %s (%s): %w: two-phase commit needs it above 0 (set max_prepared_transactions in postgresql.conf and restart the server), or set two_phase_commit: false for the database", p.shard, p.addr, err))
				continue
			}
			return fmt.Errorf("shard %s: %w", p.shard, err)
		}
	}
	if len(fatal) > 0 {
		return errors.Join(fatal...)
	}

	// Every pgshard prepared transaction, by xid.
	byXID := map[string][]preparedPart{}
	var order []string
	for _, c := range conns {
		rr := c.ExecParams(ctx, `SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'pgshard:%'`, nil, nil, nil, nil)
		for rr.NextRow() {
			gid := string(rr.Values()[0])
			inst, xid, part, ok := parseGID(gid)
			if !ok {
				continue
			}
			secs, _ := strconv.ParseFloat(string(rr.Values()[1]), 64)
			key := inst + ":" + xid
			if _, ok := byXID[key]; !ok {
				order = append(order, key)
			}
			byXID[key] = append(byXID[key], preparedPart{conn: c, gid: gid, instance: inst, xid: xid, part: part,
				age: time.Duration(secs * float64(time.Second))})
		}
		if _, err := rr.Close(); err != nil {
			return err
		}
	}
	tpc := s.tpc
	for _, key := range order {
		parts := byXID[key]
		inst, xid := parts[0].instance, parts[0].xid
		var oldest time.Duration
		for _, p := range parts {
			oldest = max(oldest, p.age)
		}
		mine := inst == tpc.instance
		switch {
		case mine && startup:
		case mine && !tpc.running(xid) && oldest > time.Second:
		case oldest > tpc.timeout:
		default:
			continue // a live instance may still be committing it
		}
		commit := false
		decided := false
		for _, p := range parts {
			if p.part != 0 {
				continue
			}
			// The coordinator has not committed the decision: roll it
			// back first, so that it never can.
			if err := execSimple(ctx, p.conn, "ROLLBACK PREPARED "+quoteLiteral(p.gid)); err == nil {
				decided = true
			}
		}
		if !decided {
			for _, c := range conns {
				found, err := hasDecision(ctx, c, inst+":"+xid)
				if err != nil {
					return err
				}
				if found {
					commit = true
					break
				}
			}
			if !commit && !reachable {
				// The decision may be on a shard not reachable now.
				continue
			}
		}
		verb := "ROLLBACK PREPARED "
		if commit {
			verb = "COMMIT PREPARED "
		}
		n := 0
		for _, p := range parts {
			if p.part == 0 && decided {
				n++
				continue
			}
			if err := execSimple(ctx, p.conn, verb+quoteLiteral(p.gid)); err != nil {
				s.log.Warn("two-phase recovery failed", "database", d.Name, "gid", p.gid, "error", err)
				continue
			}
			n++
		}
		s.metrics.recoveredTx(commit)
		s.log.Info("two-phase recovery", "database", d.Name, "xid", inst+":"+xid, "decision", strings.TrimSpace(strings.TrimSuffix(verb, " PREPARED ")), "parts", n)
	}
	// Decisions whose transactions are finished everywhere are forgotten,
	// once every shard could be asked.
	if reachable {
		live := make([]string, 0, len(order))
		live = append(live, order...)
		for _, c := range conns {
			sql := fmt.Sprintf("DELETE FROM %s WHERE decided_at < now() - %s::interval AND xid <> ALL(%s::text[])",
				decisionTable, quoteLiteral(fmt.Sprintf("%d milliseconds", tpc.timeout.Milliseconds())), quoteLiteral(textArray(live)))
			if err := execSimple(ctx, c, sql); err != nil {
				s.log.Warn("two-phase recovery: could not clean decisions", "database", d.Name, "error", err)
			}
		}
	}
	return nil
}

// checkTwoPhase checks that a shard can prepare transactions and has the
// decision table.
func checkTwoPhase(ctx context.Context, c *pgconn.PgConn) error {
	rr := c.ExecParams(ctx, "SELECT current_setting('max_prepared_transactions')::int", nil, nil, nil, nil)
	n := -1
	for rr.NextRow() {
		n, _ = strconv.Atoi(string(rr.Values()[0]))
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	if n == 0 {
		return errNoPrepared
	}
	if err := execSimple(ctx, c, decisionDDL); err != nil {
		// Another instance may have created it at the same moment.
		if found, herr := hasTable(ctx, c); herr != nil || !found {
			return fmt.Errorf("creating %s: %w", decisionTable, err)
		}
	}
	return nil
}

func hasTable(ctx context.Context, c *pgconn.PgConn) (bool, error) {
	rr := c.ExecParams(ctx, "SELECT to_regclass($1) IS NOT NULL", [][]byte{[]byte(decisionTable)}, nil, nil, nil)
	found := false
	for rr.NextRow() {
		found = string(rr.Values()[0]) == "t"
	}
	_, err := rr.Close()
	return found, err
}

func hasDecision(ctx context.Context, c *pgconn.PgConn, xid string) (bool, error) {
	rr := c.ExecParams(ctx, "SELECT 1 FROM "+decisionTable+" WHERE xid = $1", [][]byte{[]byte(xid)}, nil, nil, nil)
	found := false
	for rr.NextRow() {
		found = true
	}
	_, err := rr.Close()
	return found, err
}

func execSimple(ctx context.Context, c *pgconn.PgConn, sql string) error {
	_, err := c.Exec(ctx, sql).ReadAll()
	return err
}

// textArray writes a text[] literal of plain strings.
func textArray(vals []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}
