package test

// Multi-shard statements in the extended query protocol: pgx's text and
// binary parameter modes with IN lists, = ANY($1), key-less reads and
// writes, and multi-row INSERTs split with their parameters; then what a
// client sees on the wire for the message sequences drivers use.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRoutingMultiShardExtended: in autocommit, a statement whose Bind
// parameters put it on several shards runs on each of them, as in the
// simple protocol: the client gets every shard's rows and a summed tag,
// and each shard holds what it should.
func TestRoutingMultiShardExtended(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)

	for _, mode := range keyModes[1:] {
		t.Run(modeName(mode), func(t *testing.T) {
			rc.truncate(t, "users", "countries")
			keys := usersOnShards(t, rc, 1, 3)
			all := slices.Concat(keys...)

			r := c.mustRun(t, mode, "SELECT id, name FROM users WHERE id IN ($1, $2)", keys[0][0], keys[2][0])
			r.wantRows(t, userRows(keys[0][0], keys[2][0])...)
			r.wantTag(t, "SELECT 2")
			r.wantRoute(t, routeNotice("primary", 0, 2))
			r = c.mustRun(t, mode, "SELECT id, name FROM users WHERE id = ANY($1)", []int32{int32(keys[1][1]), int32(keys[0][1])})
			r.wantRows(t, userRows(keys[0][1], keys[1][1])...)
			r.wantRoute(t, routeNotice("primary", 0, 1))
			r = c.mustRun(t, mode, "SELECT id, name FROM users WHERE name LIKE $1", "n%")
			r.wantRows(t, userRows(all...)...)
			r.wantTag(t, fmt.Sprintf("SELECT %d", len(all)))
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))
			r = c.mustRun(t, mode, "SELECT id, name FROM users")
			r.wantRows(t, userRows(all...)...)
			r = c.mustRun(t, mode, "SELECT id FROM users WHERE name = $1", "nobody")
			r.wantRows(t)
			r.wantTag(t, "SELECT 0")
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))

			// Writes: summed tags, merged RETURNING rows, every shard changed.
			r = c.mustRun(t, mode, "UPDATE users SET name = name || $1", "!")
			r.wantTag(t, fmt.Sprintf("UPDATE %d", len(all)))
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))
			r = c.mustRun(t, mode, "UPDATE users SET name = name || $2 WHERE id = ANY($1) RETURNING id", []int32{int32(keys[0][2]), int32(keys[2][2])}, "?")
			r.wantRows(t, strconv.Itoa(keys[0][2]), strconv.Itoa(keys[2][2]))
			r.wantTag(t, "UPDATE 2")
			r.wantRoute(t, routeNotice("primary", 0, 2))
			want := make([][]string, 3)
			for s, ks := range keys {
				for _, k := range ks {
					suffix := "!"
					if k == keys[0][2] || k == keys[2][2] {
						suffix = "!?"
					}
					want[s] = append(want[s], fmt.Sprintf("%d|n%d%s", k, k, suffix))
				}
			}
			rc.checkShardRows(t, want, "SELECT id || '|' || name FROM users")
			r = c.mustRun(t, mode, "DELETE FROM users WHERE id IN ($1, $2)", keys[1][0], keys[2][0])
			r.wantTag(t, "DELETE 2")
			r.wantRoute(t, routeNotice("primary", 1, 2))
			r = c.mustRun(t, mode, "DELETE FROM users WHERE name LIKE $1", "%")
			r.wantTag(t, fmt.Sprintf("DELETE %d", len(all)-2))
			rc.checkPlacement(t, "users", "id", map[string]int{})

			// A multi-row INSERT split by shard, each part with its own
			// parameters renumbered; the columns in another order.
			fresh := rc.intKeys(t, usersRule, 300, 2)
			order := []int{fresh[2][0], fresh[0][0], fresh[1][0], fresh[0][1], fresh[2][1], fresh[1][1]}
			var values []string
			var args []any
			placed := map[string]int{}
			for i, k := range order {
				values = append(values, fmt.Sprintf("($%d, $%d)", 2*i+1, 2*i+2))
				args = append(args, "x"+strconv.Itoa(k), int32(k))
			}
			for s, ks := range fresh {
				for _, k := range ks {
					placed[strconv.Itoa(k)] = s
				}
			}
			r = c.mustRun(t, mode, "INSERT INTO users (name, id) VALUES "+strings.Join(values, ", ")+" RETURNING id", args...)
			r.wantTag(t, "INSERT 0 6")
			var ids []string
			for _, k := range order {
				ids = append(ids, strconv.Itoa(k))
			}
			r.wantRows(t, ids...)
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))
			rc.checkPlacement(t, "users", "id", placed)
			var named [][]string = make([][]string, 3)
			for s, ks := range fresh {
				for _, k := range ks {
					named[s] = append(named[s], fmt.Sprintf("%d|x%d", k, k))
				}
			}
			rc.checkShardRows(t, named, "SELECT id || '|' || name FROM users")

			// A replicated table: every copy written, one copy counted.
			r = c.mustRun(t, mode, "INSERT INTO countries (code, name) VALUES ($1, $2)", "fr", "France")
			r.wantTag(t, "INSERT 0 1")
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))
			rc.checkEverywhere(t, []string{"fr|France"}, "SELECT code || '|' || name FROM countries")

			// An error on one shard is the client's error; the others'
			// rows do not count, and the connection goes on.
			pe, _ := c.mustFail(t, "22012", mode, "SELECT id, 10 / (id - $1) FROM users", int32(fresh[1][0]))
			if !strings.Contains(pe.Message, "division by zero") {
				t.Errorf("error %q, want PostgreSQL's division by zero", pe.Message)
			}
			c.checkUsable(t)

			// Results that would need merging are still refused; a
			// multi-shard statement inside a transaction runs in it.
			c.mustFailUnrouted(t, "0A000", mode, "SELECT string_agg(name, ',') FROM users WHERE id IN ($1, $2)", fresh[0][0], fresh[1][0])
			c.checkUsable(t)
			c.mustRun(t, simple, "BEGIN")
			c.mustRun(t, mode, "DELETE FROM users WHERE id IN ($1, $2)", fresh[0][0], fresh[1][0]).wantTag(t, "DELETE 2")
			c.mustRun(t, mode, "SELECT id FROM users WHERE id IN ($1, $2)", fresh[0][0], fresh[1][0]).wantRows(t)
			c.mustRun(t, simple, "ROLLBACK")
			c.checkUsable(t)
			rc.checkPlacement(t, "users", "id", placed)
		})
	}
	rc.truncate(t, "users", "countries")
}

