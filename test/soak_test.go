package test

// The soak: hundreds of pgx clients run a mix of traffic through the
// pgshard binary in front of three shards for a while, and the shards'
// primaries are restarted under them, one at a time, by fast shutdown or
// by SIGKILL. The traffic (soak_clients_test.go) moves money between
// accounts, inside one shard and across shards (two-phase commit), and
// writes a ledger row for every transfer; it reads single rows and whole
// tables (count, ORDER BY ... LIMIT, GROUP BY), cancels queries, copies
// batches of rows in, reconnects, and vanishes in the middle of
// transactions. Afterwards, with every client gone:
//
//   - pgshard's goroutines and open descriptors are back within
//     soakSlack of what it had before the first client, and its
//     resident memory has not grown since the warm-up (see checkResources);
//   - every account is on the shard package routing names for it, once,
//     and the balances add up to what they started with; each account's
//     balance is its start plus what the ledger says it received, minus
//     what it sent;
//   - every transfer and COPY batch the driver saw commit is in the
//     ledger, none that failed before its COMMIT is, and none the driver
//     never asked for; a batch is there whole or not at all;
//   - no prepared transaction is left on any shard, and no backend is
//     idle in a transaction.
//
// make test runs it for 60s with 60 clients; make soak runs it longer:
//
//	go test -count=1 -timeout 0 -run '^TestSoak$' -v ./test/ -args -soak.duration=10m -soak.clients=200

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/routing"
	"github.com/pgshard/pgshard/test/pgtest"
)

var (
	soakDuration = flag.Duration("soak.duration", 60*time.Second, "TestSoak: how long the clients run")
	soakClients  = flag.Int("soak.clients", 60, "TestSoak: number of concurrent clients")
	soakFaults   = flag.Duration("soak.fault-every", 0, "TestSoak: time between shard restarts; 0 means a sixth of the duration, at least 8s")
	soakThink    = flag.Duration("soak.think", 20*time.Millisecond, "TestSoak: mean pause of a client between two operations")
)

const (
	// soakShards is the number of shards; soakAccounts the accounts over
	// them (a multiple of 10, for the GROUP BY check), each starting with
	// soakBalance.
	soakShards   = 3
	soakAccounts = 3000
	soakBalance  = 1000
	// soakSlack is how many goroutines, and how many open descriptors,
	// pgshard may have above its count before the first client, once
	// every client is gone and its pools have closed their idle
	// backends: the health checks' connections and timers come and go.
	soakSlack = 10
	// soakRSSSlack is how much pgshard's resident memory may exceed its
	// peak during the warm-up (the first quarter of the run, once every
	// client is connected), on top of what the parse cache gained since
	// (it holds up to 32 MiB of statement analyses and fills with the
	// simple-protocol clients' literal texts). Go returns freed memory to
	// the system slowly, so idle RSS does not fall back to its value
	// before the load; a leak shows instead as growth after the working
	// set was reached.
	soakRSSSlack = 48 << 20
	// soakIdleWait bounds the wait, after the last client, for pgshard to
	// close its idle backends (server_idle_timeout is 3s) and drop its
	// goroutines and descriptors; soakRecovery the wait for two-phase
	// recovery to finish what the faults left prepared (it runs every
	// 10s).
	soakIdleWait = 30 * time.Second
	soakRecovery = 40 * time.Second
)

// soakRules are the tables' routing rules: all three hashed on a bigint
// over every shard, so a transfer's ledger row is on its source account's
// shard and an event on its account's.
var soakRules = []struct{ table, key string }{
	{"accounts", "id"},
	{"transfers", "src"},
	{"events", "account"},
}

// soakSchema is made on every shard directly, as app.
const soakSchema = `
CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, grp int NOT NULL, note text NOT NULL DEFAULT '');
CREATE TABLE transfers (id bigint PRIMARY KEY, src bigint NOT NULL, dst bigint NOT NULL, amount bigint NOT NULL);
CREATE TABLE events (id bigint PRIMARY KEY, account bigint NOT NULL, batch bigint NOT NULL);`

