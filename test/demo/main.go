// Command demo runs pgshard in front of two local PostgreSQL shards, each a
// primary with a streaming replica, holding a small sample schema, for
// trying pgshard by hand; `make demo` builds bin/pgshard and runs it from
// the repository root.
//
// With the test harness (test/pgtest) it starts, on 127.0.0.1:
//
//	shard s0: primary on 5433 (.demo/s0), replica on 5434 (.demo/s0-replica)
//	shard s1: primary on 5435 (.demo/s1), replica on 5436 (.demo/s1-replica)
//
// and waits until pg_stat_replication on each primary shows its replica
// streaming. Each primary and replica is set up by the scripts the
// replicas of docker-compose.yml use: deploy/postgres/init-primary.sh
// creates the role app (password app) and its database app, a replication
// role and a physical replication slot; deploy/postgres/replica-entrypoint.sh
// makes the replica, once, with pg_basebackup through that slot. The
// database app holds the sample schema, deploy/sample/schema.sql: users
// and orders spread over the shards by user id, countries copied to both. It writes each sample row directly to the shard pgshard's routing
// puts it (a hash of the user id, as PostgreSQL's PARTITION BY HASH does),
// waits until the replicas have replayed it, and prints the rows each shard
// holds. Then it writes .demo/proxy.yaml for those shards and runs
// bin/pgshard on 127.0.0.1:6432, its output passed through, and prints
// queries to try.
//
// The clusters stay in .demo between runs: a second run starts them again
// and inserts only the sample rows that are missing, keeping whatever was
// written through pgshard (rm -rf .demo starts afresh). Ctrl-C or SIGTERM
// stops pgshard, then the servers. It builds nothing itself.
//
// With -shards-only it does all of that except running pgshard, and waits
// for Ctrl-C with the shards up. With -pg-bindir it only prints the
// directory of the PostgreSQL binaries the demo and the tests use, or fails
// when there are none; the Makefile asks it before offering to install
// PostgreSQL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
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
	// listenAddr is where pgshard takes clients.
	listenAddr = "127.0.0.1:6432"
	// user, password and database are the demo's login, on the proxy and
	// on the backends alike.
	user, password, database = "app", "app", "app"
)

// newShards lists the demo's shards, in the order of their hash
// remainders, on fixed ports next to the usual 5432 of a system cluster.
func newShards() []*shard {
	return []*shard{
		{name: "s0", primaryPort: 5433, replicaPort: 5434},
		{name: "s1", primaryPort: 5435, replicaPort: 5436},
	}
}

func main() {
	printBinDir := flag.Bool("pg-bindir", false, "print the PostgreSQL bin directory the demo and tests use, and exit (status 1 when none is found)")
	pgshard := flag.String("pgshard", "bin/pgshard", "the pgshard binary, relative to the repository root")
	shardsOnly := flag.Bool("shards-only", false, "start and load the shards, but do not run pgshard; Ctrl-C stops them")
	flag.Parse()
	if *printBinDir {
		dir, err := pgtest.BinDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(dir)
		return
	}
	if err := run(*pgshard, *shardsOnly); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(pgshard string, shardsOnly bool) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(pgshard) {
		pgshard = filepath.Join(root, pgshard)
	}
	if !shardsOnly {
		if _, err := os.Stat(pgshard); err != nil {
			return fmt.Errorf("%w; build it first with make build (make demo does)", err)
		}
	}
	demoDir := filepath.Join(root, ".demo")
	// 0755: when we are root, PostgreSQL runs as the postgres OS user,
	// which must reach .demo/s0 and the others.
	if err := os.MkdirAll(demoDir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(demoDir, "pg", "data")); err == nil {
		fmt.Println("demo: .demo/pg, the single server of an earlier demo, is no longer used; rm -rf .demo/pg frees its space")
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	shards := newShards()
	rows, err := sampleRows(len(shards))
	if err != nil {
		return err
	}
	schema, err := os.ReadFile(filepath.Join(root, schemaFile))
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("demo: stopping the shards (the data stays in .demo for next time)")
		err = errors.Join(err, stopShards(shards))
	}()
	for _, sh := range shards {
		fmt.Printf("demo: %s: primary on 127.0.0.1:%d (.demo/%s), replica on 127.0.0.1:%d (.demo/%s)\n",
			sh.name, sh.primaryPort, sh.name, sh.replicaPort, sh.replicaName())
	}
	if err := setUp(ctx, root, demoDir, shards, string(schema), rows); err != nil {
		if ctx.Err() != nil {
			fmt.Println("\ndemo: interrupted")
			return nil
		}
		return err
	}
	if err := printCounts(ctx, shards); err != nil {
		return err
	}

	configPath := filepath.Join(demoDir, "proxy.yaml")
	if err := os.WriteFile(configPath, []byte(proxyConfig(shards)), 0o644); err != nil {
		return err
	}
	fmt.Printf("demo: wrote %s\n", relTo(root, configPath))
	if shardsOnly {
		printShards(root, shards)
		fmt.Print("\nThe shards are running without pgshard (-shards-only); Ctrl-C stops them.\n\n")
		<-ctx.Done()
		stopSignals()
		fmt.Println()
		return nil
	}
	return runPgshard(ctx, stopSignals, pgshard, root, configPath, shards)
}

