package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The memory suite measures what an idle client costs a proxy: it opens
// idleClients logins that then do nothing, and reads the proxy process's
// resident memory (VmRSS of /proc/<pid>/status) before and after; for
// pgshard also its goroutines (go_goroutines on its metrics endpoint).
// The anchor is the same measurement of PgBouncer. Both proxies are
// started for the suite alone, with room for the clients and a trust
// login so that opening them costs no password exchange; the clients
// speak the protocol by hand, StartupMessage then wait for ReadyForQuery,
// a few dozen logging in at once.

func init() {
	suites = append(suites, suite{name: "memory", run: runMemory})
}

const (
	// idleClients is the idle client connections opened to each proxy.
	idleClients = 10000
	// idleDialers is how many of them log in at once.
	idleDialers = 64
	// idleLoginTimeout bounds one login.
	idleLoginTimeout = 15 * time.Second
	// idleSettle is how long the proxies get, once every client is in,
	// before they are measured.
	idleSettle = time.Second
	// fileLimit is the RLIMIT_NOFILE the bench (and so the proxies it
	// starts, which inherit it) asks for: the clients, and margin.
	fileLimit = 25000
	// rssGoalKiB and goroutineGoal are the most an idle client may cost
	// pgshard.
	rssGoalKiB    = 20.0
	goroutineGoal = 1.0
)

// idleCost is what idleClients idle clients cost a proxy.
type idleCost struct {
	rssBefore, rssAfter int64 // KiB
	// before and after are pgshard's Go runtime metrics; zero for
	// PgBouncer.
	before, after goMetrics
}

// goMetrics are figures of a Go process's Prometheus metrics.
type goMetrics struct {
	goroutines            int64
	heapInuse, stackInuse int64 // bytes
}

func (c idleCost) rssPerClient() float64 {
	return float64(c.rssAfter-c.rssBefore) / idleClients
}

// runMemory measures pgshard, then PgBouncer, and adds the rows.
func runMemory(ctx context.Context, e *suiteEnv, res *results) error {
	limit, limitErr := raiseFileLimit(fileLimit)
	if limit < idleClients+1000 {
		return fmt.Errorf("RLIMIT_NOFILE is %d, too few for %d clients: %w", limit, idleClients, limitErr)
	}
	var notes []string
	if limitErr != nil {
		notes = append(notes, fmt.Sprintf("could not raise RLIMIT_NOFILE to %d (%v); ran with %d", fileLimit, limitErr, limit))
	}

	fmt.Printf("bench: memory: starting a pgshard for %d idle clients\n", idleClients)
	shard, metricsAddr, err := startIdlePgshard(ctx, e.pgshardBin, e.dir, e.pg.URL("", "", appDB))
	if err != nil {
		return err
	}
	sc, err := measureIdle(ctx, shard, metricsAddr)
	err = errors.Join(err, shard.stop())
	if err != nil {
		return fmt.Errorf("pgshard: %w", err)
	}

	fmt.Printf("bench: memory: starting a PgBouncer for %d idle clients\n", idleClients)
	bouncer, err := startIdlePgBouncer(ctx, e.bouncerBin, e.dir, e.cred, e.pg.Port())
	if err != nil {
		return err
	}
	bc, err := measureIdle(ctx, bouncer, "")
	err = errors.Join(err, bouncer.stop())
	if err != nil {
		return fmt.Errorf("PgBouncer: %w", err)
	}

	perShard, perBouncer := sc.rssPerClient(), bc.rssPerClient()
	res.addGoal(goal{
		figure: "RSS per idle client (pgshard)",
		value:  fmt.Sprintf("%.1f KiB", perShard),
		anchor: fmt.Sprintf("%.1f KiB (PgBouncer)", perBouncer),
		ratio:  ratio(perShard, perBouncer, perShard >= 0 && perBouncer > 0),
		goal:   fmt.Sprintf("≤ %.0f KiB", rssGoalKiB),
		met:    yesNo(perShard <= rssGoalKiB),
		note: strings.Join(append(notes, fmt.Sprintf(
			"VmRSS with %d idle clients logged in (trust, no TLS) minus before: pgshard %d → %d KiB, PgBouncer %d → %d KiB",
			idleClients, sc.rssBefore, sc.rssAfter, bc.rssBefore, bc.rssAfter)), "; "),
	})
	perGoroutines := float64(sc.after.goroutines-sc.before.goroutines) / idleClients
	res.addGoal(goal{
		figure: "goroutines per idle client",
		value:  fmt.Sprintf("%.2f", perGoroutines),
		anchor: "–",
		ratio:  "–",
		goal:   fmt.Sprintf("≤ %.0f", goroutineGoal),
		// A few goroutines of the server's own (pool maintenance, a
		// login in flight) come and go: per client, compare at the
		// precision shown.
		met: yesNo(math.Round(perGoroutines*100)/100 <= goroutineGoal),
		note: fmt.Sprintf("go_goroutines of pgshard %d → %d with %d idle clients; per client, Go heap in use %.1f KiB, goroutine stacks %.1f KiB",
			sc.before.goroutines, sc.after.goroutines, idleClients,
			float64(sc.after.heapInuse-sc.before.heapInuse)/1024/idleClients,
			float64(sc.after.stackInuse-sc.before.stackInuse)/1024/idleClients),
	})
	return nil
}

