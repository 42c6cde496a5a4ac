package test

// Session state through pgshard: settings, prepared statements, temporary
// tables and other state that lives on a backend must follow a client in
// transaction mode, never leak to another client, and be gone from a
// backend once its client has left.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/proxy"
)

// setting returns the value of a setting as the client sees it; "" when a
// custom setting is not defined.
func setting(ctx context.Context, conn *pgx.Conn, name string) (string, error) {
	var v string
	err := conn.QueryRow(ctx, "SELECT coalesce(current_setting($1, true), '')", name).Scan(&v)
	return v, err
}

func backendPID(ctx context.Context, conn *pgx.Conn) (uint32, error) {
	var pid uint32
	err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	return pid, err
}

// TestSessionStateNoCrossTalk runs 100 clients on two backends in
// transaction mode. Each sets its own application_name and a custom
// setting, prepares statements, and checks many times, in and out of
// transactions and in every pgx query mode, that it sees its own values.
func TestSessionStateNoCrossTalk(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 2})
	const clients, iters = 100, 10
	conns := make([]*pgx.Conn, clients)
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for c := range clients {
		wg.Go(func() {
			conns[c], errs[c] = pgxDial(p.url("app", "app", "app")+"&application_name=start_"+strconv.Itoa(c),
				withExecMode(allExecModes[c%len(allExecModes)]))
		})
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Fatalf("client %d: connect: %v", c, err)
		}
		t.Cleanup(func() { conns[c].Close(context.Background()) })
	}
	for c := range clients {
		wg.Go(func() { errs[c] = crossTalkClient(conns[c], c, iters) })
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("client %d (%s): %v", c, allExecModes[c%len(allExecModes)], err)
		}
	}
	for _, conn := range conns {
		conn.Close(context.Background())
	}
	checkNoIdleInTransaction(t)
}