// TestRoutingMultiShardExtendedWire checks, message by message, what a
// client gets for a multi-shard statement in the extended protocol: one
// ParseComplete, BindComplete and RowDescription (or NoData), every
// shard's rows, one CommandComplete with the total; pgshard's clear error
// for what it cannot run so (a row limit on Execute, a Bind left without
// Execute); and that a pipeline goes on after a multi-shard statement.
func TestRoutingMultiShardExtendedWire(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 2)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := loginTrust(t, p)

	text := func(v int) []byte { return []byte(strconv.Itoa(v)) }
	all := routeNotice("primary", 0, 1, 2)
	span := routeNotice("primary", 0, 2)
	in2 := "SELECT id, name FROM users WHERE id IN ($1, $2)"
	bind := &pgproto3.Bind{Parameters: [][]byte{text(keys[0][0]), text(keys[2][1])}}

	checkWire(t, "parse, bind, describe, execute",
		c.round(&pgproto3.Parse{Query: in2}, bind, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}),
		"1", "N "+span, "2", "T id,name", "D", "D", "C SELECT 2", "Z I")
	checkWire(t, "prepare", c.round(&pgproto3.Parse{Name: "in2", Query: in2}, &pgproto3.Describe{ObjectType: 'S', Name: "in2"}),
		"1", "t 2", "T id,name", "Z I")
	checkWire(t, "bind, execute of a prepared statement",
		c.round(&pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters}, &pgproto3.Execute{}),
		"N "+span, "2", "D", "D", "C SELECT 2", "Z I")
	checkWire(t, "no rows", c.round(&pgproto3.Parse{Query: "SELECT id FROM users WHERE name = $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("nobody")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}),
		"1", "N "+all, "2", "T id", "C SELECT 0", "Z I")
	checkWire(t, "write without rows", c.round(&pgproto3.Parse{Query: "UPDATE users SET name = name WHERE name <> $1"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("nobody")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}),
		"1", "N "+all, "2", "n", "C UPDATE 6", "Z I")
	checkWire(t, "bind only", c.round(&pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters}),
		"N "+span, "2", "Z I")
	checkWire(t, "row limit", c.round(&pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters},
		&pgproto3.Execute{MaxRows: 1}, &pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters}, &pgproto3.Execute{}),
		"E 0A000", "Z I")
	checkWire(t, "bind, then something else", c.round(&pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters},
		&pgproto3.Describe{ObjectType: 'S', Name: "in2"}, &pgproto3.Execute{}),
		"E 0A000", "Z I")
	// A pipeline: a multi-shard statement, then one on a single shard,
	// in one round.
	one := &pgproto3.Bind{PreparedStatement: "in2", Parameters: [][]byte{text(keys[1][0]), text(keys[1][1])}}
	checkWire(t, "pipeline", c.round(&pgproto3.Bind{PreparedStatement: "in2", Parameters: bind.Parameters}, &pgproto3.Execute{}, one, &pgproto3.Execute{}),
		"N "+span, "2", "D", "D", "C SELECT 2", "N routed to s1 (primary)", "2", "D", "D", "C SELECT 2", "Z I")
	// An error on a shard: the rest of the round is skipped.
	checkWire(t, "error", c.round(&pgproto3.Parse{Query: "SELECT 1 / (id - id + $1) FROM users"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("0")}}, &pgproto3.Execute{}, one, &pgproto3.Execute{}),
		"1", "N "+all, "2", "E 22012", "Z I")
	checkWire(t, "after the error", c.round(one, &pgproto3.Execute{}),
		"N routed to s1 (primary)", "2", "D", "D", "C SELECT 2", "Z I")
}