// raiseFileLimit raises the soft and, if need be, the hard RLIMIT_NOFILE
// of the bench to at least want; the processes it starts from now on
// inherit it. It returns the soft limit in force afterwards, and why it is
// lower than want.
func raiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised)
	if err != nil {
		// Without the right to raise the hard limit, take all of it.
		raised = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err2 != nil {
			return lim.Cur, errors.Join(err, err2)
		}
		return lim.Max, err
	}
	return want, nil
}

// measureIdle opens idleClients idle clients to d, measuring d before and
// after, then closes them. With metricsAddr it counts goroutines there too.
func measureIdle(ctx context.Context, d *daemon, metricsAddr string) (idleCost, error) {
	var c idleCost
	pid := d.cmd.Process.Pid
	var err error
	if c.rssBefore, err = readVmRSS(pid); err != nil {
		return c, err
	}
	if metricsAddr != "" {
		if c.before, err = readGoMetrics(ctx, metricsAddr); err != nil {
			return c, err
		}
	}
	start := time.Now()
	conns, err := openIdleClients(ctx, d.port, idleClients, idleDialers)
	defer closeAll(conns)
	if err != nil {
		return c, fmt.Errorf("%d of %d idle clients logged in: %w", len(conns), idleClients, err)
	}
	fmt.Printf("bench: memory: %d clients logged in to %s in %v\n", len(conns), d.name, time.Since(start).Round(time.Millisecond))
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return c, ctx.Err()
	}
	if c.rssAfter, err = readVmRSS(pid); err != nil {
		return c, err
	}
	if metricsAddr != "" {
		if c.after, err = readGoMetrics(ctx, metricsAddr); err != nil {
			return c, err
		}
	}
	// The clients must all still be there: a proxy that dropped some
	// would look cheaper than it is.
	if err := pingAll(conns); err != nil {
		return c, fmt.Errorf("after measuring: %w", err)
	}
	return c, nil
}

// startIdlePgshard starts pgshard in front of backendURL for the idle
// clients, and returns it and the host:port of its metrics.
func startIdlePgshard(ctx context.Context, bin, dir, backendURL string) (*daemon, string, error) {
	port, err1 := freePort()
	metricsPort, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", err
	}
	metricsAddr := net.JoinHostPort(host, strconv.Itoa(metricsPort))
	config := filepath.Join(dir, "pgshard-memory.yaml")
	if err := os.WriteFile(config, []byte(idlePgshardConfig(port, metricsAddr, backendURL)), 0o600); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-config", config)
	cmd.Dir = dir
	d, err := startDaemon(ctx, "pgshard-memory", cmd, nil, port, filepath.Join(dir, "pgshard-memory.log"))
	return d, metricsAddr, err
}

// idlePgshardConfig is the configuration of the memory suite's pgshard:
// appUser logs in without a password, and up to twice idleClients may.
func idlePgshardConfig(port int, metricsAddr, backendURL string) string {
	return fmt.Sprintf(`# Written by the pgshard bench (memory suite).
listen: %q
pool_mode: transaction
max_client_conn: %d
metrics_listen: %q
log_level: warn

users:
  - name: %s
    auth: trust

databases:
  - name: %s
    backend_user: %s
    backend_password: %s
    pool_size: %d
    shards:
      - name: s0
        primary: %q
`, net.JoinHostPort(host, strconv.Itoa(port)), 2*idleClients, metricsAddr, appUser, appDB, appUser, appPassword, poolSize, backendURL)
}

// startIdlePgBouncer starts PgBouncer in front of the PostgreSQL server on
// pgPort for the idle clients, as cred when not nil.
func startIdlePgBouncer(ctx context.Context, bin, dir string, cred *syscall.Credential, pgPort int) (*daemon, error) {
	return launchPgBouncer(ctx, bin, dir, "pgbouncer-memory", cred, func(userlist string, port int) string {
		return idlePgBouncerIni(userlist, port, pgPort)
	})
}

