package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// host is the only address servers listen on.
	host = "127.0.0.1"
	// readyTimeout bounds how long a starting server may take to accept
	// connections.
	readyTimeout = 30 * time.Second
	// shutdownTimeout bounds a fast shutdown before the harness escalates.
	shutdownTimeout = 60 * time.Second
	// launchAttempts is how often a start is tried when its port is taken.
	launchAttempts = 5
	// confFile holds the harness's settings, included from postgresql.conf
	// and rewritten at every start.
	confFile = "pgtest.conf"
	// ownerFile, in a temporary server directory, holds the PID of the
	// process that made it, so a later run can remove it once that process
	// is gone.
	ownerFile = "pgtest.owner"
)

// hbaConf replaces the pg_hba.conf initdb writes. The first matching line
// wins.
const hbaConf = `# Written by pgtest at every start; edits are lost.
local all         all                  trust
local replication all                  trust
host  all         postgres 127.0.0.1/32 trust
host  all         all      127.0.0.1/32 scram-sha-256
host  replication all      127.0.0.1/32 trust
`

// errPortInUse marks a start that failed because another process holds
// the port; with a free port picked, the start is tried again on another.
var errPortInUse = errors.New("port already in use")

// Options describes a server to start. The zero value is a throwaway server
// on a free port in a new temporary directory.
type Options struct {
	// Name labels the server in errors and in its directory's name. Empty
	// means "pg".
	Name string
	// Conf holds extra postgresql.conf settings, applied after the harness's
	// own (so they override them), except port, listen_addresses and
	// unix_socket_directories. Values are written unquoted, as in
	// {"work_mem": "64MB"}; the harness quotes them.
	Conf map[string]string
	// Dir, when set, is a persistent directory for the cluster (the data
	// directory is Dir/data, the log Dir/postgres.log). It is created when
	// missing and reused when it already holds a cluster; a server still
	// running there from an earlier run is shut down first. Stop keeps it.
	// Empty means a new directory under os.TempDir, removed by Stop. When
	// the test process is root, the postgres OS user must be able to reach
	// Dir: every parent directory needs o+x.
	Dir string
	// Port is the TCP port to listen on; 0 picks a free one.
	Port int
	// Init, when set, makes a new cluster instead of the harness's initdb
	// template: a program and its arguments (for example a script's
	// interpreter and path, or a script passed with "bash -c"), run to
	// completion as the server's OS user in the server's directory, with
	// PGDATA set to the data directory it must fill, the PostgreSQL
	// binaries first on PATH, and InitEnv ("KEY=value") added to the
	// environment. It is how a replica is made by a script of its own
	// (deploy/postgres/replica-entrypoint.sh). It is not run when Dir
	// already holds a cluster.
	Init    []string
	InitEnv []string
}

// Server is a PostgreSQL server run by this process. Its methods are safe
// for concurrent use; Stop, Kill and Restart are serialised. The server
// runs until Stop (or the death of the test process).
type Server struct {
	name    string
	bin     binaries
	dir     string
	keepDir bool
	port    int // fixed once Start returns
	conf    map[string]string
	cred    *syscall.Credential // the postgres OS user, when we are root

	mu      sync.Mutex
	proc    *process // nil when not running
	stopped bool
}

// Start initialises a cluster (unless opts.Dir already holds one), starts
// postgres on it and waits until it accepts connections. ctx bounds only
// the start; the server runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	initdb := func(ctx context.Context) error {
		if len(opts.Init) > 0 {
			return s.runInit(ctx, opts.Init, opts.InitEnv)
		}
		tmpl, err := templateData(ctx, s.bin, s.cred)
		if err != nil {
			return s.errorf("%w", err)
		}
		if err := copyTree(tmpl, s.DataDir(), s.cred); err != nil {
			return s.errorf("copy the template cluster: %w", errors.Join(err, os.RemoveAll(s.DataDir())))
		}
		return nil
	}
	if err := s.boot(ctx, opts.Port, initdb); err != nil {
		return nil, err
	}
	return s, nil
}

