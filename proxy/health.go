package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Health checks. In every database with a backend_user, one goroutine per
// shard checks each of the shard's servers (primary and replicas): it
// keeps a connection to the server as backend_user and runs healthQuery
// on it every HealthCheckInterval (every replicaInterval where replica lag
// is monitored, the query doubling as the WAL sample), connecting again
// when needed, all within HealthCheckTimeout. A pool's dial that fails for
// the server's sake (refused, timed out, shutting down; not a bad
// password) counts as a failed check too. What the checks learn lives in
// the shard's shardState, the one place that knows each server's health:
//
//   - A primary that fails is down. Statements that need it fail at once
//     with SQLSTATE 08006 (errServerDown) rather than wait for a backend,
//     until a check passes again; then its pools dial again on their own.
//     Without backend_user nothing checks, and a failed dial holds the
//     primary down for HealthCheckInterval, after which the next statement
//     dials again.
//   - A replica that fails (a check, a dial, or a backend lost while it
//     served a read) is banned for BanTime: reads go to the other replicas
//     or the primary. After the ban it serves again once a check passes.
//     Ban and Unban do the same by hand.
//   - With Shard.RoleAuto, when the primary is down and a check finds a
//     replica no longer in recovery (it was promoted), that replica takes
//     the shard's writes (shardState.writer) until the configuration is
//     reloaded or pgshard restarts; the old primary is not used again
//     meanwhile, whether it comes back as a primary or as a replica.

// Defaults of the health-check Options left zero.
const (
	DefaultHealthCheckInterval = 10 * time.Second
	DefaultHealthCheckTimeout  = 3 * time.Second
	DefaultBanTime             = 60 * time.Second
)

// healthQuery is the check: whether the server is a standby, and its WAL
// position (replay position on a standby).
const healthQuery = "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END"

// serverHealth is what is known of one server's health. Its shardState's
// mu guards it.
type serverHealth struct {
	err   error     // why the server last failed a check or a dial; nil: up
	since time.Time // when it went down
	// retry is, for a server marked down by a dial where nothing checks,
	// when statements may dial it again.
	retry   time.Time
	standby bool // the last check found it in recovery
}

