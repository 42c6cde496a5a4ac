package proxy

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// The admin console: a user of Options.AdminUsers connecting to the
// database "pgshard" gets PgBouncer-style SHOW commands and the operations
// (PAUSE, RELOAD, ...) over the simple query protocol. Rows are text, with
// the types PgBouncer gives its columns (int8 for numbers, text else). The
// console runs on the client's connection goroutine; it holds no backend.

// adminDatabase is the database name of the admin console (config
// reserves it).
const adminDatabase = "pgshard"

// errAdminDone ends login when the client's admin console session is over.
var errAdminDone = errors.New("admin console session ended")

// adminServerVersion is the server_version the console reports: psql and
// drivers need a number to parse.
const adminServerVersion = "15.0 (pgshard)"

const (
	oidInt8 = 20
	oidText = 25
)

// adminConn is one admin console client. Owned by its connection's
// goroutine.
type adminConn struct {
	srv  *Server
	ctx  context.Context
	cw   *bufio.Writer
	user string
	out  []byte
}

// serveAdmin runs the admin console for an authenticated client until it
// leaves, and returns errAdminDone. A user not in AdminUsers is refused.
func (s *Server) serveAdmin(ctx context.Context, conn net.Conn, br *bufio.Reader, cw *bufio.Writer, u *user, st *startup) error {
	if u == nil || !slices.Contains(s.current().opts.AdminUsers, u.Name) {
		name := st.params["user"]
		return &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec,
			Message: fmt.Sprintf("user %q is not allowed to use the admin console (database %q)", name, adminDatabase),
			Hint:    "List the user in admin_users to let it connect to the admin console."}
	}
	conn.SetDeadline(time.Time{})
	log := s.log.With("user", u.Name, "database", adminDatabase, "client", conn.RemoteAddr().String())
	a := &adminConn{srv: s, ctx: ctx, cw: cw, user: u.Name}
	for _, kv := range [][2]string{
		{"application_name", st.params["application_name"]},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"integer_datetimes", "on"},
		{"server_encoding", "UTF8"},
		{"server_version", adminServerVersion},
		{"standard_conforming_strings", "on"},
		{"TimeZone", "UTC"},
	} {
		cw.Write(appendParameterStatus(nil, kv[0], kv[1]))
	}
	// A key for the client to hold; cancel requests with it find no
	// session and do nothing.
	b := appendHeader(nil, 'K', 8)
	b = binary.BigEndian.AppendUint32(b, uint32(s.nextToken())&^(1<<31))
	b = binary.BigEndian.AppendUint32(b, 0)
	cw.Write(b)
	cw.Write(appendReadyForQuery(nil, 'I'))
	if err := cw.Flush(); err != nil {
		return errAdminDone
	}
	log.Info("admin console connected")
	err := a.serve(br)
	if pe := (*pgError)(nil); errors.As(err, &pe) {
		cw.Write(appendErrorResponse(nil, err))
		cw.Flush()
	}
	log.Info("admin console disconnected", "error", err)
	return errAdminDone
}

// serve reads the client's messages until it leaves.
func (a *adminConn) serve(br *bufio.Reader) error {
	var body []byte
	skipToSync := false
	for {
		typ, n, err := peekHeader(br)
		if err != nil {
			return nil // the client went away
		}
		if n < 0 || n > a.srv.opts.MaxMessageSize {
			return newFatal(codeProtocolViolation, "invalid message length")
		}
		br.Discard(headerLen)
		if body, err = readFull(br, body, n); err != nil {
			return nil
		}
		switch typ {
		case 'X':
			return nil
		case 'Q':
			if skipToSync {
				continue // PostgreSQL too ignores all until Sync after an error
			}
			a.out = a.out[:0]
			// Copied: names in it outlive body (PAUSE keeps the database's).
			if err := a.query(strings.TrimRight(string(body), "\x00")); err != nil {
				a.out = appendErrorResponse(a.out, err)
			}
			a.out = appendReadyForQuery(a.out, 'I')
		case 'S':
			skipToSync = false
			a.out = appendReadyForQuery(a.out[:0], 'I')
		case 'P', 'B', 'D', 'E', 'C', 'H', 'F':
			if skipToSync {
				continue
			}
			skipToSync = typ != 'H'
			a.out = appendErrorResponse(a.out[:0], &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: "the admin console supports only the simple query protocol",
				Hint:    "Use the simple protocol: psql, or pgx with default_query_exec_mode=simple_protocol."})
			if typ == 'F' {
				skipToSync = false
				a.out = appendReadyForQuery(a.out, 'I')
			}
		case 'd', 'c', 'f':
			continue // no COPY here: ignore, as PostgreSQL does outside COPY
		default:
			return newFatal(codeProtocolViolation, "invalid frontend message type %q", typ)
		}
		if _, err := a.cw.Write(a.out); err != nil {
			return nil
		}
		if err := a.cw.Flush(); err != nil {
			return nil
		}
	}
}

