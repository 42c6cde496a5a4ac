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
	out      string // Markdown file, or ""
	pgshard  string // prebuilt binary, or "" to build one
	bouncer  string // pgbouncer binary, or "" to look for it
	keep     bool   // keep the temporary directory
}

func main() {
	var s settings
	flag.DurationVar(&s.duration, "duration", 10*time.Second, "length of each measured pgbench run (whole seconds)")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "untimed pgbench run per target before each mode's measurements; 0 skips it")
	flag.IntVar(&s.rounds, "rounds", 1, "measured runs per mode and target; the median is reported")
	flag.IntVar(&s.clients, "clients", 32, "pgbench clients (-c)")
	flag.IntVar(&s.threads, "threads", 2, "pgbench threads (-j)")
	flag.IntVar(&s.scale, "scale", 10, "pgbench scale factor (-s) of the test data")
	flag.StringVar(&s.out, "out", "", "also write the results as Markdown to this file")
	flag.StringVar(&s.pgshard, "pgshard", "", "pgshard binary to measure; empty builds ./cmd/pgshard into a temporary directory")
	flag.StringVar(&s.bouncer, "pgbouncer", "", "pgbouncer binary; empty looks in /usr/sbin and on PATH")
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

	fmt.Println("bench: starting PostgreSQL")
	pg, err := pgtest.Start(ctx, pgtest.Options{
		Name: "bench",
		Conf: map[string]string{"max_connections": "300", "shared_buffers": "128MB"},
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, pg.Stop()) }()
	if err := pg.CreateUserDB(ctx, appUser, appPassword, appDB); err != nil {
		return err
	}
	fmt.Printf("bench: filling database %s (pgbench -i -s %d)\n", appDB, s.scale)
	if err := initPgbench(ctx, pgbench, pg.Port(), s.scale); err != nil {
		return err
	}

	fmt.Println("bench: starting PgBouncer")
	bouncer, err := startPgBouncer(ctx, bouncerBin, dir, cred, pg.Port(), s.clients)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bouncer.stop()) }()

	fmt.Println("bench: starting pgshard")
	shard, err := startPgshard(ctx, pgshardBin, dir, pg.URL("", "", appDB))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shard.stop()) }()

	targets := []target{
		{name: "direct", port: pg.Port(), db: appDB, preparedDB: appDB},
		{name: "pgbouncer", port: bouncer.port, db: appDB, preparedDB: sessionDB},
		{name: "pgshard", port: shard.port, db: appDB, preparedDB: appDB},
	}
	load := loadAverage()
	res, err := measure(ctx, pgbench, s, targets)
	if err != nil {
		return err
	}
	env, err := describeEnv(ctx, pg, bouncerBin, pgshardBin, load)
	if err != nil {
		return err
	}
	report := render(res, s, env)
	fmt.Print("\n" + report)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(report), 0o644); err != nil {
			return err
		}
		fmt.Println("bench: wrote", s.out)
	}
	return res.failures()
}

// target is a server pgbench runs against.
type target struct {
	name string
	port int
	// db is the database for the simple and extended modes, preparedDB for
	// the prepared mode.
	db, preparedDB string
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
// collects the TPS. Only an interruption stops it early; a failed run is
// recorded and the others go on.
func measure(ctx context.Context, pgbench string, s settings, targets []target) (*results, error) {
	res := newResults()
	for _, mode := range modes {
		if s.warmup > 0 {
			fmt.Printf("bench: %s: warming up\n", mode)
			for _, t := range targets {
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
					return nil, ctx.Err()
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
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
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
