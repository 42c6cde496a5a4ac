// Package proxy is pgshard's front end: it accepts PostgreSQL clients,
// authenticates them, runs one session per client and relays the wire
// protocol to pooled backend connections.
//
// A session is owned by one goroutine, which reads the client. Each backend
// connection has one reader goroutine, which forwards the backend's replies to
// whichever session holds it. proxy turns statements into backend traffic; it
// must not know how backends are dialled or pooled beyond package pool, and
// it does not log SQL text at info level.
package proxy
