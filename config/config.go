package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgshard/pgshard/proxy"
)

// Defaults applied by Parse to keys the file leaves out. docs/config.md and
// proxy.yaml.example list the same values; keep the three in step.
const (
	defaultListen                     = "127.0.0.1:6432"
	defaultPoolMode                   = proxy.PoolTransaction
	defaultMaxClientConn              = 10000
	defaultMetricsListen              = "127.0.0.1:9930"
	defaultClientLoginTimeout         = Duration(15 * time.Second)
	defaultMaxMessageSize             = 64 * megabyte
	defaultMaxMergeMemory             = 256 * megabyte
	defaultShutdownTimeout            = Duration(30 * time.Second)
	defaultLogFormat                  = "text"
	defaultLogLevel                   = "info"
	defaultServerResetQuery           = "DISCARD ALL"
	defaultServerConnectTimeout       = Duration(5 * time.Second)
	defaultServerIdleTimeout          = Duration(10 * time.Minute)
	defaultServerLifetime             = Duration(time.Hour)
	defaultQueryWaitTimeout           = Duration(120 * time.Second)
	defaultQueryTimeout               = Duration(0)
	defaultPreparedStatementCacheSize = 500
	defaultAuth                       = proxy.AuthSCRAM
	defaultPoolSize                   = 20
	defaultMinPoolSize                = 0
	defaultHealthCheckInterval        = Duration(proxy.DefaultHealthCheckInterval)
	defaultHealthCheckTimeout         = Duration(proxy.DefaultHealthCheckTimeout)
	defaultBanTime                    = Duration(proxy.DefaultBanTime)
)

// reservedDatabase is the database name clients use to reach the admin
// console; no configured database may take it.
const reservedDatabase = "pgshard"

// Config is the whole pgshard configuration file. Get one from Load or Parse,
// which fill in defaults and validate it; a Config built by hand is not
// checked. A Config is a plain value: it is not safe to modify while other
// goroutines read it, and it is never modified by this package after Parse
// returns.
//
// Printing a Config with fmt, log/slog, encoding/json or yaml never shows a
// password (see Secret); Redacted and String give the redacted form
// explicitly.
type Config struct {
	// Listen is the TCP host:port clients connect to.
	Listen string `yaml:"listen"`
	// PoolMode is session, transaction or statement.
	PoolMode proxy.PoolMode `yaml:"pool_mode"`
	// MaxClientConn is the most client connections at once.
	MaxClientConn int `yaml:"max_client_conn"`
	// MaxUserClientConnections is the most client connections one user
	// may have at once, over all databases; 0 means no limit. A user's own
	// max_user_client_connections overrides it.
	MaxUserClientConnections int `yaml:"max_user_client_connections"`
	// MetricsListen is the host:port serving /metrics and /healthz; empty
	// turns the endpoint off.
	MetricsListen string `yaml:"metrics_listen"`
	// TLS is the client-facing certificate; empty means no TLS.
	TLS TLS `yaml:"tls"`

	// ClientLoginTimeout bounds a client's startup and authentication.
	ClientLoginTimeout Duration `yaml:"client_login_timeout"`
	// MaxMessageSize is the largest frontend message accepted.
	MaxMessageSize Size `yaml:"max_message_size"`
	// MaxMergeMemory bounds what merging several shards' groups may hold.
	MaxMergeMemory Size `yaml:"max_merge_memory"`
	// ServerResetQuery runs on a backend when a session-mode client leaves;
	// empty runs nothing.
	ServerResetQuery string `yaml:"server_reset_query"`
	// ServerConnectTimeout bounds dialing and logging in to a backend.
	ServerConnectTimeout Duration `yaml:"server_connect_timeout"`
	// ServerIdleTimeout closes backends idle longer than this; 0 never does.
	ServerIdleTimeout Duration `yaml:"server_idle_timeout"`
	// ServerLifetime closes backends older than this when released; 0 never
	// does.
	ServerLifetime Duration `yaml:"server_lifetime"`
	// QueryWaitTimeout is how long a client waits for a backend; 0 waits
	// forever.
	QueryWaitTimeout Duration `yaml:"query_wait_timeout"`
	// QueryTimeout closes a server connection that takes longer than
	// this to answer a client's statement, which then fails with
	// SQLSTATE 57014; 0 never does.
	QueryTimeout Duration `yaml:"query_timeout"`
	// PreparedStatementCacheSize is how many prepared statements each
	// backend connection keeps.
	PreparedStatementCacheSize int `yaml:"prepared_statement_cache_size"`

	// ShutdownTimeout bounds how long SIGTERM waits for running
	// transactions.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// LogFormat is text or json; LogLevel debug, info, warn or error.
	LogFormat string `yaml:"log_format"`
	LogLevel  string `yaml:"log_level"`
	// InstanceID names this pgshard in the gids of its prepared
	// transactions: unique per instance in front of the same shards, and
	// the same after a restart. Parse sets the host name if left out.
	InstanceID string `yaml:"instance_id"`
	// TwoPhaseTimeout is how old another instance's prepared transactions
	// must be before recovery decides them.
	TwoPhaseTimeout Duration `yaml:"two_phase_timeout"`

	// HealthCheckInterval is how often every backend server of a database
	// with a backend_user is checked (connect, query, within
	// HealthCheckTimeout).
	HealthCheckInterval Duration `yaml:"health_check_interval"`
	// HealthCheckTimeout bounds one health check, connecting included.
	HealthCheckTimeout Duration `yaml:"health_check_timeout"`
	// BanTime is how long a replica that failed, or that BAN named, is left
	// out of reads.
	BanTime Duration `yaml:"ban_time"`

	// Users are the client identities the proxy accepts.
	Users []User `yaml:"users"`
	// AdminUsers are the users (names from Users) that may connect to the
	// database "pgshard" for the admin console; empty means nobody.
	AdminUsers []string `yaml:"admin_users"`
	// Databases are the logical databases clients connect to.
	Databases []Database `yaml:"databases"`
}

