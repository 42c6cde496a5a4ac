package test

// The TPC-B consistency test: pgbench's TPC-B-like script through the
// pgshard binary, with pgbench_accounts, pgbench_tellers and
// pgbench_branches spread over three shards in different orders, so that
// a transaction usually writes to two or three shards and commits with
// two-phase commit. pgshard is killed with SIGKILL several times in the
// middle of the run and restarted; afterwards, read directly on the
// shards, every balance must add up to the history's deltas, every row
// must be on the shard its rule names, and no prepared transaction may be
// left behind.
//
// Two flags help tell the test's own machinery from pgshard's:
// -tpcb.shards=1 runs it against one shard, where pgshard is a plain
// pooler (no routing, no two-phase commit); -tpcb.init=direct makes the
// pgbench tables on each shard directly instead of with pgbench -i
// through pgshard (which needs DDL fan-out and COPY split by shard key).
//
//	go test -count=1 -run TestTPCB -v ./test/ -args -tpcb.shards=1

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/routing"
	"github.com/pgshard/pgshard/test/pgtest"
)

var (
	tpcbShards = flag.Int("tpcb.shards", 3,
		"TestTPCBConsistency: number of shards; 1 runs pgshard as a plain pooler, without routing rules or two-phase commit")
	tpcbInit = flag.String("tpcb.init", "proxy",
		"TestTPCBConsistency: how the pgbench tables are made: proxy (pgbench -i through pgshard) or direct (pgbench -i on each shard, then each shard keeps its own rows)")
)

const (
	// tpcbScale is pgbench's scale: 200000 accounts, 20 tellers, 2
	// branches.
	tpcbScale = 2
	// tpcbKills is how many pgbench runs are cut short by killing pgshard.
	tpcbKills = 4
	// tpcbClients and tpcbThreads are pgbench's -c and -j.
	tpcbClients, tpcbThreads = 8, 2
	// tpcbRunFor is the -T of a run that pgshard's death cuts short (it is
	// killed 1–3 s in), tpcbCleanFor that of the last, uninterrupted run.
	tpcbRunFor, tpcbCleanFor = 6 * time.Second, 3 * time.Second
	// tpcbRecovery bounds how long, after pgshard starts, its recovery may
	// take to resolve the prepared transactions a killed pgshard left.
	tpcbRecovery = 10 * time.Second
)

