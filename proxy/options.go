package proxy

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolMode says when a client gives its backend connection back to the pool.
type PoolMode string

const (
	// PoolSession keeps one backend per client for the whole session.
	PoolSession PoolMode = "session"
	// PoolTransaction gives the backend back at the end of each transaction.
	PoolTransaction PoolMode = "transaction"
	// PoolStatement gives the backend back after each statement and refuses
	// transaction blocks.
	PoolStatement PoolMode = "statement"
)

// AuthMethod is how a client proves who it is.
type AuthMethod string

const (
	AuthSCRAM AuthMethod = "scram-sha-256"
	AuthMD5   AuthMethod = "md5"
	AuthTrust AuthMethod = "trust"
)

// User is a client identity the proxy accepts.
type User struct {
	Name string
	// Password is plain text, an md5 verifier ("md5" + 32 hex digits) or a
	// SCRAM-SHA-256 verifier as stored by PostgreSQL in pg_authid.
	Password string
	Auth     AuthMethod
	// MaxClientConnections is the most client connections this user may
	// have at once, over all databases and the admin console; 0 means
	// Options.MaxUserClientConnections.
	MaxClientConnections int
}

// Shard is one slice of a database's data: a primary and its replicas.
type Shard struct {
	Name string
	// Primary and Replicas are libpq connection URLs or keyword/value strings.
	// The user and password in them are replaced by the database's backend
	// credentials (or the client's own).
	Primary  string
	Replicas []string
	// Schema, when set, makes the shard a schema of Primary's database:
	// backend connections start with search_path set to it.
	Schema string
	// RoleAuto (role: auto) moves the shard's writes to a replica found
	// promoted while the primary is down; it needs the database's
	// BackendUser, which the health checks log in as.
	RoleAuto bool
}

// Database is a logical database clients connect to by name.
type Database struct {
	Name string
	// BackendUser and BackendPassword log in to every backend. When
	// BackendUser is empty, the client's own name and plain-text password are
	// used.
	BackendUser     string
	BackendPassword string
	// PoolSize is the most backend connections per shard and role (and per
	// user when BackendUser is empty). MinPoolSize are kept open even when idle.
	PoolSize    int
	MinPoolSize int
	Shards      []Shard

	// Routing. A database with one shard, no Tables and no read/write
	// split sends every statement to its primary without parsing it.

	// DefaultShard is the name of the shard holding tables no rule names;
	// empty means the first.
	DefaultShard string
	// Tables say where the rows of sharded and replicated tables live.
	Tables []TableRule
	// ReadWriteSplit sends reads outside transactions to replicas.
	ReadWriteSplit bool
	// LoadBalance picks among a shard's usable replicas.
	LoadBalance LoadBalance
	// ReadYourWrites keeps a client's reads from missing its own writes.
	ReadYourWrites ReadYourWrites
	// MaxReplicaLag is how many bytes of WAL a replica may be behind its
	// primary and still serve reads; 0 means fully caught up.
	MaxReplicaLag int64
	// RouteNotices sends the client a NOTICE naming the shards and role
	// each statement went to.
	RouteNotices bool
	// ReadOnlyFunctions are user functions that only read ("name" or
	// "schema.name"); calls of other user functions go to the primary.
	ReadOnlyFunctions []string
	// CrossShard is what happens to statements that need several shards;
	// empty means allow.
	CrossShard CrossShard
	// DenyHints refuses routing hints (/* pgshard: shard=... */ or key=...
	// comments, SET pgshard.shard / pgshard.key) with SQLSTATE 42501, so
	// that clients cannot choose the shard a statement runs on; false
	// honours them.
	DenyHints bool
	// TwoPhaseCommit commits transactions that span shards, and writes
	// to several shards outside transactions, with two-phase commit, and
	// recovers what a crash left prepared. It needs BackendUser and
	// max_prepared_transactions > 0 on the shards.
	TwoPhaseCommit bool
}

// TableRule says where a table's rows live; see config.TableRule, which it
// mirrors with shards named.
type TableRule struct {
	// Name is an exact table name ("users" or "public.users"); Pattern a
	// regular expression matched against bare table names.
	Name    string
	Pattern string
	// Replicated tables have a full copy on every shard of Shards.
	Replicated bool
	Key        string
	// Method is hash, range or list.
	Method string
	// KeyType is the key column's SQL type; empty means pgshard reads it
	// from the catalog of the rule's first shard.
	KeyType string
	// Shards the rule spreads over, in order; empty means all.
	Shards []string
	Ranges []Range
	Lists  map[string][]string
	// Default is the shard of list values no list names; empty means
	// such values are an error.
	Default string
}

// Range is one range of a range rule: keys in [From, To) live on Shard.
type Range struct{ From, To, Shard string }

// LoadBalance is how reads are spread over a shard's replicas.
type LoadBalance string

const (
	LoadBalanceRoundRobin LoadBalance = "round_robin"
	LoadBalanceRandom     LoadBalance = "random"
	LoadBalanceLeastBusy  LoadBalance = "least_busy"
)

// CrossShard is what pgshard does with a statement that needs more than
// one shard.
type CrossShard string

const (
	CrossShardAllow CrossShard = "allow" // run it on every shard it needs
	CrossShardDeny  CrossShard = "deny"  // refuse it with SQLSTATE 0A000
	CrossShardLog   CrossShard = "log"   // run it, and log at info level
)