// adminHelp is what SHOW HELP lists.
var adminHelp = []string{
	"SHOW HELP|POOLS|CLIENTS|SERVERS|STATS|SHARDS|CONFIG|VERSION",
	"SHOW ROUTE [<database>] <statement>",
	"PAUSE [<database>]",
	"RESUME [<database>]",
	"RELOAD",
	"BAN <host:port>",
	"UNBAN <host:port>",
	"SHUTDOWN",
}

// query runs one console command, appending its replies (but not
// ReadyForQuery) to a.out. Commands are case-insensitive and may end with
// a semicolon.
func (a *adminConn) query(text string) error {
	text = strings.TrimSpace(text)
	text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	if text == "" {
		a.out = append(a.out, 'I', 0, 0, 0, 4) // EmptyQueryResponse
		return nil
	}
	words := strings.Fields(text)
	cmd := strings.ToUpper(words[0])
	args := words[1:]
	a.srv.log.Info("admin command", "user", a.user, "command", cmd)
	s := a.srv
	switch cmd {
	case "SHOW":
		if len(args) == 0 {
			return errUnknownCommand(text)
		}
		what := strings.ToUpper(args[0])
		if what == "ROUTE" {
			_, rest, _ := strings.Cut(text, words[1])
			return a.showRoute(strings.TrimSpace(rest))
		}
		if len(args) > 1 {
			return errUnknownCommand(text)
		}
		var t *adminTable
		switch what {
		case "HELP":
			n := pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000",
				Message: "Console usage", Detail: "\t" + strings.Join(adminHelp, "\n\t")}
			a.out, _ = n.Encode(a.out)
			a.out = appendCommandComplete(a.out, "SHOW")
			return nil
		case "POOLS":
			t = s.showPools()
		case "CLIENTS":
			t = s.showClients()
		case "SERVERS":
			t = s.showServers()
		case "STATS":
			t = s.showStats()
		case "SHARDS":
			t = s.showShards()
		case "CONFIG":
			t = s.showConfig()
		case "VERSION":
			t = &adminTable{cols: []adminCol{{"version", oidText}}, rows: [][]any{{"pgshard " + version()}}}
		default:
			return errUnknownCommand(text)
		}
		a.out = t.appendTo(a.out)
		return nil
	case "PAUSE", "RESUME":
		if len(args) > 1 {
			return errUnknownCommand(text)
		}
		db := ""
		if len(args) == 1 {
			db = args[0]
		}
		var err error
		if cmd == "PAUSE" {
			err = s.Pause(a.ctx, db)
		} else {
			err = s.Resume(db)
		}
		return a.done(cmd, err, codeObjectNotInState)
	case "RELOAD", "SHUTDOWN":
		if len(args) > 0 {
			return errUnknownCommand(text)
		}
		if cmd == "RELOAD" {
			return a.done(cmd, s.Reload(), codeConfigFileError)
		}
		// Shutdown may wait for this very connection to end: it runs on a
		// goroutine of its own, which ends when Shutdown returns.
		go s.Shutdown(true)
		return a.done(cmd, nil, "")
	case "BAN", "UNBAN":
		if len(args) != 1 {
			return &pgError{Severity: "ERROR", Code: codeSyntaxError,
				Message: cmd + " needs one server, as host:port", Hint: "For example: " + cmd + " 10.0.0.5:5432"}
		}
		var err error
		if cmd == "BAN" {
			err = s.Ban(args[0])
		} else {
			err = s.Unban(args[0])
		}
		return a.done(cmd, err, codeInvalidParamValue)
	}
	return errUnknownCommand(text)
}

// done appends the reply to a command that returns no rows: its tag, or
// its error (with code when the error has none of its own).
func (a *adminConn) done(tag string, err error, code string) error {
	if err == nil {
		a.out = appendCommandComplete(a.out, tag)
		return nil
	}
	var pe *pgError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, errNotYet):
		return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Message: tag + ": " + err.Error(), err: err}
	case errors.Is(err, context.Canceled):
		return &pgError{Severity: "ERROR", Code: codeAdminShutdown, Message: tag + ": pgshard is shutting down", err: err}
	}
	return &pgError{Severity: "ERROR", Code: code, Message: tag + ": " + err.Error(), err: err}
}

