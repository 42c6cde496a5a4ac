// Command demo runs pgshard in front of a local PostgreSQL server, for
// trying it by hand; `make demo` builds bin/pgshard and runs it from the
// repository root.
//
// It starts PostgreSQL with the test harness on 127.0.0.1:5433, keeping the
// cluster in .demo/pg so that data survives between runs, creates the role
// app (password app) and its database app, writes .demo/proxy.yaml with
// that server as the one shard, and runs bin/pgshard on 127.0.0.1:6432 with
// its output passed through. Ctrl-C or SIGTERM stops pgshard, then
// PostgreSQL. It builds nothing itself.
//
// With -pg-bindir it only prints the directory of the PostgreSQL binaries
// the demo and the tests use, or fails when there are none; the Makefile
// asks it before offering to install PostgreSQL.
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
	"syscall"
	"time"

	"github.com/pgshard/pgshard/test/pgtest"
)

const (
	// listenAddr is where pgshard takes clients.
	listenAddr = "127.0.0.1:6432"
	// pgPort is the demo PostgreSQL's fixed port, next to the usual 5432 of
	// a system cluster.
	pgPort = 5433
	// user, password and database are the demo's login, on the proxy and
	// on the backend alike.
	user, password, database = "app", "app", "app"
)

func main() {
	printBinDir := flag.Bool("pg-bindir", false, "print the PostgreSQL bin directory the demo and tests use, and exit (status 1 when none is found)")
	pgshard := flag.String("pgshard", "bin/pgshard", "the pgshard binary, relative to the repository root")
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
	if err := run(*pgshard); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(pgshard string) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(pgshard) {
		pgshard = filepath.Join(root, pgshard)
	}
	if _, err := os.Stat(pgshard); err != nil {
		return fmt.Errorf("%w; build it first with make build (make demo does)", err)
	}
	demoDir := filepath.Join(root, ".demo")
	// 0755: when we are root, PostgreSQL runs as the postgres OS user,
	// which must reach .demo/pg.
	if err := os.MkdirAll(demoDir, 0o755); err != nil {
		return err
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	fmt.Printf("demo: starting PostgreSQL on 127.0.0.1:%d (data in .demo/pg)\n", pgPort)
	srv, err := pgtest.Start(ctx, pgtest.Options{Name: "demo", Dir: filepath.Join(demoDir, "pg"), Port: pgPort})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("demo: stopping PostgreSQL (the data stays in .demo for next time)")
		err = errors.Join(err, srv.Stop())
	}()
	if err := srv.CreateUserDB(ctx, user, password, database); err != nil {
		return err
	}
	configPath := filepath.Join(demoDir, "proxy.yaml")
	if err := os.WriteFile(configPath, []byte(proxyConfig(srv.Port())), 0o644); err != nil {
		return err
	}

	cmd := exec.Command(pgshard, "-config", configPath)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = childAttr()
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
			printBanner(srv, root, configPath)
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

func printBanner(srv *pgtest.Server, root, configPath string) {
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil {
			return r
		}
		return p
	}
	host, port, _ := net.SplitHostPort(listenAddr)
	fmt.Printf(`
pgshard demo is running.

  connect:    psql -h %s -p %s -U %s %s   (password: %s)
  the shard:  psql -h %s -p %d -U postgres %s   (PostgreSQL itself, no password)
  config:     %s
  server log: %s

Ctrl-C stops pgshard, then PostgreSQL; the data stays in .demo (rm -rf .demo starts afresh).

`, host, port, user, database, password, srv.Host(), srv.Port(), database, rel(configPath), rel(srv.LogPath()))
}

// proxyConfig is the demo's pgshard configuration; the keys are those of
// proxy.yaml.example, and the others take their defaults.
func proxyConfig(pgPort int) string {
	return fmt.Sprintf(`# Written by the demo (make demo) at every run; edits are lost.
# Keys not set here take their defaults: see proxy.yaml.example.
listen: %q
pool_mode: transaction

users:
  - name: %s
    password: %s
    auth: scram-sha-256

databases:
  - name: %s
    backend_user: %s
    backend_password: %s
    pool_size: 20
    shards:
      - name: s0
        primary: "postgres://127.0.0.1:%d/%s"
`, listenAddr, user, password, database, user, password, pgPort, database)
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