// StartN starts n servers in parallel, named Name0, Name1... (or "pg0",
// "pg1"...); with opts.Dir set, server i lives in Dir/i. opts.Port must be
// 0. If any fails, those started are stopped and the errors returned.
func StartN(ctx context.Context, n int, opts Options) ([]*Server, error) {
	if n < 1 {
		return nil, fmt.Errorf("pgtest: StartN needs n >= 1, got %d", n)
	}
	if n > 1 && opts.Port != 0 {
		return nil, fmt.Errorf("pgtest: StartN of %d servers cannot share the fixed port %d", n, opts.Port)
	}
	base := opts.Name
	switch {
	case base == "":
		base = "pg"
	case n > 1:
		base += "-"
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		o := opts
		o.Conf = maps.Clone(opts.Conf)
		if n > 1 || opts.Name == "" {
			o.Name = base + strconv.Itoa(i)
		}
		if opts.Dir != "" && n > 1 {
			o.Dir = filepath.Join(opts.Dir, strconv.Itoa(i))
		}
		wg.Go(func() { servers[i], errs[i] = Start(ctx, o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, stopAll(servers))
	}
	return servers, nil
}

// StartReplica makes a streaming replica of s with pg_basebackup and starts
// it as a hot standby (read-only). With opts.Dir already holding a cluster,
// that cluster is started instead. Empty opts.Name means s's name with
// "-replica".
func (s *Server) StartReplica(ctx context.Context, opts Options) (*Server, error) {
	if opts.Name == "" {
		opts.Name = s.name + "-replica"
	}
	r, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	basebackup := func(ctx context.Context) error {
		return r.run(ctx, "pg_basebackup", "-D", r.DataDir(),
			"-d", fmt.Sprintf("host=%s port=%d user=postgres", host, s.port),
			"-R", "-X", "stream", "-c", "fast", "--no-sync")
	}
	if err := r.boot(ctx, opts.Port, basebackup); err != nil {
		return nil, err
	}
	return r, nil
}

// stopAll stops every non-nil server.
func stopAll(servers []*Server) error {
	var errs []error
	for _, s := range servers {
		if s != nil {
			errs = append(errs, s.Stop())
		}
	}
	return errors.Join(errs...)
}

// newServer validates opts and prepares the server's directory.
func newServer(opts Options) (*Server, error) {
	bin, err := findOnce()
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{name: opts.Name, bin: bin, port: opts.Port, conf: maps.Clone(opts.Conf)}
	if s.name == "" {
		s.name = "pg"
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, s.errorf("invalid port %d", opts.Port)
	}
	for k := range s.conf {
		switch {
		case !settingName.MatchString(k):
			return nil, s.errorf("invalid setting name %q in Conf", k)
		case reserved[strings.ToLower(k)] != "":
			return nil, s.errorf("Conf may not set %s: %s", k, reserved[strings.ToLower(k)])
		}
	}
	if s.cred, err = runAs(); err != nil {
		return nil, s.errorf("%w", err)
	}
	if opts.Dir != "" {
		if s.dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, s.errorf("%w", err)
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, s.errorf("%w", err)
		}
		s.keepDir = true
	} else {
		sweepOnce()
		if s.dir, err = os.MkdirTemp("", "pgtest-"+dirName(s.name)+"-"); err != nil {
			return nil, s.errorf("%w", err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return nil, errors.Join(s.errorf("%w", err), os.RemoveAll(s.dir))
		}
	}
	if s.cred != nil {
		err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid))
		if err == nil {
			err = reachable(s.dir, s.cred)
		}
		if err != nil {
			return nil, errors.Join(s.errorf("%w", err), s.discard())
		}
	}
	return s, nil
}

// boot makes the cluster with create unless the data directory already
// holds one, then starts it. On failure it removes a temporary directory.
func (s *Server) boot(ctx context.Context, port int, create func(context.Context) error) error {
	err := s.prepareCluster(ctx, create)
	if err == nil {
		s.mu.Lock()
		s.port, err = s.launch(ctx, port)
		s.mu.Unlock()
	}
	if err != nil {
		return errors.Join(err, s.discard())
	}
	return nil
}

// discard removes the directory of a server that never started, unless it
// is a persistent one.
func (s *Server) discard() error {
	if s.keepDir {
		return nil
	}
	return os.RemoveAll(s.dir)
}

