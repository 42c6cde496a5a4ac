package test

// Shards that are schemas of one database (schema-per-shard): DDL lands in
// each shard's schema, and a transaction over both commits in two phases
// on the one server. A server without prepared transactions is refused at
// startup when two-phase commit is on.

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/routing"
	"github.com/pgshard/pgshard/test/pgtest"
)

// schemaShardOptions are pgshard's options for database app of server s
// split into schemas shard_a and shard_b, items hashed on id.
func schemaShardOptions(s *pgtest.Server, db string) proxy.Options {
	url := s.URL("", "", db)
	return proxy.Options{
		PoolMode:           proxy.PoolTransaction,
		ClientLoginTimeout: 5 * time.Second,
		QueryWaitTimeout:   10 * time.Second,
		InstanceID:         "schemas",
		Users:              []proxy.User{{Name: "app", Password: "app", Auth: proxy.AuthSCRAM}},
		Databases: []proxy.Database{{Name: "app", BackendUser: "app", BackendPassword: "app", PoolSize: 4,
			Shards:         []proxy.Shard{{Name: "s0", Primary: url, Schema: "shard_a"}, {Name: "s1", Primary: url, Schema: "shard_b"}},
			Tables:         []proxy.TableRule{{Name: "items", Key: "id", Method: "hash", KeyType: "integer"}},
			CrossShard:     proxy.CrossShardAllow,
			TwoPhaseCommit: true,
		}},
	}
}

var schemaDB sync.Once

func TestSchemaShards(t *testing.T) {
	checkNoGoroutineLeak(t)
	ctx := context.Background()
	schemaDB.Do(func() {
		if err := backend.Exec(ctx, "postgres", "CREATE DATABASE schemas OWNER app"); err != nil {
			t.Fatal(err)
		}
	})
	if err := backend.Exec(ctx, "schemas", "SET ROLE app; DROP SCHEMA IF EXISTS shard_a, shard_b CASCADE; CREATE SCHEMA shard_a; CREATE SCHEMA shard_b"); err != nil {
		t.Fatal(err)
	}
	p := serveProxy(t, schemaShardOptions(backend, "schemas"))
	c := &routedConn{Conn: pgxConnect(t, p.url("app", "app", "app"))}
	c.mustRun(t, simple, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	direct := superConn(t, backend, "schemas")
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'items' AND schemaname IN ('shard_a', 'shard_b')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("items in the shard schemas: %d, %v; want one in each", n, err)
	}
	h, err := routing.NewHash(routing.KeyInt, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{}
	c.mustRun(t, simple, "BEGIN")
	for id := 1; id <= 6; id++ {
		c.mustRun(t, simple, "INSERT INTO items VALUES ("+strconv.Itoa(id)+", 'x')")
		sh, err := h.Shard(strconv.Itoa(id))
		if err != nil {
			t.Fatal(err)
		}
		want[sh] = append(want[sh], strconv.Itoa(id))
	}
	c.mustRun(t, simple, "COMMIT")
	for sh, schema := range []string{"shard_a", "shard_b"} {
		rows, err := direct.Query(ctx, "SELECT id::text FROM "+schema+".items ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		got, err := textRows(rows)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(want[sh], ",") {
			t.Errorf("%s.items: %v, want %v", schema, got, want[sh])
		}
	}
	if len(want[0]) == 0 || len(want[1]) == 0 {
		t.Fatalf("the keys did not span both shards: %v", want)
	}
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&n); err != nil || n != 0 {
		t.Errorf("prepared transactions left: %d, %v", n, err)
	}
	c.mustRun(t, simple, "DROP TABLE items")
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'items'").Scan(&n); err != nil || n != 0 {
		t.Errorf("items after DROP: %d, %v", n, err)
	}
}

// TestTwoPhaseNeedsPreparedTransactions: pgshard does not start in front
// of shards that cannot prepare transactions, and says what to change.
func TestTwoPhaseNeedsPreparedTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgtest.Start(ctx, pgtest.Options{Name: "noprepared", Conf: map[string]string{"max_prepared_transactions": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	if err := s.CreateUserDB(ctx, "app", "app", "app"); err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.NewServer(schemaShardOptions(s, "app"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Serve(ctx, ln)
	if err == nil || !strings.Contains(err.Error(), "max_prepared_transactions") || !strings.Contains(err.Error(), "two_phase_commit: false") {
		t.Fatalf("Serve: %v; want an error naming max_prepared_transactions and two_phase_commit", err)
	}
	t.Log(err)
}
