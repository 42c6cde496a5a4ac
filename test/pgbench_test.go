package test

// pgbench through pgshard: 32 clients in every pgbench query mode, in
// session and transaction pooling. pgbench must report no failed
// transactions, and the backend must hold exactly what the reported
// transactions wrote.

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgshard/pgshard/proxy"
)

// pgbenchResult is what a pgbench run reports.
type pgbenchResult struct {
	processed, failed int64
	tps               float64
}

var (
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbenchTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
)

// pgbench runs pgbench with args as app on database app. Any exit status
// but 0 (a client aborted, a connection failed) fails the test.
func pgbench(t testing.TB, host, port string, args ...string) (stdout, stderr string) {
	t.Helper()
	all := append([]string{"-h", host, "-p", port, "-U", "app"}, args...)
	all = append(all, "app")
	cmd := exec.Command(clientBinary(t, "pgbench"), all...)
	cmd.Env = libpqEnv("app")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		// Stuck: say where before killing it.
		activity, _ := backend.QueryString(context.Background(), "postgres",
			"SELECT coalesce(string_agg(format('pid %s %s wait=%s/%s xact_age=%s: %s', pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 80)), E'\n'), '') "+
				"FROM pg_stat_activity WHERE usename = 'app' AND state <> 'idle'")
		stacks := proxyGoroutines()
		cmd.Process.Kill()
		<-done
		t.Fatalf("pgbench %s did not finish within 20s\nstdout:\n%s\nstderr:\n%s\nnon-idle backends of app:\n%s\npgshard's goroutines:\n%s",
			strings.Join(args, " "), out.String(), lastLines(errOut.String(), 30), activity, stacks)
	}
	if err != nil {
		t.Fatalf("pgbench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), lastLines(errOut.String(), 30))
	}
	return out.String(), errOut.String()
}

// runPgbench runs a benchmark and parses pgbench's summary.
func runPgbench(t testing.TB, host, port string, args ...string) pgbenchResult {
	t.Helper()
	stdout, stderr := pgbench(t, host, port, args...)
	out, errOut := bytes.NewBufferString(stdout), bytes.NewBufferString(stderr)
	var r pgbenchResult
	m := pgbenchProcessed.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("pgbench printed no transaction count:\n%s", out.String())
	}
	r.processed, _ = strconv.ParseInt(m[1], 10, 64)
	m = pgbenchFailed.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("pgbench printed no failed transaction count:\n%s", out.String())
	}
	r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	if m := pgbenchTPS.FindStringSubmatch(out.String()); m != nil {
		r.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if strings.Contains(errOut.String(), "error") {
		t.Errorf("pgbench reported errors:\n%s", lastLines(errOut.String(), 30))
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestPgbench runs pgbench's TPC-B-like script and its select-only script
// with 32 clients through pgshard in simple, extended and prepared query
// modes, in transaction pooling (8 backends for 32 clients) and session
// pooling (32 backends). pgbench_history gets one row per transaction, so
// the backend must gain exactly as many rows as pgbench reports
// transactions; at the end the balances must add up.
//
// pgbench -M prepared prepares with blocking calls inside each thread, so
// with fewer threads than clients and fewer backends than clients it
// deadlocks (in PgBouncer too): every run uses one thread per client.
func TestPgbench(t *testing.T) {
	checkNoGoroutineLeak(t)
	// Tables straight on the backend, owned by app.
	pgbench(t, backend.Host(), strconv.Itoa(backend.Port()), "-i", "-s", "1", "-q", "-n")
	t.Cleanup(func() {
		backend.Exec(context.Background(), "app",
			"DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history")
	})
	const clients = 32
	for _, pm := range []proxyConfig{{mode: proxy.PoolTransaction, poolSize: 8}, {mode: proxy.PoolSession, poolSize: clients}} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			// A warm-up: the pool's backends log in on first use, which on
			// a loaded machine can take the whole of a short run.
			pgbench(t, p.host, p.port, "-n", "-S", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients), "-t", "5")
			for _, mode := range []string{"simple", "extended", "prepared"} {
				for _, selectOnly := range []bool{false, true} {
					name, seconds := mode, "2"
					if selectOnly {
						name, seconds = mode+"/select-only", "1"
					}
					t.Run(name, func(t *testing.T) {
						before := backendInt(t, "SELECT count(*) FROM pgbench_history")
						args := []string{"-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients), "-T", seconds, "-M", mode}
						if selectOnly {
							args = append(args, "-S")
						}
						r := runPgbench(t, p.host, p.port, args...)
						t.Logf("%d transactions, %d failed, %.0f tps", r.processed, r.failed, r.tps)
						if r.failed != 0 {
							t.Errorf("pgbench reports %d failed transactions", r.failed)
						}
						if r.processed == 0 {
							t.Fatal("pgbench processed no transaction")
						}
						gained := backendInt(t, "SELECT count(*) FROM pgbench_history") - before
						want := r.processed
						if selectOnly {
							want = 0
						}
						if gained != want {
							t.Errorf("pgbench_history gained %d rows for %d reported transactions: want %d", gained, r.processed, want)
						}
					})
				}
			}
			checkNoIdleInTransaction(t)
		})
	}
	// Every TPC-B transaction adds the same delta to one account, teller
	// and branch and records it in the history.
	const sums = "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = s AND (SELECT sum(tbalance) FROM pgbench_tellers) = s AND " +
		"(SELECT sum(bbalance) FROM pgbench_branches) = s FROM (SELECT coalesce(sum(delta), 0) AS s FROM pgbench_history) h"
	ok, err := backend.QueryString(context.Background(), "app", sums)
	if err != nil || ok != "t" {
		t.Errorf("balances do not add up to the history's deltas (%q, %v)", ok, err)
	}
}
