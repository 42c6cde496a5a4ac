package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/proxy/auth"
)

// validate reports every problem with c to r.
func validate(c *Config, r *reporter) {
	checkAddr(r, "listen", c.Listen, false)
	checkAddr(r, "metrics_listen", c.MetricsListen, true)
	// Port 0 picks a free port for each, so equal is fine then.
	if c.MetricsListen != "" && c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		r.add("metrics_listen", "must differ from listen")
	}
	switch c.PoolMode {
	case proxy.PoolSession, proxy.PoolTransaction, proxy.PoolStatement:
	default:
		r.add("pool_mode", "unknown pool mode %q; use session, transaction or statement", c.PoolMode)
	}
	if c.MaxClientConn < 1 {
		r.add("max_client_conn", "must be at least 1")
	}
	if c.MaxUserClientConnections < 0 {
		r.add("max_user_client_connections", "must be 0 (no limit) or more")
	}
	checkTLS(r, c.TLS)

	checkDuration(r, "client_login_timeout", c.ClientLoginTimeout, false)
	if c.MaxMessageSize < kilobyte || c.MaxMessageSize > gigabyte {
		r.add("max_message_size", "must be between 1kB and 1GB")
	}
	if c.MaxMergeMemory < kilobyte {
		r.add("max_merge_memory", "must be at least 1kB")
	}
	checkDuration(r, "server_connect_timeout", c.ServerConnectTimeout, false)
	checkDuration(r, "server_idle_timeout", c.ServerIdleTimeout, true)
	checkDuration(r, "server_lifetime", c.ServerLifetime, true)
	checkDuration(r, "query_wait_timeout", c.QueryWaitTimeout, true)
	checkDuration(r, "query_timeout", c.QueryTimeout, true)
	checkDuration(r, "two_phase_timeout", c.TwoPhaseTimeout, false)
	checkDuration(r, "shutdown_timeout", c.ShutdownTimeout, false)
	switch c.LogFormat {
	case "text", "json":
	default:
		r.add("log_format", "unknown log format %q; use text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		r.add("log_level", "unknown log level %q; use debug, info, warn or error", c.LogLevel)
	}
	checkDuration(r, "health_check_interval", c.HealthCheckInterval, false)
	checkDuration(r, "health_check_timeout", c.HealthCheckTimeout, false)
	checkDuration(r, "ban_time", c.BanTime, false)
	if !instanceID.MatchString(c.InstanceID) {
		r.add("instance_id", "%q: use 1 to 64 letters, digits, '_', '.' or '-' (it goes into the names of prepared transactions)", c.InstanceID)
	}
	if c.PreparedStatementCacheSize < 1 {
		r.add("prepared_statement_cache_size", "must be at least 1")
	}

	plain := checkUsers(r, c.Users)
	checkAdminUsers(r, c.AdminUsers, c.Users)
	checkDatabases(r, c.Databases, plain)
}

// checkAdminUsers requires each admin user to be a configured user, once.
func checkAdminUsers(r *reporter, admins []string, users []User) {
	seen := map[string]int{}
	for i, name := range admins {
		p := fmt.Sprintf("admin_users[%d]", i)
		j, dup := seen[name]
		switch {
		case name == "":
			r.add(p, "must not be empty")
		case dup:
			r.add(p, "duplicate admin user %q (also admin_users[%d])", name, j)
		case !slices.ContainsFunc(users, func(u User) bool { return u.Name == name }):
			r.add(p, "%q is not one of users; add it to users (with a password) first", name)
		}
		seen[name] = i
	}
}

