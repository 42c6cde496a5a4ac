// Command bench measures pgshard against PgBouncer and against PostgreSQL
// itself with pgbench, and prints one table of the results; `make bench`
// runs it from the repository root.
//
// It starts a PostgreSQL server with the test harness (package pgtest),
// creates the role app (password app) owning database app and fills it
// with `pgbench -i -s 10`. In front of it, it starts PgBouncer and a pgshard
// binary built from this repository, both in transaction pooling mode with
// 20 backend connections, then runs `pgbench -S` (select only, 32 clients)
// in the simple, extended and prepared query modes against each of the
// three. PgBouncer 1.18 cannot keep prepared statements in transaction mode,
// so its prepared runs go to a second PgBouncer database in session mode
// with a backend per client; the table says so.
//
// It also measures pgshard sharding: it starts two more PostgreSQL servers
// (-shards), the shards, and a second pgshard in front of them with
// pgbench_accounts hashed on aid over the shards. Each shard holds exactly
// the accounts pgshard routes to it: pgbench -i, then the others' rows
// deleted (PostgreSQL's PARTITION BY HASH placement, which package routing
// reproduces); the other pgbench tables live on the first shard, the
// default. Before measuring, it reads every aid back and checks it against
// package routing, and prints the rows on each shard. pgbench -S ignores
// what its query returns, so in each mode a short pgbench run whose script
// needs a row from every lookup checks, before the measured runs, that
// pgshard routes each statement to the shard holding its account. The
// table puts the sharded TPS next to the single-backend pgshard's. If
// pgshard refuses the sharded configuration (or fails that check), the
// sharded column says "failed", the rest is measured as usual, and the
// error is printed at the end.
//
// Within a mode, the targets run one after another, in a rotating order
// with -rounds > 1, so that drift on a busy machine hits them alike; the
// median of the rounds is reported. Each mode starts with a short untimed
// warm-up of every target.
//
// Everything runs on 127.0.0.1 and everything it starts is stopped, and its
// temporary directories removed, when it ends, fails or gets Ctrl-C. It
// installs nothing: without PgBouncer or pgbench it says what to install.
// It exits non-zero when it cannot run or a pgbench run fails, not when
// pgshard is slower than PgBouncer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/test/pgtest"
)

const (
	// appUser, appPassword and appDB are the login used everywhere: on
	// PostgreSQL, PgBouncer and pgshard alike.
	appUser, appPassword, appDB = "app", "app", "app"
	// poolSize is the backend connections per pool of PgBouncer
	// (default_pool_size) and pgshard (pool_size).
	poolSize = 20
	// host is the only address anything listens on.
	host = "127.0.0.1"
)

// settings are the knobs of one benchmark run.
type settings struct {
	duration time.Duration // measured pgbench run
	warmup   time.Duration // untimed run per target and mode; 0 = none
	rounds   int
	clients  int
	threads  int
	scale    int
	shards   int    // shards of the sharded run; 0 = no sharded run
	out      string // Markdown file, or ""
	pgshard  string // prebuilt binary, or "" to build one
	bouncer  string // pgbouncer binary, or "" to look for it
	keep     bool   // keep the temporary directory
	// suites, when not "all", names the suites to run (comma-separated
	// prefixes of their names; "none" runs none); modes, when empty,
	// skips the pgbench -S runs.
	suites string
	modes  bool
}