func errUnknownCommand(text string) error {
	w := strings.Fields(text)
	if len(w) > 2 {
		w = w[:2]
	}
	return &pgError{Severity: "ERROR", Code: codeSyntaxError,
		Message: fmt.Sprintf("unknown admin console command %q", strings.Join(w, " ")),
		Hint:    "SHOW HELP lists the commands."}
}

// version is pgshard's version from the build information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			v += " " + st.Value[:12]
		}
	}
	return v
}

// --- Result sets

type adminCol struct {
	name string
	oid  uint32
}

// adminTable is a result the console sends: RowDescription, DataRows,
// CommandComplete "SHOW". Values are string, int, int64, bool, time.Time
// (zero: NULL) or nil (NULL).
type adminTable struct {
	cols []adminCol
	rows [][]any
}

func (t *adminTable) appendTo(b []byte) []byte {
	rd := pgproto3.RowDescription{}
	for _, c := range t.cols {
		size := int16(-1)
		if c.oid == oidInt8 {
			size = 8
		}
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.oid,
			DataTypeSize: size, TypeModifier: -1})
	}
	b, _ = rd.Encode(b)
	for _, r := range t.rows {
		dr := pgproto3.DataRow{Values: make([][]byte, len(r))}
		for i, v := range r {
			dr.Values[i] = adminValue(v)
		}
		b, _ = dr.Encode(b)
	}
	return appendCommandComplete(b, "SHOW")
}

func adminValue(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case int:
		return strconv.AppendInt(nil, int64(v), 10)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case bool:
		if v {
			return []byte("1")
		}
		return []byte("0")
	case time.Time:
		if v.IsZero() {
			return nil
		}
		return []byte(v.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	return []byte(fmt.Sprint(v))
}

func cols(spec string) []adminCol {
	var out []adminCol
	for _, f := range strings.Fields(spec) {
		name, typ, _ := strings.Cut(f, ":")
		oid := uint32(oidText)
		if typ == "int" {
			oid = oidInt8
		}
		out = append(out, adminCol{name, oid})
	}
	return out
}

// --- What the SHOW commands read

// sessionList returns the sessions, by id. Their immutable fields may be
// read freely; the rest under their mu.
func (s *Server) sessionList() []*session {
	s.mu.Lock()
	out := slices.Collect(maps.Values(s.sessions))
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *session) int { return cmp.Compare(a.id, b.id) })
	return out
}

// poolList returns the database's pools (created on first use), by
// backend user, shard and server.
func (d *database) poolList() []*backendPool {
	d.mu.Lock()
	keys := slices.Collect(maps.Keys(d.pools))
	pools := make([]*backendPool, 0, len(keys))
	slices.SortFunc(keys, func(a, b poolKey) int {
		return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.shard, b.shard), cmp.Compare(a.server, b.server))
	})
	for _, k := range keys {
		pools = append(pools, d.pools[k])
	}
	d.mu.Unlock()
	return pools
}

// dbList returns the databases by name.
func (s *Server) dbList() []*database {
	return slices.SortedFunc(maps.Values(s.current().dbs), func(a, b *database) int { return cmp.Compare(a.Name, b.Name) })
}

// poolUser returns the backend user of a pool.
func (p *backendPool) user() string { return p.cfg.User }

// clientInfo is what SHOW CLIENTS and SHOW POOLS know of a session.
type clientInfo struct {
	sess      *session
	state     string         // active, idle or waiting
	waitPool  *backendPool   // what it waits for, when waiting
	waitSince time.Time      // since when
	held      []*backendPool // pools of the backends it holds
}

func (s *session) info() clientInfo {
	ci := clientInfo{sess: s, state: "idle"}
	if ns := s.waitSince.Load(); ns != 0 {
		ci.state, ci.waitSince, ci.waitPool = "waiting", time.Unix(0, ns), s.waitPool.Load()
	}
	s.mu.Lock()
	if s.backend != nil {
		ci.held = append(ci.held, s.backend.p)
	}
	for _, sh := range slices.Sorted(maps.Keys(s.parked)) {
		ci.held = append(ci.held, s.parked[sh].c.p)
	}
	for _, c := range s.running {
		ci.held = append(ci.held, c.p)
	}
	busy := s.busyLocked()
	s.mu.Unlock()
	if ci.state == "idle" && busy {
		ci.state = "active"
	}
	return ci
}

