package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Exec runs sql on database db as the superuser, on a connection of its
// own. Without args, sql may hold several statements.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	return s.withConn(ctx, db, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	})
}

// QueryInt runs a query on database db as the superuser and returns the
// first column of its first row, which must be a non-NULL integer (or an
// integral numeric, as sum(bigint) is). No rows is an error wrapping
// pgx.ErrNoRows. It is how tests check what landed on one shard:
//
//	n, err := shard.QueryInt(ctx, "app", "SELECT count(*) FROM orders WHERE customer_id = $1", 42)
func (s *Server) QueryInt(ctx context.Context, db, sql string, args ...any) (int64, error) {
	var n int64
	err := s.withConn(ctx, db, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, sql, args...).Scan(&n)
	})
	return n, err
}

// QueryString is QueryInt for a value of any type, returned in
// PostgreSQL's text form ("t" for true, "2024-01-02" for a date). NULL is
// an error.
func (s *Server) QueryString(ctx context.Context, db, sql string, args ...any) (string, error) {
	var text string
	err := s.withConn(ctx, db, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return pgx.ErrNoRows
		}
		values := rows.RawValues()
		switch {
		case len(values) == 0:
			return errors.New("query returned no columns")
		case values[0] == nil:
			return errors.New("query returned NULL")
		}
		text = string(values[0])
		rows.Close()
		return rows.Err()
	})
	return text, err
}

// CreateUserDB makes user a login role with password, stored as a
// SCRAM-SHA-256 verifier, and a database db owned by it. It is idempotent:
// an existing role gets the password again, an existing database is kept.
func (s *Server) CreateUserDB(ctx context.Context, user, password, db string) error {
	role := pgx.Identifier{user}.Sanitize()
	pw := "NULL"
	if password != "" {
		pw = quoteLiteral(password)
	}
	return s.withConn(ctx, "postgres", func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
			return err
		}
		// CREATE first and ALTER on a duplicate, so that two callers at
		// once both succeed (a race shows as 42710 or 23505).
		_, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD "+pw)
		if hasCode(err, "42710", "23505") {
			_, err = conn.Exec(ctx, "ALTER ROLE "+role+" LOGIN PASSWORD "+pw)
		}
		if err != nil {
			return fmt.Errorf("role %s: %w", user, err)
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+role)
		if err != nil && !hasCode(err, "42P04", "23505") {
			return fmt.Errorf("database %s: %w", db, err)
		}
		return nil
	})
}

// withConn runs f on a new superuser connection to db.
func (s *Server) withConn(ctx context.Context, db string, f func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, s.SuperURL(db))
	if err == nil {
		err = f(conn)
		conn.Close(context.Background())
	}
	if err != nil {
		return s.errorf("database %s: %w", db, err)
	}
	return nil
}

func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported PostgreSQL).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Promote makes a streaming replica a primary (pg_promote) and waits, up
// to a minute or ctx, until it has left recovery.
func (s *Server) Promote(ctx context.Context) error {
	ok, err := s.QueryString(ctx, "postgres", "SELECT pg_promote(true, 60)")
	if err != nil {
		return s.errorf("promote: %w", err)
	}
	if ok != "t" {
		return s.errorf("promote: still in recovery after 60s")
	}
	return nil
}

// RunClient runs a client program to completion against the server, as a
// superuser: argv is the program and its arguments (such as "bash" and a
// script using psql), run as the server's OS user in the server's
// directory, with libpq's PGHOST, PGPORT and PGUSER pointing at it, the
// PostgreSQL binaries first on PATH, and env ("KEY=value") added to the
// environment. Its output is in the error.
func (s *Server) RunClient(ctx context.Context, env []string, argv ...string) error {
	if len(argv) == 0 {
		return s.errorf("RunClient: no program")
	}
	env = append([]string{
		"PATH=" + s.bin.dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PGHOST=" + host,
		"PGPORT=" + strconv.Itoa(s.Port()),
		"PGUSER=postgres",
	}, env...)
	if err := runCommand(ctx, s.cred, s.dir, env, argv[0], argv[1:]...); err != nil {
		return s.errorf("%w", err)
	}
	return nil
}