// TestTPCBConsistency runs pgbench's TPC-B-like script through pgshard
// (a subprocess, built from this repository) in front of three shards,
// with two-phase commit on. pgbench -i -s 2 makes the tables through
// pgshard; then, tpcbKills times, pgbench runs and pgshard is killed with
// SIGKILL 1–3 s into the run and restarted on the same port, after which
// no prepared transaction may remain on any shard; a last run without a
// kill must succeed in full. Then, directly on the shards:
//
//   - sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta) of
//     pgbench_history, and for each account, teller and branch its balance
//     is the sum of its deltas in the history (all balances start at 0);
//   - there are 200000 accounts, 20 tellers and 2 branches, each key once,
//     and every row (history rows included) is on the shard its hash rule
//     names, as package routing computes it;
//   - the history holds at least as many rows as pgbench counted committed
//     transactions (an acknowledged COMMIT survives the crash), and the
//     last run added exactly as many as it reports;
//   - pg_prepared_xacts is empty on every shard.
func TestTPCBConsistency(t *testing.T) {
	checkNoGoroutineLeak(t)
	n := *tpcbShards
	if n < 1 {
		t.Fatalf("-tpcb.shards=%d: need at least one shard", n)
	}
	if *tpcbInit != "proxy" && *tpcbInit != "direct" {
		t.Fatalf("-tpcb.init=%q: use proxy or direct", *tpcbInit)
	}
	pgbenchBin := clientBinary(t, "pgbench")
	start := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pgshard")
	built := make(chan error, 1)
	go func() { built <- buildPgshard(t.Context(), bin) }()
	shards := startTPCBShards(t, n)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	rules := tpcbRules(n)
	ps := startPgshardProcess(t, bin, dir, func(port int) string {
		return tpcbConfig(port, shards, rules)
	})
	t.Logf("%d shards and pgshard on port %d ready in %v", n, ps.port, time.Since(start).Round(time.Millisecond))

	if *tpcbInit == "direct" {
		t.Log("-tpcb.init=direct: making the pgbench tables on each shard directly, NOT through pgshard")
		initTPCBOnShards(t, pgbenchBin, shards, rules)
	} else {
		initTPCBThroughPgshard(t, pgbenchBin, ps)
	}

	// Transactions pgbench saw commit; each added one history row.
	var acknowledged int64
	for i := range tpcbKills {
		delay := time.Second + rand.N(2*time.Second)
		run := startTPCBPgbench(t, pgbenchBin, ps.port, "-n", "-c", strconv.Itoa(tpcbClients), "-j", strconv.Itoa(tpcbThreads),
			"-T", strconv.Itoa(int(tpcbRunFor/time.Second)))
		select {
		case <-run.done:
			t.Errorf("run %d: pgbench ended before pgshard was killed (%v); its output follows", i, run.err)
		case <-time.After(delay):
		}
		ps.kill(t)
		if !run.wait(30 * time.Second) {
			t.Fatalf("run %d: pgbench did not end within 30s of pgshard's death\n%s", i, tpcbDiagnosis(shards, ps))
		}
		processed, _ := run.counts()
		acknowledged += processed
		t.Logf("run %d: pgshard killed after %v; pgbench reports %d transactions (%v):\n%s",
			i, delay.Round(time.Millisecond), processed, run.err, run.output())
		if errs := run.errorReplies(); len(errs) > 0 {
			t.Errorf("run %d: pgbench clients aborted on an error reply, not on the lost connection:\n%s", i, strings.Join(errs, "\n"))
		}
		ps.start(t)
		waitNoPrepared(t, shards, fmt.Sprintf("after restart %d", i+1))
	}

	before := historyRows(t, shards)
	clean := startTPCBPgbench(t, pgbenchBin, ps.port, "-n", "-c", strconv.Itoa(tpcbClients), "-j", strconv.Itoa(tpcbThreads),
		"-T", strconv.Itoa(int(tpcbCleanFor/time.Second)))
	if !clean.wait(tpcbCleanFor + 30*time.Second) {
		t.Fatalf("the last pgbench run did not end within %v\n%s", tpcbCleanFor+30*time.Second, tpcbDiagnosis(shards, ps))
	}
	processed, failed := clean.counts()
	acknowledged += processed
	t.Logf("last run, without a kill: %d transactions, %d failed (%v)", processed, failed, clean.err)
	if clean.err != nil || failed != 0 || processed == 0 || len(clean.errorReplies()) > 0 {
		t.Errorf("the last pgbench run, without a kill, must succeed in full: %v, %d transactions, %d failed:\n%s",
			clean.err, processed, failed, clean.output())
	}
	waitNoPrepared(t, shards, "after the last run")
	if gained := historyRows(t, shards) - before; gained != processed {
		t.Errorf("the last run added %d history rows for the %d transactions pgbench reports", gained, processed)
	}

	d := readTPCB(t, shards, rules)
	d.check(t, acknowledged)
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// --- Shards and rules

// startTPCBShards starts n PostgreSQL servers for the test, each with the
// login role app/app owning database app; they stop when the test ends.
func startTPCBShards(t *testing.T, n int) []*pgtest.Server {
	t.Helper()
	shards := make([]*pgtest.Server, n)
	for i := range shards {
		shards[i] = pgtest.StartT(t, pgtest.Options{Name: "tpcb-" + shardName(i)})
		if err := shards[i].CreateUserDB(t.Context(), "app", "app", "app"); err != nil {
			t.Fatal(err)
		}
	}
	return shards
}

// tpcbRule is the routing rule of a pgbench table: hash on an integer key
// over all shards, remainder r on shard order[r].
type tpcbRule struct {
	table, key, balance string // balance is "" for pgbench_history
	order               []int
}

// tpcbRules are the rules of the four pgbench tables over n shards. Each
// table's order is rotated differently (with three shards: accounts on
// s0, s1, s2; tellers on s1, s2, s0; branches on s2, s0, s1), so a
// transaction's account, teller and branch are usually on different
// shards even when their hash remainders agree. The history goes with
// the accounts.
func tpcbRules(n int) []tpcbRule {
	rotated := func(by int) []int {
		order := make([]int, n)
		for i := range order {
			order[i] = (i + by) % n
		}
		return order
	}
	return []tpcbRule{
		{table: "pgbench_accounts", key: "aid", balance: "abalance", order: rotated(0)},
		{table: "pgbench_tellers", key: "tid", balance: "tbalance", order: rotated(1)},
		{table: "pgbench_branches", key: "bid", balance: "bbalance", order: rotated(2)},
		{table: "pgbench_history", key: "aid", order: rotated(0)},
	}
}

// tpcbConfig is pgshard's configuration file: one database app in front
// of shards, spread by rules. With more than one shard it turns on
// two-phase commit, with a fixed instance_id so that a restarted pgshard
// recovers what the killed one left; with one, pgshard is a plain pooler
// and the file has neither rules nor two-phase commit.
func tpcbConfig(port int, shards []*pgtest.Server, rules []tpcbRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: "127.0.0.1:%d"
metrics_listen: ""
pool_mode: transaction
client_login_timeout: 5s
server_connect_timeout: 3s
query_wait_timeout: 20s
`, port)
	if len(shards) > 1 {
		b.WriteString("instance_id: t1\n")
	}
	b.WriteString(`users:
  - {name: app, password: app, auth: scram-sha-256}
databases:
  - name: app
    backend_user: app
    backend_password: app
    pool_size: 10
    shards:
`)
	for i, s := range shards {
		fmt.Fprintf(&b, "      - {name: %s, primary: \"postgres://127.0.0.1:%d/app?sslmode=disable\"}\n", shardName(i), s.Port())
	}
	if len(shards) == 1 {
		return b.String()
	}
	b.WriteString("    two_phase_commit: true\n    default_shard: s0\n    tables:\n")
	for _, r := range rules {
		names := make([]string, len(r.order))
		for i, s := range r.order {
			names[i] = shardName(s)
		}
		fmt.Fprintf(&b, "      - {name: %s, key: %s, method: hash, key_type: integer, shards: [%s]}\n",
			r.table, r.key, strings.Join(names, ", "))
	}
	return b.String()
}

// --- Making the tables

// initTPCBThroughPgshard runs pgbench -i -s tpcbScale through pgshard:
// DROP, CREATE, TRUNCATE, INSERT and COPY of the generated rows, VACUUM
// and ALTER TABLE ... ADD PRIMARY KEY, all of which pgshard must send to
// every shard of the table's rule, or split by shard key.
func initTPCBThroughPgshard(t *testing.T, pgbenchBin string, ps *pgshardProcess) {
	t.Helper()
	start := time.Now()
	run := startTPCBPgbench(t, pgbenchBin, ps.port, "-i", "-s", strconv.Itoa(tpcbScale), "-q")
	if !run.wait(45 * time.Second) {
		t.Fatalf("pgbench -i through pgshard did not end within 45s:\n%s", run.output())
	}
	if run.err != nil {
		t.Fatalf("pgbench -i -s %d through pgshard: %v\n%s\n(it needs DDL sent to every shard and COPY split by shard key; "+
			"-tpcb.init=direct makes the tables on the shards directly, to check the rest of the test)",
			tpcbScale, run.err, run.output())
	}
	t.Logf("pgbench -i -s %d through pgshard: %v", tpcbScale, time.Since(start).Round(time.Millisecond))
}

// initTPCBOnShards is the fallback for a pgshard that cannot run pgbench
// -i: it runs pgbench -i -s tpcbScale on every shard directly, then
// deletes from each table the rows its rule puts on other shards, as
// PostgreSQL's own hash partitioning (satisfies_hash_partition) decides;
// the checks at the end use package routing, so they check each other.
func initTPCBOnShards(t *testing.T, pgbenchBin string, shards []*pgtest.Server, rules []tpcbRule) {
	t.Helper()
	ctx := t.Context()
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, pgbenchBin, "-h", s.Host(), "-p", strconv.Itoa(s.Port()), "-U", "app",
				"-i", "-s", strconv.Itoa(tpcbScale), "-q", "-I", "dtGvp", "app")
			cmd.Env = libpqEnv("app")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("pgbench -i on %s: %w\n%s", shardName(i), err, out)
				return
			}
			sql := "CREATE TABLE pg_temp.tpcb_hash (k integer) PARTITION BY HASH (k);"
			for _, r := range rules {
				sql += fmt.Sprintf("DELETE FROM %s WHERE NOT satisfies_hash_partition('pg_temp.tpcb_hash'::regclass, %d, %d, %s);",
					r.table, len(r.order), slices.Index(r.order, i), r.key)
			}
			if err := s.Exec(ctx, "app", sql); err != nil {
				errs[i] = fmt.Errorf("keep %s's own rows: %w", shardName(i), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// --- pgbench

// tpcbPgbench is a pgbench run as app on database app through pgshard.
type tpcbPgbench struct {
	args           []string
	stdout, stderr bytes.Buffer
	cmd            *exec.Cmd
	done           chan struct{} // closed when pgbench has exited; then err is set
	err            error
}

// startTPCBPgbench starts pgbench with args against pgshard's port. It is
// killed when the test ends if it is still running.
func startTPCBPgbench(t *testing.T, bin string, port int, args ...string) *tpcbPgbench {
	t.Helper()
	p := &tpcbPgbench{args: args, done: make(chan struct{})}
	all := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "app"}, args...)
	p.cmd = exec.Command(bin, append(all, "app")...)
	p.cmd.Env = append(libpqEnv("app"), "LC_ALL=C")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.wait(0) {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to d for pgbench to end and reports whether it has.
func (p *tpcbPgbench) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// output is what pgbench printed: its report and the end of its errors.
// Call it once pgbench has ended.
func (p *tpcbPgbench) output() string {
	return fmt.Sprintf("pgbench %s\n%s%s", strings.Join(p.args, " "), p.stdout.String(), lastLines(p.stderr.String(), 20))
}

// counts returns the transactions pgbench reports committed and failed
// (0 when it printed no report).
func (p *tpcbPgbench) counts() (processed, failed int64) {
	if m := pgbenchProcessed.FindStringSubmatch(p.stdout.String()); m != nil {
		processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := pgbenchFailed.FindStringSubmatch(p.stdout.String()); m != nil {
		failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return processed, failed
}

// errorReplies are up to 5 of pgbench's lines about a client that got an
// ErrorResponse (a killed pgshard sends none: its clients just lose the
// connection).
func (p *tpcbPgbench) errorReplies() []string {
	var errs []string
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if (strings.Contains(line, "ERROR:") || strings.Contains(line, "FATAL:")) && len(errs) < 5 {
			errs = append(errs, line)
		}
	}
	return errs
}

// --- The pgshard process

// pgshardProcess is the pgshard binary run by a test on a fixed port, with
// its log (stdout and stderr of every start) in one file. start, kill and
// logTail are called from the test's goroutine only.
type pgshardProcess struct {
	bin, config, log string
	port             int
	starts           int
	cmd              *exec.Cmd
	done             chan struct{} // closed when cmd has exited; then err is set
	err              error
}

// buildPgshard builds cmd/pgshard into the file bin, with $GO (as the
// Makefile sets it) or else go.
func buildPgshard(ctx context.Context, bin string) error {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "github.com/pgshard/pgshard/cmd/pgshard")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pgshard: %w\n%s", err, out)
	}
	return nil
}

// startPgshardProcess writes the configuration that config returns for a
// free port into dir and starts bin with it, then waits until it accepts
// logins. When the test ends, pgshard gets SIGTERM and must exit cleanly.
func startPgshardProcess(t *testing.T, bin, dir string, config func(port int) string) *pgshardProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &pgshardProcess{bin: bin, config: filepath.Join(dir, "pgshard.yaml"), log: filepath.Join(dir, "pgshard.log"), port: port}
	text := config(port)
	if err := os.WriteFile(p.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("pgshard's configuration:\n%s%s", text, p.logTail(60))
		}
	})
	p.start(t)
	return p
}

// start runs pgshard and waits until a login as app and a query succeed.
func (p *pgshardProcess) start(t *testing.T) {
	t.Helper()
	p.starts++
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "--- start %d\n", p.starts)
	p.cmd = exec.Command(p.bin, "-config", p.config)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = childProcAttr()
	err = p.cmd.Start()
	logf.Close() // pgshard has its own descriptor
	if err != nil {
		t.Fatalf("start pgshard: %v", err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		err := pingPgshard(ctx, p.port)
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("pgshard (start %d) exited during startup: %v (its log is below)", p.starts, p.err)
		case <-ctx.Done():
			t.Fatalf("pgshard (start %d) accepted no login within 15s: %v (its log is below)", p.starts, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pingPgshard logs in to database app as app through pgshard and runs a
// query in the simple protocol.
func pingPgshard(ctx context.Context, port int) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://app:app@127.0.0.1:%d/app?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// kill sends SIGKILL to pgshard and waits for it to die.
func (p *pgshardProcess) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("pgshard exited before it was killed: %v (its log is below)", p.err)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill pgshard: %v", err)
	}
	<-p.done
}

// stop sends SIGTERM to a running pgshard and waits for it to exit,
// killing it after 10s. An exit other than a clean one is an error.
func (p *pgshardProcess) stop() error {
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil // killed, or failed to start: reported already
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("pgshard exited with %v after SIGTERM", p.err)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("pgshard did not exit within 10s of SIGTERM; killed it")
	}
}

// logTail is the end of pgshard's log, to follow an error. When the test
// fails, the cleanup logs the last 60 lines with the configuration.
func (p *pgshardProcess) logTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("\n--- end of pgshard's log ---\n%s", lastLines(string(b), n))
}

// tpcbDiagnosis says why a run might hang: what the shards' backends are
// doing, their prepared transactions, and pgshard's goroutines (SIGQUIT
// makes it print them to its log, and exit).
func tpcbDiagnosis(shards []*pgtest.Server, ps *pgshardProcess) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	for i, s := range shards {
		activity, err := s.QueryString(ctx, "postgres",
			"SELECT coalesce(string_agg(format('pid %s %s wait=%s/%s xact_age=%s: %s', pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 80)), E'\\n'), '') "+
				"FROM pg_stat_activity WHERE usename = 'app' AND state <> 'idle'")
		fmt.Fprintf(&b, "%s, busy backends of app (%v):\n%s\n", shardName(i), err, activity)
		prepared, err := preparedXacts(ctx, s)
		fmt.Fprintf(&b, "%s, prepared transactions (%v): %s\n", shardName(i), err, prepared)
	}
	select {
	case <-ps.done:
		return b.String() + ps.logTail(60)
	default:
	}
	_ = ps.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-ps.done:
	case <-time.After(5 * time.Second):
	}
	log, err := os.ReadFile(ps.log)
	if err != nil {
		return b.String() + err.Error()
	}
	text := string(log)
	text = text[strings.LastIndex(text, "--- start"):]
	dump := strings.Index(text, "\ngoroutine ")
	if dump < 0 {
		return b.String() + ps.logTail(60)
	}
	var ours []string
	for _, g := range strings.Split(text[dump:], "\n\n") {
		if strings.Contains(g, "github.com/pgshard/pgshard/") {
			ours = append(ours, strings.TrimSpace(g))
		}
	}
	return fmt.Sprintf("%s--- end of pgshard's log ---\n%s\n--- pgshard's goroutines ---\n%s",
		b.String(), lastLines(text[:dump], 30), strings.Join(ours, "\n\n"))
}

// --- Checks on the shards

// preparedXacts lists the prepared transactions of s, "" for none.
func preparedXacts(ctx context.Context, s *pgtest.Server) (string, error) {
	return s.QueryString(ctx, "postgres",
		"SELECT coalesce(string_agg(format('%s (database %s, prepared %s)', gid, database, prepared), ', ' ORDER BY prepared), '') FROM pg_prepared_xacts")
}

// waitNoPrepared waits up to tpcbRecovery for every shard to have no
// prepared transaction left, and fails the test if one stays.
func waitNoPrepared(t *testing.T, shards []*pgtest.Server, when string) {
	t.Helper()
	deadline := time.Now().Add(tpcbRecovery)
	for {
		var left []string
		for i, s := range shards {
			list, err := preparedXacts(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if list != "" {
				left = append(left, shardName(i)+": "+list)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: prepared transactions still on the shards %v later:\n%s",
				when, tpcbRecovery, strings.Join(left, "\n"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// historyRows counts the pgbench_history rows of all shards.
func historyRows(t *testing.T, shards []*pgtest.Server) int64 {
	t.Helper()
	var total int64
	for _, s := range shards {
		n, err := s.QueryInt(t.Context(), "app", "SELECT count(*) FROM pgbench_history")
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// historyRow is a row of pgbench_history: one committed transaction.
type historyRow struct {
	aid, tid, bid, delta int32
	shard                int
}

// tpcbData is what the shards hold, read directly on each of them.
type tpcbData struct {
	rules []tpcbRule
	// balances[r][key] is the balance of key in rules[r].table (r < 3).
	balances [3]map[int32]int64
	history  []historyRow
	// rows[r][s] is how many rows of rules[r].table shard s holds.
	rows [4][]int
	// misplaced and duplicates describe rows that break the rules, up to
	// a few per table.
	misplaced, duplicates []string
}

// readTPCB reads every row of the four pgbench tables on every shard.
func readTPCB(t *testing.T, shards []*pgtest.Server, rules []tpcbRule) *tpcbData {
	t.Helper()
	d := &tpcbData{rules: rules}
	for r := range d.balances {
		d.balances[r] = map[int32]int64{}
	}
	for r := range d.rows {
		d.rows[r] = make([]int, len(shards))
	}
	for i, s := range shards {
		conn := superConn(t, s, "app")
		for r, rule := range rules {
			h, err := routing.NewHash(routing.KeyInt, len(rule.order))
			if err != nil {
				t.Fatal(err)
			}
			query := fmt.Sprintf("SELECT %s, %s FROM %s", rule.key, rule.balance, rule.table)
			if rule.balance == "" {
				query = "SELECT aid, tid, bid, delta FROM pgbench_history"
			}
			rows, err := conn.Query(t.Context(), query)
			if err != nil {
				t.Fatalf("%s: %s: %v", shardName(i), query, err)
			}
			var key, b, c, delta int32
			for rows.Next() {
				if rule.balance == "" {
					err = rows.Scan(&key, &b, &c, &delta)
				} else {
					err = rows.Scan(&key, &delta)
				}
				if err != nil {
					t.Fatalf("%s: %s: %v", shardName(i), query, err)
				}
				d.rows[r][i]++
				rem, err := h.Shard(strconv.Itoa(int(key)))
				if err != nil {
					t.Fatal(err)
				}
				if want := rule.order[rem]; want != i && len(d.misplaced) < 10 {
					d.misplaced = append(d.misplaced, fmt.Sprintf("%s %s=%d is on %s; its rule puts it on %s",
						rule.table, rule.key, key, shardName(i), shardName(want)))
				}
				if rule.balance == "" {
					d.history = append(d.history, historyRow{aid: key, tid: b, bid: c, delta: delta, shard: i})
					continue
				}
				if _, dup := d.balances[r][key]; dup && len(d.duplicates) < 10 {
					d.duplicates = append(d.duplicates, fmt.Sprintf("%s %s=%d is twice on the shards (again on %s)",
						rule.table, rule.key, key, shardName(i)))
				}
				d.balances[r][key] = int64(delta)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s: %s: %v", shardName(i), query, err)
			}
		}
	}
	return d
}

// check reports every way d breaks TPC-B's invariants or the rules;
// acknowledged is how many transactions pgbench saw commit.
func (d *tpcbData) check(t *testing.T, acknowledged int64) {
	t.Helper()
	for r, rule := range d.rules {
		t.Logf("%s rows per shard: %v", rule.table, d.rows[r])
	}
	if len(d.misplaced) > 0 {
		t.Errorf("rows on the wrong shard:\n%s", strings.Join(d.misplaced, "\n"))
	}
	if len(d.duplicates) > 0 {
		t.Errorf("duplicate keys:\n%s", strings.Join(d.duplicates, "\n"))
	}
	// pgbench -i makes keys 1..N in each table, every balance 0.
	for r, want := range []int{100000 * tpcbScale, 10 * tpcbScale, tpcbScale} {
		rule := d.rules[r]
		var missing []int32
		for k := int32(1); k <= int32(want); k++ {
			if _, ok := d.balances[r][k]; !ok && len(missing) < 5 {
				missing = append(missing, k)
			}
		}
		if len(d.balances[r]) != want || len(missing) > 0 {
			t.Errorf("%s: %d distinct %s on the shards, want %d (1..%d); missing, for example: %v",
				rule.table, len(d.balances[r]), rule.key, want, want, missing)
		}
	}

	// Each transaction adds its delta to one account, teller and branch
	// and records it in the history: the sums agree, and so does each
	// key's balance with its history.
	var sums [3]int64
	for r := range sums {
		for _, v := range d.balances[r] {
			sums[r] += v
		}
	}
	var deltas int64
	fromHistory := [3]map[int32]int64{{}, {}, {}}
	crossShard := 0
	for _, h := range d.history {
		deltas += int64(h.delta)
		fromHistory[0][h.aid] += int64(h.delta)
		fromHistory[1][h.tid] += int64(h.delta)
		fromHistory[2][h.bid] += int64(h.delta)
		if d.shardOf(1, h.tid) != h.shard || d.shardOf(2, h.bid) != h.shard {
			crossShard++
		}
	}
	t.Logf("sum(abalance) = %d, sum(tbalance) = %d, sum(bbalance) = %d, sum(history.delta) = %d over %d history rows, %d of them of transactions spanning shards",
		sums[0], sums[1], sums[2], deltas, len(d.history), crossShard)
	if len(d.rows[0]) > 1 && len(d.history) > 0 && crossShard == 0 {
		t.Errorf("no committed transaction spans shards: the test did not exercise two-phase commit")
	}
	if sums[0] != deltas || sums[1] != deltas || sums[2] != deltas {
		t.Errorf("balances do not add up: sum(abalance) = %d, sum(tbalance) = %d, sum(bbalance) = %d, sum(history.delta) = %d",
			sums[0], sums[1], sums[2], deltas)
	}
	for r, rule := range d.rules[:3] {
		var wrong []string
		for k, v := range d.balances[r] {
			if want := fromHistory[r][k]; v != want && len(wrong) < 5 {
				wrong = append(wrong, fmt.Sprintf("%s=%d: %s %d, its history deltas sum to %d", rule.key, k, rule.balance, v, want))
			}
		}
		if len(wrong) > 0 {
			slices.Sort(wrong)
			t.Errorf("%s whose balance disagrees with the history, for example:\n%s", rule.table, strings.Join(wrong, "\n"))
		}
	}
	if int64(len(d.history)) < acknowledged {
		t.Errorf("the history holds %d rows, but pgbench saw %d transactions commit: committed transactions were lost",
			len(d.history), acknowledged)
	}
}

// shardOf is the shard holding key in d.rules[r], by package routing.
func (d *tpcbData) shardOf(r int, key int32) int {
	order := d.rules[r].order
	h, _ := routing.NewHash(routing.KeyInt, len(order))
	rem, _ := h.Shard(strconv.Itoa(int(key)))
	return order[rem]
}
