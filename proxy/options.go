package proxy

import (
	"crypto/tls"
	"log/slog"
	"time"
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
}

// Shard is one slice of a database's data: a primary and its replicas.
type Shard struct {
	Name string
	// Primary and Replicas are libpq connection URLs or keyword/value strings.
	// The user and password in them are replaced by the database's backend
	// credentials (or the client's own).
	Primary  string
	Replicas []string
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
}

// Options configures a Server. Zero durations and sizes take the defaults
// documented on each field; config.Load fills them explicitly.
type Options struct {
	// Listen is the TCP address clients connect to.
	Listen   string
	PoolMode PoolMode
	// MaxClientConn is the most client connections at once; more get 53300.
	MaxClientConn int
	// TLS, when set, is offered to clients that send SSLRequest.
	TLS       *tls.Config
	Users     []User
	Databases []Database

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
	// PreparedStatementCacheSize is how many server-side prepared statements
	// each backend connection keeps in transaction and statement mode.
	PreparedStatementCacheSize int

	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
}