func main() {
	var s settings
	flag.DurationVar(&s.duration, "duration", 10*time.Second, "length of each measured pgbench run (whole seconds)")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "untimed pgbench run per target before each mode's measurements; 0 skips it")
	flag.IntVar(&s.rounds, "rounds", 1, "measured runs per mode and target; the median is reported")
	flag.IntVar(&s.clients, "clients", 32, "pgbench clients (-c)")
	flag.IntVar(&s.threads, "threads", 2, "pgbench threads (-j)")
	flag.IntVar(&s.scale, "scale", 10, "pgbench scale factor (-s) of the test data")
	flag.IntVar(&s.shards, "shards", 2, "shards (PostgreSQL servers) of the sharded pgshard run, at least 2; 0 skips that run")
	flag.StringVar(&s.out, "out", "", "also write the results as Markdown to this file")
	flag.StringVar(&s.pgshard, "pgshard", "", "pgshard binary to measure; empty builds ./cmd/pgshard into a temporary directory")
	flag.StringVar(&s.bouncer, "pgbouncer", "", "pgbouncer binary; empty looks in /usr/sbin and on PATH")
	flag.StringVar(&s.suites, "suites", "all", `suites to run after pgbench -S, as comma-separated prefixes of their names ("latency,memory,streaming"), or "none"`)
	flag.BoolVar(&s.modes, "pgbench", true, "run the pgbench -S throughput table; false measures only the suites")
	flag.BoolVar(&s.keep, "keep", false, "keep the temporary directory with the proxies' configurations and logs, and print its path")
	flag.Parse()
	if err := s.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	go func() {
		// After the first Ctrl-C the bench cleans up; a second one kills
		// it (and, on Linux, its children) at once.
		<-ctx.Done()
		stopSignals()
	}()
	if err := run(ctx, s); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (s settings) validate() error {
	var errs []error
	if s.duration < time.Second || s.duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-duration %v: pgbench needs whole seconds, at least 1s", s.duration))
	}
	if s.warmup < 0 || s.warmup%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-warmup %v: pgbench needs whole seconds (or 0)", s.warmup))
	}
	if s.rounds < 1 {
		errs = append(errs, fmt.Errorf("-rounds %d: need at least 1", s.rounds))
	}
	if s.clients < 1 || s.threads < 1 || s.threads > s.clients {
		errs = append(errs, fmt.Errorf("-clients %d -threads %d: need 1 <= threads <= clients", s.clients, s.threads))
	}
	if s.scale < 1 {
		errs = append(errs, fmt.Errorf("-scale %d: need at least 1", s.scale))
	}
	if s.shards < 0 || s.shards == 1 {
		errs = append(errs, fmt.Errorf("-shards %d: need at least 2, or 0 for no sharded run", s.shards))
	}
	return errors.Join(errs...)
}