// TestRoutingExtendedTransactions: drivers such as pgJDBC send BEGIN
// through the extended protocol, in the same round as the transaction's
// first statement. pgshard answers it itself, as it does a simple BEGIN,
// so the transaction binds to that statement's shard whichever shard the
// session used before; COMMIT, ROLLBACK and SAVEPOINT follow it, and a
// transaction pgshard failed ends with an extended-protocol ROLLBACK.
func TestRoutingExtendedTransactions(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := rc.intKeys(t, usersRule, 1, 2)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := loginTrust(t, p)

	// stmt is how pgJDBC sends a statement: Parse, Bind, Describe, Execute.
	stmt := func(sql string, args ...string) []pgproto3.FrontendMessage {
		var params [][]byte
		for _, a := range args {
			params = append(params, []byte(a))
		}
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: params},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}}
	}
	insert := "INSERT INTO users (id, name) VALUES ($1, 'jdbc')"
	key := func(s, i int) string { return strconv.Itoa(keys[s][i]) }

	for _, s := range []int{2, 0, 1} { // each transaction on a shard the session did not use last
		checkWire(t, fmt.Sprintf("BEGIN and an INSERT for s%d in one round", s),
			c.round(slices.Concat(stmt("BEGIN"), stmt(insert, key(s, 0)))...),
			"1", "2", "n", "C BEGIN", "1", "N "+routeNotice("primary", s), "2", "n", "C INSERT 0 1", "Z T")
		checkWire(t, "COMMIT", c.round(stmt("COMMIT")...), "1", "N "+routeNotice("primary", s), "2", "n", "C COMMIT", "Z I")
	}
	placed := map[string]int{key(0, 0): 0, key(1, 0): 1, key(2, 0): 2}
	rc.checkPlacement(t, "users", "id", placed)

	// Rolled back, with a savepoint before the first statement.
	checkWire(t, "BEGIN, SAVEPOINT", c.round(slices.Concat(stmt("BEGIN"), stmt("SAVEPOINT a"))...),
		"1", "2", "n", "C BEGIN", "1", "2", "n", "C SAVEPOINT", "Z T")
	checkWire(t, "INSERT", c.round(stmt(insert, key(1, 1))...), "1", "N "+routeNotice("primary", 1), "2", "n", "C INSERT 0 1", "Z T")
	checkWire(t, "ROLLBACK", c.round(stmt("ROLLBACK")...), "1", "N "+routeNotice("primary", 1), "2", "n", "C ROLLBACK", "Z I")
	rc.checkPlacement(t, "users", "id", placed)

	// A transaction that touched nothing commits without a backend.
	checkWire(t, "BEGIN, COMMIT", c.round(slices.Concat(stmt("BEGIN"), stmt("COMMIT"))...), "1", "2", "n", "C BEGIN", "1", "2", "n", "C COMMIT", "Z I")

	// A statement pgshard refuses fails the transaction; only ROLLBACK
	// ends it.
	checkWire(t, "BEGIN, unmergeable statement", c.round(slices.Concat(stmt("BEGIN"), stmt("SELECT string_agg(name, ',') FROM users"))...),
		"1", "2", "n", "C BEGIN", "1", "E 0A000", "Z E")
	checkWire(t, "in the failed transaction", c.round(stmt(insert, key(0, 1))...), "E 25P02", "Z E")
	checkWire(t, "ROLLBACK", c.round(stmt("ROLLBACK")...), "1", "2", "n", "C ROLLBACK", "Z I")
	checkWire(t, "after", c.round(stmt("SELECT name FROM users WHERE id = $1", key(2, 0))...),
		"1", "N "+routeNotice("primary", 2), "2", "T name", "D", "C SELECT 1", "Z I")
	rc.checkPlacement(t, "users", "id", placed)
	rc.truncate(t, "users")
}

