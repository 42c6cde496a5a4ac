package proxy

import (
	"context"
	"errors"
	"time"
)

// The operations API: what the admin console, signals and the metrics
// endpoint call on a running Server. Each function below is owned by one
// piece of the operations work; a stub here says it is not done yet.

// errNotYet is returned by operations not implemented yet.
var errNotYet = errors.New("not implemented yet")

// DBStats are a database's cumulative counters since the server started,
// as SHOW STATS shows them.
type DBStats struct {
	XactCount, QueryCount         int64
	BytesReceived, BytesSent      int64
	XactTime, QueryTime, WaitTime time.Duration
}

// Ban takes the server at host:port out of use for reads until Unban or
// its ban time ends (health-check work).
func (s *Server) Ban(hostport string) error { return errNotYet }

// Unban puts a banned server back in use (health-check work).
func (s *Server) Unban(hostport string) error { return errNotYet }

// Pause waits until no transaction of database db (every database when
// db is empty) runs, then holds new ones until Resume (admin work).
func (s *Server) Pause(ctx context.Context, db string) error { return errNotYet }

// Resume lets the held transactions of db (every database when empty)
// go on (admin work).
func (s *Server) Resume(db string) error { return errNotYet }

// Reload re-reads the configuration through Options.LoadConfig and applies
// it to new transactions; an invalid one changes nothing and is returned
// (reload work).
func (s *Server) Reload() error { return errNotYet }

// Shutdown stops the server: graceful lets running transactions finish up
// to Options.ShutdownTimeout, otherwise clients are closed at once
// (shutdown work).
func (s *Server) Shutdown(graceful bool) {}
