package test

// Backend faults, end to end: pgshard in front of the routing servers with
// one shard reached through a fault proxy of the test's own
// (test/faultproxy), which stalls, cuts, refuses or fails the connection
// at a chosen point. Each test checks what the client sees and, reading
// every shard directly, that nothing committed is lost, nothing rolled
// back appears and no statement ran twice.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/test/faultproxy"
)

// faultProxy puts a fault proxy in front of shard i of rc, closed when the
// test ends.
func faultProxy(t testing.TB, rc *routingCluster, i int) *faultproxy.Proxy {
	t.Helper()
	fp, err := faultproxy.Start(rc.shards[i].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	return fp
}

// startFaultyProxy runs pgshard in front of rc, configured by configYAML
// with the settings of set (top-level keys, replacing those configYAML
// has) and shard via reached through fp.
func startFaultyProxy(t testing.TB, rc *routingCluster, o routingOptions, via int, fp *faultproxy.Proxy, set map[string]string) *testProxy {
	t.Helper()
	text := rc.configYAML(o)
	direct := fmt.Sprintf("127.0.0.1:%d/", rc.shards[via].Port())
	if !strings.Contains(text, direct) {
		t.Fatalf("shard %d's address %s is not in the configuration", via, direct)
	}
	text = strings.Replace(text, direct, fp.Addr()+"/", 1)
	lines := strings.Split(text, "\n")
	for k, v := range set {
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, k+":") {
				lines[i], found = k+": "+v, true
			}
		}
		if !found {
			lines = append([]string{k + ": " + v}, lines...)
		}
	}
	return startProxyYAML(t, strings.Join(lines, "\n"), o)
}

// faultSettings are the settings of the fault tests: checks often, so that
// a shard that comes back serves again soon.
var faultSettings = map[string]string{"health_check_interval": "200ms", "health_check_timeout": "1s"}

// wantFault checks that err is an error pgshard reports for a lost shard:
// a SQLSTATE of class 08 (or 57P01, 57014 where allowed), with a message
// naming the shard, and returns it.
func wantFault(t testing.TB, what string, err error, shard string, codes ...string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: got %v, want an error with SQLSTATE %v", what, err, codes)
	}
	ok := false
	for _, c := range codes {
		ok = ok || pe.Code == c
	}
	if !ok {
		t.Fatalf("%s: got %s %q, want SQLSTATE %v", what, pe.Code, pe.Message, codes)
	}
	if !strings.Contains(pe.Message, shard) {
		t.Errorf("%s: message %q does not name shard %s", what, pe.Message, shard)
	}
	t.Logf("%s: %s %s (detail %q, hint %q)", what, pe.Code, pe.Message, pe.Detail, pe.Hint)
	return pe
}