// TLS names the PEM certificate and key offered to clients that send
// SSLRequest. Both empty means the proxy answers SSLRequest with 'N'.
// Relative paths are relative to the proxy's working directory.
type TLS struct {
	// CertFile is the PEM certificate chain.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// Mode is allow (clients choose; the default) or require (clients
	// that do not use TLS are refused; needs CertFile and KeyFile).
	Mode TLSMode `yaml:"mode"`
}

// TLSMode says whether clients must use TLS.
type TLSMode string

// The TLS modes.
const (
	TLSAllow   TLSMode = "allow"   // TLS for clients that ask for it
	TLSRequire TLSMode = "require" // refuse clients in the clear (28000)
)

// User is one client identity.
type User struct {
	// Name is the user name clients log in with; unique.
	Name string `yaml:"name"`
	// Password is plain text, an md5 verifier or a SCRAM-SHA-256 verifier.
	Password Secret `yaml:"password"`
	// Auth is scram-sha-256, md5 or trust.
	Auth proxy.AuthMethod `yaml:"auth"`
	// MaxUserClientConnections is the most client connections of this
	// user at once, over all databases; 0 means the top-level
	// max_user_client_connections.
	MaxUserClientConnections int `yaml:"max_user_client_connections"`
}

// Database is one logical database and its shards.
type Database struct {
	// Name is the database name clients connect to; unique, not "pgshard".
	Name string `yaml:"name"`
	// BackendUser logs in to every backend; empty uses the client's own
	// name and plain-text password.
	BackendUser string `yaml:"backend_user"`
	// BackendPassword is BackendUser's password.
	BackendPassword Secret `yaml:"backend_password"`
	// PoolSize is the most backend connections per shard and role.
	PoolSize int `yaml:"pool_size"`
	// MinPoolSize backend connections per shard and role stay open when idle.
	MinPoolSize int `yaml:"min_pool_size"`
	// Shards hold the database's data; at least one.
	Shards []Shard `yaml:"shards"`

	// The statement-routing keys below are parsed, defaulted and validated
	// here (routing.go) and passed on by ProxyOptions.

	// DefaultShard holds the tables no rule in Tables names; Parse sets it to
	// the first shard's name when the file leaves it out.
	DefaultShard string `yaml:"default_shard"`
	// Tables say which shards hold which tables' rows. Exact names are
	// unique; patterns may overlap (the router tries exact names first, then
	// patterns in order).
	Tables []TableRule `yaml:"tables"`
	// ReadWriteSplit sends reads outside explicit transactions to replicas.
	// It is allowed with no replicas (reads then stay on the primaries).
	ReadWriteSplit bool `yaml:"read_write_split"`
	// LoadBalance spreads reads over a shard's replicas; default round_robin.
	LoadBalance LoadBalance `yaml:"load_balance"`
	// ReadYourWrites keeps a client's reads from missing its own writes;
	// default lsn.
	ReadYourWrites ReadYourWrites `yaml:"read_your_writes"`
	// MaxReplicaLag: replicas further behind their primary's WAL than this
	// are not used; default 16MB.
	MaxReplicaLag Size `yaml:"max_replica_lag"`
	// RouteNotices sends the client a NOTICE naming where each statement
	// went; default false.
	RouteNotices bool `yaml:"route_notices"`
	// ReadOnlyFunctions are user functions ("name" or "schema.name") that
	// only read: a statement calling any other user function goes to the
	// primary.
	ReadOnlyFunctions []string `yaml:"read_only_functions"`
	// CrossShard says what happens to a statement that needs more than one
	// shard: allow (the default), deny (SQLSTATE 0A000) or log.
	CrossShard CrossShard `yaml:"cross_shard"`
	// Hints says whether clients may pick a statement's shard with routing
	// hints (pgshard comments, SET pgshard.shard / pgshard.key): allow, or
	// deny (SQLSTATE 42501). Parse makes it deny when CrossShard is deny,
	// allow otherwise, if the file leaves it out.
	Hints Hints `yaml:"hints"`
	// TwoPhaseCommit commits what spans shards with two-phase commit;
	// Parse makes it true when the database has several shards and a
	// backend_user, if the file leaves it out.
	TwoPhaseCommit bool `yaml:"two_phase_commit"`
}