// healthDefaults fills the health-check options left zero.
func healthDefaults(o *Options) {
	if o.HealthCheckInterval <= 0 {
		o.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if o.HealthCheckTimeout <= 0 {
		o.HealthCheckTimeout = DefaultHealthCheckTimeout
	}
	if o.BanTime <= 0 {
		o.BanTime = DefaultBanTime
	}
}

// checked reports whether d's servers are health-checked: the checks log
// in as backend_user.
func (d *database) checked() bool { return d.BackendUser != "" }

// checkHealth checks d's servers until ctx ends.
func (s *Server) checkHealth(ctx context.Context, d *database) {
	var wg sync.WaitGroup
	for i := range d.Shards {
		wg.Go(func() { s.checkShard(ctx, d, i) })
	}
	wg.Wait()
}

// probe is the health-check connection to one server, owned by its
// shard's checkShard goroutine.
type probe struct {
	cfg  *pgconn.Config
	conn *pgconn.PgConn
}

// probeResult is one check's outcome.
type probeResult struct {
	err     error
	standby bool
	lsn     uint64
	lsnOK   bool
	at      time.Time // when the reply came
}

// checkShard checks a shard's servers until ctx ends.
func (s *Server) checkShard(ctx context.Context, d *database, shard int) {
	sh := d.Shards[shard]
	probes := make([]*probe, 0, 1+len(sh.Replicas))
	for _, url := range append([]string{sh.Primary}, sh.Replicas...) {
		cfg, err := pgconn.ParseConfig(url) // NewServer checked it
		if err != nil {
			s.log.Error("health check", "database", d.Name, "shard", sh.Name, "error", err)
			return
		}
		cfg.User, cfg.Password = d.BackendUser, d.BackendPassword
		cfg.ConnectTimeout = s.opts.HealthCheckTimeout
		cfg.RuntimeParams = map[string]string{"application_name": "pgshard health check"}
		probes = append(probes, &probe{cfg: cfg})
	}
	defer func() {
		for _, p := range probes {
			p.close()
		}
	}()
	every := s.opts.HealthCheckInterval
	if d.monitored {
		every = min(every, replicaInterval)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	results := make([]probeResult, len(probes))
	for {
		// The primary first, then the replicas at once: read_your_writes
		// lsn relies on a replica's replay position being sampled after
		// the primary's WAL position it is compared with.
		results[0] = probes[0].run(ctx, s.opts.HealthCheckTimeout)
		var wg sync.WaitGroup
		for k := 1; k < len(probes); k++ {
			wg.Go(func() { results[k] = probes[k].run(ctx, s.opts.HealthCheckTimeout) })
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		s.noteChecks(d, shard, results)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// run checks the probe's server, connecting first if needed.
func (p *probe) run(ctx context.Context, timeout time.Duration) (r probeResult) {
	defer func() { r.at = time.Now() }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.conn == nil {
		c, err := pgconn.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return probeResult{err: err}
		}
		p.conn = c
	}
	rs, err := p.conn.Exec(ctx, healthQuery).ReadAll()
	if err == nil && (len(rs) != 1 || len(rs[0].Rows) != 1 || len(rs[0].Rows[0]) != 2) {
		err = errors.New("unexpected reply to the health check query")
	}
	if err != nil {
		p.close()
		return probeResult{err: err}
	}
	row := rs[0].Rows[0]
	r.standby = string(row[0]) == "t"
	if row[1] != nil {
		r.lsn, r.lsnOK = parseLSN(string(row[1]))
	}
	return r
}

func (p *probe) close() {
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
}

// noteChecks records a round of checks of a shard's servers: [0] the
// primary, [i] replica i-1.
func (s *Server) noteChecks(d *database, shard int, rs []probeResult) {
	st := d.shards[shard]
	st.mu.Lock()
	defer st.mu.Unlock()
	if r := rs[st.writer]; r.err == nil && r.lsnOK && !r.standby {
		st.primary, st.primAt = r.lsn, r.at
	}
	for k, r := range rs {
		if k > 0 {
			rep := &st.replicas[k-1]
			rep.known = r.err == nil && r.lsnOK
			if rep.known {
				rep.replay, rep.replayAt = r.lsn, r.at
				if r.lsn >= st.primary {
					rep.caughtUp = r.at
				}
			}
		}
		if r.err == nil {
			st.health[k].standby = r.standby
		}
		s.setHealthLocked(d, st, shard, k, r.err, true)
	}
	if d.Shards[shard].RoleAuto && st.writer == 0 && st.health[0].err != nil {
		for k := 1; k < len(rs); k++ {
			if rs[k].err == nil && !rs[k].standby {
				st.writer = k
				s.log.Warn("the primary is down and a replica was promoted: it takes the shard's writes (role: auto) until the configuration is reloaded",
					"database", d.Name, "shard", d.Shards[shard].Name, "primary", serverAddr(d, shard, 0), "promoted", serverAddr(d, shard, k))
				break
			}
		}
	}
}

// setHealthLocked records that server k of a shard passed (err nil) or
// failed a check (byCheck) or a dial. A failing replica is banned. Called
// with st.mu held.
func (s *Server) setHealthLocked(d *database, st *shardState, shard, k int, err error, byCheck bool) {
	h := &st.health[k]
	now := time.Now()
	switch {
	case err != nil:
		if h.err == nil {
			h.since = now
			s.log.Warn("backend server down", "database", d.Name, "shard", d.Shards[shard].Name,
				"server", serverAddr(d, shard, k), "role", st.roleLocked(k), "error", err)
		}
		h.err = err
		if !byCheck {
			h.retry = now.Add(s.opts.HealthCheckInterval)
		}
		if k > 0 && k != st.writer {
			s.banLocked(st, k)
		}
	case h.err != nil:
		s.log.Info("backend server up again", "database", d.Name, "shard", d.Shards[shard].Name,
			"server", serverAddr(d, shard, k), "role", st.roleLocked(k), "down_for", now.Sub(h.since).Round(time.Millisecond))
		h.err = nil
	}
	s.bannedLocked(d, st, shard)
}

// bannedLocked sets the banned-servers gauge of a shard from its state:
// servers down, and replicas banned for reads. Called with st.mu held.
func (s *Server) bannedLocked(d *database, st *shardState, shard int) {
	if s.metrics == nil {
		return
	}
	now := time.Now()
	primary, replicas := 0, 0
	for k := range st.health {
		out := st.health[k].err != nil || k > 0 && k != st.writer && now.Before(st.replicas[k-1].downUntil)
		switch {
		case !out:
		case k == st.writer:
			primary++
		default:
			replicas++
		}
	}
	name := d.Shards[shard].Name
	s.metrics.SetBanned(d.Name, name, "primary", primary)
	if len(st.replicas) > 0 {
		s.metrics.SetBanned(d.Name, name, "replica", replicas)
	}
}

// roleLocked names server k's role, for logs and messages.
func (st *shardState) roleLocked(k int) string {
	switch {
	case k == st.writer && k > 0:
		return "promoted replica"
	case k == 0:
		return "primary"
	}
	return "replica"
}

// banLocked takes replica k out of use for reads for ban_time. Called
// with st.mu held.
func (s *Server) banLocked(st *shardState, k int) {
	r := &st.replicas[k-1]
	if until := time.Now().Add(s.opts.BanTime); until.After(r.downUntil) {
		r.downUntil = until
	}
}

// dialed records the outcome of a pool's dial: a server that refuses
// connections or cannot take them is down (see setHealthLocked). Where
// checks run only they say when it is back.
func (s *Server) dialed(ctx context.Context, d *database, p *backendPool, err error) {
	if ctx.Err() != nil || (err != nil && !serverFault(err)) || (err == nil && d.checked()) {
		return
	}
	st := d.shards[p.shardIdx]
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil || st.health[p.server].err != nil {
		s.setHealthLocked(d, st, p.shardIdx, p.server, err, false)
	}
}

// serverFault reports whether a failed login is the server's doing (it is
// unreachable, refused the connection, or is starting or shutting down)
// rather than the client's (credentials, database, connection limits).
func serverFault(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "57P")
	}
	return true
}

// healthyPool returns the pool the session's next backend comes from: its
// pool, or, when that is a shard's primary and role: auto promoted a
// replica, the replica's. When that server takes the shard's writes and is
// down, the error the client gets at once.
func (s *session) healthyPool() (*backendPool, error) {
	p := s.pool
	st := s.db.shards[p.shardIdx]
	st.mu.Lock()
	writer := st.writer
	st.mu.Unlock()
	if p.server == 0 && writer != 0 {
		np, err := s.srv.pool(s.db, s.buser, s.bpass, p.shardIdx, 0)
		if err != nil {
			return nil, err
		}
		p = np
	}
	if p.server != writer {
		return p, nil
	}
	st.mu.Lock()
	h, role := st.health[writer], st.roleLocked(writer)
	st.mu.Unlock()
	now := time.Now()
	if h.err == nil || (!s.db.checked() && !now.Before(h.retry)) {
		return p, nil
	}
	next := fmt.Sprintf("checks it every %s", s.srv.checkEvery(s.db))
	if !s.db.checked() {
		next = fmt.Sprintf("tries it again in %s", h.retry.Sub(now).Round(time.Millisecond))
	}
	why, hint := downWhy(h.err)
	return nil, &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: h.err,
		Message: fmt.Sprintf("shard %s is unavailable: its %s %s %s (for %s); pgshard %s and reconnects on its own once it answers",
			p.shard, role, serverAddr(s.db, p.shardIdx, writer), why, now.Sub(h.since).Round(time.Millisecond), next),
		Detail: fmt.Sprintf("Last error: %v", h.err),
		Hint:   hint}
}

// downWhy says how a server that failed its last check is unavailable,
// and what to do: it is down, or it answers but refuses pgshard's login
// (pg_hba.conf, credentials) or its TLS certificate fails verification,
// which is a matter of configuration.
func downWhy(err error) (why, hint string) {
	const fixConfig = "Check the shard's connection string (sslmode, sslrootcert), backend_user and backend_password, and the server's pg_hba.conf."
	var pe *pgconn.PgError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &pe) && !serverFault(pe):
		return "refuses pgshard's login: " + pe.Message, fixConfig
	case errors.As(err, &ce):
		return "has a TLS certificate that fails verification: " + ce.Err.Error(), fixConfig
	}
	return "is down", "Retry later; statements that need other shards, or this shard's replicas, are not affected."
}