// setUp starts every shard, makes the sample schema, loads its sample rows
// and waits until its replica has replayed them, the shards in parallel.
func setUp(ctx context.Context, root, demoDir string, shards []*shard, schema string, rows []shardRows) error {
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() {
			if errs[i] = sh.start(ctx, root, demoDir); errs[i] != nil {
				return
			}
			inserted, err := sh.load(ctx, schema, rows[i])
			if err != nil {
				errs[i] = err
				return
			}
			if inserted == (rowCounts{}) {
				fmt.Printf("demo: %s: the sample rows are already there\n", sh.name)
			} else {
				fmt.Printf("demo: %s: inserted %d countries, %d users, %d orders\n", sh.name, inserted.countries, inserted.users, inserted.orders)
			}
			errs[i] = sh.waitReplayed(ctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopShards stops every shard, in parallel.
func stopShards(shards []*shard) error {
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() { errs[i] = sh.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// printCounts prints the rows of the sample tables on each primary and
// checks that its replica holds the same.
func printCounts(ctx context.Context, shards []*shard) error {
	fmt.Println("demo: rows on each shard (each replica streaming, and holding the same rows as its primary):")
	fmt.Printf("  %-6s %-16s %-16s %6s %7s %10s\n", "shard", "primary", "replica", "users", "orders", "countries")
	for _, sh := range shards {
		onPrimary, err := countRows(ctx, sh.primary)
		if err != nil {
			return err
		}
		onReplica, err := countRows(ctx, sh.replica)
		if err != nil {
			return err
		}
		if onReplica != onPrimary {
			return fmt.Errorf("%s holds %+v but its primary %+v", sh.replicaName(), onReplica, onPrimary)
		}
		fmt.Printf("  %-6s %-16s %-16s %6d %7d %10d\n", sh.name, sh.primary.Addr(), sh.replica.Addr(),
			onPrimary.users, onPrimary.orders, onPrimary.countries)
	}
	return nil
}

// runPgshard runs pgshard with the config at configPath until ctx ends or
// pgshard exits, showing the banner once it listens. stopSignals is called
// once pgshard is being stopped, so that a second Ctrl-C kills the demo.
func runPgshard(ctx context.Context, stopSignals func(), pgshard, root, configPath string, shards []*shard) error {
	cmd := exec.Command(pgshard, "-config", configPath)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = childAttr()
	fmt.Printf("demo: starting pgshard on %s\n", listenAddr)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	listenCtx, cancelListen := context.WithCancel(ctx)
	defer cancelListen()
	var exitErr error
	exitedEarly := false
	select {
	case exitErr = <-exited:
		exitedEarly = true
	case <-ctx.Done():
	case <-listening(listenCtx):
		if ctx.Err() == nil {
			printBanner(root, configPath, shards)
		}
		select {
		case exitErr = <-exited:
			exitedEarly = true
		case <-ctx.Done():
		}
	}
	cancelListen()
	// From here a second Ctrl-C kills the demo at once (and with it, on
	// Linux, pgshard and PostgreSQL).
	stopSignals()
	if exitedEarly {
		fmt.Println("demo: go run ./test/demo -shards-only runs the shards without pgshard")
		if exitErr == nil {
			return errors.New("pgshard exited")
		}
		return fmt.Errorf("pgshard exited: %w", exitErr)
	}
	fmt.Println("\ndemo: stopping pgshard")
	return stop(cmd, exited)
}

// listening is closed once pgshard accepts connections, when ctx ends, or
// after 15s of waiting (the banner is shown all the same, with a warning).
func listening(ctx context.Context) <-chan struct{} {
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if c, err := net.DialTimeout("tcp", listenAddr, time.Second); err == nil {
				c.Close()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		fmt.Fprintf(os.Stderr, "demo: pgshard is running but not accepting connections on %s yet\n", listenAddr)
	}()
	return ready
}

// stop asks pgshard to shut down and waits, killing it after 15s.
func stop(cmd *exec.Cmd, exited <-chan error) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) && !exit.Exited() {
			return nil // ended by our signal
		}
		if err != nil {
			return fmt.Errorf("pgshard: %w", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("pgshard did not stop within 15s of SIGTERM; killed it")
	}
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
			return "", fmt.Errorf("no go.mod at or above %s: run the demo from the pgshard repository", dir)
		}
	}
}
