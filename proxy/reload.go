package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/proxy/auth"
)

// Live reload. What a reload may change (users, databases, their shards,
// rules and pools, limits and timeouts) lives in an immutable snapshot
// that the server swaps atomically. A client logging in takes the current
// snapshot's database; a client already in takes it up between
// transactions (session.refreshDB), never inside one. A database the new
// configuration leaves unchanged is the same object, pools and all; a
// changed one is built anew, keeping the pools whose servers and sizes did
// not change, and the old one is retired: its other pools close once its
// last session has moved on.

// snapshot is one configuration in force.
type snapshot struct {
	opts  Options
	users map[string]*user
	dbs   map[string]*database
}

// current returns the configuration in force.
func (s *Server) current() *snapshot { return s.snap.Load() }

// withDefaults fills the Options fields left zero.
func withDefaults(opts Options) Options {
	if opts.ClientLoginTimeout <= 0 {
		opts.ClientLoginTimeout = DefaultClientLoginTimeout
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.ServerConnectTimeout <= 0 {
		opts.ServerConnectTimeout = DefaultServerConnectTimeout
	}
	if opts.PreparedStatementCacheSize <= 0 {
		opts.PreparedStatementCacheSize = DefaultPreparedStatementCacheSize
	}
	if opts.PoolMode == "" {
		opts.PoolMode = PoolTransaction
	}
	if opts.MaxClientConn <= 0 {
		opts.MaxClientConn = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.InstanceID == "" {
		opts.InstanceID = DefaultInstanceID()
	}
	if opts.MaxMergeMemory <= 0 {
		opts.MaxMergeMemory = DefaultMaxMergeMemory
	}
	if opts.TwoPhaseTimeout <= 0 {
		opts.TwoPhaseTimeout = DefaultTwoPhaseTimeout
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	healthDefaults(&opts)
	return opts
}

// build checks opts and makes its snapshot. old, when set, is the
// configuration in force: its databases are kept where unchanged.
func (s *Server) build(opts Options, old *snapshot) (*snapshot, error) {
	snap := &snapshot{opts: opts, users: map[string]*user{}, dbs: map[string]*database{}}
	var errs []error
	if opts.TLSRequired && opts.TLS == nil {
		errs = append(errs, errors.New("TLS is required of clients but no certificate is configured"))
	}
	for _, u := range opts.Users {
		v, err := auth.ParseVerifier(u.Name, u.Password)
		if err != nil && u.Auth != AuthTrust {
			errs = append(errs, fmt.Errorf("user %q: %w", u.Name, err))
			continue
		}
		snap.users[u.Name] = &user{User: u, verifier: v}
	}
	for _, d := range opts.Databases {
		if len(d.Shards) == 0 {
			errs = append(errs, fmt.Errorf("database %q has no shards", d.Name))
			continue
		}
		for _, sh := range d.Shards {
			for _, url := range append([]string{sh.Primary}, sh.Replicas...) {
				if _, err := pgconn.ParseConfig(url); err != nil {
					errs = append(errs, fmt.Errorf("database %q shard %q: %w", d.Name, sh.Name, err))
				}
			}
		}
		if d.PoolSize <= 0 {
			d.PoolSize = DefaultPoolSize
		}
		if d.TwoPhaseCommit && d.BackendUser == "" && len(d.Shards) > 1 {
			errs = append(errs, fmt.Errorf("database %q: two-phase commit needs backend_user, which recovery logs in as; set it, or turn two_phase_commit off", d.Name))
		}
		if old != nil {
			if od := old.dbs[d.Name]; od != nil && reflect.DeepEqual(od.Database, d) && samePoolOptions(old.opts, opts) {
				snap.dbs[d.Name] = od // unchanged: sessions and pools go on
				continue
			}
		}
		db := &database{Database: d, pools: map[poolKey]*backendPool{}}
		if routed(&d) {
			if opts.PoolMode == PoolSession {
				errs = append(errs, fmt.Errorf("database %q: pool_mode session cannot route statements to shards or replicas; use transaction", d.Name))
				continue
			}
			rt, err := newRoutes(&d, opts.Logger)
			if err != nil {
				errs = append(errs, fmt.Errorf("database %q: %w", d.Name, err))
				continue
			}
			db.rt = rt
		}
		for _, sh := range d.Shards {
			db.shards = append(db.shards, newShardState(len(sh.Replicas)))
			if len(sh.Replicas) > 0 && d.ReadWriteSplit {
				db.monitored = d.BackendUser != ""
			}
		}
		if !db.monitored && d.ReadWriteSplit && d.BackendUser == "" {
			opts.Logger.Warn("replica lag is not monitored without backend_user: max_replica_lag is not enforced and read_your_writes lsn keeps a client's reads on the primary after it writes", "database", d.Name)
		}
		if old != nil && samePoolOptions(old.opts, opts) {
			if od := old.dbs[d.Name]; od != nil {
				db.reusePools(od)
			}
		}
		snap.dbs[d.Name] = db
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return snap, nil
}

// samePoolOptions reports whether two configurations make backend pools
// alike.
func samePoolOptions(a, b Options) bool {
	return a.ServerConnectTimeout == b.ServerConnectTimeout && a.ServerIdleTimeout == b.ServerIdleTimeout &&
		a.ServerLifetime == b.ServerLifetime && a.QueryWaitTimeout == b.QueryWaitTimeout &&
		a.PreparedStatementCacheSize == b.PreparedStatementCacheSize
}

// reusePools takes over od's pools whose server, shard position and size
// are unchanged in d, so their connections stay open.
func (d *database) reusePools(od *database) {
	if d.PoolSize != od.PoolSize || d.MinPoolSize != od.MinPoolSize ||
		d.BackendUser != od.BackendUser || d.BackendPassword != od.BackendPassword {
		return
	}
	od.mu.Lock()
	defer od.mu.Unlock()
	for k, p := range od.pools {
		if k.shard < len(d.Shards) && k.shard < len(od.Shards) && reflect.DeepEqual(d.Shards[k.shard], od.Shards[k.shard]) {
			d.pools[k] = p
		}
	}
}

// Reload re-reads the configuration through Options.LoadConfig and
// applies it. An invalid configuration, or one that changes what only a
// restart can (listen, pool_mode, instance_id), changes nothing and is
// returned.
func (s *Server) Reload() error {
	if s.opts.LoadConfig == nil {
		return errors.New("pgshard was not started from a configuration file: nothing to reload")
	}
	opts, err := s.opts.LoadConfig()
	if err == nil {
		err = s.apply(withDefaults(opts))
	}
	s.metrics.Reloaded(err == nil)
	if err != nil {
		s.log.Error("configuration reload failed; the old configuration stays", "error", err)
		return err
	}
	s.log.Info("configuration reloaded")
	return nil
}

// apply makes opts the configuration in force.
func (s *Server) apply(opts Options) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var errs []error
	if opts.Listen != s.opts.Listen {
		errs = append(errs, fmt.Errorf("listen: changing it (%q to %q) needs a restart", s.opts.Listen, opts.Listen))
	}
	if opts.PoolMode != s.opts.PoolMode {
		errs = append(errs, fmt.Errorf("pool_mode: changing it (%s to %s) needs a restart", s.opts.PoolMode, opts.PoolMode))
	}
	if opts.InstanceID != s.opts.InstanceID {
		errs = append(errs, fmt.Errorf("instance_id: changing it needs a restart"))
	}
	old := s.current()
	snap, err := s.build(opts, old)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.snap.Store(snap)
	for name, od := range old.dbs {
		if snap.dbs[name] != od {
			od.retired.Store(true)
			if od.stopMonitors != nil {
				od.stopMonitors()
			}
			s.retired = append(s.retired, od)
		}
	}
	for name, d := range snap.dbs {
		if old.dbs[name] != d {
			s.startMonitors(d)
		}
	}
	s.collectLocked()
	return nil
}

// startMonitors starts the health checks of d's servers (which sample
// replica lag too), if it has any, until the server stops or d is
// retired.
func (s *Server) startMonitors(d *database) {
	if !d.checked() || s.monitorCtx == nil {
		return
	}
	ctx, cancel := context.WithCancel(s.monitorCtx)
	d.stopMonitors = cancel
	s.monitors.Add(1)
	go func() {
		defer s.monitors.Done()
		s.checkHealth(ctx, d)
	}()
}

// collect closes the pools of retired databases no session uses any
// more, except those a database in force took over.
func (s *Server) collect() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.collectLocked()
}

func (s *Server) collectLocked() {
	live := map[*backendPool]bool{}
	for _, d := range s.current().dbs {
		d.mu.Lock()
		for _, p := range d.pools {
			live[p] = true
		}
		d.mu.Unlock()
	}
	var kept []*database
	for _, od := range s.retired {
		if od.sessions.Load() > 0 {
			kept = append(kept, od)
			od.mu.Lock()
			for _, p := range od.pools {
				live[p] = true
			}
			od.mu.Unlock()
		}
	}
	for _, od := range s.retired {
		if slices.Contains(kept, od) {
			continue
		}
		od.mu.Lock()
		for _, p := range od.pools {
			if !live[p] {
				p.Close()
			}
		}
		od.mu.Unlock()
	}
	s.retired = kept
}

// refreshDB moves the session to the configuration in force, between
// transactions: it is called when the session holds no backend and is
// in no transaction.
func (s *session) refreshDB() {
	cur := s.srv.current().dbs[s.db.Name]
	if cur == nil || cur == s.db || s.attached() || s.inTx() || len(s.deferred) > 0 || s.copyin != nil || s.xscatter != nil {
		return // unchanged, or removed: a removed database serves its clients until they leave
	}
	u := s.srv.current().users[s.user]
	buser, bpass, bp, err := s.srv.sessionPool(cur, u, s.user)
	if err != nil {
		s.log.Warn("staying on the previous configuration of the database", "error", err)
		return
	}
	old := s.db
	s.db, s.rt, s.pool, s.buser, s.bpass = cur, cur.rt, bp, buser, bpass
	s.mu.Lock()
	s.lastCommit = nil
	s.mu.Unlock()
	cur.sessions.Add(1)
	if old.sessions.Add(-1) == 0 && old.retired.Load() {
		s.srv.collect()
	}
}

// leaveDB is the session's end as a user of its database.
func (s *session) leaveDB() {
	if s.db.sessions.Add(-1) == 0 && s.db.retired.Load() {
		s.srv.collect()
	}
}
