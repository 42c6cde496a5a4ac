package test

// Backend faults, end to end: pgshard in front of the routing servers with
// one shard reached through a fault proxy of the test's own
// (test/faultproxy), which stalls, cuts, refuses or fails the connection
// at a chosen point. Each test checks what the client sees and, reading
// every shard directly, that nothing committed is lost, nothing rolled
// back appears and no statement ran twice.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/config"
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
	text = strings.Join(lines, "\n")
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v\nconfiguration:\n%s", err, text)
	}
	logger := o.logger
	if logger == nil && testing.Verbose() {
		logger = testLogger(t)
	}
	opts, err := cfg.ProxyOptions(logger)
	if err != nil {
		t.Fatalf("ProxyOptions: %v", err)
	}
	return serveProxy(t, opts)
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
				r, err := c.run(simple, "COMMIT")
				switch {
				case err == nil && r.tag == "ROLLBACK":
				case err == nil:
					t.Errorf("COMMIT after s1 was lost: tag %q, want ROLLBACK or an error", r.tag)
				default:
					wantFault(t, "COMMIT after s1 was lost", err, "s1", "08006")
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
