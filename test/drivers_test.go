package test

// Real client drivers through pgshard: pgx (pgx.Conn, pgxpool, pgconn's
// pipeline and COPY), lib/pq through database/sql, and psql. Each test
// checks what the client sees and, on the backend, what landed there.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/lib/pq"

	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/test/pgtest"
)

// --- Helpers shared by drivers_test.go, pgbench_test.go and sessionstate_test.go.

// allExecModes are every way pgx can send a query with arguments.
var allExecModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement,
	pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec,
	pgx.QueryExecModeSimpleProtocol,
}

// pgxDial connects with pgx, applying edits to the parsed configuration.
func pgxDial(url string, edits ...func(*pgx.ConnConfig)) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	for _, edit := range edits {
		edit(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// pgxConnect is pgxDial that fails the test on error and closes the
// connection when the test ends (before the proxy stops).
func pgxConnect(t testing.TB, url string, edits ...func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	conn, err := pgxDial(url, edits...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func withExecMode(m pgx.QueryExecMode) func(*pgx.ConnConfig) {
	return func(c *pgx.ConnConfig) { c.DefaultQueryExecMode = m }
}

// withCancelRequests makes a cancelled context send a CancelRequest (as
// libpq users do) instead of breaking the connection with a deadline, which
// is pgx's default.
func withCancelRequests(c *pgx.ConnConfig) {
	c.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
	}
}

// sqlstate returns the SQLSTATE of a server (or proxy) error from pgx or
// lib/pq, or "" for any other error.
func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	var qe *pq.Error
	if errors.As(err, &qe) {
		return string(qe.Code)
	}
	return ""
}

// backendInt runs a query on the backend's database app as the superuser
// and returns its integer result.
func backendInt(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	n, err := backend.QueryInt(context.Background(), "app", query, args...)
	if err != nil {
		t.Fatalf("on the backend: %s: %v", query, err)
	}
	return n
}

// newTable creates a table owned by app in database app, directly on the
// backend, and drops it when the test ends.
func newTable(t testing.TB, name, columns string) {
	t.Helper()
	ctx := context.Background()
	ddl := fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (%[2]s); ALTER TABLE %[1]s OWNER TO app", name, columns)
	if err := backend.Exec(ctx, "app", ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := backend.Exec(context.Background(), "app", "SET lock_timeout = '5s'; DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
}

// checkNoIdleInTransaction fails the test if, once its clients are gone,
// a backend of role app stays idle in a transaction.
func checkNoIdleInTransaction(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := backendStates(t, "app")
		n := st["idle in transaction"] + st["idle in transaction (aborted)"]
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("backends of role app left idle in a transaction after the clients finished: %v", st)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBackendQuery waits until a backend of role app runs query (its
// exact text) and returns that backend's pid.
func waitBackendQuery(ctx context.Context, query string) (int64, error) {
	for {
		pid, err := backend.QueryInt(ctx, "postgres",
			"SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state = 'active' AND query = $1 LIMIT 1", query)
		if err == nil {
			return pid, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no backend of role app started %q: %w", query, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// checkAlive fails the test unless conn answers a query within 5s. On a
// timeout it reports the backends' states and pgshard's goroutines.
func checkAlive(t testing.TB, conn *pgx.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := rand.IntN(1000)
	var got int
	err := conn.QueryRow(ctx, "SELECT $1::int", n).Scan(&got)
	if err == nil && got == n {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: no answer within 5s (%v); backends of role app: %v; pgshard's goroutines:\n%s",
			what, err, backendStates(t, "app"), proxyGoroutines())
	}
	t.Fatalf("%s: got %d, %v; want %d", what, got, err, n)
}

// proxyGoroutines returns the stacks of pgshard's goroutines, for failure
// reports.
func proxyGoroutines() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pgshard/proxy") || strings.Contains(g, "pgshard/pool") {
			ours = append(ours, g)
		}
	}
	return strings.Join(ours, "\n\n")
}

// clientBinary finds a PostgreSQL client program: on PATH, else next to the
// server binaries pgtest uses.
func clientBinary(t testing.TB, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	dir, err := pgtest.BinDir()
	if err == nil {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found on PATH or in the PostgreSQL binary directory (%v); install the PostgreSQL client", name, err)
	return ""
}

// libpqEnv is the environment for psql and pgbench: the caller's, without
// PG* variables that would change where or how they connect.
func libpqEnv(password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer")
}

// --- pgx

// TestPgxQueryExecModes runs queries with and without arguments, inserts
// and transactions in every pgx query mode, several clients at once on a
// pool smaller than the clients in transaction mode, and checks the rows
// that reached the backend.
func TestPgxQueryExecModes(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_exec_modes", "tag text NOT NULL, client int NOT NULL, i int NOT NULL, note text NOT NULL")
	for _, pm := range []proxyConfig{{mode: proxy.PoolTransaction, poolSize: 2}, {mode: proxy.PoolSession, poolSize: 4}} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			for _, mode := range allExecModes {
				t.Run(mode.String(), func(t *testing.T) {
					tag := string(pm.mode) + "/" + mode.String()
					const clients, iters = 4, 15
					var wg sync.WaitGroup
					errs := make([]error, clients)
					committed := make([]int, clients)
					for c := range clients {
						conn := pgxConnect(t, p.url("app", "app", "app"), withExecMode(mode))
						wg.Go(func() { committed[c], errs[c] = execModeClient(conn, tag, c, iters) })
					}
					wg.Wait()
					for c, err := range errs {
						if err != nil {
							t.Errorf("client %d: %v", c, err)
						}
					}
					if t.Failed() {
						return
					}
					auto := backendInt(t, "SELECT count(*) FROM drv_exec_modes WHERE tag = $1 AND note = 'auto'", tag)
					if auto != clients*iters {
						t.Errorf("backend has %d autocommit rows, want %d", auto, clients*iters)
					}
					for c := range clients {
						tx := backendInt(t, "SELECT count(*) FROM drv_exec_modes WHERE tag = $1 AND client = $2 AND note = 'tx'", tag, c)
						if tx != int64(committed[c]) || committed[c] == 0 {
							t.Errorf("client %d: backend has %d rows from transactions, want %d (the committed ones only)", c, tx, committed[c])
						}
						sum := backendInt(t, "SELECT coalesce(sum(i), 0) FROM drv_exec_modes WHERE tag = $1 AND client = $2 AND note = 'auto'", tag, c)
						if want := int64(iters * (iters - 1) / 2); sum != want {
							t.Errorf("client %d: sum(i) of its rows = %d, want %d", c, sum, want)
						}
					}
				})
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// execModeClient is one client of TestPgxQueryExecModes. It returns how many
// of its transactions committed.
func execModeClient(conn *pgx.Conn, tag string, client, iters int) (committed int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	for i := range iters {
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			return committed, fmt.Errorf("SELECT 1: %d, %v", one, err)
		}
		var (
			sum   int64
			text  string
			not   bool
			bytea []byte
			tsOut time.Time
			null  *int32
		)
		err := conn.QueryRow(ctx, "SELECT $1::int8 + $2::int8, $3::text || '!', NOT $4::bool, $5::bytea, $6::timestamptz + interval '1 day', $7::int4",
			int64(i), int64(client), fmt.Sprintf("c%d'x", client), true, []byte{byte(i), 0, 255}, ts, nil).
			Scan(&sum, &text, &not, &bytea, &tsOut, &null)
		if err != nil {
			return committed, fmt.Errorf("query with arguments: %w", err)
		}
		if sum != int64(i+client) || text != fmt.Sprintf("c%d'x!", client) || not || !bytes.Equal(bytea, []byte{byte(i), 0, 255}) ||
			!tsOut.Equal(ts.Add(24*time.Hour)) || null != nil {
			return committed, fmt.Errorf("iteration %d: got %d %q %v %x %v %v", i, sum, text, not, bytea, tsOut, null)
		}
		rows, _ := conn.Query(ctx, "SELECT g FROM generate_series(1, $1::int) g", i+1)
		series, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return committed, fmt.Errorf("generate_series: %w", err)
		}
		if len(series) != i+1 || series[i] != int32(i+1) {
			return committed, fmt.Errorf("generate_series(1, %d) returned %v", i+1, series)
		}
		ct, err := conn.Exec(ctx, "INSERT INTO drv_exec_modes (tag, client, i, note) VALUES ($1, $2, $3, 'auto')", tag, client, i)
		if err != nil || ct.RowsAffected() != 1 {
			return committed, fmt.Errorf("insert: %v, %v", ct, err)
		}
		if i%5 != 0 {
			continue
		}
		// A transaction sees its own rows; only committed ones stay.
		tx, err := conn.Begin(ctx)
		if err != nil {
			return committed, fmt.Errorf("begin: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO drv_exec_modes (tag, client, i, note) VALUES ($1, $2, $3, 'tx')", tag, client, i); err != nil {
			tx.Rollback(ctx)
			return committed, fmt.Errorf("insert in transaction: %w", err)
		}
		var seen int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM drv_exec_modes WHERE tag = $1 AND client = $2 AND note = 'tx'", tag, client).Scan(&seen); err != nil {
			tx.Rollback(ctx)
			return committed, fmt.Errorf("count in transaction: %w", err)
		}
		if seen != committed+1 {
			tx.Rollback(ctx)
			return committed, fmt.Errorf("inside its transaction the client sees %d of its rows, want %d", seen, committed+1)
		}
		if i%10 == 0 {
			err = tx.Rollback(ctx)
		} else {
			err = tx.Commit(ctx)
			committed++
		}
		if err != nil {
			return committed, fmt.Errorf("end transaction: %w", err)
		}
	}
	return committed, nil
}

// TestPgxSharedConns runs many goroutines that share a few pgx connections,
// more connections than pgshard's backend pool, the way pgxpool uses them:
// an acquired connection is pinged first (an empty query), then serves
// queries with arguments, transactions that commit and that roll back, and
// batches. (pgxpool itself cannot be built here: go.mod lacks its
// dependency github.com/jackc/puddle/v2.)
func TestPgxSharedConns(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 3})
	newTable(t, "drv_shared_conns", "worker int NOT NULL, i int NOT NULL, kept bool NOT NULL")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const conns, workers, iters = 12, 24, 20
	idle := make(chan *pgx.Conn, conns)
	for range conns {
		idle <- pgxConnect(t, p.url("app", "app", "app"))
	}
	errBoom := errors.New("boom")
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs[w] = func() error {
				for i := range iters {
					conn := <-idle
					err := conn.Ping(ctx) // as pgxpool does before lending a conn
					if err == nil {
						err = sharedConnRound(ctx, conn, "drv_shared_conns", w, i, errBoom)
					}
					idle <- conn
					if err != nil {
						return fmt.Errorf("iteration %d: %w", i, err)
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	checkRounds(t, "drv_shared_conns", workers, iters)
	checkNoIdleInTransaction(t)
}

// roundDB is what a round needs: *pgx.Conn and *pgxpool.Pool both have it.
type roundDB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// sharedConnRound is one worker iteration: a query with arguments, a
// transaction into table that commits (or, every fourth time, rolls back),
// and a batch. checkRounds checks the table afterwards.
func sharedConnRound(ctx context.Context, conn roundDB, table string, w, i int, errBoom error) error {
	var got int
	if err := conn.QueryRow(ctx, "SELECT $1::int * 2 + $2::int", i, w).Scan(&got); err != nil || got != 2*i+w {
		return fmt.Errorf("query: %d, %v", got, err)
	}
	kept := i%4 != 0
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (worker, i, kept) VALUES ($1, $2, $3)", w, i, kept); err != nil {
			return err
		}
		if !kept {
			return errBoom // rolls back
		}
		return nil
	})
	if kept && err != nil || !kept && !errors.Is(err, errBoom) {
		return fmt.Errorf("transaction: %v", err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT $1::int", i)
	b.Queue("SELECT $1::text", fmt.Sprint(w))
	br := conn.SendBatch(ctx, b)
	var n int
	var s string
	err1 := br.QueryRow().Scan(&n)
	err2 := br.QueryRow().Scan(&s)
	if err := errors.Join(err1, err2, br.Close()); err != nil || n != i || s != fmt.Sprint(w) {
		return fmt.Errorf("batch: %d %q %v", n, s, err)
	}
	return nil
}

// checkRounds checks on the backend that every committed round of
// sharedConnRound landed in table and no rolled-back one did.
func checkRounds(t *testing.T, table string, workers, iters int) {
	t.Helper()
	wantKept := int64(0)
	for i := range iters {
		if i%4 != 0 {
			wantKept++
		}
	}
	if got := backendInt(t, "SELECT count(*) FROM "+table+" WHERE kept"); got != int64(workers)*wantKept {
		t.Errorf("backend has %d committed rows, want %d", got, int64(workers)*wantKept)
	}
	if got := backendInt(t, "SELECT count(*) FROM "+table+" WHERE NOT kept"); got != 0 {
		t.Errorf("backend has %d rows from rolled back transactions", got)
	}
}

// pipelineNext reads the next pipeline result, which must be of type T.
func pipelineNext[T any](pl *pgconn.Pipeline) (T, error) {
	var zero T
	r, err := pl.GetResults()
	if err != nil {
		return zero, err
	}
	v, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("pipeline result is %T, want %T", r, zero)
	}
	return v, nil
}

// pipelineRow reads the next pipeline result as a query result and returns
// its only row.
func pipelineRow(pl *pgconn.Pipeline) ([]string, error) {
	rr, err := pipelineNext[*pgconn.ResultReader](pl)
	if err != nil {
		return nil, err
	}
	res := rr.Read()
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Rows) != 1 {
		return nil, fmt.Errorf("%d rows, want 1 (%s)", len(res.Rows), res.CommandTag)
	}
	var row []string
	for _, v := range res.Rows[0] {
		row = append(row, string(v))
	}
	return row, nil
}

// pipelineTag reads the next pipeline result as a command without rows and
// returns its tag.
func pipelineTag(pl *pgconn.Pipeline) (string, error) {
	rr, err := pipelineNext[*pgconn.ResultReader](pl)
	if err != nil {
		return "", err
	}
	res := rr.Read()
	return res.CommandTag.String(), res.Err
}

func textArgs(args ...any) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = fmt.Append(nil, a)
	}
	return out
}

// TestPgconnPipeline sends many Parse/Bind/Describe/Execute messages before
// a Sync, several Syncs in one write, and large pipelines whose replies
// flow back while the client is still writing.
func TestPgconnPipeline(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_pipeline", "grp text NOT NULL, k int NOT NULL")
	for _, pm := range []proxyConfig{{mode: proxy.PoolTransaction, poolSize: 2}, {mode: proxy.PoolSession, poolSize: 8}} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			t.Run("one sync", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				grp := string(pm.mode) + "/one sync"
				conn := pgxConnect(t, p.url("app", "app", "app"))
				pl := conn.PgConn().StartPipeline(ctx)
				defer pl.Close()
				pl.SendPrepare("ins", "INSERT INTO drv_pipeline (grp, k) VALUES ($1, $2)", nil)
				const n = 200
				for i := range n {
					pl.SendQueryParams("SELECT $1::int * 2", textArgs(i), nil, nil, nil)
					pl.SendQueryPrepared("ins", textArgs(grp, i), nil, nil)
				}
				if err := pl.Sync(); err != nil {
					t.Fatal(err)
				}
				sd, err := pipelineNext[*pgconn.StatementDescription](pl)
				if err != nil || len(sd.ParamOIDs) != 2 {
					t.Fatalf("prepare: %+v, %v", sd, err)
				}
				for i := range n {
					row, err := pipelineRow(pl)
					if err != nil || row[0] != strconv.Itoa(2*i) {
						t.Fatalf("query %d: %v, %v", i, row, err)
					}
					if tag, err := pipelineTag(pl); err != nil || tag != "INSERT 0 1" {
						t.Fatalf("insert %d: %q, %v", i, tag, err)
					}
				}
				if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
					t.Fatal(err)
				}
				if err := pl.Close(); err != nil {
					t.Fatal(err)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_pipeline WHERE grp = $1", grp); got != n {
					t.Errorf("backend has %d rows, want %d", got, n)
				}
				if got := backendInt(t, "SELECT sum(k) FROM drv_pipeline WHERE grp = $1", grp); got != n*(n-1)/2 {
					t.Errorf("backend sum(k) = %d, want %d", got, n*(n-1)/2)
				}
			})

			// Several clients each write ten Sync-delimited groups at once. A
			// group runs on one backend (its implicit transaction), and the
			// backend may be released only after the last Sync's reply.
			t.Run("many syncs", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				grp := string(pm.mode) + "/many syncs"
				const clients, groups, perGroup = 6, 10, 10
				errs := make([]error, clients)
				var wg sync.WaitGroup
				for c := range clients {
					conn := pgxConnect(t, p.url("app", "app", "app"))
					wg.Go(func() {
						errs[c] = func() error {
							pl := conn.PgConn().StartPipeline(ctx)
							defer pl.Close()
							stmt := fmt.Sprintf("c%d", c)
							pl.SendPrepare(stmt, fmt.Sprintf("SELECT $1::int + %d, pg_backend_pid()", c*100000), nil)
							pl.SendPipelineSync()
							for g := range groups {
								for q := range perGroup {
									if q%2 == 0 {
										pl.SendQueryParams("SELECT $1::int, pg_backend_pid()", textArgs(g*perGroup+q), nil, nil, nil)
									} else {
										pl.SendQueryPrepared(stmt, textArgs(g*perGroup+q), nil, nil)
									}
								}
								pl.SendQueryParams("INSERT INTO drv_pipeline (grp, k) VALUES ($1, $2)", textArgs(grp, c*1000+g), nil, nil, nil)
								pl.SendPipelineSync()
							}
							if err := pl.Flush(); err != nil {
								return err
							}
							if _, err := pipelineNext[*pgconn.StatementDescription](pl); err != nil {
								return fmt.Errorf("prepare: %w", err)
							}
							if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
								return fmt.Errorf("sync after prepare: %w", err)
							}
							for g := range groups {
								pid := ""
								for q := range perGroup {
									row, err := pipelineRow(pl)
									if err != nil {
										return fmt.Errorf("group %d query %d: %w", g, q, err)
									}
									want := g*perGroup + q
									if q%2 == 1 {
										want += c * 100000
									}
									if row[0] != strconv.Itoa(want) {
										return fmt.Errorf("group %d query %d: got %s, want %d (another client's reply?)", g, q, row[0], want)
									}
									if pid != "" && row[1] != pid {
										return fmt.Errorf("group %d ran on backends %s and %s: one implicit transaction was split", g, pid, row[1])
									}
									pid = row[1]
								}
								if tag, err := pipelineTag(pl); err != nil || tag != "INSERT 0 1" {
									return fmt.Errorf("group %d insert: %q %v", g, tag, err)
								}
								if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
									return fmt.Errorf("group %d sync: %w", g, err)
								}
							}
							return pl.Close()
						}()
					})
				}
				wg.Wait()
				for c, err := range errs {
					if err != nil {
						t.Errorf("client %d: %v", c, err)
					}
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_pipeline WHERE grp = $1", grp); got != clients*groups {
					t.Errorf("backend has %d rows, want %d", got, clients*groups)
				}
			})

			// After an error the server skips everything up to the Sync (the
			// implicit transaction rolls back), then serves the next group.
			for _, tc := range []struct {
				name, sql string
				args      [][]byte
				code      string
			}{
				{"parse error", "SELEC 1", nil, "42601"},
				{"undefined table", "SELECT * FROM drv_no_such_table", nil, "42P01"},
				{"bind error", "SELECT $1::int", textArgs("abc"), "22P02"},
				{"execute error", "SELECT 1/0", nil, "22012"},
			} {
				t.Run("error: "+tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					grp := string(pm.mode) + "/" + tc.name
					conn := pgxConnect(t, p.url("app", "app", "app"))
					pl := conn.PgConn().StartPipeline(ctx)
					defer pl.Close()
					ins := "INSERT INTO drv_pipeline (grp, k) VALUES ($1, $2)"
					pl.SendQueryParams(ins, textArgs(grp, 1), nil, nil, nil)
					pl.SendQueryParams(ins, textArgs(grp, 2), nil, nil, nil)
					pl.SendQueryParams(tc.sql, tc.args, nil, nil, nil)
					pl.SendQueryParams(ins, textArgs(grp, 3), nil, nil, nil)
					pl.SendPipelineSync()
					pl.SendQueryParams(ins, textArgs(grp, 4), nil, nil, nil)
					if err := pl.Sync(); err != nil {
						t.Fatal(err)
					}
					for k := 1; k <= 2; k++ {
						if tag, err := pipelineTag(pl); err != nil || tag != "INSERT 0 1" {
							t.Fatalf("insert %d: %q, %v", k, tag, err)
						}
					}
					_, err := pl.GetResults()
					if sqlstate(err) != tc.code {
						t.Fatalf("failing statement: got %v, want SQLSTATE %s", err, tc.code)
					}
					// pgconn skips the requests the server skipped.
					if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
						t.Fatalf("first sync: %v", err)
					}
					if tag, err := pipelineTag(pl); err != nil || tag != "INSERT 0 1" {
						t.Fatalf("insert after sync: %q, %v", tag, err)
					}
					if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
						t.Fatalf("second sync: %v", err)
					}
					if err := pl.Close(); err != nil {
						t.Fatal(err)
					}
					var one int
					if err := conn.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one); err != nil || one != 1 {
						t.Fatalf("connection after the failed pipeline: %d, %v", one, err)
					}
					rows, err := backend.QueryString(ctx, "app", "SELECT '{' || coalesce(string_agg(k::text, ',' ORDER BY k), '') || '}' FROM drv_pipeline WHERE grp = $1", grp)
					if err != nil || rows != "{4}" {
						t.Errorf("backend has rows k in %s (%v), want only {4}: rows 1 and 2 roll back with the failed group", rows, err)
					}
				})
			}

			// Replies (about 16 MB) flow back while the client is still
			// writing its requests: both directions must move independently.
			t.Run("large", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				conn := pgxConnect(t, p.url("app", "app", "app"))
				pl := conn.PgConn().StartPipeline(ctx)
				defer pl.Close()
				const n = 2000
				for i := range n {
					pl.SendQueryParams("SELECT repeat('x', 8000), $1::int", textArgs(i), nil, nil, nil)
				}
				if err := pl.Sync(); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					row, err := pipelineRow(pl)
					if err != nil || len(row[0]) != 8000 || row[1] != strconv.Itoa(i) {
						t.Fatalf("query %d: %d bytes, %v, %v", i, len(row[0]), row[1:], err)
					}
				}
				if _, err := pipelineNext[*pgconn.PipelineSync](pl); err != nil {
					t.Fatal(err)
				}
				if err := pl.Close(); err != nil {
					t.Fatal(err)
				}
			})
			checkNoIdleInTransaction(t)
		})
	}
}