func crossTalkClient(conn *pgx.Conn, c, iters int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, app := strconv.Itoa(c), "client_"+strconv.Itoa(c)
	if app0, err := setting(ctx, conn, "application_name"); err != nil || app0 != "start_"+id {
		return fmt.Errorf("application_name from the connection string: %q, %v", app0, err)
	}
	if _, err := conn.Exec(ctx, "SET application_name = '"+app+"'"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SET myapp.client_id = '"+id+"'"); err != nil {
		return err
	}
	if _, err := conn.Prepare(ctx, "check", "SELECT current_setting('application_name'), current_setting('myapp.client_id'), $1::int"); err != nil {
		return err
	}
	if _, err := conn.Prepare(ctx, "mine", fmt.Sprintf("SELECT %d + $1::int", 1000*c)); err != nil {
		return err
	}
	type querier interface {
		QueryRow(context.Context, string, ...any) pgx.Row
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}
	check := func(q querier, i int, wantID string) error {
		var gotApp, gotID string
		var n int
		if err := q.QueryRow(ctx, "check", i).Scan(&gotApp, &gotID, &n); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if gotApp != app || gotID != wantID || n != i {
			return fmt.Errorf("sees application_name %q, myapp.client_id %q (%d); want %q, %q: another client's settings", gotApp, gotID, n, app, wantID)
		}
		// The same text through pgx's own statement cache and unprepared.
		if err := q.QueryRow(ctx, "SELECT current_setting('myapp.client_id'), current_setting('application_name')").Scan(&gotID, &gotApp); err != nil {
			return err
		}
		if gotApp != app || gotID != wantID {
			return fmt.Errorf("sees %q, %q; want %q, %q", gotApp, gotID, app, wantID)
		}
		if err := q.QueryRow(ctx, "mine", i).Scan(&n); err != nil || n != 1000*c+i {
			return fmt.Errorf("mine(%d) = %d, %v: another client's statement", i, n, err)
		}
		return nil
	}
	for i := range iters {
		if err := check(conn, i, id); err != nil {
			return fmt.Errorf("iteration %d: %w", i, err)
		}
		if i%3 != 0 {
			continue
		}
		// SET LOCAL lasts only to the end of the transaction.
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL myapp.client_id = 'local_"+id+"'"); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := check(tx, i, "local_"+id); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("iteration %d in a transaction: %w", i, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// protocols are the ways a statement that changes session state can be
// sent: a simple Query, an unnamed extended-protocol statement, and a named
// prepared statement.
var protocols = []struct {
	name string
	exec func(ctx context.Context, pc *pgconn.PgConn, sql string) error
}{
	{"simple", func(ctx context.Context, pc *pgconn.PgConn, sql string) error {
		_, err := pc.Exec(ctx, sql).ReadAll()
		return err
	}},
	{"extended", func(ctx context.Context, pc *pgconn.PgConn, sql string) error {
		return pc.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
	}},
	{"prepared", func(ctx context.Context, pc *pgconn.PgConn, sql string) error {
		if _, err := pc.Prepare(ctx, "stmt", sql, nil); err != nil {
			return err
		}
		err := pc.ExecPrepared(ctx, "stmt", nil, nil, nil).Read().Err
		return errors.Join(err, pc.Deallocate(ctx, "stmt"))
	}},
}

// TestSetSemantics checks in transaction mode that SET persists when its
// transaction commits and not when it rolls back, that SET LOCAL ends with
// the transaction, that RESET returns to the value from the startup packet
// and that DISCARD ALL clears everything. Each case is checked on the
// client's backend and again after another client with other settings used
// that backend (so pgshard must restore the client's settings), in each
// protocol.
func TestSetSemantics(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 1})
	type step struct {
		sql  string
		code string            // expected SQLSTATE, "" for success
		want map[string]string // settings checked after the step
	}
	const start = "c_start"
	cases := []struct {
		name  string
		steps []step
		want  map[string]string // settings at the end
	}{
		{"SET", []step{{sql: "SET myapp.v = 'a'"}},
			map[string]string{"myapp.v": "a", "application_name": start}},
		{"SET in a committed transaction", []step{
			{sql: "BEGIN"}, {sql: "SET myapp.v = 'b'", want: map[string]string{"myapp.v": "b"}}, {sql: "COMMIT"}},
			map[string]string{"myapp.v": "b"}},
		{"SET in a rolled back transaction", []step{
			{sql: "SET myapp.v = 'base'"}, {sql: "BEGIN"}, {sql: "SET myapp.v = 'c'", want: map[string]string{"myapp.v": "c"}}, {sql: "ROLLBACK"}},
			map[string]string{"myapp.v": "base"}},
		{"SET in a failed transaction", []step{
			{sql: "SET myapp.v = 'base'"}, {sql: "BEGIN"}, {sql: "SET myapp.v = 'e'"}, {sql: "SELECT 1/0", code: "22012"}, {sql: "COMMIT"}},
			map[string]string{"myapp.v": "base"}},
		{"SET LOCAL", []step{
			{sql: "SET myapp.v = 'base'"}, {sql: "BEGIN"}, {sql: "SET LOCAL myapp.v = 'd'", want: map[string]string{"myapp.v": "d"}}, {sql: "COMMIT"}},
			map[string]string{"myapp.v": "base"}},
		{"SET then SET LOCAL", []step{
			{sql: "BEGIN"}, {sql: "SET myapp.v = 'kept'"}, {sql: "SET LOCAL myapp.v = 'local'", want: map[string]string{"myapp.v": "local"}}, {sql: "COMMIT"}},
			map[string]string{"myapp.v": "kept"}},
		{"savepoint rolled back", []step{
			{sql: "BEGIN"}, {sql: "SET myapp.v = 'f'"}, {sql: "SAVEPOINT s1"}, {sql: "SET myapp.v = 'g'"}, {sql: "ROLLBACK TO SAVEPOINT s1", want: map[string]string{"myapp.v": "f"}}, {sql: "COMMIT"}},
			map[string]string{"myapp.v": "f"}},
		{"SET in one multi-statement query", []step{
			{sql: "BEGIN; SET myapp.v = 'h'; SET application_name = 'multi'; COMMIT"}},
			map[string]string{"myapp.v": "h", "application_name": "multi"}},
		{"rolled back multi-statement query", []step{
			{sql: "SET myapp.v = 'base'"}, {sql: "SET myapp.v = 'i'; SELECT 1/0", code: "22012"}},
			map[string]string{"myapp.v": "base"}},
		{"RESET", []step{
			{sql: "SET application_name = 'changed'", want: map[string]string{"application_name": "changed"}}, {sql: "RESET application_name"}},
			map[string]string{"application_name": start}},
		// Inside the transaction RESET returns application_name to the
		// backend's default, not the client's startup value: a known
		// limitation of poolers that apply startup parameters with SET
		// (README, "Limitations"). Once the transaction ends the value is
		// the client's again, which this case checks.
		{"RESET in a transaction", []step{
			{sql: "SET application_name = 'changed'"}, {sql: "BEGIN"}, {sql: "RESET application_name"}, {sql: "COMMIT"}},
			map[string]string{"application_name": start}},
		{"RESET ALL", []step{
			{sql: "SET application_name = 'changed'"}, {sql: "SET myapp.v = 'j'"}, {sql: "RESET ALL"}},
			map[string]string{"application_name": start, "myapp.v": ""}},
		{"DISCARD ALL", []step{
			{sql: "SET application_name = 'changed'"}, {sql: "SET myapp.v = 'k'"}, {sql: "DISCARD ALL"}},
			map[string]string{"application_name": start, "myapp.v": ""}},
	}
	for _, proto := range protocols {
		for _, tc := range cases {
			if proto.name != "simple" && slices.ContainsFunc(tc.steps, func(s step) bool { return strings.Contains(s.sql, ";") }) {
				continue // several statements go only in a simple Query
			}
			t.Run(proto.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				c := pgxConnect(t, p.url("app", "app", "app")+"&application_name="+start)
				d := pgxConnect(t, p.url("app", "app", "app")+"&application_name=d_app")
				if _, err := d.Exec(ctx, "SET myapp.v = 'from d'"); err != nil {
					t.Fatal(err)
				}
				checkSettings := func(when string, want map[string]string) {
					t.Helper()
					for name, v := range want {
						got, err := setting(ctx, c, name)
						if err != nil || got != v {
							t.Errorf("%s: %s = %q (%v), want %q", when, name, got, err, v)
						}
					}
				}
				for _, st := range tc.steps {
					err := proto.exec(ctx, c.PgConn(), st.sql)
					if sqlstate(err) != st.code || (st.code == "" && err != nil) {
						t.Fatalf("%s: %v, want SQLSTATE %q", st.sql, err, st.code)
					}
					checkSettings("after "+st.sql, st.want)
				}
				checkSettings("on the same backend", tc.want)
				// Another client with settings of its own uses the backend.
				got, err := setting(ctx, d, "myapp.v")
				if err != nil || got != "from d" {
					t.Errorf("the other client sees myapp.v = %q (%v), want its own 'from d'", got, err)
				}
				if got, err := setting(ctx, d, "application_name"); err != nil || got != "d_app" {
					t.Errorf("the other client sees application_name %q (%v), want its own d_app", got, err)
				}
				checkSettings("after another client used the backend", tc.want)
			})
		}
	}
	checkNoIdleInTransaction(t)
}