// checkAddr requires a host:port with a numeric port.
func checkAddr(r *reporter, path, addr string, emptyOK bool) {
	if addr == "" {
		if !emptyOK {
			r.add(path, "required (host:port)")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		r.add(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		r.add(path, "port %q must be a number from 0 to 65535", port)
	}
}

func checkTLS(r *reporter, t TLS) {
	switch t.Mode {
	case TLSAllow:
	case TLSRequire:
		if t.CertFile == "" && t.KeyFile == "" {
			r.add("tls.mode", "require needs tls.cert_file and tls.key_file")
		}
	default:
		r.add("tls.mode", "unknown TLS mode %q; use allow or require", t.Mode)
	}
	if t.CertFile == "" && t.KeyFile == "" {
		return
	}
	if t.CertFile == "" {
		r.add("tls.cert_file", "required when tls.key_file is set")
		return
	}
	if t.KeyFile == "" {
		r.add("tls.key_file", "required when tls.cert_file is set")
		return
	}
	ok := true
	for _, f := range []struct{ path, file string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
		st, err := os.Stat(f.file)
		switch {
		case err != nil:
			r.add(f.path, "%v", err)
			ok = false
		case st.IsDir():
			r.add(f.path, "%s is a directory", f.file)
			ok = false
		}
	}
	if ok {
		// crypto/tls errors name the problem, never the key material.
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			r.add("tls", "cannot load the certificate and key: %v", err)
		}
	}
}

// instanceID is what an instance_id may hold (proxy checks the same).
var instanceID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func checkDuration(r *reporter, path string, d Duration, zeroOK bool) {
	switch {
	case d < 0:
		r.add(path, "must not be negative")
	case d == 0 && !zeroOK:
		r.add(path, "must be greater than 0")
	}
}

// checkUsers validates the users and reports, for each, whether its password
// is usable to log in to a backend (plain text). A user whose password was
// already reported counts as usable, so it is not reported twice.
func checkUsers(r *reporter, users []User) (plain []bool) {
	if len(users) == 0 {
		r.add("users", "at least one user is required")
	}
	plain = make([]bool, len(users))
	seen := map[string]int{}
	for i, u := range users {
		p := fmt.Sprintf("users[%d]", i)
		switch j, dup := seen[u.Name]; {
		case u.Name == "":
			r.add(p+".name", "required")
		case dup:
			r.add(p+".name", "duplicate user %q (also users[%d])", u.Name, j)
		default:
			seen[u.Name] = i
		}
		if u.MaxUserClientConnections < 0 {
			r.add(p+".max_user_client_connections", "must be 0 (the top-level max_user_client_connections) or more")
		}
		authOK := true
		switch u.Auth {
		case proxy.AuthSCRAM, proxy.AuthMD5, proxy.AuthTrust:
		default:
			r.add(p+".auth", "unknown auth method %q; use scram-sha-256, md5 or trust", u.Auth)
			authOK = false
		}
		if u.Password == "" {
			if authOK && u.Auth != proxy.AuthTrust {
				r.add(p+".password", "required for auth %s (or use auth: trust)", u.Auth)
				plain[i] = true
			}
			continue
		}
		v, err := auth.ParseVerifier(u.Name, string(u.Password))
		if err != nil {
			r.add(p+".password", "%s", verifierError(err, u.Password))
			plain[i] = true
			continue
		}
		switch {
		case u.Auth == proxy.AuthSCRAM && v.Kind() == auth.MD5:
			r.add(p+".password", "auth scram-sha-256 needs a plain-text password or a SCRAM-SHA-256 verifier, not an md5 verifier")
		case u.Auth == proxy.AuthMD5 && v.Kind() == auth.SCRAM:
			r.add(p+".password", "auth md5 needs a plain-text password or an md5 verifier, not a SCRAM-SHA-256 verifier")
		}
		plain[i] = v.Kind() == auth.Plain
	}
	return plain
}

// verifierError describes a password ParseVerifier rejected (auth promises
// not to quote it; this makes sure).
func verifierError(err error, password Secret) string {
	msg := err.Error()
	if strings.Contains(msg, string(password)) {
		return "invalid password verifier"
	}
	return msg
}

// checkDatabases validates the databases. plain says which users have a
// plain-text password, needed by databases without backend_user.
func checkDatabases(r *reporter, dbs []Database, plain []bool) {
	if len(dbs) == 0 {
		r.add("databases", "at least one database is required")
	}
	seen := map[string]int{}
	var clientLogin []int // databases that log in to backends as the client
	for i, d := range dbs {
		p := fmt.Sprintf("databases[%d]", i)
		switch j, dup := seen[d.Name]; {
		case d.Name == "":
			r.add(p+".name", "required")
		case d.Name == reservedDatabase:
			r.add(p+".name", "%q is reserved for the admin console; choose another name", d.Name)
		case dup:
			r.add(p+".name", "duplicate database %q (also databases[%d])", d.Name, j)
		default:
			seen[d.Name] = i
		}
		if d.BackendUser == "" {
			clientLogin = append(clientLogin, i)
			if d.BackendPassword != "" {
				r.add(p+".backend_password", "set without backend_user; set backend_user too, or remove it")
			}
		}
		if d.PoolSize < 1 {
			r.add(p+".pool_size", "must be at least 1")
		}
		if d.MinPoolSize < 0 || (d.PoolSize >= 1 && d.MinPoolSize > d.PoolSize) {
			r.add(p+".min_pool_size", "must be between 0 and pool_size (%d)", d.PoolSize)
		}
		checkShards(r, p, d.Shards)
		for j, s := range d.Shards {
			if s.Role == RoleAuto && d.BackendUser == "" {
				r.add(fmt.Sprintf("%s.shards[%d].role", p, j), "auto needs backend_user: the health checks that find a promoted replica log in as it")
			}
		}
		checkRouting(r, p, &dbs[i])
	}
	if len(clientLogin) == 0 {
		return
	}
	var names, paths []string
	for _, i := range clientLogin {
		names = append(names, strconv.Quote(dbs[i].Name))
		paths = append(paths, fmt.Sprintf("databases[%d].backend_user", i))
	}
	what := "database " + names[0] + " has no backend_user, so the proxy logs in to its"
	if len(names) > 1 {
		what = "databases " + strings.Join(names, ", ") + " have no backend_user, so the proxy logs in to their"
	}
	for i := range plain {
		if !plain[i] {
			r.add(fmt.Sprintf("users[%d].password", i),
				"needs a plain-text password: %s backends with the client's own password (or set %s)",
				what, strings.Join(paths, ", "))
		}
	}
}

func checkShards(r *reporter, db string, shards []Shard) {
	if len(shards) == 0 {
		r.add(db+".shards", "at least one shard is required")
	}
	seen := map[string]int{}
	for i, s := range shards {
		p := fmt.Sprintf("%s.shards[%d]", db, i)
		switch j, dup := seen[s.Name]; {
		case s.Name == "":
			r.add(p+".name", "required")
		case dup:
			r.add(p+".name", "duplicate shard %q (also shards[%d])", s.Name, j)
		default:
			seen[s.Name] = i
		}
		switch s.Role {
		case "", RoleStatic, RoleAuto:
		default:
			r.add(p+".role", "unknown role %q; use static or auto", s.Role)
		}
		if s.Schema != "" {
			if msg := checkIdentifier(s.Schema); msg != "" {
				r.add(p+".schema", "%s", msg)
			}
		}
		if msg := checkConnString(s.Primary); msg != "" {
			r.add(p+".primary", "%s", msg)
		}
		for j, rep := range s.Replicas {
			if msg := checkConnString(rep); msg != "" {
				r.add(fmt.Sprintf("%s.replicas[%d]", p, j), "%s", msg)
			}
		}
	}
}