func TestSoak(t *testing.T) {
	checkNoGoroutineLeak(t)
	if *soakClients < 1 || *soakDuration < 10*time.Second {
		t.Fatalf("-soak.clients=%d -soak.duration=%v: need a client and at least 10s", *soakClients, *soakDuration)
	}
	faultEvery := *soakFaults
	if faultEvery == 0 {
		faultEvery = max(*soakDuration/6, 8*time.Second)
	}
	setup := time.Now()
	dir := t.TempDir()
	bin := dir + "/pgshard"
	built := make(chan error, 1)
	go func() { built <- buildPgshard(t.Context(), bin) }()
	// Acknowledged commits must survive a SIGKILL of the shard: the
	// harness's default, synchronous_commit off, may lose the last ones.
	shards, err := pgtest.StartN(t.Context(), soakShards, pgtest.Options{Name: "soak",
		Conf: map[string]string{"synchronous_commit": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range shards {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		}
	})
	hash, err := routing.NewHash(routing.KeyInt, soakShards)
	if err != nil {
		t.Fatal(err)
	}
	shardOf := func(key int64) int {
		i, err := hash.Shard(strconv.FormatInt(key, 10))
		if err != nil {
			t.Fatalf("routing.Hash.Shard(%d): %v", key, err)
		}
		return i
	}
	loadSoakShards(t, shards, shardOf)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	metricsPort := soakFreePort(t)
	ps := startPgshardProcess(t, bin, dir, func(port int) string { return soakConfig(port, metricsPort, shards) })
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	// pgshard is up; the login it was pinged with leaves one backend to
	// close at the idle timeout. Its resting state is the baseline.
	before, err := waitSoakIdle(metricsURL, soakIdleWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d shards, accounts loaded, pgshard on port %d ready in %v; at rest: %s",
		soakShards, ps.port, time.Since(setup).Round(time.Millisecond), before)

	d := newSoakDriver(soakDriverConfig{
		url:      fmt.Sprintf("postgres://app:app@127.0.0.1:%d/app?sslmode=disable&connect_timeout=5", ps.port),
		clients:  *soakClients,
		think:    *soakThink,
		accounts: soakAccounts,
		shardOf:  func(id int64) int { return shardOf(id) },
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var faults []soakFault
	wg.Go(func() { faults = injectSoakFaults(stop, shards, faultEvery) })
	sampler := startSoakSampler(metricsURL, time.Second)
	start := time.Now()
	d.start()
	time.Sleep(*soakDuration)
	close(stop)
	d.stop() // every client has finished and closed its connection
	wg.Wait()
	ran := time.Since(start)
	samples := sampler.stop()

	after, idleErr := waitSoakIdle(metricsURL, soakIdleWait)
	report := &soakReport{duration: ran, clients: *soakClients, driver: d, faults: faults, before: before, after: after}
	report.check("pgshard idle after the run", idleErr)
	report.check("goroutines, descriptors and memory", checkResources(before, after, samples, *soakDuration/4))
	report.check("no prepared transaction left", waitSoakNoPrepared(shards, soakRecovery))
	report.check("no backend idle in a transaction", checkSoakNoIdleInTx(shards))
	data, err := readSoakData(shards, shardOf)
	if err != nil {
		t.Fatal(err)
	}
	report.check("rows on their shards", data.placement())
	report.check("balances add up", data.balances())
	report.check("ledger: committed transfers kept, failed ones absent", data.ledger(d))
	report.check("COPY batches whole, committed ones kept", data.copies(d))
	report.check("traffic without unexpected errors or wrong answers", d.unexpected())
	report.check("a new client works", soakProbe(ps.port))
	t.Log("\n" + report.String())
	for _, c := range report.checks {
		if c.err != nil {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	if t.Failed() {
		t.Logf("diagnosis:\n%s", tpcbDiagnosis(shards, ps))
	}
}

// soakConfig is pgshard's configuration for the soak. Health checks every
// second bring a restarted shard back quickly; backends idle for 3s are
// closed, so that after the run the pools empty and pgshard's
// descriptors can be compared with those it had before.
func soakConfig(port, metricsPort int, shards []*pgtest.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: "127.0.0.1:%d"
metrics_listen: "127.0.0.1:%d"
pool_mode: transaction
max_client_conn: 2000
client_login_timeout: 5s
server_connect_timeout: 2s
server_idle_timeout: 3s
query_wait_timeout: 15s
health_check_interval: 1s
health_check_timeout: 1s
instance_id: soak
users:
  - {name: app, password: app, auth: scram-sha-256}
databases:
  - name: app
    backend_user: app
    backend_password: app
    pool_size: 16
    two_phase_commit: true
    default_shard: s0
    shards:
`, port, metricsPort)
	for i, s := range shards {
		fmt.Fprintf(&b, "      - {name: %s, primary: \"postgres://127.0.0.1:%d/app?sslmode=disable\"}\n", shardName(i), s.Port())
	}
	b.WriteString("    tables:\n")
	for _, r := range soakRules {
		fmt.Fprintf(&b, "      - {name: %s, key: %s, method: hash, key_type: bigint}\n", r.table, r.key)
	}
	return b.String()
}

// loadSoakShards makes the tables on every shard and puts each account on
// the shard package routing names for it.
func loadSoakShards(t *testing.T, shards []*pgtest.Server, shardOf func(int64) int) {
	t.Helper()
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() {
			ctx := t.Context()
			if err := s.CreateUserDB(ctx, "app", "app", "app"); err != nil {
				errs[i] = err
				return
			}
			conn, err := pgx.Connect(ctx, s.URL("app", "app", "app"))
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, soakSchema); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.Name(), err)
				return
			}
			var rows [][]any
			for id := int64(1); id <= soakAccounts; id++ {
				if shardOf(id) == i {
					rows = append(rows, []any{id, int64(soakBalance), int32(id % 10)})
				}
			}
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"accounts"}, []string{"id", "balance", "grp"}, pgx.CopyFromRows(rows)); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.Name(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func soakFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// --- Faults

// soakFault is one restart of a shard's primary.
type soakFault struct {
	shard int
	kind  string // "fast" (fast shutdown) or "kill" (SIGKILL, crash recovery)
	at    time.Duration
	down  time.Duration // from the stop to accepting connections again
	err   error
}

// injectSoakFaults restarts one shard every interval, in turn, until stop
// is closed, alternating a fast shutdown with a SIGKILL (which is followed
// by a second of downtime). It returns once the shard it is restarting,
// if any, runs again.
func injectSoakFaults(stop <-chan struct{}, shards []*pgtest.Server, every time.Duration) []soakFault {
	var faults []soakFault
	begin := time.Now()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return faults
		case <-time.After(every):
		}
		f := soakFault{shard: i % len(shards), kind: "fast", at: time.Since(begin)}
		s := shards[f.shard]
		t0 := time.Now()
		if i%2 == 1 {
			f.kind = "kill"
			f.err = s.Kill()
			time.Sleep(time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		f.err = errors.Join(f.err, s.Restart(ctx))
		cancel()
		f.down = time.Since(t0)
		faults = append(faults, f)
	}
}

// --- pgshard's resources

// soakResources is a sample of pgshard's /metrics.
type soakResources struct {
	at                 time.Time
	goroutines, fds    int
	rss, cacheBytes    int64
	clients, backends  int
	queries, xactTotal int64
}

func (r soakResources) String() string {
	return fmt.Sprintf("%d goroutines, %d open descriptors, RSS %.1f MiB, %d clients, %d backends",
		r.goroutines, r.fds, float64(r.rss)/(1<<20), r.clients, r.backends)
}

// sampleSoak reads pgshard's /metrics.
func sampleSoak(url string) (soakResources, error) {
	r := soakResources{at: time.Now()}
	resp, err := metricsClient.Get(url)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	var seen int
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return r, fmt.Errorf("/metrics line %q: %w", line, err)
		}
		name, _, _ := strings.Cut(line[:i], "{")
		switch name {
		case "go_goroutines":
			r.goroutines, seen = int(v), seen+1
		case "process_open_fds":
			r.fds, seen = int(v), seen+1
		case "process_resident_memory_bytes":
			r.rss, seen = int64(v), seen+1
		case "pgshard_parse_cache_bytes":
			r.cacheBytes = int64(v)
		case "pgshard_client_connections":
			r.clients += int(v)
		case "pgshard_server_connections":
			r.backends += int(v)
		case "pgshard_queries_total":
			r.queries += int64(v)
		case "pgshard_transactions_total":
			r.xactTotal += int64(v)
		}
	}
	if seen != 3 {
		return r, fmt.Errorf("%s lacks go_goroutines, process_open_fds or process_resident_memory_bytes", url)
	}
	return r, nil
}

// waitSoakIdle waits up to d for pgshard to have no client and no backend
// and its goroutines to stop falling, and returns its resources then.
func waitSoakIdle(url string, d time.Duration) (soakResources, error) {
	deadline := time.Now().Add(d)
	var last soakResources
	steady := 0
	for {
		r, err := sampleSoak(url)
		if err == nil && r.clients == 0 && r.backends == 0 {
			if r.goroutines == last.goroutines && r.fds == last.fds {
				steady++
			} else {
				steady = 0
			}
			if steady >= 2 {
				return r, nil
			}
		}
		last = r
		if time.Now().After(deadline) {
			if err != nil {
				return last, err
			}
			return last, fmt.Errorf("pgshard not idle %v after the clients left: %s", d, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// soakSampler samples /metrics in the background during the run.
type soakSampler struct {
	done    chan struct{}
	wg      sync.WaitGroup
	samples []soakResources
	errs    int
}

func startSoakSampler(url string, every time.Duration) *soakSampler {
	s := &soakSampler{done: make(chan struct{})}
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			if r, err := sampleSoak(url); err == nil {
				s.samples = append(s.samples, r)
			} else {
				s.errs++
			}
		}
	})
	return s
}

func (s *soakSampler) stop() []soakResources {
	close(s.done)
	s.wg.Wait()
	return s.samples
}

// checkResources compares pgshard at rest after the run with before it:
// goroutines and descriptors within soakSlack; resident memory no more
// than soakRSSSlack (plus the parse cache's growth) above its peak during
// the warm-up, the samples of the first warmup of the run.
func checkResources(before, after soakResources, samples []soakResources, warmup time.Duration) error {
	var errs []error
	if after.goroutines > before.goroutines+soakSlack {
		errs = append(errs, fmt.Errorf("%d goroutines at rest after the run, %d before: more than %d leaked", after.goroutines, before.goroutines, soakSlack))
	}
	if after.fds > before.fds+soakSlack {
		errs = append(errs, fmt.Errorf("%d open descriptors at rest after the run, %d before: more than %d leaked", after.fds, before.fds, soakSlack))
	}
	if len(samples) == 0 {
		return errors.Join(append(errs, errors.New("no /metrics sample during the run"))...)
	}
	var warm soakResources
	for _, s := range samples {
		if s.at.Sub(samples[0].at) > warmup {
			break
		}
		if s.rss > warm.rss {
			warm = s
		}
	}
	limit := warm.rss + soakRSSSlack + max(after.cacheBytes-warm.cacheBytes, 0)
	if after.rss > limit {
		errs = append(errs, fmt.Errorf("RSS %.1f MiB at rest after the run, above the warm-up's peak %.1f MiB + %d MiB + the parse cache's growth %.1f MiB",
			float64(after.rss)/(1<<20), float64(warm.rss)/(1<<20), soakRSSSlack>>20, float64(after.cacheBytes-warm.cacheBytes)/(1<<20)))
	}
	return errors.Join(errs...)
}

// --- Checks on the shards

// waitSoakNoPrepared waits up to d for every shard to be without a
// prepared transaction.
func waitSoakNoPrepared(shards []*pgtest.Server, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var left []string
		for i, s := range shards {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			list, err := preparedXacts(ctx, s)
			cancel()
			if err != nil {
				return err
			}
			if list != "" {
				left = append(left, shardName(i)+": "+list)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still prepared %v after the run:\n%s", d, strings.Join(left, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkSoakNoIdleInTx fails if a backend of app on a shard is idle in a
// transaction (pgshard is idle: it has no client, and no backend lent).
func checkSoakNoIdleInTx(shards []*pgtest.Server) error {
	var errs []error
	for i, s := range shards {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		list, err := s.QueryString(ctx, "postgres",
			"SELECT coalesce(string_agg(format('pid %s %s: %s', pid, state, left(query, 60)), '; '), '') FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'")
		cancel()
		if err == nil && list != "" {
			err = fmt.Errorf("%s: %s", shardName(i), list)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// soakData is what the shards hold after the run, read on each directly.
type soakData struct {
	shardOf   func(int64) int
	balance   map[int64]int64
	transfers map[int64][3]int64 // id → src, dst, amount
	batches   map[int64]int      // COPY batch → rows
	misplaced []string
	dups      []string
}

func readSoakData(shards []*pgtest.Server, shardOf func(int64) int) (*soakData, error) {
	d := &soakData{shardOf: shardOf, balance: map[int64]int64{}, transfers: map[int64][3]int64{}, batches: map[int64]int{}}
	note := func(table string, key int64, shard int) {
		if want := shardOf(key); want != shard && len(d.misplaced) < 10 {
			d.misplaced = append(d.misplaced, fmt.Sprintf("%s key %d is on %s; routing puts it on %s", table, key, shardName(shard), shardName(want)))
		}
	}
	dup := func(what string) {
		if len(d.dups) < 10 {
			d.dups = append(d.dups, what)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, s := range shards {
		conn, err := pgx.Connect(ctx, s.SuperURL("app"))
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer conn.Close(context.Background())
			var a, b, c, e int64
			if err := soakForEach(ctx, conn, "SELECT id, balance FROM accounts", []any{&a, &b}, func() error {
				note("accounts", a, i)
				if _, ok := d.balance[a]; ok {
					dup(fmt.Sprintf("account %d twice", a))
				}
				d.balance[a] = b
				return nil
			}); err != nil {
				return err
			}
			if err := soakForEach(ctx, conn, "SELECT id, src, dst, amount FROM transfers", []any{&a, &b, &c, &e}, func() error {
				note("transfers", b, i)
				if _, ok := d.transfers[a]; ok {
					dup(fmt.Sprintf("transfer %d twice", a))
				}
				d.transfers[a] = [3]int64{b, c, e}
				return nil
			}); err != nil {
				return err
			}
			return soakForEach(ctx, conn, "SELECT account, batch FROM events", []any{&a, &b}, func() error {
				note("events", a, i)
				d.batches[b]++
				return nil
			})
		}()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", shardName(i), err)
		}
	}
	return d, nil
}

// soakForEach runs query and calls f after scanning each row into scans.
func soakForEach(ctx context.Context, conn *pgx.Conn, query string, scans []any, f func() error) error {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	if _, err := pgx.ForEachRow(rows, scans, f); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}

func (d *soakData) placement() error {
	var errs []error
	if len(d.misplaced) > 0 {
		errs = append(errs, fmt.Errorf("rows on the wrong shard:\n%s", strings.Join(d.misplaced, "\n")))
	}
	if len(d.dups) > 0 {
		errs = append(errs, fmt.Errorf("duplicate keys across shards:\n%s", strings.Join(d.dups, "\n")))
	}
	if len(d.balance) != soakAccounts {
		errs = append(errs, fmt.Errorf("%d accounts on the shards, want %d", len(d.balance), soakAccounts))
	}
	return errors.Join(errs...)
}

// balances checks the sum of the balances, and each account's balance
// against the ledger.
func (d *soakData) balances() error {
	var sum int64
	want := map[int64]int64{}
	for id := int64(1); id <= soakAccounts; id++ {
		want[id] = soakBalance
	}
	for _, tr := range d.transfers {
		want[tr[0]] -= tr[2]
		want[tr[1]] += tr[2]
	}
	var wrong []string
	for id, b := range d.balance {
		sum += b
		if b != want[id] && len(wrong) < 5 {
			wrong = append(wrong, fmt.Sprintf("account %d (%s): balance %d, its start and the ledger say %d", id, shardName(d.shardOf(id)), b, want[id]))
		}
	}
	var errs []error
	if sum != soakAccounts*soakBalance {
		errs = append(errs, fmt.Errorf("the balances add up to %d, want %d", sum, soakAccounts*soakBalance))
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		errs = append(errs, fmt.Errorf("balances that disagree with the ledger, for example:\n%s", strings.Join(wrong, "\n")))
	}
	return errors.Join(errs...)
}

// transfers compares the ledger with what the clients were told.
func (d *soakData) ledger(drv *soakDriver) error {
	return compareOutcomes("transfer", drv.transferOutcomes(), func(id int64) (bool, string) {
		_, ok := d.transfers[id]
		return ok, ""
	}, slices.Collect(maps.Keys(d.transfers)))
}

// batches checks that each COPY batch is whole or absent, and compares
// them with what the clients were told.
func (d *soakData) copies(drv *soakDriver) error {
	var partial []string
	for b, n := range d.batches {
		if n != soakCopyRows && len(partial) < 5 {
			partial = append(partial, fmt.Sprintf("batch %d has %d of its %d rows", b, n, soakCopyRows))
		}
	}
	err := compareOutcomes("COPY batch", drv.batchOutcomes(), func(id int64) (bool, string) {
		n, ok := d.batches[id]
		return ok, strconv.Itoa(n) + " rows"
	}, slices.Collect(maps.Keys(d.batches)))
	if len(partial) > 0 {
		err = errors.Join(err, fmt.Errorf("COPY batches only partly there:\n%s", strings.Join(partial, "\n")))
	}
	return err
}

// compareOutcomes checks what the shards hold against what clients saw:
// what committed is there, what failed before its COMMIT is not, and
// nothing is there that no client wrote. Writes whose COMMIT failed on a
// lost connection (or with 08007) may be either way.
func compareOutcomes(what string, outcomes map[int64]soakOutcome, present func(int64) (bool, string), stored []int64) error {
	var lost, phantom, unknown []string
	for id, o := range outcomes {
		ok, _ := present(id)
		switch {
		case o == outcomeCommitted && !ok && len(lost) < 5:
			lost = append(lost, strconv.FormatInt(id, 10))
		case o == outcomeFailed && ok && len(phantom) < 5:
			phantom = append(phantom, strconv.FormatInt(id, 10))
		}
	}
	for _, id := range stored {
		if _, ok := outcomes[id]; !ok && len(unknown) < 5 {
			unknown = append(unknown, strconv.FormatInt(id, 10))
		}
	}
	var errs []error
	if len(lost) > 0 {
		errs = append(errs, fmt.Errorf("%ss acknowledged as committed but missing, for example %s", what, strings.Join(lost, ", ")))
	}
	if len(phantom) > 0 {
		errs = append(errs, fmt.Errorf("%ss that failed before their COMMIT but are stored, for example %s", what, strings.Join(phantom, ", ")))
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("%ss stored that no client wrote, for example %s", what, strings.Join(unknown, ", ")))
	}
	return errors.Join(errs...)
}

// soakProbe connects anew after the run and checks a read of one shard
// and one of every shard.
func soakProbe(port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app:app@127.0.0.1:%d/app?sslmode=disable", port))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var n, id int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != soakAccounts {
		return fmt.Errorf("SELECT count(*) FROM accounts: %d, %v; want %d", n, err, soakAccounts)
	}
	if err := conn.QueryRow(ctx, "SELECT id FROM accounts WHERE id = $1", 7).Scan(&id); err != nil || id != 7 {
		return fmt.Errorf("SELECT id FROM accounts WHERE id = 7: %d, %v", id, err)
	}
	return nil
}

// --- The report

type soakCheck struct {
	name string
	err  error
}

type soakReport struct {
	duration      time.Duration
	clients       int
	driver        *soakDriver
	faults        []soakFault
	before, after soakResources
	checks        []soakCheck
}

func (r *soakReport) check(name string, err error) {
	r.checks = append(r.checks, soakCheck{name, err})
}

func (r *soakReport) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "soak of %s\t%v, %d clients, %d shards\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.duration.Round(time.Second), r.clients, soakShards)
	fmt.Fprintf(w, "\t\n")
	fmt.Fprintf(w, "operation\tok\tfailed\n")
	ops := r.driver.opCounts()
	var okTotal, failTotal int64
	for _, k := range soakOpNames {
		c := ops[k]
		okTotal += c[0]
		failTotal += c[1]
		fmt.Fprintf(w, "%s\t%d\t%d\n", k, c[0], c[1])
	}
	fmt.Fprintf(w, "total\t%d\t%d\n", okTotal, failTotal)
	tr := r.driver.transferOutcomes()
	fmt.Fprintf(w, "transfers committed / failed / outcome unknown\t%d / %d / %d\n",
		countOutcome(tr, outcomeCommitted), countOutcome(tr, outcomeFailed), countOutcome(tr, outcomeUnknown))
	fmt.Fprintf(w, "cancels lost (the statement ran to its end)\t%d\n", r.driver.cancelsLost())
	fmt.Fprintf(w, "\t\n")
	kinds := map[string]int{}
	var down time.Duration
	for _, f := range r.faults {
		kinds[f.kind]++
		down += f.down
		if f.err != nil {
			fmt.Fprintf(w, "fault at %v on %s failed\t%v\n", f.at.Round(time.Second), shardName(f.shard), f.err)
		}
	}
	fmt.Fprintf(w, "shard restarts\t%d (%d fast shutdown, %d SIGKILL), %v of downtime in all\n", len(r.faults), kinds["fast"], kinds["kill"], down.Round(100*time.Millisecond))
	fmt.Fprintf(w, "\t\n")
	fmt.Fprintf(w, "errors by SQLSTATE\tcount\twhere\n")
	errs := r.driver.errorCounts()
	for _, code := range slices.SortedFunc(maps.Keys(errs), func(a, b string) int { return cmp.Compare(a, b) }) {
		e := errs[code]
		fmt.Fprintf(w, "%s\t%d\t%s\n", code, e.n, e.example)
	}
	fmt.Fprintf(w, "\t\n")
	fmt.Fprintf(w, "pgshard before\t%s\n", r.before)
	fmt.Fprintf(w, "pgshard after\t%s\n", r.after)
	fmt.Fprintf(w, "\t\n")
	for _, c := range r.checks {
		status := "ok"
		if c.err != nil {
			status = "FAILED"
		}
		fmt.Fprintf(w, "check: %s\t%s\n", c.name, status)
	}
	w.Flush()
	return b.String()
}