// round sends msgs and a Sync, and returns what came back up to
// ReadyForQuery, a short string a message: "1" ParseComplete, "2"
// BindComplete, "n" NoData, "t <n>" ParameterDescription, "T <columns>",
// "D" a DataRow, "C <tag>", "E <SQLSTATE>", "N <notice>", "Z <status>".
func (c *rawConn) round(msgs ...pgproto3.FrontendMessage) []string {
	c.t.Helper()
	return c.roundTrip(append(msgs, &pgproto3.Sync{})...)
}

// roundTrip sends msgs and returns what came back up to ReadyForQuery
// (see round).
func (c *rawConn) roundTrip(msgs ...pgproto3.FrontendMessage) []string {
	c.t.Helper()
	c.send(msgs...)
	var got []string
	for {
		switch m := c.receive().(type) {
		case *pgproto3.NoticeResponse:
			got = append(got, "N "+m.Message)
		case *pgproto3.ParseComplete:
			got = append(got, "1")
		case *pgproto3.BindComplete:
			got = append(got, "2")
		case *pgproto3.NoData:
			got = append(got, "n")
		case *pgproto3.ParameterDescription:
			got = append(got, fmt.Sprintf("t %d", len(m.ParameterOIDs)))
		case *pgproto3.RowDescription:
			var cols []string
			for _, f := range m.Fields {
				cols = append(cols, string(f.Name))
			}
			got = append(got, "T "+strings.Join(cols, ","))
		case *pgproto3.DataRow:
			got = append(got, "D")
		case *pgproto3.CommandComplete:
			got = append(got, "C "+string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			got = append(got, "E "+m.Code)
		case *pgproto3.ReadyForQuery:
			return append(got, "Z "+string(m.TxStatus))
		default:
			got = append(got, fmt.Sprintf("%T", m))
		}
	}
}

// checkWire compares what a client got on the wire with want.
func checkWire(t testing.TB, name string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: the client got\n  %q\nwant\n  %q", name, got, want)
	}
}

// TestRoutingPreparedWhileShardDown: a prepared statement whose Parse
// fails because its shard is down (pgshard held the Parse back until the
// Bind named the shard) does not exist afterwards, as after any failed
// Parse: pgx prepares it again once the shard is back, and that must not
// fail with 42P05 "already exists". The soak found every pgx client in
// the default mode stuck on 42P05 after a shard restart.
func TestRoutingPreparedWhileShardDown(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	keys := rc.intKeys(t, usersRule, 4000, 1)
	k1 := keys[1][0]
	c := connectRouted(t, p)
	const query = "SELECT count(*) FROM users WHERE id = $1"
	c.mustRun(t, pgx.QueryExecModeExec, "SELECT 1") // logged in, idle: no backend held
	if err := rc.shards[1].Kill(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := rc.shards[1].Restart(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	_, err := c.run(pgx.QueryExecModeCacheStatement, query, k1)
	if code := sqlstate(err); code != "08006" {
		t.Fatalf("%s with s1 down: %v (SQLSTATE %q), want 08006", query, err, code)
	}
	if err := rc.shards[1].Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// Until pgshard's health check sees s1 back, the statement fails with
	// 08006 again; then it must run.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.run(pgx.QueryExecModeCacheStatement, query, k1)
		if err == nil {
			r.wantRows(t, "0")
			break
		}
		if code := sqlstate(err); code != "08006" || time.Now().After(deadline) {
			t.Fatalf("%s once s1 is back: %v (SQLSTATE %q)", query, err, code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.checkUsable(t)
}