// TestPgxBatch sends a pgx.Batch of 100 queries in every query mode, then a
// batch that fails in the middle: the rest is skipped, nothing of it is
// committed, and the connection still works.
func TestPgxBatch(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_batch", "tag text NOT NULL, k int NOT NULL")
	p := startProxy(t, proxyConfig{poolSize: 1})
	// A second client shares the single backend between batches.
	other := pgxConnect(t, p.url("app", "app", "app"))
	for _, mode := range allExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn := pgxConnect(t, p.url("app", "app", "app"), withExecMode(mode))
			tag := mode.String()
			b := &pgx.Batch{}
			for i := range 50 {
				b.Queue("INSERT INTO drv_batch (tag, k) VALUES ($1, $2)", tag, i)
				b.Queue("SELECT $1::int + 1000, $2::text", i, tag)
			}
			br := conn.SendBatch(ctx, b)
			for i := range 50 {
				ct, err := br.Exec()
				if err != nil || ct.RowsAffected() != 1 {
					t.Fatalf("insert %d: %v, %v", i, ct, err)
				}
				var n int
				var s string
				if err := br.QueryRow().Scan(&n, &s); err != nil || n != i+1000 || s != tag {
					t.Fatalf("select %d: %d %q %v", i, n, s, err)
				}
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			if got := backendInt(t, "SELECT count(*) FROM drv_batch WHERE tag = $1", tag); got != 50 {
				t.Errorf("backend has %d rows of the batch, want 50", got)
			}
			if _, err := other.Exec(ctx, "SELECT $1::int", 1); err != nil {
				t.Fatalf("other client: %v", err)
			}

			failTag := tag + "/failed"
			b = &pgx.Batch{}
			for i := range 10 {
				if i == 4 {
					b.Queue("SELECT 1/0")
					continue
				}
				b.Queue("INSERT INTO drv_batch (tag, k) VALUES ($1, $2)", failTag, i)
			}
			br = conn.SendBatch(ctx, b)
			for i := range 4 {
				if _, err := br.Exec(); err != nil {
					t.Fatalf("insert %d before the error: %v", i, err)
				}
			}
			if _, err := br.Exec(); sqlstate(err) != "22012" {
				t.Fatalf("failing query: %v, want SQLSTATE 22012", err)
			}
			for i := 5; i < 10; i++ {
				if _, err := br.Exec(); err == nil {
					t.Errorf("query %d after the error succeeded; the server skips it", i)
				}
			}
			if err := br.Close(); err == nil {
				t.Error("Close of the failed batch reported no error")
			}
			var got int
			if err := conn.QueryRow(ctx, "SELECT $1::int", 7).Scan(&got); err != nil || got != 7 {
				t.Fatalf("connection after the failed batch: %d, %v", got, err)
			}
			if n := backendInt(t, "SELECT count(*) FROM drv_batch WHERE tag = $1", failTag); n != 0 {
				t.Errorf("backend kept %d rows of the failed batch; its implicit transaction must roll back", n)
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// TestPgxCopy streams COPY FROM STDIN (100k rows, and copies that fail on
// the server and in the client) and COPY TO STDOUT through the proxy. After
// each COPY the connection must work and, in transaction mode, its backend
// must be back in the pool of one for another client.
func TestPgxCopy(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_copy", "grp text NOT NULL, id int NOT NULL, payload text")
	for _, pm := range []proxyConfig{{mode: proxy.PoolTransaction, poolSize: 1}, {mode: proxy.PoolSession, poolSize: 2}} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			const rows = 100_000
			grp := string(pm.mode)
			// Each step runs on new connections, so that one failure does
			// not hide the next.
			conns := func(t *testing.T) (conn, other *pgx.Conn, ctx context.Context) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				t.Cleanup(cancel)
				return pgxConnect(t, p.url("app", "app", "app")), pgxConnect(t, p.url("app", "app", "app")), ctx
			}

			t.Run("from stdin", func(t *testing.T) {
				conn, other, ctx := conns(t)
				n, err := conn.CopyFrom(ctx, pgx.Identifier{"drv_copy"}, []string{"grp", "id", "payload"},
					pgx.CopyFromFunc(copyRows(rows, func(i int) []any { return []any{grp, i, fmt.Sprintf("row %d", i)} })))
				if err != nil || n != rows {
					t.Fatalf("CopyFrom: %d rows, %v", n, err)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_copy WHERE grp = $1", grp); got != rows {
					t.Errorf("backend has %d rows, want %d", got, rows)
				}
				if got := backendInt(t, "SELECT sum(id) FROM drv_copy WHERE grp = $1 AND payload = 'row ' || id", grp); got != rows*(rows-1)/2 {
					t.Errorf("backend sum(id) = %d, want %d", got, rows*(rows-1)/2)
				}
				checkAlive(t, other, "another client after COPY FROM STDIN")
				checkAlive(t, conn, "the copying client afterwards")
			})

			t.Run("small from stdin", func(t *testing.T) {
				// pgx writes the data without waiting for CopyInResponse, so
				// a small COPY may be complete before the server's reply.
				conn, other, ctx := conns(t)
				small := grp + "/small"
				for round := range 20 {
					n, err := conn.CopyFrom(ctx, pgx.Identifier{"drv_copy"}, []string{"grp", "id"},
						pgx.CopyFromRows([][]any{{small, round}}))
					if err != nil || n != 1 {
						t.Fatalf("round %d: CopyFrom: %d rows, %v", round, n, err)
					}
					checkAlive(t, other, fmt.Sprintf("another client after small COPY %d", round))
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_copy WHERE grp = $1", small); got != 20 {
					t.Errorf("backend has %d rows, want 20", got)
				}
			})

			t.Run("to stdout", func(t *testing.T) {
				conn, other, ctx := conns(t)
				var buf bytes.Buffer
				tag, err := conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, payload FROM drv_copy WHERE grp = '"+grp+"' ORDER BY id) TO STDOUT")
				if err != nil || tag.RowsAffected() != rows {
					t.Fatalf("CopyTo: %v, %v", tag, err)
				}
				lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
				if len(lines) != rows || lines[0] != "0\trow 0" || lines[rows-1] != fmt.Sprintf("%d\trow %d", rows-1, rows-1) {
					t.Fatalf("COPY TO returned %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
				}
				buf.Reset()
				tag, err = conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT WITH (FORMAT csv, HEADER)")
				if err != nil || buf.String() != "g\n1\n2\n3\n" {
					t.Fatalf("COPY TO csv: %q, %v, %v", buf.String(), tag, err)
				}
				checkAlive(t, other, "another client after COPY TO STDOUT")
				checkAlive(t, conn, "the copying client afterwards")
			})

			t.Run("from stdin fails on the server", func(t *testing.T) {
				conn, other, ctx := conns(t)
				bad := grp + "/bad row"
				_, err := conn.CopyFrom(ctx, pgx.Identifier{"drv_copy"}, []string{"grp", "id"},
					pgx.CopyFromFunc(copyRows(rows, func(i int) []any {
						if i == rows/2 {
							return []any{bad, nil} // violates NOT NULL
						}
						return []any{bad, i}
					})))
				if sqlstate(err) != "23502" {
					t.Fatalf("CopyFrom with a NULL id: %v, want SQLSTATE 23502", err)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_copy WHERE grp = $1", bad); got != 0 {
					t.Errorf("backend kept %d rows of the failed COPY", got)
				}
				checkAlive(t, conn, "the copying client after its COPY failed")
				checkAlive(t, other, "another client after a failed COPY")
			})

			t.Run("from stdin fails in the client", func(t *testing.T) {
				conn, other, ctx := conns(t)
				aborted := grp + "/aborted"
				errSource := errors.New("source failed")
				i := 0
				_, err := conn.CopyFrom(ctx, pgx.Identifier{"drv_copy"}, []string{"grp", "id"},
					pgx.CopyFromFunc(func() ([]any, error) {
						i++
						if i > 30_000 {
							return nil, errSource // pgx sends CopyFail
						}
						return []any{aborted, i}, nil
					}))
				// The server answers CopyFail with 57014 quoting its message.
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, errSource.Error()) {
					t.Fatalf("CopyFrom whose source fails: %v, want the server's SQLSTATE 57014 quoting %q", err, errSource)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_copy WHERE grp = $1", aborted); got != 0 {
					t.Errorf("backend kept %d rows of the aborted COPY", got)
				}
				checkAlive(t, conn, "the copying client after CopyFail")
				checkAlive(t, other, "another client after CopyFail")
			})
			if st := backendStates(t, "app"); st["active"] != 0 {
				t.Errorf("backends of role app still active after the COPYs: %v", st)
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// copyRows returns a CopyFromFunc source of n rows made by row.
func copyRows(n int, row func(i int) []any) func() ([]any, error) {
	i := 0
	return func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		return row(i - 1), nil
	}
}

// TestPgxLargeResult streams a 50 MB result through the proxy and checks
// that it is not held in memory on the way.
func TestPgxLargeResult(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 2})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			conn := pgxConnect(t, p.url("app", "app", "app"), withExecMode(mode))
			const nrows, width = 51_200, 1024 // 50 MiB of payload

			// Sample the heap while the result streams: the proxy runs in
			// this process, and so does the client, which keeps no rows.
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peak.Load() {
						peak.Store(ms.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()
			start := time.Now()
			rows, err := conn.Query(ctx, "SELECT g, repeat('x', $1::int) FROM generate_series(1, $2::int) g", width, nrows)
			if err != nil {
				t.Fatal(err)
			}
			var n, total, last int
			for rows.Next() {
				v := rows.RawValues()
				n++
				total += len(v[1])
				if mode == pgx.QueryExecModeSimpleProtocol {
					last, _ = strconv.Atoi(string(v[0]))
				} else if len(v[0]) == 4 {
					last = int(uint32(v[0][0])<<24 | uint32(v[0][1])<<16 | uint32(v[0][2])<<8 | uint32(v[0][3]))
				}
			}
			rows.Close()
			elapsed := time.Since(start)
			close(stop)
			<-sampled
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != nrows || total != nrows*width || last != nrows {
				t.Fatalf("got %d rows, %d bytes, last g %d; want %d rows, %d bytes, last %d", n, total, last, nrows, nrows*width, nrows)
			}
			growth := int64(peak.Load()) - int64(base.HeapAlloc)
			t.Logf("%d MiB in %v; heap %.1f MiB before, at most %.1f MiB during", total>>20, elapsed.Round(time.Millisecond),
				float64(base.HeapAlloc)/(1<<20), float64(peak.Load())/(1<<20))
			if growth > 24<<20 {
				t.Errorf("heap grew by %.1f MiB while streaming a %d MiB result: the result is buffered, not streamed", float64(growth)/(1<<20), total>>20)
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one); err != nil || one != 1 {
				t.Fatalf("after the large result: %d, %v", one, err)
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// TestPgxCancel cancels a long query through its context: pgx sends a
// CancelRequest to pgshard, which must cancel it on the right backend
// quickly and leave the connection usable.
func TestPgxCancel(t *testing.T) {
	checkNoGoroutineLeak(t)
	for _, pm := range []proxyConfig{
		{mode: proxy.PoolTransaction, poolSize: 1},
		{mode: proxy.PoolSession, poolSize: 1},
		{mode: proxy.PoolStatement, poolSize: 1},
	} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			for _, tc := range []struct {
				name, query string
				args        []any
			}{
				{"simple", "SELECT pg_sleep(10)", nil},
				{"extended", "SELECT pg_sleep($1)", []any{10.0}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					conn := pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)
					query := tc.query
					elapsed, err := cancelWhenRunning(conn, query, tc.args...)
					if sqlstate(err) != "57014" {
						t.Fatalf("cancelled %s: %v, want SQLSTATE 57014", query, err)
					}
					if elapsed > time.Second {
						t.Errorf("the query ended %v after its context was cancelled, want < 1s", elapsed)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					var n int
					if err := conn.QueryRow(ctx, "SELECT $1::int", 42).Scan(&n); err != nil || n != 42 {
						t.Fatalf("connection after the cancel: %d, %v", n, err)
					}
					if got := backendInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND query = $1 AND state = 'active'", query); got != 0 {
						t.Errorf("%s still runs on %d backends", query, got)
					}
				})
			}
			if pm.mode == proxy.PoolSession {
				// The CancelRequest carries the backend's own pid in session
				// mode.
				conn := pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)
				before := conn.PgConn().PID()
				if _, err := cancelWhenRunning(conn, "SELECT pg_sleep(10)"); sqlstate(err) != "57014" {
					t.Fatalf("cancel: %v", err)
				}
				var pid uint32
				if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil || pid != before {
					t.Errorf("after a cancel in session mode the client runs on backend %d (%v), want still %d", pid, err, before)
				}
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// cancelWhenRunning runs query on conn (in the extended protocol when it
// has arguments), cancels its context once a backend of role app runs it,
// and returns the query's error and how long after the cancel it returned.
func cancelWhenRunning(conn *pgx.Conn, query string, args ...any) (time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, query, args...)
		done <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, werr := waitBackendQuery(wctx, query)
	wcancel()
	if werr != nil {
		cancel()
		<-done
		return 0, werr
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(15 * time.Second):
		return time.Since(start), errors.New("the query did not return within 15s of its cancel")
	}
}

// TestCancelWhileWaitingForBackend: a cancel request for a statement that
// waits for a backend (the pool's only one is another client's) drops the
// statement, as PgBouncer does: the client gets 57014 at once and the
// statement never runs, not even once the backend is free.
func TestCancelWhileWaitingForBackend(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 1, edit: func(o *proxy.Options) {
		o.QueryWaitTimeout = time.Minute
		o.AdminUsers = []string{"admin"}
		o.Users = append(o.Users, proxy.User{Name: "admin", Password: "adminpw", Auth: proxy.AuthSCRAM})
	}})
	ctx := t.Context()
	if err := backend.Exec(ctx, "app", "DROP TABLE IF EXISTS cancel_wait; CREATE TABLE cancel_wait (id int); GRANT ALL ON cancel_wait TO app"); err != nil {
		t.Fatal(err)
	}
	holder := pgxConnect(t, p.url("app", "app", "app"))
	waiter := pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)
	admin := adminConn(t, p)
	waiting := func() string {
		_, rows := show(t, admin, "SHOW POOLS")
		if r := find(rows, "database", "app", "user", "app"); len(r) == 1 {
			return r[0]["cl_waiting"]
		}
		return "?"
	}

	for _, tc := range []struct {
		name string
		mode pgx.QueryExecMode
	}{{"simple", pgx.QueryExecModeSimpleProtocol}, {"extended", pgx.QueryExecModeCacheStatement}} {
		t.Run(tc.name, func(t *testing.T) {
			// The holder keeps the pool's only backend in its transaction.
			tx, err := holder.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			qctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := waiter.Exec(qctx, "INSERT INTO cancel_wait VALUES ($1)", tc.mode, 1)
				done <- err
			}()
			deadline := time.Now().Add(10 * time.Second)
			for waiting() != "1" {
				if time.Now().After(deadline) {
					t.Fatal("the waiter never waited for the backend (SHOW POOLS cl_waiting)")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel() // pgx sends a CancelRequest
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the cancelled statement did not end while the backend stayed busy")
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("statement cancelled while waiting for a backend: %v, want SQLSTATE 57014", err)
			}
			t.Logf("cancelled while waiting: %s %s (detail %q)", pe.Code, pe.Message, pe.Detail)
			if got := waiting(); got != "0" {
				t.Errorf("SHOW POOLS cl_waiting = %s after the cancel, want 0", got)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// The waiter's next statement runs after anything of its own
			// that was sent: the cancelled INSERT never was.
			var n int
			if err := waiter.QueryRow(ctx, "SELECT count(*) FROM cancel_wait").Scan(&n); err != nil || n != 0 {
				t.Errorf("cancel_wait has %d rows (%v), want 0: the cancelled statement ran", n, err)
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// TestCancelDoesNotHitOtherClient cancels one client's queries while
// another client runs queries on the same single backend: the cancel must
// reach only the query it was meant for (pgbouncer #717).
func TestCancelDoesNotHitOtherClient(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 1})
	a := pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)
	b := pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)

	// runB runs query on b in a loop until stop, and reports its errors.
	runB := func(query string, arg float64, stop chan struct{}) (ran *atomic.Int64, errs chan error) {
		ran, errs = new(atomic.Int64), make(chan error, 1000)
		go func() {
			defer close(errs)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := b.Exec(ctx, query, arg)
				cancel()
				ran.Add(1)
				if err != nil {
					errs <- err
				}
			}
		}()
		return ran, errs
	}
	checkB := func(ran *atomic.Int64, errs chan error) {
		t.Helper()
		for err := range errs {
			t.Errorf("the other client's query failed: %v (SQLSTATE %s)", err, sqlstate(err))
		}
		if ran.Load() == 0 {
			t.Error("the other client ran no query")
		}
	}

	t.Run("long query", func(t *testing.T) {
		stop := make(chan struct{})
		ran, errs := runB("SELECT pg_sleep($1)", 0.5, stop)
		for round := range 3 {
			elapsed, err := cancelWhenRunning(a, "SELECT pg_sleep(10)")
			if sqlstate(err) != "57014" || elapsed > time.Second {
				t.Errorf("round %d: cancelled query returned %v after %v, want SQLSTATE 57014 within 1s", round, err, elapsed)
			}
		}
		close(stop)
		checkB(ran, errs)
	})

	// Cancels that race with the end of short queries: a late cancel must
	// be dropped rather than hit the other client's next query.
	t.Run("race", func(t *testing.T) {
		stop := make(chan struct{})
		ran, errs := runB("SELECT pg_sleep($1)", 0.01, stop)
		cancelled := 0
		for range 25 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(30))*time.Millisecond)
			_, err := a.Exec(ctx, "SELECT pg_sleep($1)", 0.02)
			cancel()
			switch {
			case sqlstate(err) == "57014":
				cancelled++
			case err != nil && !errors.Is(err, context.DeadlineExceeded):
				t.Fatalf("cancelled client: %v", err)
			}
			if a.IsClosed() {
				t.Fatal("the cancelled client's connection was closed")
			}
		}
		close(stop)
		checkB(ran, errs)
		t.Logf("%d of 25 queries cancelled; the other client ran %d queries", cancelled, ran.Load())
		if cancelled == 0 {
			t.Error("no query was cancelled: the race was not exercised")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := a.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("cancelled client afterwards: %v", err)
		}
	})
	checkNoIdleInTransaction(t)
}

