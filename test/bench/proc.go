package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// readyTimeout bounds how long a proxy may take to accept logins.
	readyTimeout = 15 * time.Second
	// stopTimeout is how long a proxy gets to exit after SIGTERM before it
	// is killed.
	stopTimeout = 10 * time.Second
)

// daemon is a proxy process the bench started. It runs in its own process
// group (so a terminal's Ctrl-C reaches only the bench, which stops it) and,
// on Linux, dies with the bench.
type daemon struct {
	name string
	port int
	log  string // file holding what it printed
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited; then err is set
	err  error
}

// startDaemon starts cmd with its output in logPath, as cred when not nil,
// and waits until it accepts a login as appUser on port.
func startDaemon(ctx context.Context, name string, cmd *exec.Cmd, cred *syscall.Credential, port int, logPath string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr(cred)
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, port: port, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := d.waitReady(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w%s", name, err, d.logTail()), d.stop())
	}
	return d, nil
}

// waitReady polls until a login as appUser on appDB succeeds and a query
// runs, or the process exits, or time is up.
func (d *daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		if last = ping(ctx, d.port, appDB); last == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("exited during startup (%v)", d.err)
		case <-ctx.Done():
			return fmt.Errorf("no login within %v: %w", readyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ping logs in as appUser to db on port and runs a query, in the simple
// protocol so that it works through any pool mode.
func ping(ctx context.Context, port int, db string) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=2",
		appUser, appPassword, net.JoinHostPort(host, strconv.Itoa(port)), db))
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

// stop sends SIGTERM and waits, killing the process if it does not exit in
// time. It may be called again.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed it", d.name, stopTimeout)
	}
}

// logTail is the end of what the process printed, to append to an error.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return fmt.Sprintf("\n--- end of %s ---\n%s", d.log, strings.Join(lines, "\n"))
}

// freePort picks a loopback port nothing listens on now. Another process
// may take it before the proxy binds it; the proxy then fails to start and
// the bench says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// unprivileged returns the credentials of the postgres OS user when we are
// root (PgBouncer, like PostgreSQL, refuses to run as root), or nil to run
// as ourselves.
func unprivileged() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PgBouncer will not run as root, and there is no postgres OS user to run it as (%w); install PostgreSQL's package, which creates it, or run the bench as another user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