// ReadYourWrites says how a client's reads are kept from missing its own
// writes when they go to replicas. The zero value does nothing.
type ReadYourWrites struct {
	// LSN serves a client's reads only from replicas that have replayed
	// the WAL position of its last committed write.
	LSN bool
	// Window keeps a client's reads on the primary this long after each
	// of its writes.
	Window time.Duration
}

// Options configures a Server. Zero durations and sizes take the defaults
// documented on each field; config.Load fills them explicitly.
type Options struct {
	// Listen is the TCP address clients connect to.
	Listen   string
	PoolMode PoolMode
	// MaxClientConn is the most client connections at once; more get 53300.
	MaxClientConn int
	// MaxUserClientConnections is the most client connections one user
	// may have at once (counted once logged in, over all databases and the
	// admin console), unless User.MaxClientConnections says otherwise;
	// more get 53300. 0 means no limit.
	MaxUserClientConnections int
	// TLS, when set, is offered to clients that send SSLRequest.
	TLS *tls.Config
	// TLSRequired refuses clients that log in without TLS (SQLSTATE
	// 28000); it needs TLS. Cancel requests are served either way.
	TLSRequired bool
	Users       []User
	Databases   []Database

	// ClientLoginTimeout bounds the startup and authentication of a client.
	ClientLoginTimeout time.Duration
	// MaxMessageSize is the largest frontend message accepted (bytes). COPY
	// data is streamed and not limited by it.
	MaxMessageSize int
	// ServerResetQuery runs on a backend when a session-mode client leaves
	// (and when a transaction-mode client that pinned its backend leaves).
	ServerResetQuery string
	// ServerConnectTimeout bounds dialing and logging in to a backend.
	ServerConnectTimeout time.Duration
	// ServerIdleTimeout closes backends idle in the pool longer than this.
	ServerIdleTimeout time.Duration
	// ServerLifetime closes backends older than this when they are released.
	ServerLifetime time.Duration
	// QueryWaitTimeout is how long a client may wait for a backend before it
	// gets an error.
	QueryWaitTimeout time.Duration
	// QueryTimeout, when positive, bounds how long a server may take to
	// answer what a client sent it (a statement, a pipeline up to its
	// Sync, a COPY), and pgshard's own COMMIT and PREPARE rounds: past
	// it the server connection is closed, the client gets SQLSTATE 57014
	// and its transaction, if any, is failed. 0 means no bound.
	QueryTimeout time.Duration
	// PreparedStatementCacheSize is how many server-side prepared statements
	// each backend connection keeps in transaction and statement mode.
	PreparedStatementCacheSize int

	// MaxMergeMemory bounds what a merge of several shards' rows that
	// must see every row before it answers (GROUP BY, aggregates,
	// DISTINCT) may hold, in bytes (DefaultMaxMergeMemory); past it the
	// statement fails with SQLSTATE 54000.
	MaxMergeMemory int
	// InstanceID names this pgshard in the gids of its prepared
	// transactions; several instances in front of the same shards need
	// different ones, and a restarted instance the same one it had, to
	// recover its own at startup. Empty means DefaultInstanceID.
	InstanceID string
	// TwoPhaseTimeout is how old another instance's prepared transactions
	// must be before recovery decides them (DefaultTwoPhaseTimeout).
	TwoPhaseTimeout time.Duration

	// ShutdownTimeout bounds how long a graceful Shutdown waits for
	// running transactions (DefaultShutdownTimeout).
	ShutdownTimeout time.Duration

	// LoadConfig, when set, reads the configuration again for Reload
	// (SIGHUP, the admin console's RELOAD).
	LoadConfig func() (Options, error)
	// HealthCheckInterval is how often every server of a database with a
	// BackendUser is checked (DefaultHealthCheckInterval); where replica
	// lag is monitored the lag samples, every 200ms, are the checks.
	HealthCheckInterval time.Duration
	// HealthCheckTimeout bounds one check, connecting included
	// (DefaultHealthCheckTimeout).
	HealthCheckTimeout time.Duration
	// BanTime is how long a replica that failed, or that Ban named, is
	// left out of reads (DefaultBanTime).
	BanTime time.Duration
	// AdminUsers may connect to the database "pgshard" for the admin
	// console (see admin.go); each must be one of Users and logs in with
	// its own password. Others connecting to it get SQLSTATE 28000.
	AdminUsers []string
	// Settings, when set, returns the running configuration as key/value
	// pairs with secrets redacted, for SHOW CONFIG. It is called on each
	// SHOW CONFIG and must be safe for concurrent use.
	Settings func() []Setting
	// MetricsListen is the TCP address serving /metrics, /healthz and
	// /readyz over HTTP; empty serves nothing.
	MetricsListen string
	// Registerer receives the proxy's metrics; nil means a registry of
	// the Server's own (so several Servers can run in one process).
	// /metrics serves it when it is also a prometheus.Gatherer (as
	// *prometheus.Registry is), else prometheus.DefaultGatherer.
	Registerer prometheus.Registerer

	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
}

// Setting is one configuration key and its value, as SHOW CONFIG shows it.
// Key is a YAML path such as "databases[0].pool_size".
type Setting struct{ Key, Value string }