// TestPreparedStatementsTransactionMode has ten clients on two backends
// prepare statements under the same name with the same and with different
// text, and under different names, use them across many transactions, and
// close and re-prepare them.
func TestPreparedStatementsTransactionMode(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_prepared", "client int NOT NULL, i int NOT NULL")
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 2})
	const clients, iters = 10, 30
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		conn := pgxConnect(t, p.url("app", "app", "app"))
		wg.Go(func() { errs[c] = preparedClient(conn, c, iters) })
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", c, err)
		}
	}
	for c := range clients {
		n := backendInt(t, "SELECT count(*) FROM drv_prepared WHERE client = $1", c)
		sum := backendInt(t, "SELECT coalesce(sum(i), 0) FROM drv_prepared WHERE client = $1", c)
		if n != iters || sum != iters*(iters-1)/2 {
			t.Errorf("client %d: backend has %d rows summing to %d, want %d rows summing to %d", c, n, sum, iters, iters*(iters-1)/2)
		}
	}
	checkNoIdleInTransaction(t)
}

func preparedClient(conn *pgx.Conn, c, iters int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insert := fmt.Sprintf("insert_%d", c)
	prepare := map[string]string{
		"shared_sum": "SELECT $1::int + $2::int",                 // same name, same text everywhere
		"mine":       fmt.Sprintf("SELECT $1::int * %d", c+1),    // same name, different text
		insert:       "INSERT INTO drv_prepared VALUES ($1, $2)", // different names, same text
	}
	for name, text := range prepare {
		if _, err := conn.Prepare(ctx, name, text); err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
	}
	// One statement name cannot be prepared twice, as in PostgreSQL.
	if _, err := conn.PgConn().Prepare(ctx, "mine", "SELECT 1", nil); sqlstate(err) != "42P05" {
		return fmt.Errorf("preparing an existing name again: %v, want SQLSTATE 42P05", err)
	}
	use := func(q pgx.Tx, i int) error {
		type querier interface {
			Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
			QueryRow(context.Context, string, ...any) pgx.Row
		}
		var db querier = conn
		if q != nil {
			db = q
		}
		if _, err := db.Exec(ctx, insert, c, i); err != nil {
			return fmt.Errorf("%s: %w", insert, err)
		}
		var n int
		if err := db.QueryRow(ctx, "mine", i).Scan(&n); err != nil || n != i*(c+1) {
			return fmt.Errorf("mine(%d) = %d, %v; want %d", i, n, err, i*(c+1))
		}
		if err := db.QueryRow(ctx, "shared_sum", i, c).Scan(&n); err != nil || n != i+c {
			return fmt.Errorf("shared_sum(%d, %d) = %d, %v", i, c, n, err)
		}
		return nil
	}
	for i := range iters {
		if i%3 == 0 {
			if err := use(nil, i); err != nil {
				return fmt.Errorf("iteration %d: %w", i, err)
			}
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if err := use(tx, i); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("iteration %d in a transaction: %w", i, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}

	pc := conn.PgConn()
	execInt := func(name string, args ...any) (int, error) {
		res := pc.ExecPrepared(ctx, name, textArgs(args...), nil, nil).Read()
		if res.Err != nil {
			return 0, res.Err
		}
		if len(res.Rows) != 1 {
			return 0, fmt.Errorf("%d rows", len(res.Rows))
		}
		return strconv.Atoi(string(res.Rows[0][0]))
	}
	// Close (protocol) then prepare the name again with another text.
	if err := conn.Deallocate(ctx, "mine"); err != nil {
		return fmt.Errorf("deallocate mine: %w", err)
	}
	if _, err := execInt("mine", 1); sqlstate(err) != "26000" {
		return fmt.Errorf("mine after Close: %v, want SQLSTATE 26000", err)
	}
	if _, err := pc.Prepare(ctx, "mine", fmt.Sprintf("SELECT $1::int + %d", 1000*c), nil); err != nil {
		return fmt.Errorf("prepare mine again: %w", err)
	}
	if n, err := execInt("mine", 5); err != nil || n != 1000*c+5 {
		return fmt.Errorf("new mine(5) = %d, %v; want %d", n, err, 1000*c+5)
	}
	// The other clients' "shared_sum" is untouched by this client's DEALLOCATE.
	if _, err := pc.Exec(ctx, "DEALLOCATE shared_sum").ReadAll(); err != nil {
		return fmt.Errorf("DEALLOCATE shared_sum: %w", err)
	}
	if _, err := execInt("shared_sum", 1, 2); sqlstate(err) != "26000" {
		return fmt.Errorf("shared_sum after DEALLOCATE: %v, want SQLSTATE 26000", err)
	}
	if _, err := pc.Prepare(ctx, "shared_sum", "SELECT $1::int + $2::int", nil); err != nil {
		return fmt.Errorf("prepare shared_sum again: %w", err)
	}
	if n, err := execInt("shared_sum", 20, c); err != nil || n != 20+c {
		return fmt.Errorf("shared_sum again = %d, %v", n, err)
	}
	// DEALLOCATE ALL drops every statement of this client.
	if _, err := pc.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
		return fmt.Errorf("DEALLOCATE ALL: %w", err)
	}
	for _, name := range []string{"mine", "shared_sum", insert} {
		if _, err := execInt(name, 1, 2); sqlstate(err) != "26000" {
			return fmt.Errorf("%s after DEALLOCATE ALL: %v, want SQLSTATE 26000", name, err)
		}
	}
	if _, err := pc.Prepare(ctx, "mine", "SELECT $1::int - 1", nil); err != nil {
		return fmt.Errorf("prepare after DEALLOCATE ALL: %w", err)
	}
	if n, err := execInt("mine", 10); err != nil || n != 9 {
		return fmt.Errorf("mine after DEALLOCATE ALL = %d, %v", n, err)
	}
	return nil
}

// TestUnnamedStatementAcrossClients prepares the unnamed statement in one
// round (Parse, Describe, Sync) and executes it in the next (Bind,
// Execute, Sync), as pgx's describe_exec and cache_describe modes and
// libpq's PQprepare with "" do. In transaction mode another client may use
// the backend between the two rounds, and a simple Query — the other
// client's, or pgshard's own SET restoring a client's settings — destroys
// the unnamed statement there: pgshard must prepare it again.
func TestUnnamedStatementAcrossClients(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 1})
	for _, tc := range []struct {
		name  string
		other string // connection string suffix of the other client
		query string // what the other client runs between the rounds
	}{
		{"other client's simple query", "", "SELECT 1"},
		{"other client's settings", "&application_name=other_settings", "SELECT 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a := pgxConnect(t, p.url("app", "app", "app")+"&application_name=client_a")
			b := pgxConnect(t, p.url("app", "app", "app")+tc.other)
			for round := range 3 {
				if _, err := a.PgConn().Prepare(ctx, "", "SELECT $1::int * 2", nil); err != nil {
					t.Fatalf("round %d: prepare the unnamed statement: %v", round, err)
				}
				if _, err := b.PgConn().Exec(ctx, tc.query).ReadAll(); err != nil {
					t.Fatalf("round %d: other client: %v", round, err)
				}
				res := a.PgConn().ExecPrepared(ctx, "", textArgs(21), nil, nil).Read()
				if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "42" {
					t.Fatalf("round %d: execute the unnamed statement after another client used the backend: %v, %v", round, res.Rows, res.Err)
				}
			}
		})
	}
	checkNoIdleInTransaction(t)
}

