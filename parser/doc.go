// Package parser tells the proxy what SQL text does. It has two entry
// points:
//
//   - Classify, a small lexer on the hot path of every simple query, says
//     which statements change session or transaction state (SET, RESET,
//     DISCARD, DEALLOCATE, BEGIN/COMMIT, state that pins a session). It
//     allocates nothing for ordinary statements and uses pg_query only to
//     split SQL-standard function bodies.
//   - Analyze (and its byte-bounded Cache) parses with pg_query_go
//     (libpg_query, through cgo) and describes each statement for routing:
//     kind, read-only or not, tables, equality predicates on columns,
//     joins, INSERT rows and /* pgshard: ... */ hints; for COPY, its
//     table, columns, direction and format options (also ParseCopy).
//   - CopySplitter, pure Go, cuts the data of COPY FROM STDIN (text, csv,
//     binary) into rows and finds each row's shard key, so that the proxy
//     can forward each row unchanged to its shard.
//
// parser does not import routing and does not log: it returns errors.
package parser