// Shard is one slice of a database: a primary and its replicas, each a
// postgres:// URL or a libpq keyword/value string without credentials.
type Shard struct {
	// Name identifies the shard within its database; unique there.
	Name string `yaml:"name"`
	// Primary is the shard's read-write server.
	Primary string `yaml:"primary"`
	// Replicas are read-only copies of Primary.
	Replicas []string `yaml:"replicas"`
	// Schema, when set, makes the shard a schema of Primary's database
	// (selected with search_path), so several shards can share a server and
	// database; empty means the database's own schemas.
	Schema string `yaml:"schema"`
	// Role is static (or empty, the default: Primary takes the writes) or
	// auto: when Primary is down and a replica is found promoted, it takes
	// them.
	Role ShardRole `yaml:"role"`
}

// ShardRole says which of a shard's servers takes its writes.
type ShardRole string

const (
	// RoleStatic: the configured primary, always.
	RoleStatic ShardRole = "static"
	// RoleAuto: the primary, or, while it is down, a replica that the
	// health checks find promoted (no longer in recovery).
	RoleAuto ShardRole = "auto"
)

// Load reads and parses the configuration file at path. Its errors are those
// of Parse, under a first line naming the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s:\n%w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML configuration, applies the defaults and validates it.
// Unknown keys are errors. All problems are reported at once, joined with
// errors.Join; each is a *FieldError carrying the key's YAML path and line.
// Only a YAML syntax error stops parsing early. No error contains a secret.
func Parse(data []byte) (*Config, error) {
	root, err := parseNode(data)
	if err != nil {
		return nil, err
	}
	idx := newIndex(root)
	rep := &reporter{idx: idx, bad: map[string]bool{}}

	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err // yaml's own limits, such as excessive aliasing
		}
		for _, msg := range te.Errors {
			rep.decodeError(msg)
		}
	}
	rep.checkInt("max_client_conn")
	rep.checkInt("prepared_statement_cache_size")
	rep.checkInt("max_user_client_connections")
	for i := range c.Users {
		rep.checkInt(fmt.Sprintf("users[%d].max_user_client_connections", i))
	}
	for i := range c.Databases {
		rep.checkInt(fmt.Sprintf("databases[%d].pool_size", i))
		rep.checkInt(fmt.Sprintf("databases[%d].min_pool_size", i))
	}
	applyDefaults(&c, idx)
	validate(&c, rep)
	if err := rep.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// parseNode parses data into a node tree used for paths and line numbers. It
// rejects syntax errors and more than one document.
func parseNode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &root, nil // empty file: every required key is missing
		}
		return nil, err // a syntax error: "yaml: line 3: ..."
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: only one YAML document is allowed", extra.Line)
	}
	return &root, nil
}

