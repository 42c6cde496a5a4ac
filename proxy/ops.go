package proxy

import (
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

// Stats is in metrics.go; Ban and Unban are in health.go.

// Pause and Resume are in pause.go.