// TestPinnedSessionState covers state PostgreSQL keeps outside of
// settings, which pgshard cannot move between backends: the client that
// creates it keeps its backend (it is pinned) while other clients never
// see it, and once the client leaves the backend is reset (DISCARD ALL)
// before anyone else uses it.
func TestPinnedSessionState(t *testing.T) {
	checkNoGoroutineLeak(t)
	cases := []struct {
		name   string
		create string
		// has is a query returning whether the session holds the state.
		has string
		// left, when set, counts on the backend (as superuser, database
		// app) what is left of the state in any session.
		left string
	}{
		{"temporary table", "CREATE TEMP TABLE pin_tmp (id int)",
			"SELECT to_regclass('pin_tmp') IS NOT NULL",
			"SELECT count(*) FROM pg_class WHERE relname = 'pin_tmp' AND relpersistence = 't'"},
		{"LISTEN", "LISTEN pin_channel",
			"SELECT 'pin_channel' = ANY (ARRAY(SELECT pg_listening_channels()))", ""},
		{"SQL PREPARE", "PREPARE pin_stmt AS SELECT 42",
			"SELECT count(*) = 1 FROM pg_prepared_statements WHERE name = 'pin_stmt'", ""},
		{"cursor WITH HOLD", "DECLARE pin_cursor CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 100) g",
			"SELECT count(*) = 1 FROM pg_cursors WHERE name = 'pin_cursor'", ""},
		{"advisory lock", "SELECT pg_advisory_lock(4242)",
			"SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid()",
			"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"},
		{"set_config", "SELECT set_config('myapp.pinned', 'yes', false)",
			"SELECT coalesce(current_setting('myapp.pinned', true), '') = 'yes'", ""},
	}
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 2})
	for _, tc := range cases {
		for _, proto := range protocols[:2] {
			t.Run(tc.name+"/"+proto.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				owner, err := pgxDial(p.url("app", "app", "app"))
				if err != nil {
					t.Fatal(err)
				}
				defer owner.Close(ctx)
				others := []*pgx.Conn{pgxConnect(t, p.url("app", "app", "app")), pgxConnect(t, p.url("app", "app", "app"))}
				has := func(conn *pgx.Conn) (bool, uint32, error) {
					var ok bool
					var pid uint32
					err := conn.QueryRow(ctx, "SELECT ("+tc.has+"), pg_backend_pid()").Scan(&ok, &pid)
					return ok, pid, err
				}
				if err := proto.exec(ctx, owner.PgConn(), tc.create); err != nil {
					t.Fatalf("%s: %v", tc.create, err)
				}
				ok, pinned, err := has(owner)
				if err != nil || !ok {
					t.Fatalf("right after %s the client does not see it (%v)", tc.create, err)
				}
				if tc.name == "LISTEN" {
					if err := backend.Exec(ctx, "app", "NOTIFY pin_channel, 'hello'"); err != nil {
						t.Fatal(err)
					}
					wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
					n, err := owner.WaitForNotification(wctx)
					wcancel()
					if err != nil || n.Channel != "pin_channel" || n.Payload != "hello" {
						t.Fatalf("notification: %+v, %v", n, err)
					}
				}
				// The owner keeps its backend while the others share the
				// remaining one and never see the state.
				var wg sync.WaitGroup
				errs := make([]error, len(others)+1)
				wg.Go(func() {
					for range 20 {
						ok, pid, err := has(owner)
						if err == nil && (!ok || pid != pinned) {
							err = fmt.Errorf("the owner sees the state: %v, on backend %d; want true on its pinned backend %d", ok, pid, pinned)
						}
						if err != nil {
							errs[0] = err
							return
						}
					}
				})
				for i, o := range others {
					wg.Go(func() {
						for range 20 {
							ok, pid, err := has(o)
							if err == nil && (ok || pid == pinned) {
								err = fmt.Errorf("another client sees the state: %v, on backend %d (the pinned one is %d)", ok, pid, pinned)
							}
							if err != nil {
								errs[i+1] = err
								return
							}
						}
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Error(err)
					}
				}
				// A transaction of the owner runs on its backend too.
				tx, err := owner.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var pid uint32
				if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil || pid != pinned {
					t.Errorf("the owner's transaction runs on backend %d (%v), want %d", pid, err, pinned)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}

				if err := owner.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if tc.left != "" {
					deadline := time.Now().Add(5 * time.Second)
					for backendInt(t, tc.left) != 0 {
						if time.Now().After(deadline) {
							t.Fatalf("5s after its client left, the backend still has it: %s = %d", tc.left, backendInt(t, tc.left))
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				// Both backends at once: the pinned one came back to the
				// pool, reset.
				pids := map[uint32]bool{}
				var mu sync.Mutex
				errs = make([]error, len(others))
				start := make(chan struct{})
				for i, o := range others {
					wg.Go(func() {
						errs[i] = func() error {
							tx, err := o.Begin(ctx)
							if err != nil {
								return err
							}
							defer tx.Rollback(ctx)
							var ok bool
							var pid uint32
							if err := tx.QueryRow(ctx, "SELECT ("+tc.has+"), pg_backend_pid()").Scan(&ok, &pid); err != nil {
								return err
							}
							mu.Lock()
							pids[pid] = true
							mu.Unlock()
							<-start // hold this backend until both have one
							if ok {
								return fmt.Errorf("backend %d still has the state of the client that left", pid)
							}
							return nil
						}()
					})
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					mu.Lock()
					n := len(pids)
					mu.Unlock()
					if n == len(others) || time.Now().After(deadline) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				close(start)
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Error(err)
					}
				}
				if len(pids) != 2 || !pids[pinned] {
					t.Errorf("after the owner left, two clients in transactions got backends %v; want both backends, including the pinned %d", pids, pinned)
				}
			})
		}
	}
	checkNoIdleInTransaction(t)
}

// TestDiscardAllUnpins: DISCARD ALL drops a client's temporary table and
// ends its pin, so its backend serves other clients while it stays
// connected.
func TestDiscardAllUnpins(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	owner := pgxConnect(t, p.url("app", "app", "app"))
	a := pgxConnect(t, p.url("app", "app", "app"))
	b := pgxConnect(t, p.url("app", "app", "app"))
	if _, err := owner.Exec(ctx, "CREATE TEMP TABLE unpin_tmp (id int); INSERT INTO unpin_tmp VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if n := backendInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'unpin_tmp' AND relpersistence = 't'"); n != 1 {
		t.Fatalf("backend has %d temporary tables unpin_tmp, want 1", n)
	}
	if _, err := owner.Exec(ctx, "SET myapp.v = 'owner'"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, "DISCARD ALL"); err != nil {
		t.Fatal(err)
	}
	if n := backendInt(t, "SELECT count(*) FROM pg_class WHERE relname = 'unpin_tmp' AND relpersistence = 't'"); n != 0 {
		t.Errorf("after DISCARD ALL the backend still has %d temporary tables unpin_tmp", n)
	}
	var exists bool
	if err := owner.QueryRow(ctx, "SELECT to_regclass('unpin_tmp') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("after DISCARD ALL the client still sees its temporary table (%v)", err)
	}
	if v, err := setting(ctx, owner, "myapp.v"); err != nil || v != "" {
		t.Errorf("after DISCARD ALL myapp.v = %q (%v), want unset", v, err)
	}
	// Two transactions at once need both backends: the owner's is free.
	txa, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txa.Rollback(ctx)
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
	defer bcancel()
	txb, err := b.Begin(bctx)
	if err == nil {
		_, err = txb.Exec(bctx, "SELECT 1")
	}
	if err != nil {
		t.Fatalf("a second transaction found no free backend: the client is still pinned after DISCARD ALL (%v)", err)
	}
	txb.Rollback(ctx)
	if err := txa.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	checkAlive(t, owner, "the client after DISCARD ALL")
}

// TestStatementModeRefusesTransactions: in statement mode a transaction
// block is refused with 0A000, in any protocol, nothing of the refused
// query runs, and the connection keeps working.
func TestStatementModeRefusesTransactions(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "ss_statement", "k int NOT NULL")
	p := startProxy(t, proxyConfig{mode: proxy.PoolStatement, poolSize: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := pgxConnect(t, p.url("app", "app", "app"))
	other := pgxConnect(t, p.url("app", "app", "app"))
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"BEGIN", func() error { _, err := conn.PgConn().Exec(ctx, "BEGIN").ReadAll(); return err }},
		{"START TRANSACTION", func() error {
			_, err := conn.PgConn().Exec(ctx, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE").ReadAll()
			return err
		}},
		{"BEGIN after an INSERT in one query", func() error {
			_, err := conn.PgConn().Exec(ctx, "INSERT INTO ss_statement VALUES (1); BEGIN").ReadAll()
			return err
		}},
		{"extended BEGIN", func() error { return conn.PgConn().ExecParams(ctx, "BEGIN", nil, nil, nil, nil).Read().Err }},
		{"pgx Begin", func() error {
			tx, err := conn.Begin(ctx)
			if err == nil {
				tx.Rollback(ctx)
			}
			return err
		}},
		{"COMMIT AND CHAIN", func() error { _, err := conn.PgConn().Exec(ctx, "COMMIT AND CHAIN").ReadAll(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); sqlstate(err) != "0A000" {
				t.Fatalf("got %v, want SQLSTATE 0A000", err)
			}
			checkAlive(t, conn, "the refused client")
			checkAlive(t, other, "another client on the single backend")
		})
	}
	if n := backendInt(t, "SELECT count(*) FROM ss_statement"); n != 0 {
		t.Errorf("backend has %d rows from refused queries", n)
	}
	// Single statements run and commit.
	for k := range 5 {
		if _, err := conn.Exec(ctx, "INSERT INTO ss_statement VALUES ($1)", k); err != nil {
			t.Fatal(err)
		}
	}
	if n := backendInt(t, "SELECT count(*) FROM ss_statement"); n != 5 {
		t.Errorf("backend has %d rows, want 5", n)
	}
	checkNoIdleInTransaction(t)
}

// TestSessionModeBackendPID: in session mode the client gets its backend's
// real pid in BackendKeyData, and terminating that backend closes the
// client's connection.
func TestSessionModeBackendPID(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolSession, poolSize: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := pgxConnect(t, p.url("app", "app", "app"))
	pid, err := backendPID(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if key := conn.PgConn().PID(); key != pid {
		t.Fatalf("BackendKeyData pid %d, pg_backend_pid() %d: want the same in session mode", key, pid)
	}
	if n := backendInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND usename = 'app' AND datname = 'app'", pid); n != 1 {
		t.Fatalf("pid %d is not a backend of app in database app", pid)
	}
	// The same backend for the whole session.
	for range 5 {
		if again, err := backendPID(ctx, conn); err != nil || again != pid {
			t.Fatalf("pg_backend_pid() = %d (%v), want %d for the whole session", again, err, pid)
		}
	}
	if n := backendInt(t, "SELECT pg_terminate_backend($1)::int", int32(pid)); n != 1 {
		t.Fatalf("pg_terminate_backend(%d) did not terminate it", pid)
	}
	var lastErr error
	deadline := time.Now().Add(5 * time.Second)
	for !conn.IsClosed() && time.Now().Before(deadline) {
		_, lastErr = backendPID(ctx, conn)
		time.Sleep(10 * time.Millisecond)
	}
	if !conn.IsClosed() {
		t.Fatalf("the client's connection is still open 5s after its backend was terminated (last error %v)", lastErr)
	}
	t.Logf("after pg_terminate_backend the client got: %v", lastErr)
	// A new client gets a new backend.
	conn2 := pgxConnect(t, p.url("app", "app", "app"))
	pid2, err := backendPID(ctx, conn2)
	if err != nil || pid2 == pid || conn2.PgConn().PID() != pid2 {
		t.Fatalf("new client: backend %d (key %d), %v; want a live backend other than %d", pid2, conn2.PgConn().PID(), err, pid)
	}
	checkNoIdleInTransaction(t)
}

// TestSessionModeListenNotify: a session-mode client receives
// notifications; when it leaves, server_reset_query (DISCARD ALL) clears
// its LISTEN, settings and prepared statements before the single backend
// serves the next client.
func TestSessionModeListenNotify(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolSession, poolSize: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listener, err := pgxDial(p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN ss_channel"); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "SET myapp.v = 'listener'"); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Prepare(ctx, "ss_stmt", "SELECT $1::int"); err != nil {
		t.Fatal(err)
	}
	pid, err := backendPID(ctx, listener)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(want string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil || n.Channel != "ss_channel" || n.Payload != want {
			t.Fatalf("notification: %+v, %v; want %q on ss_channel", n, err, want)
		}
	}
	// From another session, straight on the backend.
	if err := backend.Exec(ctx, "app", "NOTIFY ss_channel, 'from the backend'"); err != nil {
		t.Fatal(err)
	}
	wait("from the backend")
	// From the listener itself, delivered after its transaction commits.
	if _, err := listener.Exec(ctx, "SELECT pg_notify('ss_channel', 'from itself')"); err != nil {
		t.Fatal(err)
	}
	wait("from itself")
	if err := listener.Close(ctx); err != nil {
		t.Fatal(err)
	}

	next := pgxConnect(t, p.url("app", "app", "app"), withExecMode(pgx.QueryExecModeSimpleProtocol))
	var (
		pid2     uint32
		channels int
		v        string
		prepared int
	)
	err = next.QueryRow(ctx, "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_listening_channels()), "+
		"coalesce(current_setting('myapp.v', true), ''), (SELECT count(*) FROM pg_prepared_statements)").Scan(&pid2, &channels, &v, &prepared)
	if err != nil {
		t.Fatal(err)
	}
	if pid2 != pid {
		t.Fatalf("the next client got backend %d, want the single pooled backend %d", pid2, pid)
	}
	if channels != 0 || v != "" || prepared != 0 {
		t.Errorf("the next client on the same backend sees %d listening channels, myapp.v = %q, %d prepared statements; want none (DISCARD ALL)", channels, v, prepared)
	}
	// A notification for the old channel does not reach the new client.
	if err := backend.Exec(ctx, "app", "NOTIFY ss_channel, 'too late'"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if n, err := next.WaitForNotification(wctx); err == nil {
		t.Errorf("the next client received %+v, sent to the previous client's channel", n)
	}
	checkNoIdleInTransaction(t)
}