// applyDefaults sets every key the file left out (a key present with an
// empty value keeps it: "metrics_listen:" turns metrics off).
func applyDefaults(c *Config, idx *index) {
	set := func(path string, apply func()) {
		if !idx.has(path) {
			apply()
		}
	}
	set("listen", func() { c.Listen = defaultListen })
	set("pool_mode", func() { c.PoolMode = defaultPoolMode })
	set("max_client_conn", func() { c.MaxClientConn = defaultMaxClientConn })
	set("metrics_listen", func() { c.MetricsListen = defaultMetricsListen })
	set("tls.mode", func() { c.TLS.Mode = TLSAllow })
	set("client_login_timeout", func() { c.ClientLoginTimeout = defaultClientLoginTimeout })
	set("max_message_size", func() { c.MaxMessageSize = defaultMaxMessageSize })
	set("max_merge_memory", func() { c.MaxMergeMemory = defaultMaxMergeMemory })
	set("server_reset_query", func() { c.ServerResetQuery = defaultServerResetQuery })
	set("server_connect_timeout", func() { c.ServerConnectTimeout = defaultServerConnectTimeout })
	set("server_idle_timeout", func() { c.ServerIdleTimeout = defaultServerIdleTimeout })
	set("server_lifetime", func() { c.ServerLifetime = defaultServerLifetime })
	set("query_wait_timeout", func() { c.QueryWaitTimeout = defaultQueryWaitTimeout })
	set("query_timeout", func() { c.QueryTimeout = defaultQueryTimeout })
	set("prepared_statement_cache_size", func() { c.PreparedStatementCacheSize = defaultPreparedStatementCacheSize })
	set("shutdown_timeout", func() { c.ShutdownTimeout = defaultShutdownTimeout })
	set("log_format", func() { c.LogFormat = defaultLogFormat })
	set("log_level", func() { c.LogLevel = defaultLogLevel })
	set("instance_id", func() { c.InstanceID = proxy.DefaultInstanceID() })
	set("two_phase_timeout", func() { c.TwoPhaseTimeout = Duration(proxy.DefaultTwoPhaseTimeout) })
	set("health_check_interval", func() { c.HealthCheckInterval = defaultHealthCheckInterval })
	set("health_check_timeout", func() { c.HealthCheckTimeout = defaultHealthCheckTimeout })
	set("ban_time", func() { c.BanTime = defaultBanTime })
	for i := range c.Users {
		u := &c.Users[i]
		set(fmt.Sprintf("users[%d].auth", i), func() { u.Auth = defaultAuth })
	}
	for i := range c.Databases {
		d := &c.Databases[i]
		p := fmt.Sprintf("databases[%d]", i)
		set(p+".pool_size", func() { d.PoolSize = defaultPoolSize })
		set(p+".min_pool_size", func() { d.MinPoolSize = defaultMinPoolSize })
		applyRoutingDefaults(d, p, set)
	}
}