// run sets everything up, measures, reports and tears everything down.
// Failed pgbench runs are reported in the table and make it fail at the
// end; failures to set up end it at once.
func run(ctx context.Context, s settings) (err error) {
	// Find every program before starting anything.
	pgbench, err := findPgbench()
	if err != nil {
		return err
	}
	bouncerBin, err := findPgBouncer(s.bouncer)
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cred, err := unprivileged()
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "pgshard-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if s.keep {
			fmt.Println("bench: kept", dir)
			return
		}
		err = errors.Join(err, os.RemoveAll(dir))
	}()
	// PgBouncer runs as the postgres OS user when we are root: it must be
	// able to enter the directory and write its log there.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}

	pgshardBin := s.pgshard
	if pgshardBin == "" {
		fmt.Println("bench: building pgshard")
		pgshardBin = filepath.Join(dir, "pgshard")
		if err := buildPgshard(ctx, root, pgshardBin); err != nil {
			return err
		}
	}

	// The single server and the shards start and fill in parallel.
	if s.shards > 0 {
		fmt.Printf("bench: starting PostgreSQL, and %d more servers as the shards of the sharded run\n", s.shards)
	} else {
		fmt.Println("bench: starting PostgreSQL")
	}
	fmt.Printf("bench: filling database %s (pgbench -i -s %d)\n", appDB, s.scale)
	var (
		pg           *pgtest.Server
		shards       []*pgtest.Server
		pgErr, shErr error
		wg           sync.WaitGroup
	)
	wg.Go(func() { pg, pgErr = startSingle(ctx, pgbench, s.scale) })
	if s.shards > 0 {
		wg.Go(func() { shards, shErr = startShards(ctx, pgbench, s.shards, s.scale, serverConf) })
	}
	wg.Wait()
	if pg != nil {
		defer func() { err = errors.Join(err, pg.Stop()) }()
	}
	if shards != nil {
		defer func() { err = errors.Join(err, stopServers(shards)) }()
	}
	if err := errors.Join(pgErr, shErr); err != nil {
		return err
	}
	var shardRows []int
	if s.shards > 0 {
		if shardRows, err = checkShards(ctx, shards, s.scale); err != nil {
			return fmt.Errorf("the shards do not hold what pgshard's routing expects: %w", err)
		}
		fmt.Printf("bench: pgbench_accounts rows per shard: %s; together %d, each aid once, on the shard package routing picks\n",
			rowsLine(shardRows), accountsPerScale*s.scale)
	}

	fmt.Println("bench: starting PgBouncer")
	bouncer, err := startPgBouncer(ctx, bouncerBin, dir, cred, pg.Port(), s.clients)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bouncer.stop()) }()

	fmt.Println("bench: starting pgshard")
	shard, err := startPgshard(ctx, pgshardBin, dir, "pgshard", []string{pg.URL("", "", appDB)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shard.stop()) }()

	targets := []target{
		{name: "direct", port: pg.Port(), db: appDB, preparedDB: appDB},
		{name: "pgbouncer", port: bouncer.port, db: appDB, preparedDB: sessionDB},
		{name: "pgshard", port: shard.port, db: appDB, preparedDB: appDB},
	}
	res := newResults()
	if s.shards > 0 {
		t, stop, startErr := startSharded(ctx, pgshardBin, dir, shards, s.scale, res)
		if startErr != nil {
			return startErr
		}
		defer func() { err = errors.Join(err, stop()) }()
		targets = append(targets, t)
	}
	load := loadAverage()
	if s.modes {
		if err := measure(ctx, pgbench, s, targets, res); err != nil {
			return err
		}
	}
	runSuites(ctx, &suiteEnv{s: s, dir: dir, cred: cred, pgbench: pgbench, pgshardBin: pgshardBin, bouncerBin: bouncerBin,
		pg: pg, shards: shards, bouncer: bouncer, pgshard: shard}, res)
	env, err := describeEnv(ctx, pg, bouncerBin, pgshardBin, load)
	if err != nil {
		return err
	}
	report := renderGoals(res)
	if s.modes {
		report = render(res, s, env, shardRows) + report
	}
	fmt.Print("\n" + report)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(report), 0o644); err != nil {
			return err
		}
		fmt.Println("bench: wrote", s.out)
	}
	return errors.Join(res.failures(), errors.Join(res.suiteErrs...))
}

// serverConf is the postgresql.conf of every server the bench starts.
var serverConf = map[string]string{"max_connections": "300", "shared_buffers": "128MB"}

// startSingle starts the PostgreSQL server of the single-backend runs,
// with the login and database appDB filled by pgbench -i at scale. On
// failure it stops the server.
func startSingle(ctx context.Context, pgbench string, scale int) (_ *pgtest.Server, err error) {
	pg, err := pgtest.Start(ctx, pgtest.Options{Name: "bench", Conf: serverConf})
	if err != nil {
		return nil, err
	}
	if err = pg.CreateUserDB(ctx, appUser, appPassword, appDB); err == nil {
		err = initPgbench(ctx, pgbench, pg.Port(), "dtGvp", scale)
	}
	if err != nil {
		return nil, errors.Join(err, pg.Stop())
	}
	return pg, nil
}

// shardedTarget names the sharded pgshard in results.
const shardedTarget = "sharded"