// untilWorks runs sql through c until it succeeds, for up to d.
func untilWorks(t testing.TB, c *routedConn, d time.Duration, sql string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := c.run(simple, sql)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still fails %v after the fault ended: %v", sql, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultRows sets one committed row per shard of users, named "c", for
// the keys ks (one on each shard), and returns what checkShardRows
// expects of them with names.
func faultRows(t testing.TB, rc *routingCluster, ks []int) func(names ...string) [][]string {
	t.Helper()
	rc.truncate(t, "users")
	for i, k := range ks {
		directExec(t, rc.shards[i], fmt.Sprintf("INSERT INTO users VALUES (%d, 'c')", k))
	}
	return func(names ...string) [][]string {
		out := make([][]string, len(ks))
		for i, k := range ks {
			out[i] = []string{fmt.Sprintf("%d|%s", k, names[i])}
		}
		return out
	}
}

// TestFaultShardLostInTransaction: a shard's connection lost in the middle
// of a transaction (the fault proxy cuts it, as a crash of the server or
// the network would) fails the client's transaction with an error that
// says so; nothing of it is committed anywhere, nothing is run twice, and
// the same session works again once the shard is back. A transaction on
// one shard and one spanning shards, the connection lost while idle in the
// transaction and while a statement runs.
func TestFaultShardLostInTransaction(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	fp := faultProxy(t, rc, 1)
	p := startFaultyProxy(t, rc, routingOptions{noNotices: true}, 1, fp, faultSettings)
	keys := rc.intKeys(t, usersRule, 11000, 2)
	ks := []int{keys[0][0], keys[1][0], keys[2][0]}
	k1b := keys[1][1] // a row the failed transactions insert on s1
	bump := func(k int) string { return fmt.Sprintf("UPDATE users SET name = name || '+' WHERE id = %d", k) }
	insertB := fmt.Sprintf("INSERT INTO users VALUES (%d, 'new')", k1b)
	all := "SELECT id, name FROM users"

	// How each case meets the loss: "idle" cuts s1's connection while
	// the client is idle in its transaction and runs a statement on s1
	// after; "running" cuts it while s1 runs a statement; "commit" cuts
	// it and commits.
	cases := []struct {
		name  string
		multi bool // the transaction also updates s0
		// parked: s0's statement comes last, so s1's backend is parked
		// (held for the transaction, not the session's) when it is lost.
		parked bool
		how    string
	}{
		{"one-shard-idle", false, false, "idle"},
		{"one-shard-running", false, false, "running"},
		{"one-shard-commit", false, false, "commit"},
		{"multi-shard-idle", true, false, "idle"},
		{"multi-shard-running", true, false, "running"},
		{"multi-shard-commit", true, false, "commit"},
		{"multi-shard-parked-idle", true, true, "idle"},
		{"multi-shard-parked-commit", true, true, "commit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := faultRows(t, rc, ks)
			rc.noPrepared(t)
			c := connectRouted(t, p)
			c.mustRun(t, simple, "BEGIN")
			if tc.multi && !tc.parked {
				c.mustRun(t, simple, bump(ks[0]))
			}
			c.mustRun(t, simple, bump(ks[1]))
			c.mustRun(t, simple, insertB)
			if tc.parked {
				c.mustRun(t, simple, bump(ks[0]))
			}
			switch tc.how {
			case "running":
				done := make(chan error, 1)
				go func() {
					_, err := c.run(simple, fmt.Sprintf("SELECT pg_sleep(3) FROM users WHERE id = %d", ks[1]))
					done <- err
				}()
				waitActive(t, rc, 1, "pg_sleep(3)")
				fp.Cut()
				wantFault(t, "the statement running when s1 was lost", <-done, "s1", "08006")
				// The transaction is failed: PostgreSQL's own refusal.
				c.mustFail(t, "25P02", simple, "SELECT 1")
				c.mustRun(t, simple, "COMMIT").wantTag(t, "ROLLBACK")
			case "idle":
				fp.Cut()
				// Let pgshard see the loss before the client's next
				// statement.
				time.Sleep(200 * time.Millisecond)
				// The next statement says what happened; those after
				// it are refused as in any failed transaction.
				_, err := c.run(simple, bump(ks[1]))
				wantFault(t, "the first statement after s1 was lost", err, "s1", "08006")
				if tc.multi {
					c.mustFail(t, "25P02", simple, bump(ks[0]))
				}
				c.mustRun(t, simple, "COMMIT").wantTag(t, "ROLLBACK")
			case "commit":
				fp.Cut()
				time.Sleep(200 * time.Millisecond)
				// COMMIT is the first statement after the loss: it says
				// what happened (a bare ROLLBACK tag would not), and the
				// transaction is over.
				r, err := c.run(simple, "COMMIT")
				if err == nil {
					t.Fatalf("COMMIT after s1 was lost: tag %q, want 08006", r.tag)
				}
				pe := wantFault(t, "COMMIT after s1 was lost", err, "s1", "08006")
				if !strings.Contains(pe.Message, "rolled back") || !strings.Contains(pe.Detail, "not retried") {
					t.Errorf("COMMIT after s1 was lost: %q (detail %q) does not say the transaction was rolled back and not retried", pe.Message, pe.Detail)
				}
				if st := c.PgConn().TxStatus(); st != 'I' {
					t.Errorf("after the failed COMMIT the transaction status is %q, want I", st)
				}
			}
			// Nothing of the failed transaction anywhere, nothing twice.
			rc.checkShardRows(t, want("c", "c", "c"), all)
			rc.noPrepared(t)

			// The same session works again: the transaction, once, in
			// full.
			untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
			c.mustRun(t, simple, "BEGIN")
			if tc.multi {
				c.mustRun(t, simple, bump(ks[0]))
			}
			c.mustRun(t, simple, bump(ks[1]))
			c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
			if tc.multi {
				rc.checkShardRows(t, want("c+", "c+", "c"), all)
			} else {
				rc.checkShardRows(t, want("c", "c+", "c"), all)
			}
			rc.noPrepared(t)
		})
	}
}

