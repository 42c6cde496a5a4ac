// Package pool keeps bounded pools of backend connections: how many may be
// open, how long a caller waits for one, and when idle or old ones are
// closed. It knows nothing of SQL or of the PostgreSQL protocol; the caller
// supplies how a connection is dialled and closed.
package pool