func splitAddr(a net.Addr) (string, any) {
	if a == nil {
		return "", nil
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), nil
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func waitTime(since time.Time) (sec, usec int64) {
	if since.IsZero() {
		return 0, 0
	}
	d := time.Since(since)
	return int64(d / time.Second), int64(d%time.Second) / 1000
}

// showPools: one row per pool (database, backend user, shard, server).
func (s *Server) showPools() *adminTable {
	t := &adminTable{cols: cols("database user shard role server cl_active:int cl_waiting:int sv_active:int sv_idle:int " +
		"sv_used:int sv_tested:int sv_login:int maxwait:int maxwait_us:int pool_mode paused:int")}
	clients := map[*backendPool][]clientInfo{}
	for _, sess := range s.sessionList() {
		ci := sess.info()
		if ci.waitPool != nil {
			clients[ci.waitPool] = append(clients[ci.waitPool], ci)
		}
		for _, p := range ci.held {
			if p != ci.waitPool {
				clients[p] = append(clients[p], ci)
			}
		}
	}
	all, pausedDBs := s.paused()
	for _, d := range s.dbList() {
		paused := all || slices.Contains(pausedDBs, d.Name)
		for _, p := range d.poolList() {
			st := p.Stats()
			conns := p.Conns()
			active, waiting := 0, 0
			var oldest time.Time
			for _, ci := range clients[p] {
				if ci.waitPool == p {
					waiting++
					if oldest.IsZero() || ci.waitSince.Before(oldest) {
						oldest = ci.waitSince
					}
				} else {
					active++
				}
			}
			idle := 0
			for _, c := range conns {
				if c.Idle {
					idle++
				}
			}
			sec, usec := waitTime(oldest)
			t.rows = append(t.rows, []any{d.Name, p.user(), p.shard, roleName(p.server), p.addr,
				active, waiting, len(conns) - idle, idle, 0, 0, st.Total - len(conns), sec, usec, string(s.opts.PoolMode), paused})
		}
	}
	return t
}

// showClients: one row per client session (admin console clients are not
// listed).
func (s *Server) showClients() *adminTable {
	t := &adminTable{cols: cols("type user database state addr port:int local_addr local_port:int connect_time request_time " +
		"wait:int wait_us:int tls shard id:int")}
	for _, sess := range s.sessionList() {
		ci := sess.info()
		addr, port := splitAddr(sess.nc.RemoteAddr())
		laddr, lport := splitAddr(sess.nc.LocalAddr())
		var req time.Time
		if ns := sess.lastRequest.Load(); ns != 0 {
			req = time.Unix(0, ns)
		}
		sec, usec := waitTime(ci.waitSince)
		tlsVersion := ""
		if tc, ok := sess.nc.(*tls.Conn); ok {
			tlsVersion = tls.VersionName(tc.ConnectionState().Version)
		}
		var shards []string
		for _, p := range ci.held {
			shards = append(shards, p.shard)
		}
		t.rows = append(t.rows, []any{"C", sess.user, sess.db.Name, ci.state, addr, port, laddr, lport,
			sess.connected, req, sec, usec, tlsVersion, strings.Join(shards, ","), int64(sess.id)})
	}
	return t
}

// showServers: one row per open backend connection of every pool.
func (s *Server) showServers() *adminTable {
	t := &adminTable{cols: cols("type user database shard role state addr port:int local_addr local_port:int " +
		"connect_time request_time link:int remote_pid:int")}
	for _, d := range s.dbList() {
		for _, p := range d.poolList() {
			host, port := splitAddr(nil)
			if p.cfg != nil {
				host, port = p.cfg.Host, int(p.cfg.Port)
			}
			for _, ci := range p.Conns() {
				c := ci.Conn
				state := "active"
				if ci.Idle {
					state = "idle"
				}
				laddr, lport := splitAddr(c.nc.LocalAddr())
				var link any
				if o := c.owner.Load(); o != nil {
					link = int64(o.id)
				}
				t.rows = append(t.rows, []any{"S", p.user(), d.Name, p.shard, roleName(p.server), state, host, port,
					laddr, lport, ci.Created, ci.Acquired, link, int64(c.pid)})
			}
		}
	}
	return t
}

// showStats: one row per database from Server.Stats; times in
// microseconds.
func (s *Server) showStats() *adminTable {
	t := &adminTable{cols: cols("database total_xact_count:int total_query_count:int total_received:int total_sent:int " +
		"total_xact_time:int total_query_time:int total_wait_time:int avg_xact_time:int avg_query_time:int")}
	for _, d := range s.dbList() {
		st := s.Stats(d.Name)
		avg := func(total time.Duration, n int64) int64 {
			if n == 0 {
				return 0
			}
			return total.Microseconds() / n
		}
		t.rows = append(t.rows, []any{d.Name, st.XactCount, st.QueryCount, st.BytesReceived, st.BytesSent,
			st.XactTime.Microseconds(), st.QueryTime.Microseconds(), st.WaitTime.Microseconds(),
			avg(st.XactTime, st.XactCount), avg(st.QueryTime, st.QueryCount)})
	}
	return t
}

// showShards: one row per database, shard and server.
func (s *Server) showShards() *adminTable {
	t := &adminTable{cols: cols("database shard role host port:int health lag_bytes:int")}
	for _, d := range s.dbList() {
		for i, sh := range d.Shards {
			for j, url := range append([]string{sh.Primary}, sh.Replicas...) {
				var host string
				var port any
				if cfg, err := pgconn.ParseConfig(url); err == nil {
					host, port = cfg.Host, int(cfg.Port)
				}
				health, lag := d.serverHealth(i, j)
				var lagv any
				if lag >= 0 {
					lagv = lag
				}
				t.rows = append(t.rows, []any{d.Name, sh.Name, roleName(j), host, port, health, lagv})
			}
		}
	}
	return t
}

// showConfig: the running configuration, key by key, from
// Options.Settings.
func (s *Server) showConfig() *adminTable {
	t := &adminTable{cols: cols("key value")}
	if settings := s.current().opts.Settings; settings != nil {
		for _, st := range settings() {
			t.rows = append(t.rows, []any{st.Key, st.Value})
		}
	}
	return t
}

// --- SHOW ROUTE

// showRoute answers SHOW ROUTE [database] statement: where the session
// would send the statement (with no hints set and outside a transaction),
// without running it.
func (a *adminConn) showRoute(rest string) error {
	s := a.srv
	var d *database
	word, sql := rest, ""
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		word, sql = rest[:i], strings.TrimSpace(rest[i:])
	}
	dbs := s.current().dbs
	if dbs[word] != nil && sql != "" {
		d, rest = dbs[word], sql
	} else if len(dbs) == 1 {
		for _, d = range dbs {
		}
	} else {
		names := make([]string, 0, len(dbs))
		for _, db := range s.dbList() {
			names = append(names, db.Name)
		}
		return &pgError{Severity: "ERROR", Code: codeInvalidCatalog,
			Message: "SHOW ROUTE needs a database: pgshard serves several",
			Hint:    "Write SHOW ROUTE <database> <statement>; the databases are " + strings.Join(names, ", ") + "."}
	}
	if rest == "" {
		return &pgError{Severity: "ERROR", Code: codeSyntaxError, Message: "SHOW ROUTE needs a statement",
			Hint: "Write SHOW ROUTE [<database>] <statement>."}
	}
	r, err := s.route(a.ctx, d, a.user, rest)
	if err != nil {
		return err
	}
	t := &adminTable{cols: cols("database statement shards role kind merge reason"),
		rows: [][]any{{d.Name, rest, strings.Join(r.Shards, ","), r.role, string(r.Kind), r.merge, r.Reason}}}
	a.out = t.appendTo(a.out)
	return nil
}