// waitActive waits until shard i runs a statement containing text.
func waitActive(t testing.TB, rc *routingCluster, i int, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	q := "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%" + text + "%' AND query NOT LIKE '%pg_stat_activity%'"
	for {
		if rows := directRows(t, rc.shards[i], q); len(rows) == 1 && rows[0] != "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard %d never ran a statement with %q", i, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProxyEmpty waits until fp holds no connection: those it cut are
// closed on both sides.
func waitProxyEmpty(t testing.TB, fp *faultproxy.Proxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for fp.Open() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %d connections", fp, fp.Open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendPid runs, in the client's open transaction, a statement on the
// shard of key k that returns its backend's pid.
func backendPid(t testing.TB, c *routedConn, k int) string {
	t.Helper()
	r := c.mustRun(t, simple, fmt.Sprintf("SELECT pg_backend_pid() FROM users WHERE id = %d", k))
	if len(r.rows) != 1 {
		t.Fatalf("pg_backend_pid(): %q", r.rows)
	}
	return r.rows[0]
}

// waitGone waits until the backend pid is no longer on shard i.
func waitGone(t testing.TB, rc *routingCluster, i int, pid string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rows := directRows(t, rc.shards[i], "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid); rows[0] == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %s still on %s: pgshard kept the connection that timed out", pid, shardName(i))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFaultStall: a shard that stops answering. A backend that accepts
// the connection but never answers the login fails the statement after
// server_connect_timeout; one that stalls in the middle of a statement
// fails it after query_timeout with 57014 naming the server and the
// setting, on one shard, in a statement on several and in the COMMIT of a
// transaction that spans shards. The connection that timed out is closed,
// never reused; nothing of a failed transaction stays; the session works
// once the shard answers again.
func TestFaultStall(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	fp := faultProxy(t, rc, 1)
	set := map[string]string{"server_connect_timeout": "1s", "query_timeout": "1s",
		"health_check_interval": "200ms", "health_check_timeout": "1s"}
	p := startFaultyProxy(t, rc, routingOptions{noNotices: true}, 1, fp, set)
	keys := rc.intKeys(t, usersRule, 12000, 1)
	ks := []int{keys[0][0], keys[1][0], keys[2][0]}
	all := "SELECT id, name FROM users"
	bump := func(k int) string { return fmt.Sprintf("UPDATE users SET name = name || '+' WHERE id = %d", k) }
	heal := func(t *testing.T, c *routedConn) {
		t.Helper()
		fp.Heal()
		untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
		// A health check that began during the stall may still fail
		// and mark s1 down for a moment: let it end.
		time.Sleep(1200 * time.Millisecond)
		untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
	}

	t.Run("login", func(t *testing.T) {
		faultRows(t, rc, ks)
		c := connectRouted(t, p)
		fp.Stall()
		fp.Cut() // the pool's connections go: the next statement dials
		_, err := c.run(simple, fmt.Sprintf("SELECT name FROM users WHERE id = %d", ks[1]))
		wantFault(t, "a statement for a shard that accepts connections and never answers", err, "s1", "08006")
		// Other shards serve meanwhile.
		c.mustRun(t, simple, fmt.Sprintf("SELECT name FROM users WHERE id = %d", ks[0])).wantRows(t, "c")
		heal(t, c)
	})

	t.Run("one-shard", func(t *testing.T) {
		want := faultRows(t, rc, ks)
		c := connectRouted(t, p)
		c.mustRun(t, simple, "BEGIN")
		pid := backendPid(t, c, ks[1])
		c.mustRun(t, simple, bump(ks[1]))
		fp.Stall()
		_, err := c.run(simple, bump(ks[1]))
		pe := wantFault(t, "a statement stalled on s1", err, "s1", "57014")
		if !strings.Contains(pe.Message, "query_timeout") {
			t.Errorf("message %q does not name query_timeout", pe.Message)
		}
		c.mustRun(t, simple, "COMMIT").wantTag(t, "ROLLBACK")
		heal(t, c)
		waitGone(t, rc, 1, pid)
		rc.checkShardRows(t, want("c", "c", "c"), all)
		// Autocommit, then the session goes on.
		fp.Stall()
		_, err = c.run(simple, fmt.Sprintf("SELECT name FROM users WHERE id = %d", ks[1]))
		wantFault(t, "an autocommit read stalled on s1", err, "s1", "57014")
		heal(t, c)
		c.mustRun(t, simple, bump(ks[1]))
		rc.checkShardRows(t, want("c", "c+", "c"), all)
	})

	t.Run("scatter", func(t *testing.T) {
		want := faultRows(t, rc, ks)
		c := connectRouted(t, p)
		fp.Stall()
		_, err := c.run(simple, "SELECT count(*) FROM users")
		wantFault(t, "a read of every shard, s1 stalled", err, "s1", "57014")
		// s1's connection that timed out is gone: this one may time out
		// in the login (server_connect_timeout) or in the statement.
		_, err = c.run(simple, "UPDATE users SET name = name || '+'")
		wantFault(t, "a write to every shard, s1 stalled", err, "s1", "57014", "08006")
		heal(t, c)
		// The write to several shards outside a transaction is all or
		// nothing.
		rc.checkShardRows(t, want("c", "c", "c"), all)
		c.mustRun(t, simple, "SELECT count(*) FROM users").wantRows(t, "3")
		waitNoPrepared(t, rc.shards, "after the stalled write to every shard")
	})

	t.Run("multi-shard-commit", func(t *testing.T) {
		want := faultRows(t, rc, ks)
		c := connectRouted(t, p)
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, bump(ks[0]))
		c.mustRun(t, simple, bump(ks[1]))
		fp.Stall()
		_, err := c.run(simple, "COMMIT")
		wantFault(t, "COMMIT with s1 stalled", err, "s1", "57014")
		heal(t, c)
		// s1 may have prepared once the stall ended: recovery rolls it
		// back, as the decision was never taken.
		waitNoPrepared(t, rc.shards, "after the stalled COMMIT")
		rc.checkShardRows(t, want("c", "c", "c"), all)
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, bump(ks[0]))
		c.mustRun(t, simple, bump(ks[1]))
		c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
		rc.checkShardRows(t, want("c+", "c+", "c"), all)
	})
}

// TestFaultLoginClosed: a server that closes the connection during the
// login (after its first bytes) gives the client a clear 08006 at once,
// not a hang, leaks nothing, and the next statement works once the fault
// is gone.
func TestFaultLoginClosed(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	fp := faultProxy(t, rc, 1)
	p := startFaultyProxy(t, rc, routingOptions{noNotices: true}, 1, fp, faultSettings)
	keys := rc.intKeys(t, usersRule, 13000, 2)
	ks := []int{keys[0][0], keys[1][0], keys[2][0]}
	for _, n := range []int{1, 9} { // inside the first message; after its header
		t.Run(fmt.Sprintf("after-%d-bytes", n), func(t *testing.T) {
			want := faultRows(t, rc, ks)
			c := connectRouted(t, p)
			fp.CloseAfterServerBytes(n)
			fp.Cut()
			before := fp.Accepted()
			for i := range 3 {
				_, err := c.run(simple, fmt.Sprintf("INSERT INTO users VALUES (%d, 'x')", keys[1][1]))
				wantFault(t, fmt.Sprintf("statement %d for s1 while its logins fail", i), err, "s1", "08006")
			}
			if fp.Accepted() == before {
				t.Error("pgshard never tried to log in to s1 again")
			}
			fp.Heal()
			untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
			rc.checkShardRows(t, want("c", "c", "c"), "SELECT id, name FROM users")
			c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'd' WHERE id = %d", ks[1]))
			rc.checkShardRows(t, want("c", "d", "c"), "SELECT id, name FROM users")
		})
	}
}

// TestFaultTwoPhaseParticipantLost: a participant of a two-phase commit
// that becomes unreachable right after PREPARE TRANSACTION succeeded on
// it. Once the coordinator committed the decision the transaction is
// committed: the client gets COMMIT, and recovery commits the
// participant's part when it is back. Lost before the decision (its
// PREPARE ran but the answer never came), the transaction is rolled back
// everywhere: the client gets an error naming it, and recovery rolls its
// prepared part back.
func TestFaultTwoPhaseParticipantLost(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	fp := faultProxy(t, rc, 1)
	p := startFaultyProxy(t, rc, routingOptions{noNotices: true}, 1, fp, faultSettings)
	keys := rc.intKeys(t, usersRule, 14000, 1)
	ks := []int{keys[0][0], keys[1][0], keys[2][0]}
	all := "SELECT id, name FROM users"
	bump := func(k int) string { return fmt.Sprintf("UPDATE users SET name = name || '+' WHERE id = %d", k) }
	prepared := func() []string { return directRows(t, rc.shards[1], "SELECT gid FROM pg_prepared_xacts") }

	t.Run("after-the-decision", func(t *testing.T) {
		want := faultRows(t, rc, ks)
		rc.noPrepared(t)
		c := connectRouted(t, p)
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, bump(ks[0])) // s0 coordinates
		c.mustRun(t, simple, bump(ks[1]))
		fired := fp.FailOn("COMMIT PREPARED", false)
		c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
		select {
		case <-fired:
		default:
			t.Fatal("COMMIT PREPARED never went to s1")
		}
		// Committed on the coordinator; prepared, not yet committed, on s1.
		rc.checkShardRows(t, want("c+", "c", "c"), all)
		if g := prepared(); len(g) != 1 {
			t.Fatalf("s1 while unreachable: prepared transactions %q, want the one of the COMMIT", g)
		}
		fp.Heal()
		waitNoPrepared(t, rc.shards, "after s1 came back")
		rc.checkShardRows(t, want("c+", "c+", "c"), all)
		untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
	})

	t.Run("before-the-decision", func(t *testing.T) {
		want := faultRows(t, rc, ks)
		rc.noPrepared(t)
		c := connectRouted(t, p)
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, bump(ks[0]))
		c.mustRun(t, simple, bump(ks[1]))
		fired := fp.FailOn("PREPARE TRANSACTION", true)
		_, err := c.run(simple, "COMMIT")
		<-fired
		wantFault(t, "COMMIT with s1 lost during its PREPARE", err, "s1", "08006")
		rc.checkShardRows(t, want("c", "c", "c"), all)
		t.Logf("s1 while unreachable: prepared transactions %q", prepared())
		fp.Heal()
		waitNoPrepared(t, rc.shards, "after s1 came back")
		rc.checkShardRows(t, want("c", "c", "c"), all)
		untilWorks(t, c, 10*time.Second, fmt.Sprintf("SELECT id FROM users WHERE id = %d", ks[1]))
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, bump(ks[0]))
		c.mustRun(t, simple, bump(ks[1]))
		c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
		rc.checkShardRows(t, want("c+", "c+", "c"), all)
	})
}