// ProxyOptions converts c into the proxy's Options, loading the TLS
// certificate and key when both are set. logger becomes Options.Logger. c
// must come from Load or Parse; it is not validated again. The Options share
// no memory with c. The routing keys (Database.Tables, DefaultShard,
// ReadWriteSplit and the rest, Shard.Schema) are not passed on yet: until
// the statement-routing work the proxy ignores them.
func (c *Config) ProxyOptions(logger *slog.Logger) (proxy.Options, error) {
	o := proxy.Options{
		Listen:                     c.Listen,
		MetricsListen:              c.MetricsListen,
		PoolMode:                   c.PoolMode,
		MaxClientConn:              c.MaxClientConn,
		MaxUserClientConnections:   c.MaxUserClientConnections,
		ClientLoginTimeout:         time.Duration(c.ClientLoginTimeout),
		MaxMessageSize:             int(c.MaxMessageSize),
		MaxMergeMemory:             int(c.MaxMergeMemory),
		ServerResetQuery:           c.ServerResetQuery,
		ServerConnectTimeout:       time.Duration(c.ServerConnectTimeout),
		ServerIdleTimeout:          time.Duration(c.ServerIdleTimeout),
		ServerLifetime:             time.Duration(c.ServerLifetime),
		QueryWaitTimeout:           time.Duration(c.QueryWaitTimeout),
		QueryTimeout:               time.Duration(c.QueryTimeout),
		PreparedStatementCacheSize: c.PreparedStatementCacheSize,
		ShutdownTimeout:            time.Duration(c.ShutdownTimeout),
		InstanceID:                 c.InstanceID,
		TwoPhaseTimeout:            time.Duration(c.TwoPhaseTimeout),
		HealthCheckInterval:        time.Duration(c.HealthCheckInterval),
		HealthCheckTimeout:         time.Duration(c.HealthCheckTimeout),
		BanTime:                    time.Duration(c.BanTime),
		AdminUsers:                 slices.Clone(c.AdminUsers),
		Settings:                   c.Redacted().Settings,
		Logger:                     logger,
	}
	if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return proxy.Options{}, fmt.Errorf("config: load TLS certificate: %w", err)
		}
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		o.TLSRequired = c.TLS.Mode == TLSRequire
	}
	for _, u := range c.Users {
		o.Users = append(o.Users, proxy.User{Name: u.Name, Password: string(u.Password), Auth: u.Auth,
			MaxClientConnections: u.MaxUserClientConnections})
	}
	for _, d := range c.Databases {
		pd := proxy.Database{
			Name:            d.Name,
			BackendUser:     d.BackendUser,
			BackendPassword: string(d.BackendPassword),
			PoolSize:        d.PoolSize,
			MinPoolSize:     d.MinPoolSize,

			DefaultShard:      d.DefaultShard,
			ReadWriteSplit:    d.ReadWriteSplit,
			LoadBalance:       proxy.LoadBalance(d.LoadBalance),
			MaxReplicaLag:     int64(d.MaxReplicaLag),
			RouteNotices:      d.RouteNotices,
			ReadOnlyFunctions: slices.Clone(d.ReadOnlyFunctions),
			CrossShard:        proxy.CrossShard(d.CrossShard),
			DenyHints:         d.Hints == HintsDeny,
			TwoPhaseCommit:    d.TwoPhaseCommit,
		}
		switch d.ReadYourWrites.Mode {
		case ReadYourWritesLSN:
			pd.ReadYourWrites.LSN = true
		case ReadYourWritesWindow:
			pd.ReadYourWrites.Window = d.ReadYourWrites.Window
		}
		for _, s := range d.Shards {
			pd.Shards = append(pd.Shards, proxy.Shard{Name: s.Name, Primary: s.Primary, Replicas: slices.Clone(s.Replicas), Schema: s.Schema,
				RoleAuto: s.Role == RoleAuto})
		}
		for _, t := range d.Tables {
			pt := proxy.TableRule{Name: t.Name, Pattern: t.Pattern, Replicated: t.Replicated, Key: t.Key,
				Method: string(t.Method), KeyType: string(t.KeyType), Shards: slices.Clone(t.Shards),
				Lists: maps.Clone(t.Lists), Default: t.Default}
			for _, r := range t.Ranges {
				pt.Ranges = append(pt.Ranges, proxy.Range{From: r.From, To: r.To, Shard: r.Shard})
			}
			pd.Tables = append(pd.Tables, pt)
		}
		o.Databases = append(o.Databases, pd)
	}
	return o, nil
}

// Redacted returns a deep copy of c in which every non-empty password and
// backend_password is "*****". An empty one stays empty, so the copy still
// shows which are unset.
func (c *Config) Redacted() *Config {
	r := *c
	r.AdminUsers = slices.Clone(c.AdminUsers)
	r.Users = slices.Clone(c.Users)
	for i := range r.Users {
		r.Users[i].Password = r.Users[i].Password.redacted()
	}
	r.Databases = slices.Clone(c.Databases)
	for i := range r.Databases {
		d := &r.Databases[i]
		d.BackendPassword = d.BackendPassword.redacted()
		d.Shards = slices.Clone(d.Shards)
		for j := range d.Shards {
			d.Shards[j].Replicas = slices.Clone(d.Shards[j].Replicas)
		}
		cloneRouting(d)
	}
	return &r
}

// String returns the redacted configuration as YAML, every key included, in
// a form Parse accepts.
func (c *Config) String() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return "config: " + err.Error() // not reached: every field marshals
	}
	_ = enc.Close()
	return b.String()
}

// Settings returns the redacted configuration as key/value pairs, one per
// scalar, keyed by YAML path ("databases[0].shards[1].primary"), in the
// order String prints them. An empty list is one pair with value "[]".
func (c *Config) Settings() []proxy.Setting {
	var n yaml.Node
	if err := n.Encode(c.Redacted()); err != nil {
		return []proxy.Setting{{Key: "error", Value: err.Error()}} // not reached: every field marshals
	}
	var out []proxy.Setting
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				walk(key, n.Content[i+1])
			}
		case yaml.SequenceNode:
			if len(n.Content) == 0 {
				out = append(out, proxy.Setting{Key: path, Value: "[]"})
			}
			for i, e := range n.Content {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		default:
			out = append(out, proxy.Setting{Key: path, Value: n.Value})
		}
	}
	walk("", &n)
	return out
}