// routeInfo is SHOW ROUTE's answer: the routing plan, the role of the
// servers and how the shards' results merge.
type routeInfo struct {
	routing.Plan
	role  string // primary, replica, or per shard when mixed
	merge string // none, concat, sorted, grouped, copy, ddl
}

// route decides a statement as a session of database d with no hints
// does, through the same decision (routes.decide).
func (s *Server) route(ctx context.Context, d *database, adminUser, sql string) (routeInfo, error) {
	if d.rt == nil {
		return routeInfo{Plan: routing.Plan{Kind: routing.Single, Shards: []string{d.Shards[0].Name},
			Reason: "one shard and no table rules: every statement goes to its primary unparsed"}, role: "primary", merge: "none"}, nil
	}
	var scratch parser.Scratch
	as, lits, err := s.cache.AnalyzeQuery(sql, &scratch)
	if err != nil {
		return routeInfo{}, &pgError{Severity: "ERROR", Code: codeSyntaxError, Message: "cannot parse the statement: " + err.Error(), err: err}
	}
	var p *bindParams
	if lits != nil {
		p = &bindParams{literals: lits}
	}
	r := d.rt.router.Load()
	for i := range as {
		if d.rt.needsCatalog(r, &as[i]) {
			d.rt.learn(ctx, func(ctx context.Context, shard int) (*pgconn.PgConn, error) {
				cfg, err := s.catalogConfig(d, adminUser, shard)
				if err != nil {
					return nil, err
				}
				return pgconn.ConnectConfig(ctx, cfg)
			})
			r = d.rt.router.Load()
			break
		}
	}
	dec, err := d.rt.decide(r, as, p, hints{}, sql)
	if err != nil {
		pe := toPgError(err)
		return routeInfo{Plan: routing.Plan{Kind: routing.Reject, Reason: pe.Message}, merge: "none"}, nil
	}
	if dec.reject != "" {
		return routeInfo{Plan: routing.Plan{Kind: routing.Reject, Reason: dec.reject}, merge: "none"}, nil
	}
	ri := routeInfo{Plan: dec.plan, merge: "none"}
	ri.Shards = nil
	for _, sh := range dec.shards {
		ri.Shards = append(ri.Shards, d.Shards[sh].Name)
	}
	multi := len(dec.shards) > 1
	switch {
	case dec.ddl:
		ri.merge = "ddl"
		ri.Reason = "schema change: every shard keeps the same objects"
		if !multi {
			ri.Reason = "schema change pinned to one shard"
		}
	case dec.copyIn != nil || dec.copyTo != nil && multi:
		ri.merge = "copy"
	case !multi || dec.copies:
	case dec.sorted != nil:
		ri.merge = "sorted"
	case dec.grouped != nil:
		ri.merge = "grouped"
	case dec.concat:
		ri.merge = "concat"
	}
	if dec.ddl || dec.copyIn != nil || ri.Kind == "" {
		switch {
		case !multi:
			ri.Kind = routing.Single
		case len(dec.shards) == len(d.Shards):
			ri.Kind = routing.All
		default:
			ri.Kind = routing.Multi
		}
	}
	if dec.copyIn != nil {
		ri.Reason = "COPY FROM STDIN: each row goes to the shard of its key"
	}
	if dec.anywhere {
		ri.Reason = "no table: runs where the session is (the default shard for a new one)"
	}
	switch {
	case multi && d.CrossShard == CrossShardDeny:
		ri.Kind, ri.Reason = routing.Reject, fmt.Sprintf("it needs shards %s and cross_shard is deny", strings.Join(ri.Shards, ", "))
	case multi && ri.merge == "none" && !dec.copies:
		why := "DISTINCT, GROUP BY, aggregates or window functions"
		if dec.notMergeable != "" {
			why = dec.notMergeable
		}
		ri.Kind, ri.Reason = routing.Reject, "pgshard cannot merge the shards' rows yet ("+why+")"
	}
	roles := make([]string, len(dec.shards))
	for i, sh := range dec.shards {
		roles[i] = "primary"
		if !dec.write && d.ReadWriteSplit && len(d.Shards[sh].Replicas) > 0 {
			roles[i] = "replica"
		}
	}
	ri.role = roles[0]
	if slices.Contains(roles, "primary") && slices.Contains(roles, "replica") {
		parts := make([]string, len(roles))
		for i := range roles {
			parts[i] = ri.Shards[i] + " " + roles[i]
		}
		ri.role = strings.Join(parts, ",")
	}
	return ri, nil
}

// catalogConfig is how SHOW ROUTE reads a shard's catalog: as the
// database's backend user, else as the admin user with its own password.
func (s *Server) catalogConfig(d *database, adminUser string, shard int) (*pgconn.Config, error) {
	sh := d.Shards[shard]
	cfg, err := pgconn.ParseConfig(sh.Primary)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = d.BackendUser, d.BackendPassword
	if d.BackendUser == "" {
		u := s.current().users[adminUser]
		pw, ok := u.verifier.Plain()
		if !ok && u.Auth != AuthTrust {
			return nil, fmt.Errorf("database %q has no backend_user and the password of %q is not plain text", d.Name, adminUser)
		}
		cfg.User, cfg.Password = adminUser, pw
	}
	cfg.ConnectTimeout = s.opts.ServerConnectTimeout
	if sh.Schema != "" {
		cfg.RuntimeParams["search_path"] = quoteIdent(sh.Schema)
	}
	return cfg, nil
}