// TestFaultCopyShardLostAtStart: a COPY FROM STDIN split over shards
// waits for every shard's CopyInResponse before it answers the client.
// A shard that answered and is lost (or fails) while another has not
// answered yet fails the COPY at once, with the shard's error; it used to
// be forgotten, and the session then waited for that shard's end of the
// COPY forever. Nothing is copied anywhere, and the session works again.
func TestFaultCopyShardLostAtStart(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	fp := faultProxy(t, rc, 1)
	// s1 answers slowly, not so slowly that its health checks fail.
	set := map[string]string{"health_check_interval": "200ms", "health_check_timeout": "10s"}
	p := startFaultyProxy(t, rc, routingOptions{noNotices: true}, 1, fp, set)
	keys := rc.intKeys(t, usersRule, 13000, 1)
	ks := []int{keys[0][0], keys[1][0], keys[2][0]}
	want := faultRows(t, rc, ks)
	fresh := rc.intKeys(t, usersRule, 14000, 1)
	c := connectRouted(t, p)
	// s1's pool has a backend: the COPY needs no login through the delay.
	c.mustRun(t, simple, fmt.Sprintf("SELECT name FROM users WHERE id = %d", ks[1])).wantRows(t, "c")

	fp.Delay(time.Second) // s1's CopyInResponse comes 2s after its COPY is sent
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		data := fmt.Sprintf("%d\tnew\n%d\tnew\n%d\tnew\n", fresh[0][0], fresh[1][0], fresh[2][0])
		_, err := c.PgConn().CopyFrom(ctx, strings.NewReader(data), "COPY users (id, name) FROM STDIN")
		done <- err
	}()
	// s0 copies already (it waits for rows) while s1 has not answered:
	// its backend goes.
	waitActive(t, rc, 0, "COPY users")
	if err := rc.shards[0].Exec(t.Context(), "postgres",
		"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = 'app' AND query LIKE 'COPY users%'"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantFault(t, "COPY whose shard s0 was lost before s1 answered", err, "", "57P01", "08006")
	case <-time.After(15 * time.Second):
		t.Fatal("the COPY did not end 15s after shard s0's backend was lost")
	}
	fp.Heal()
	rc.checkShardRows(t, want("c", "c", "c"), "SELECT id, name FROM users")
	for i, s := range rc.shards {
		if n := directRows(t, s, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'"); n[0] != "0" {
			t.Errorf("shard %d: %s backends of app idle in a transaction after the failed COPY", i, n[0])
		}
	}
	c.checkUsable(t)
	c.mustRun(t, simple, "SELECT count(*) FROM users").wantRows(t, "3")
}