// startSharded starts the pgshard of the sharded run in front of shards,
// writes the lookup script that checks its routing in dir, and returns its
// target and how to stop it. When pgshard does not start (it refuses the
// configuration), every mode of the target is recorded failed in res with
// pgshard's error, and the rest of the bench goes on; the error is only for
// what stops the bench.
func startSharded(ctx context.Context, bin, dir string, shards []*pgtest.Server, scale int, res *results) (target, func() error, error) {
	t := target{name: shardedTarget, db: appDB, preparedDB: appDB}
	noStop := func() error { return nil }
	var err error
	if t.lookupScript, err = writeLookupScript(dir, scale); err != nil {
		return t, noStop, err
	}
	urls := make([]string, len(shards))
	for i, srv := range shards {
		urls[i] = srv.URL("", "", appDB)
	}
	fmt.Printf("bench: starting pgshard with %d shards\n", len(shards))
	d, err := startPgshard(ctx, bin, dir, "pgshard-sharded", urls)
	switch {
	case ctx.Err() != nil:
		return t, noStop, ctx.Err()
	case err != nil:
		fmt.Printf("bench: pgshard did not start with %d shards; measuring the others (its error follows the table)\n", len(shards))
		res.failTarget(t.name, fmt.Errorf("pgshard did not start with the %d-shard configuration: %w", len(shards), err))
		return t, noStop, nil
	}
	t.port = d.port
	return t, d.stop, nil
}

// target is a server pgbench runs against.
type target struct {
	name string
	port int
	// db is the database for the simple and extended modes, preparedDB for
	// the prepared mode.
	db, preparedDB string
	// lookupScript, when set, is the script of checkLookups, run in each
	// mode before the target is measured in it.
	lookupScript string
}

func (t target) database(mode string) string {
	if mode == "prepared" {
		return t.preparedDB
	}
	return t.db
}

// modes are pgbench's query modes (-M), in the order measured.
var modes = []string{"simple", "extended", "prepared"}

// measure runs every mode against every target, rounds times, and
// collects the TPS in res. Only an interruption stops it early; a failed
// run is recorded and the others go on. A target that failed in a mode is
// not run again in it.
func measure(ctx context.Context, pgbench string, s settings, targets []target, res *results) error {
	for _, mode := range modes {
		for _, t := range targets {
			if t.lookupScript == "" || res.failed(mode, t.name) {
				continue
			}
			fmt.Printf("bench: %s: checking that %d lookups through %s each find their row\n", mode, lookupClients*lookupsPerClient, t.name)
			if err := checkLookups(ctx, pgbench, t.lookupScript, t, mode); err != nil && ctx.Err() == nil {
				res.fail(mode, t.name, fmt.Errorf(`routing check, lookups that must each return their account's row ("got 0": pgshard sent one to a shard without it): %w`, err))
			}
		}
		if s.warmup > 0 {
			fmt.Printf("bench: %s: warming up\n", mode)
			for _, t := range targets {
				if res.failed(mode, t.name) {
					continue
				}
				if _, err := runPgbench(ctx, pgbench, s, t, mode, s.warmup); err != nil && ctx.Err() == nil {
					res.fail(mode, t.name, fmt.Errorf("warm-up: %w", err))
				}
			}
		}
		for round := range s.rounds {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				if res.failed(mode, t.name) {
					continue
				}
				tps, err := runPgbench(ctx, pgbench, s, t, mode, s.duration)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					res.fail(mode, t.name, err)
					fmt.Printf("bench: %s against %s failed\n", mode, t.name)
					continue
				}
				res.add(mode, t.name, tps)
				fmt.Printf("bench: %-8s round %d/%d  %-9s %10.0f tps\n", mode, round+1, s.rounds, t.name, tps)
			}
		}
	}
	return ctx.Err()
}

// repoRoot is the nearest directory at or above the working directory
// holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s: run the bench from the pgshard repository", dir)
		}
	}
}

// findPgbench returns the pgbench next to the PostgreSQL server binaries
// the harness uses, so that both are one version, or else the one on PATH.
func findPgbench() (string, error) {
	if dir, err := pgtest.BinDir(); err == nil {
		p := filepath.Join(dir, "pgbench")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("pgbench")
	if err != nil {
		return "", errors.New("pgbench not found; it comes with PostgreSQL: apt-get install postgresql (Debian, Ubuntu) or postgresql-contrib (RHEL, Fedora)")
	}
	return p, nil
}