func (s *Server) prepareCluster(ctx context.Context, create func(context.Context) error) error {
	version, err := os.ReadFile(filepath.Join(s.DataDir(), "PG_VERSION"))
	switch {
	case err == nil:
		if v := strings.TrimSpace(string(version)); v != s.bin.major() {
			return s.errorf("%s holds a PostgreSQL %s cluster but the binaries in %s are version %s; remove it or set PG_BINDIR", s.DataDir(), v, s.bin.dir, s.bin.version)
		}
		if err := s.stopStale(); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		if err := create(ctx); err != nil {
			return err
		}
	default:
		return s.errorf("%w", err)
	}
	return s.includeConf()
}

// includeConf makes postgresql.conf include the harness's settings file.
func (s *Server) includeConf() error {
	path := filepath.Join(s.DataDir(), "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return s.errorf("%w", err)
	}
	line := "include '" + confFile + "'"
	if slices.Contains(strings.Split(string(conf), "\n"), line) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return s.errorf("%w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings of the pgtest harness, rewritten at every start.\n%s\n", line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// stopStale shuts down a server still running on the data directory, left
// by an earlier run that did not stop it.
func (s *Server) stopStale() error {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !isPostgres(pid) {
		return nil // postgres itself ignores a stale lock file
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, shutdownTimeout}, {syscall.SIGQUIT, 10 * time.Second}} {
		if err := syscall.Kill(pid, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return s.errorf("stop the server (PID %d) left running on %s: %w", pid, s.DataDir(), err)
		}
		for deadline := time.Now().Add(step.wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if processGone(pid) {
				return nil
			}
		}
	}
	return s.errorf("the server (PID %d) left running on %s does not stop", pid, s.DataDir())
}

// launch starts postgres and waits until it is ready, retrying on another
// free port (or, with a fixed port, after a pause) when the port is taken.
// It returns the port. s.mu must be held.
func (s *Server) launch(ctx context.Context, fixed int) (int, error) {
	var err error
	for range launchAttempts {
		port := fixed
		if port == 0 {
			if port, err = freePort(); err != nil {
				return 0, s.errorf("%w", err)
			}
		}
		if err = s.launchOnce(ctx, port); err == nil {
			return port, nil
		}
		if !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			break
		}
		if fixed != 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return 0, err
}

func (s *Server) launchOnce(ctx context.Context, port int) error {
	if err := s.writeConfig(port); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return s.errorf("%w", err)
	}
	offset, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		logf.Close()
		return s.errorf("%w", err)
	}
	cmd := exec.Command(s.bin.path("postgres"), "-D", s.DataDir())
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.cred)
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return s.errorf("start postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(ctx, p, port); err != nil {
		p.kill()
		<-p.done
		tail := s.logTail(offset)
		if !errors.Is(err, errPortInUse) && strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return s.errorf("start postgres on port %d: %w\n--- end of %s ---\n%s", port, err, s.LogPath(), tail)
	}
	s.proc = p
	return nil
}

// waitReady polls the server until it accepts a superuser connection and
// proves to be this server.
func (s *Server) waitReady(ctx context.Context, p *process, port int) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during startup (%v)", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("postgres did not accept connections within %v (last error: %v)", readyTimeout, last)
		case <-tick.C:
		}
		if last = s.ping(ctx, port); last == nil || errors.Is(last, errPortInUse) {
			return last
		}
	}
}

// ping connects as the superuser and checks that the server answering is
// the one on this data directory, not another that took the port.
func (s *Server) ping(ctx context.Context, port int) error {
	cfg, err := pgx.ParseConfig(s.urlOn(port, "postgres", "", "postgres"))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = 2 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var dataDir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return err
	}
	if !sameFile(dataDir, s.DataDir()) {
		return fmt.Errorf("%w: a server on %s answers on port %d", errPortInUse, dataDir, port)
	}
	return nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// reserved are the settings the harness must own, with the reason.
var reserved = map[string]string{
	"port":                    "use Options.Port",
	"listen_addresses":        "servers listen on 127.0.0.1 only",
	"unix_socket_directories": "the socket lives in the data directory",
}

