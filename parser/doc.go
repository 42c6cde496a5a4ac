// Package parser classifies SQL text for the proxy: it splits a query string
// into statements and says which of them change session state (SET, RESET,
// DISCARD, DEALLOCATE, ...) or start transactions. It wraps pg_query_go
// (libpg_query, through cgo) and a small lexer; it does not route and does
// not log.
package parser