// TestDriverAuth logs in with each authentication method through pgx and
// lib/pq, whose SCRAM and md5 implementations differ.
func TestDriverAuth(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	for _, u := range []struct{ user, password string }{{"app", "app"}, {"md5user", "md5pass"}, {"trustuser", ""}} {
		t.Run(u.user+"/pgx", func(t *testing.T) {
			conn := pgxConnect(t, p.url(u.user, u.password, "app"))
			var who, db string
			if err := conn.QueryRow(context.Background(), "SELECT current_user, current_database()").Scan(&who, &db); err != nil || who != "app" || db != "app" {
				t.Fatalf("current_user %q, database %q, %v; want the backend user app", who, db, err)
			}
		})
		t.Run(u.user+"/lib/pq", func(t *testing.T) {
			db, err := sql.Open("postgres", p.url(u.user, u.password, "app"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var who string
			if err := db.QueryRow("SELECT current_user").Scan(&who); err != nil || who != "app" {
				t.Fatalf("current_user %q, %v", who, err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		for _, u := range []string{"app", "md5user"} {
			if _, err := pgxDial(p.url(u, "wrong", "app")); sqlstate(err) != "28P01" {
				t.Errorf("pgx as %s with a wrong password: %v, want SQLSTATE 28P01", u, err)
			}
			db, _ := sql.Open("postgres", p.url(u, "wrong", "app"))
			if err := db.Ping(); sqlstate(err) != "28P01" {
				t.Errorf("lib/pq as %s with a wrong password: %v, want SQLSTATE 28P01", u, err)
			}
			db.Close()
		}
	})
}

// --- lib/pq

// TestLibPQ runs database/sql with lib/pq: arguments, transactions,
// prepared statements used from many goroutines, COPY FROM STDIN, and the
// SQLSTATE of errors.
func TestLibPQ(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_libpq", "grp text NOT NULL, k int NOT NULL, UNIQUE (grp, k)")
	p := startProxy(t, proxyConfig{mode: proxy.PoolTransaction, poolSize: 2})
	db, err := sql.Open("postgres", p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(8)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	count := func(grp string) int64 {
		t.Helper()
		return backendInt(t, "SELECT count(*) FROM drv_libpq WHERE grp = $1", grp)
	}

	t.Run("arguments", func(t *testing.T) {
		var (
			sum   int
			text  string
			bytea []byte
			b     bool
			null  sql.NullInt64
		)
		err := db.QueryRowContext(ctx, "SELECT $1::int + $2::int, $3::text || 'y', $4::bytea, NOT $5::bool, $6::int8", 2, 3, "x'", []byte{0, 1, 255}, false, nil).
			Scan(&sum, &text, &bytea, &b, &null)
		if err != nil || sum != 5 || text != "x'y" || !bytes.Equal(bytea, []byte{0, 1, 255}) || !b || null.Valid {
			t.Fatalf("got %d %q %x %v %v, %v", sum, text, bytea, b, null, err)
		}
		rows, err := db.QueryContext(ctx, "SELECT g FROM generate_series(1, $1::int) g", 100)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for rows.Next() {
			var g int
			if err := rows.Scan(&g); err != nil {
				t.Fatal(err)
			}
			total += g
		}
		if err := rows.Err(); err != nil || total != 5050 {
			t.Fatalf("sum of generate_series(1, 100) = %d, %v", total, err)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		for _, commit := range []bool{true, false} {
			grp := fmt.Sprintf("tx commit=%v", commit)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k := range 10 {
				if _, err := tx.ExecContext(ctx, "INSERT INTO drv_libpq (grp, k) VALUES ($1, $2)", grp, k); err != nil {
					t.Fatal(err)
				}
			}
			var seen int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM drv_libpq WHERE grp = $1", grp).Scan(&seen); err != nil || seen != 10 {
				t.Fatalf("inside the transaction: %d rows, %v", seen, err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			want := int64(0)
			if commit {
				want = 10
			}
			if got := count(grp); got != want {
				t.Errorf("commit=%v: backend has %d rows, want %d", commit, got, want)
			}
		}
		// An error aborts the transaction until it rolls back.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO drv_libpq (grp, k) VALUES ('tx failed', 1)"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "SELECT 1/0"); sqlstate(err) != "22012" {
			t.Fatalf("1/0: %v", err)
		}
		if _, err := tx.ExecContext(ctx, "SELECT 1"); sqlstate(err) != "25P02" {
			t.Fatalf("statement in the failed transaction: %v, want SQLSTATE 25P02", err)
		}
		if err := tx.Commit(); err == nil {
			t.Error("COMMIT of a failed transaction reported success")
		}
		if got := count("tx failed"); got != 0 {
			t.Errorf("backend kept %d rows of the failed transaction", got)
		}
	})

	t.Run("prepared", func(t *testing.T) {
		ins, err := db.PrepareContext(ctx, "INSERT INTO drv_libpq (grp, k) VALUES ($1, $2)")
		if err != nil {
			t.Fatal(err)
		}
		defer ins.Close()
		sel, err := db.PrepareContext(ctx, "SELECT $1::int * 3, current_user")
		if err != nil {
			t.Fatal(err)
		}
		defer sel.Close()
		const workers, per = 8, 50
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range per {
					k := w*per + i
					if _, err := ins.ExecContext(ctx, "prepared", k); err != nil {
						errs[w] = err
						return
					}
					var n int
					var who string
					if err := sel.QueryRowContext(ctx, k).Scan(&n, &who); err != nil || n != 3*k || who != "app" {
						errs[w] = fmt.Errorf("select %d: %d %q %v", k, n, who, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		}
		if got := count("prepared"); got != workers*per {
			t.Errorf("backend has %d rows, want %d", got, workers*per)
		}
		if got := backendInt(t, "SELECT sum(k) FROM drv_libpq WHERE grp = 'prepared'"); got != workers*per*(workers*per-1)/2 {
			t.Errorf("backend sum(k) = %d", got)
		}
	})

	t.Run("copy in", func(t *testing.T) {
		// pq.CopyIn only builds this statement (and is deprecated for it);
		// lib/pq runs COPY FROM STDIN when a transaction prepares it.
		const rows = 20_000
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		stmt, err := tx.PrepareContext(ctx, `COPY drv_libpq (grp, k) FROM STDIN`)
		if err != nil {
			t.Fatal(err)
		}
		for k := range rows {
			if _, err := stmt.ExecContext(ctx, "copy", k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			t.Fatal(err)
		}
		if err := stmt.Close(); err != nil {
			t.Fatal(err)
		}
		if got := count("copy"); got != 0 {
			t.Errorf("backend shows %d copied rows before COMMIT", got)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := count("copy"); got != rows {
			t.Errorf("backend has %d copied rows, want %d", got, rows)
		}

		// A COPY that fails on the server (a duplicate key) fails the
		// transaction; nothing stays.
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		stmt, err = tx.PrepareContext(ctx, `COPY drv_libpq (grp, k) FROM STDIN`)
		if err != nil {
			t.Fatal(err)
		}
		var copyErr error
		for k := range 1000 {
			if _, err := stmt.ExecContext(ctx, "copy dup", k%500); err != nil {
				copyErr = err
				break
			}
		}
		if copyErr == nil {
			_, copyErr = stmt.ExecContext(ctx)
		}
		if err := stmt.Close(); copyErr == nil {
			copyErr = err
		}
		if sqlstate(copyErr) != "23505" {
			t.Errorf("COPY of duplicate keys: %v, want SQLSTATE 23505", copyErr)
		}
		tx.Rollback()
		if got := count("copy dup"); got != 0 {
			t.Errorf("backend kept %d rows of the failed COPY", got)
		}
	})

	t.Run("sqlstate", func(t *testing.T) {
		if _, err := db.ExecContext(ctx, "INSERT INTO drv_libpq (grp, k) VALUES ('dup', 1)"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, sql string
			args      []any
			code      string
		}{
			{"division by zero", "SELECT 1/0", nil, "22012"},
			{"undefined table", "SELECT * FROM drv_no_such_table", nil, "42P01"},
			{"undefined column", "SELECT no_such_column FROM drv_libpq", nil, "42703"},
			{"syntax error", "SELEC 1", nil, "42601"},
			{"unique violation", "INSERT INTO drv_libpq (grp, k) VALUES ($1, $2)", []any{"dup", 1}, "23505"},
			{"not null violation", "INSERT INTO drv_libpq (grp, k) VALUES ($1, NULL)", []any{"dup"}, "23502"},
			{"bad argument", "SELECT $1::int", []any{"abc"}, "22P02"},
			{"raised", "DO $$BEGIN RAISE EXCEPTION 'custom' USING ERRCODE = 'P0042'; END$$", nil, "P0042"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.ExecContext(ctx, tc.sql, tc.args...)
				var qe *pq.Error
				if !errors.As(err, &qe) || string(qe.Code) != tc.code {
					t.Fatalf("%s: %v, want a *pq.Error with SQLSTATE %s", tc.sql, err, tc.code)
				}
			})
		}
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoIdleInTransaction(t)
}

// --- psql

// psqlThroughProxy runs psql through the proxy as app with ON_ERROR_STOP and no
// psqlrc, with stdin as its input.
func psqlThroughProxy(t testing.TB, p *testProxy, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-h", p.host, "-p", p.port, "-U", "app", "-d", "app"}, args...)
	cmd := exec.CommandContext(ctx, clientBinary(t, "psql"), all...)
	cmd.Env = libpqEnv("app")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// TestPsql runs psql through the proxy: a multi-statement string, a
// script with a transaction and COPY data, \copy both ways, and an error
// that stops the script.
func TestPsql(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "drv_psql", "grp text NOT NULL, k int NOT NULL, v text")
	for _, pm := range []proxyConfig{{mode: proxy.PoolTransaction, poolSize: 1}, {mode: proxy.PoolSession, poolSize: 1}} {
		t.Run(string(pm.mode), func(t *testing.T) {
			p := startProxy(t, pm)
			grp := string(pm.mode)
			psql := func(t *testing.T, stdin string, args ...string) string {
				t.Helper()
				out, errOut, err := psqlThroughProxy(t, p, stdin, args...)
				if err != nil {
					t.Fatalf("psql %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
				}
				return out
			}

			t.Run("multi-statement", func(t *testing.T) {
				out := psql(t, "", "-At", "-c",
					fmt.Sprintf("INSERT INTO drv_psql (grp, k, v) VALUES ('%[1]s', 1, 'a'), ('%[1]s', 2, 'b'); "+
						"SELECT count(*) FROM drv_psql WHERE grp = '%[1]s'; SELECT string_agg(v, ',' ORDER BY k) FROM drv_psql WHERE grp = '%[1]s'", grp))
				// psql 15 prints the result of every statement.
				if want := "INSERT 0 2\n2\na,b\n"; out != want {
					t.Errorf("output %q, want %q", out, want)
				}
				out = psql(t, "", "-At", "-c", "SELECT current_user, current_database()", "-c", "SHOW application_name")
				if want := "app|app\npsql\n"; out != want {
					t.Errorf("output %q, want %q", out, want)
				}
			})

			t.Run("script", func(t *testing.T) {
				script := fmt.Sprintf(`\set grp '%s/script'
BEGIN;
INSERT INTO drv_psql (grp, k, v) VALUES (:'grp', 10, 'ten');
COPY drv_psql (grp, k, v) FROM stdin;
%s/script	11	eleven
%s/script	12	\N
\.
SELECT count(*) FROM drv_psql WHERE grp = :'grp';
COMMIT;
BEGIN;
INSERT INTO drv_psql (grp, k, v) VALUES (:'grp', 99, 'rolled back');
ROLLBACK;
SELECT string_agg(k || ':' || coalesce(v, 'null'), ',' ORDER BY k) FROM drv_psql WHERE grp = :'grp';
`, grp, grp, grp)
				out := psql(t, script, "-At", "-q", "-f", "-")
				if want := "3\n10:ten,11:eleven,12:null\n"; out != want {
					t.Errorf("output %q, want %q", out, want)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_psql WHERE grp = $1", grp+"/script"); got != 3 {
					t.Errorf("backend has %d rows of the script, want 3", got)
				}
			})

			t.Run("copy", func(t *testing.T) {
				dir := t.TempDir()
				in := filepath.Join(dir, "in.csv")
				var csv strings.Builder
				const n = 1000
				for k := range n {
					fmt.Fprintf(&csv, "%s/copy,%d,\"v,%d\"\n", grp, k, k)
				}
				if err := os.WriteFile(in, []byte(csv.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				out := psql(t, "", "-c", fmt.Sprintf(`\copy drv_psql (grp, k, v) FROM '%s' WITH (FORMAT csv)`, in))
				if out != fmt.Sprintf("COPY %d\n", n) {
					t.Errorf("\\copy from: %q", out)
				}
				if got := backendInt(t, "SELECT count(*) FROM drv_psql WHERE grp = $1 AND v = 'v,' || k", grp+"/copy"); got != n {
					t.Errorf("backend has %d copied rows, want %d", got, n)
				}
				outFile := filepath.Join(dir, "out.csv")
				psql(t, "", "-q", "-c", fmt.Sprintf(`\copy (SELECT grp, k, v FROM drv_psql WHERE grp = '%s/copy' ORDER BY k) TO '%s' WITH (FORMAT csv)`, grp, outFile))
				got, err := os.ReadFile(outFile)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != csv.String() {
					t.Errorf("\\copy to wrote %d bytes, want the %d bytes copied in", len(got), csv.Len())
				}
				out = psql(t, "", "-At", "-c", fmt.Sprintf(`\copy (SELECT k FROM drv_psql WHERE grp = '%s/copy' AND k < 3 ORDER BY k) TO STDOUT`, grp))
				if out != "0\n1\n2\n" {
					t.Errorf("\\copy to stdout: %q", out)
				}
			})

			t.Run("error stops", func(t *testing.T) {
				out, errOut, err := psqlThroughProxy(t, p, "", "-At",
					"-c", fmt.Sprintf("INSERT INTO drv_psql (grp, k) VALUES ('%s/error', 1)", grp),
					"-c", "SELECT 1/0",
					"-c", fmt.Sprintf("INSERT INTO drv_psql (grp, k) VALUES ('%s/error', 2)", grp))
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() == 0 {
					t.Fatalf("psql exit: %v, want a failure", err)
				}
				if !strings.Contains(errOut, "division by zero") {
					t.Errorf("stderr %q does not report the division by zero", errOut)
				}
				if out != "INSERT 0 1\n" {
					t.Errorf("stdout %q", out)
				}
				if got := backendInt(t, "SELECT coalesce(sum(k), 0) FROM drv_psql WHERE grp = $1", grp+"/error"); got != 1 {
					t.Errorf("backend has rows summing to %d, want only the first insert (1)", got)
				}
			})
			checkNoIdleInTransaction(t)
		})
	}
}