// settingName is what a postgresql.conf parameter name may look like.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// writeConfig writes pgtest.conf and pg_hba.conf for a start on port.
func (s *Server) writeConfig(port int) error {
	// A Unix socket path must fit in sockaddr_un (108 bytes with its NUL);
	// without room, the server has TCP only.
	sockDir := s.DataDir()
	if len(sockDir)+len("/.s.PGSQL.65535") >= 108 {
		sockDir = ""
	}
	settings := [][2]string{
		{"listen_addresses", host},
		{"port", strconv.Itoa(port)},
		{"unix_socket_directories", sockDir},
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"max_connections", "300"},
		{"max_prepared_transactions", "50"},
		{"shared_buffers", "32MB"},
		{"password_encryption", "scram-sha-256"},
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
		{"log_line_prefix", "%m [%p] %q%u@%d "},
		{"timezone", "UTC"},
		{"log_timezone", "UTC"},
	}
	for _, k := range slices.Sorted(maps.Keys(s.conf)) {
		settings = append(settings, [2]string{k, s.conf[k]})
	}
	var b strings.Builder
	b.WriteString("# Written by pgtest at every start; edits are lost.\n")
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s = '%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", "''"))
	}
	if err := s.writeFile(filepath.Join(s.DataDir(), confFile), b.String()); err != nil {
		return err
	}
	return s.writeFile(filepath.Join(s.DataDir(), "pg_hba.conf"), hbaConf)
}

// writeFile writes a file in the data directory, owned by the server's OS
// user.
func (s *Server) writeFile(path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return s.errorf("%w", err)
	}
	if s.cred != nil {
		if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return s.errorf("%w", err)
		}
	}
	return nil
}

// run runs one of the PostgreSQL programs to completion in the server's
// directory, as the server's OS user.
func (s *Server) run(ctx context.Context, name string, args ...string) error {
	if err := runProgram(ctx, s.bin, s.cred, s.dir, name, args...); err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// runInit runs Options.Init to make the cluster (see there).
func (s *Server) runInit(ctx context.Context, argv, env []string) error {
	env = append([]string{
		"PATH=" + s.bin.dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PGDATA=" + s.DataDir(),
	}, env...)
	if err := runCommand(ctx, s.cred, s.dir, env, argv[0], argv[1:]...); err != nil {
		return s.errorf("make the cluster: %w", err)
	}
	return nil
}

// runProgram runs one of the PostgreSQL programs to completion in dir, as
// cred when set; its output is in the error.
func runProgram(ctx context.Context, bin binaries, cred *syscall.Credential, dir, name string, args ...string) error {
	return runCommand(ctx, cred, dir, nil, bin.path(name), args...)
}

// runCommand runs a program to completion in dir, as cred when set, in
// childEnv with env added (a later value wins); its output is in the error.
func runCommand(ctx context.Context, cred *syscall.Credential, dir string, env []string, path string, args ...string) error {
	name := filepath.Base(path)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = append(childEnv(), env...)
	cmd.SysProcAttr = sysProcAttr(cred)
	// On cancel, kill the program's whole process group (pg_basebackup
	// streams WAL from a child), and stop waiting for output its
	// children may hold open.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, lastLines(string(out), 30))
	}
	return nil
}

// logTail returns the end of what the server logged since offset.
func (s *Server) logTail(offset int64) string {
	f, err := os.Open(s.LogPath())
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	const max = 8 << 10
	if st, err := f.Stat(); err == nil && st.Size()-offset > max {
		offset = st.Size() - max
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, max))
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), 40)
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) errorf(format string, args ...any) error {
	return fmt.Errorf("pgtest %s: "+format, append([]any{s.name}, args...)...)
}

// Name is the server's name from Options.
func (s *Server) Name() string { return s.name }

// Host is the address the server listens on, "127.0.0.1".
func (s *Server) Host() string { return host }

// Port is the server's TCP port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(host, strconv.Itoa(s.port)) }

// URL is a postgres:// URL for user and password on database db, with
// sslmode=disable. An empty password is left out; an empty user leaves out
// both, for configurations that add their own credentials.
func (s *Server) URL(user, password, db string) string {
	return s.urlOn(s.port, user, password, db)
}

// SuperURL is URL for the superuser postgres, which needs no password.
func (s *Server) SuperURL(db string) string { return s.URL("postgres", "", db) }

func (s *Server) urlOn(port int, user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	switch {
	case user != "" && password != "":
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	}
	return u.String()
}

// Dir is the server's directory, holding data/ and postgres.log.
func (s *Server) Dir() string { return s.dir }

// DataDir is the cluster's data directory (PGDATA).
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogPath is the file the server logs to.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "postgres.log") }

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back), waits for it to exit, and removes its directory unless it was
// Options.Dir. A server that had died on its own (not by Kill) makes it
// return an error. Calling it again does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	var err error
	if s.proc != nil {
		err = s.proc.shutdown()
		s.proc = nil
	}
	if !s.keepDir {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	if err != nil {
		return s.errorf("stop: %w", err)
	}
	return nil
}