// checkEvery is how often d's servers are checked.
func (s *Server) checkEvery(d *database) time.Duration {
	if d.monitored {
		return min(s.opts.HealthCheckInterval, replicaInterval)
	}
	return s.opts.HealthCheckInterval
}

// writer returns the server that takes a shard's writes: 0, the primary,
// or a replica role: auto promoted.
func (d *database) writer(shard int) int {
	st := d.shards[shard]
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.writer
}

// serverAddr is the host:port of server k of a shard (0: the primary, i:
// replica i-1).
func serverAddr(d *database, shard, k int) string {
	sh := d.Shards[shard]
	url := sh.Primary
	if k > 0 {
		url = sh.Replicas[k-1]
	}
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "?"
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// serverHealth tells the admin console how server k of a shard is (0: the
// primary, i: replica i-1): "down" (failing its checks or dials),
// "banned" (a replica out of use for reads until its ban ends) or "up",
// and how many bytes of WAL it is behind its shard's primary as last
// sampled (0 for the server taking the writes, -1 when unknown).
func (d *database) serverHealth(shard, server int) (health string, lagBytes int64) {
	st := d.shards[shard]
	st.mu.Lock()
	defer st.mu.Unlock()
	lagBytes = -1
	switch {
	case server == st.writer:
		lagBytes = 0
	case server > 0 && st.replicas[server-1].known:
		if r := st.replicas[server-1]; st.primary > r.replay {
			lagBytes = int64(st.primary - r.replay)
		} else {
			lagBytes = 0
		}
	}
	switch {
	case st.health[server].err != nil:
		return "down", lagBytes
	case server > 0 && server != st.writer && time.Now().Before(st.replicas[server-1].downUntil):
		return "banned", lagBytes
	}
	return "up", lagBytes
}

// Ban takes the replicas at hostport ("host:port", as in the shards'
// connection strings) out of use for reads for ban_time, or until Unban;
// reads go to the shards' other replicas or primaries meanwhile. A
// primary, or a replica role: auto promoted, cannot be banned: a primary
// that fails its health checks makes its shard's statements fail fast
// instead. It is safe for concurrent use.
func (s *Server) Ban(hostport string) error { return s.setBan(hostport, true) }

// Unban lifts a ban of the replicas at hostport; a replica that fails its
// health checks stays out of use until one passes. It is safe for
// concurrent use.
func (s *Server) Unban(hostport string) error { return s.setBan(hostport, false) }

func (s *Server) setBan(hostport string, ban bool) error {
	type target struct {
		d        *database
		shard, k int
	}
	var found []target
	var all []string
	for _, d := range s.current().dbs {
		for i, sh := range d.Shards {
			for k := range 1 + len(sh.Replicas) {
				a := serverAddr(d, i, k)
				all = append(all, a)
				if a == hostport {
					found = append(found, target{d, i, k})
				}
			}
		}
	}
	if len(found) == 0 {
		slices.Sort(all)
		return fmt.Errorf("no configured server is at %q; the servers are %s", hostport, strings.Join(slices.Compact(all), ", "))
	}
	slices.SortFunc(found, func(a, b target) int {
		return cmp.Or(cmp.Compare(a.d.Name, b.d.Name), cmp.Compare(a.shard, b.shard), cmp.Compare(a.k, b.k))
	})
	if ban {
		for _, t := range found {
			if t.k == 0 || t.k == t.d.writer(t.shard) {
				return fmt.Errorf("%s is the %s of shard %s of database %q: only replicas can be banned (a primary that fails its health checks makes its shard's statements fail at once instead)",
					hostport, t.d.shards[t.shard].role(t.k), t.d.Shards[t.shard].Name, t.d.Name)
			}
		}
	}
	for _, t := range found {
		st := t.d.shards[t.shard]
		st.mu.Lock()
		if ban {
			s.banLocked(st, t.k)
		} else if t.k > 0 {
			st.replicas[t.k-1].downUntil = time.Time{}
		}
		s.bannedLocked(t.d, st, t.shard)
		st.mu.Unlock()
		what := "server unbanned"
		if ban {
			what = "server banned for reads"
		}
		s.log.Info(what, "database", t.d.Name, "shard", t.d.Shards[t.shard].Name, "server", hostport, "ban_time", s.opts.BanTime)
	}
	return nil
}

// role is roleLocked taking the lock.
func (st *shardState) role(k int) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.roleLocked(k)
}