// idlePgBouncerIni is the memory suite's PgBouncer configuration: that of
// pgBouncerIni's transaction-mode database, with trust logins (the user
// must still be in userlist, whose password it logs in to PostgreSQL with)
// and room for idleClients and a fifth more (PgBouncer sizes its file
// descriptors by max_client_conn, and may not raise the limit).
func idlePgBouncerIni(userlist string, port, pgPort int) string {
	return fmt.Sprintf(`;; Written by the pgshard bench (memory suite).
[databases]
%s = host=%s port=%d dbname=%s

[pgbouncer]
listen_addr = %s
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = %d
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`, appDB, host, pgPort, appDB, host, port, userlist, poolSize, idleClients+idleClients/5)
}

// openIdleClients logs n clients in as appUser to appDB on port, dialers
// at a time, and returns their connections, idle after ReadyForQuery. On
// error it returns those that logged in, for the caller to close.
func openIdleClients(ctx context.Context, port, n, dialers int) ([]net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	startup := startupPacket(appUser, appDB)
	var (
		mu       sync.Mutex
		conns    = make([]net.Conn, 0, n)
		firstErr error
		next     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range dialers {
		wg.Go(func() {
			for range next {
				c, err := idleLogin(ctx, addr, startup)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
feed:
	for range n {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return conns, firstErr
}

// idleLogin dials addr, sends startup and reads until ReadyForQuery.
func idleLogin(ctx context.Context, addr string, startup []byte) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, idleLoginTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	err = c.SetDeadline(deadline)
	if err == nil {
		_, err = c.Write(startup)
	}
	if err == nil {
		err = readUntilReady(bufio.NewReaderSize(c, 1024))
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

// startupPacket is a protocol 3.0 StartupMessage logging user in to db.
func startupPacket(user, db string) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], 3<<16)
	for _, kv := range []string{"user", user, "database", db} {
		b = append(append(b, kv...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// readUntilReady reads a server's answer to a StartupMessage up to
// ReadyForQuery. A request for a password, or an ErrorResponse, is an
// error.
func readUntilReady(r io.Reader) error {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return fmt.Errorf("message %q of invalid length %d", hdr[0], n+4)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		switch hdr[0] {
		case 'Z':
			return nil
		case 'E':
			return fmt.Errorf("server error: %s", errorFields(body))
		case 'R':
			if len(body) < 4 {
				return errors.New("short authentication message")
			}
			if code := binary.BigEndian.Uint32(body); code != 0 {
				return fmt.Errorf("the server asks for authentication (code %d), not trust", code)
			}
		}
	}
}

// errorFields is the severity, code and message of an ErrorResponse body.
func errorFields(body []byte) string {
	var parts []string
	for _, f := range strings.Split(string(body), "\x00") {
		if len(f) > 1 && strings.ContainsRune("SCM", rune(f[0])) {
			parts = append(parts, f[1:])
		}
	}
	return strings.Join(parts, " ")
}

// pingAll checks that every connection is still open: a peek that does
// not wait must find nothing to read, rather than the end of the stream
// or a message (such as an error before a disconnection).
func pingAll(conns []net.Conn) error {
	closed := 0
	for _, c := range conns {
		if !idleOpen(c) {
			closed++
		}
	}
	if closed > 0 {
		return fmt.Errorf("the proxy closed or wrote to %d of %d idle clients", closed, len(conns))
	}
	return nil
}

// idleOpen reports whether c is open with nothing to read.
func idleOpen(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		one  [1]byte
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	return err == nil && n <= 0 && errors.Is(rerr, syscall.EAGAIN)
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// readVmRSS is the resident memory of process pid in KiB.
func readVmRSS(pid int) (int64, error) {
	b, err := procMemory(pid, "VmRSS")
	return b >> 10, err
}

// readGoMetrics reads the Go runtime's figures from the Prometheus
// metrics at addr.
func readGoMetrics(ctx context.Context, addr string) (goMetrics, error) {
	var m goMetrics
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return m, err
	}
	var errs []error
	for _, g := range []struct {
		name string
		v    *int64
	}{
		{"go_goroutines", &m.goroutines},
		{"go_memstats_heap_inuse_bytes", &m.heapInuse},
		{"go_memstats_stack_inuse_bytes", &m.stackInuse},
	} {
		v, err := parseGauge(string(b), g.name)
		*g.v = int64(v)
		errs = append(errs, err)
	}
	return m, errors.Join(errs...)
}

// parseGauge returns the value of the unlabelled sample name in the
// Prometheus text exposition format.
func parseGauge(text, name string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("no %s in the metrics", name)
}