// Kill ends the server abruptly, as a crash of its machine would: the
// postmaster and every backend get SIGKILL, so open client connections
// break at once. Restart brings it back with crash recovery. Because
// synchronous_commit is off, transactions committed in the last fraction
// of a second may be lost; a test that needs them run CHECKPOINT first (or
// sets synchronous_commit in Options.Conf).
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.proc == nil {
		return s.errorf("kill: server is not running")
	}
	s.proc.kill()
	<-s.proc.done
	s.proc = nil
	return nil
}

// Restart stops the server if it runs (fast shutdown) and starts it again
// on the same data and port, waiting until it accepts connections. It is
// how a test brings back a server after Kill.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.errorf("restart: server was stopped")
	}
	if s.proc != nil {
		// Whatever the outcome, the process is gone afterwards, which is
		// all a restart needs.
		_ = s.proc.shutdown()
		s.proc = nil
	}
	_, err := s.launch(ctx, s.port)
	return err
}

// process is one run of postgres. done is closed, and err set, when it
// has exited and been reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// wait reports whether the process exits within d.
func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// shutdown asks for a fast shutdown, escalating to immediate shutdown and
// then SIGKILL. The process has exited when it returns.
func (p *process) shutdown() error {
	if p.wait(0) {
		if p.err != nil {
			return fmt.Errorf("postgres had exited on its own: %w", p.err)
		}
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if p.wait(shutdownTimeout) {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	if p.wait(10 * time.Second) {
		return fmt.Errorf("fast shutdown took over %v; used immediate shutdown", shutdownTimeout)
	}
	p.kill()
	<-p.done
	return errors.New("postgres ignored shutdown requests and was killed")
}

// kill sends SIGKILL to the postmaster and to its children. Backends run
// in sessions of their own, so the process group does not reach them; the
// postmaster is stopped first so that it forks none while they are listed.
// kill returns once the children are gone; the postmaster is reaped by the
// goroutine waiting on it.
func (p *process) kill() {
	if p.wait(0) {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	kids := childPIDs(p.cmd.Process.Pid)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = p.cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range kids {
		for !processGone(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childEnv is the environment of PostgreSQL programs: ours without libpq's
// PG* variables and locale settings, in the C locale.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// runAs returns the credentials of the postgres OS user when we are root
// (PostgreSQL refuses to run as root), or nil to run as ourselves.
var runAs = sync.OnceValues(func() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL will not run as root, and there is no postgres OS user to run it as (%w); install PostgreSQL's package, which creates it, or run the tests as another user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
})

// reachable checks that cred may enter dir and every directory above it.
// The child gets no supplementary groups, so only owner, group and other
// bits count.
func reachable(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0
		if sys, isStat := st.Sys().(*syscall.Stat_t); isStat {
			switch {
			case sys.Uid == cred.Uid:
				ok = mode&0o100 != 0
			case sys.Gid == cred.Gid:
				ok = mode&0o010 != 0
			}
		}
		if !ok {
			return fmt.Errorf("the postgres OS user (uid %d) cannot enter %s (mode %v), so it cannot reach %s; use a directory elsewhere or chmod o+x %s", cred.Uid, d, mode, dir, d)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// handedOut are the ports this process has given to servers, so that two
// starting at once never try the same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort picks a loopback port nothing listens on now, never one handed
// out before in this process nor 5432-5439, where system clusters live.
// Another process may still take it before postgres binds it; launch then
// retries.
func freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("pick a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOut.Lock()
		fresh := !handedOut.ports[port] && (port < 5432 || port > 5439)
		if fresh {
			handedOut.ports[port] = true
		}
		handedOut.Unlock()
		if fresh {
			return port, nil
		}
	}
	return 0, errors.New("pick a free port: none found")
}

// sweepOnce removes, once per process, the temporary directories of earlier
// test processes that died without stopping their servers, and old
// templates.
var sweepOnce = sync.OnceFunc(func() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		if staleTemplate(dir, time.Now()) {
			_ = os.RemoveAll(dir)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || !processGone(pid) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
})

// dirName makes name safe and short for a directory name.
func dirName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}
