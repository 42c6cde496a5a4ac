package test

// Statements that span shards: scattered reads and writes in the simple
// protocol, the ones refused for now (results that would need merging),
// replicated tables and a
// rule over a subset of the shards.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// usersOnShards fills users, directly on each shard, with n rows per shard
// placed where the hash rule puts them (name "n<id>"), and returns the
// keys by shard.
func usersOnShards(t testing.TB, rc *routingCluster, start, n int) [][]int {
	t.Helper()
	keys := rc.intKeys(t, usersRule, start, n)
	for s, ks := range keys {
		for _, k := range ks {
			directExec(t, rc.shards[s], "INSERT INTO users (id, name) VALUES ($1, $2)", k, "n"+strconv.Itoa(k))
		}
	}
	return keys
}

func idList(ids ...int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}

func userRows(ids ...int) []string {
	var rows []string
	for _, id := range ids {
		rows = append(rows, fmt.Sprintf("%d|n%d", id, id))
	}
	return rows
}

// TestRoutingMultiShardSimple: in autocommit, through the simple protocol,
// a SELECT whose keys span shards or that has no key runs on every shard
// concerned and the client gets all the rows; UPDATE and DELETE without a
// key run everywhere and the tag sums their counts; a multi-row INSERT is
// split so each row lands on its own shard.
func TestRoutingMultiShardSimple(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 4)
	all := slices.Concat(keys...)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)

	selects := []struct {
		where  string
		ids    []int
		shards []int
	}{
		{"WHERE id IN (%s)", []int{keys[0][0], keys[2][0]}, []int{0, 2}},
		{"WHERE id IN (%s)", []int{keys[2][1], keys[1][0], keys[0][1]}, []int{0, 1, 2}},
		{"WHERE id IN (%s)", []int{keys[1][0], keys[1][1]}, []int{1}},
		{"WHERE id = ANY (ARRAY[%s])", []int{keys[0][2], keys[1][2]}, []int{0, 1}},
		{"WHERE id = %s OR id = %s", []int{keys[1][3], keys[2][3]}, []int{1, 2}},
		{"", all, []int{0, 1, 2}},
		{"WHERE name LIKE 'n%'", all, []int{0, 1, 2}},
		{"WHERE id IN (%s)", []int{-1, -2, -3, -4, -5, -6}, nil}, // no rows; shards computed below
	}
	for _, sc := range selects {
		where := sc.where
		switch {
		case strings.Count(where, "%s") == 1:
			where = fmt.Sprintf(where, idList(sc.ids...))
		case strings.Count(where, "%s") == 2:
			where = fmt.Sprintf(where, strconv.Itoa(sc.ids[0]), strconv.Itoa(sc.ids[1]))
		}
		want := userRows(sc.ids...)
		shards := sc.shards
		if shards == nil { // the missing keys
			want = nil
			own := rc.owners(t, usersRule, strings.Split(idList(sc.ids...), ", ")...)
			for _, s := range own {
				if !slices.Contains(shards, s) {
					shards = append(shards, s)
				}
			}
			slices.Sort(shards)
		}
		r := c.mustRun(t, simple, "SELECT id, name FROM users "+where)
		r.wantRows(t, want...)
		r.wantRoute(t, routeNotice("primary", shards...))
	}

	// UPDATE and DELETE: summed tags, every shard changed.
	r := c.mustRun(t, simple, "UPDATE users SET name = name || '!'")
	r.wantTag(t, fmt.Sprintf("UPDATE %d", len(all)))
	r.wantRoute(t, routeNotice("primary", 0, 1, 2))
	r = c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = name || '?' WHERE id IN (%s)", idList(keys[0][0], keys[1][0], keys[1][1])))
	r.wantTag(t, "UPDATE 3")
	r.wantRoute(t, routeNotice("primary", 0, 1))
	want := make([][]string, 3)
	for s, ks := range keys {
		for _, k := range ks {
			suffix := "!"
			if k == keys[0][0] || k == keys[1][0] || k == keys[1][1] {
				suffix = "!?"
			}
			want[s] = append(want[s], fmt.Sprintf("%d|n%d%s", k, k, suffix))
		}
	}
	rc.checkShardRows(t, want, "SELECT id || '|' || name FROM users")

	r = c.mustRun(t, simple, fmt.Sprintf("DELETE FROM users WHERE id IN (%s)", idList(keys[0][0], keys[2][0])))
	r.wantTag(t, "DELETE 2")
	r.wantRoute(t, routeNotice("primary", 0, 2))
	r = c.mustRun(t, simple, "DELETE FROM users WHERE name LIKE '%!'")
	r.wantTag(t, fmt.Sprintf("DELETE %d", len(all)-4)) // all but the two deleted and the two "!?"
	r.wantRoute(t, routeNotice("primary", 0, 1, 2))
	r = c.mustRun(t, simple, "DELETE FROM users")
	r.wantTag(t, "DELETE 2")
	r.wantRoute(t, routeNotice("primary", 0, 1, 2))
	rc.checkPlacement(t, "users", "id", map[string]int{})

	// A multi-row INSERT split by shard.
	fresh := rc.intKeys(t, usersRule, 500, 2)
	var values []string
	placed := map[string]int{}
	order := []int{fresh[2][0], fresh[0][0], fresh[1][0], fresh[0][1], fresh[2][1], fresh[1][1]}
	for _, k := range order {
		values = append(values, fmt.Sprintf("(%d, 'n%d')", k, k))
	}
	for s, ks := range fresh {
		for _, k := range ks {
			placed[strconv.Itoa(k)] = s
		}
	}
	r = c.mustRun(t, simple, "INSERT INTO users (id, name) VALUES "+strings.Join(values, ", "))
	r.wantTag(t, "INSERT 0 6")
	r.wantRoute(t, routeNotice("primary", 0, 1, 2))
	rc.checkPlacement(t, "users", "id", placed)
	// Rows of one shard only: one shard.
	r = c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'x'), (%d, 'y')", fresh[1][0], fresh[1][1])+" ON CONFLICT (id) DO NOTHING")
	r.wantTag(t, "INSERT 0 0")
	r.wantRoute(t, routeNotice("primary", 1))
	rc.checkPlacement(t, "users", "id", placed)
	// Split across two shards, columns in another order.
	more := rc.intKeys(t, usersRule, 900, 1)
	r = c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users (name, id) VALUES ('a', %d), ('b', %d)", more[1][0], more[2][0]))
	r.wantTag(t, "INSERT 0 2")
	r.wantRoute(t, routeNotice("primary", 1, 2))
	placed[strconv.Itoa(more[1][0])] = 1
	placed[strconv.Itoa(more[2][0])] = 2
	rc.checkPlacement(t, "users", "id", placed)
}

// TestRoutingMultiShardWire checks, on the wire, what a client gets for a
// scattered SELECT in the simple protocol: the route notice, then one
// RowDescription, every shard's DataRows, one CommandComplete with the
// total, one ReadyForQuery — also when no shard has a row.
func TestRoutingMultiShardWire(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 3)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := loginTrust(t, p)

	for _, tc := range []struct {
		sql    string
		rows   int
		shards []int
	}{
		{"SELECT id, name FROM users", 9, []int{0, 1, 2}},
		{fmt.Sprintf("SELECT id, name FROM users WHERE id IN (%s)", idList(keys[0][0], keys[2][0], keys[2][1])), 3, []int{0, 2}},
		{"SELECT id, name FROM users WHERE name = 'nobody'", 0, []int{0, 1, 2}},
	} {
		want := []string{"N " + routeNotice("primary", tc.shards...), "T id,name"}
		want = append(want, slices.Repeat([]string{"D"}, tc.rows)...)
		want = append(want, fmt.Sprintf("C SELECT %d", tc.rows), "Z I")
		checkWire(t, tc.sql, c.roundTrip(&pgproto3.Query{String: tc.sql}), want...)
	}
}

// TestRoutingMultiShardRefused: SELECTs whose results would need merging
// that pgshard does not do yet (string_agg, FILTER, HAVING with LIKE,
// functions of aggregates, window functions, UNION) are
// refused with 0A000 — unless they pin one shard. Nothing refused
// changes anything, and the connection goes on working.
func TestRoutingMultiShardRefused(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "countries")
	keys := usersOnShards(t, rc, 1, 2)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	span := idList(keys[0][0], keys[1][0])
	same := idList(keys[2][0], keys[2][1])

	t.Run("merging", func(t *testing.T) {
		for _, q := range []string{
			"SELECT string_agg(name, ',') FROM users",
			"SELECT count(*) FILTER (WHERE id > 0) FROM users",
			"SELECT name, count(*) FROM users GROUP BY name HAVING name LIKE 'n%'",
			"SELECT round(avg(id)) FROM users",
			"SELECT id, rank() OVER (ORDER BY id) FROM users",
			"SELECT id FROM users UNION SELECT id FROM users",
			"SELECT string_agg(name, ',') FROM users WHERE id IN (" + span + ")",
		} {
			pe := c.mustFailUnrouted(t, "0A000", simple, q)
			if !strings.Contains(strings.ToLower(pe.Message), "shard") {
				t.Errorf("%s: message %q does not say the problem is shards", q, pe.Message)
			}
			c.checkUsable(t)
		}
		// Pinned to one shard, they run there.
		for _, tc := range []struct {
			sql   string
			rows  []string
			shard int
		}{
			{fmt.Sprintf("SELECT count(*) FROM users WHERE id = %d", keys[1][1]), []string{"1"}, 1},
			{fmt.Sprintf("SELECT id FROM users WHERE id = %d ORDER BY id LIMIT 1", keys[0][1]), []string{strconv.Itoa(keys[0][1])}, 0},
			{"SELECT DISTINCT name FROM users WHERE id IN (" + same + ")", []string{"n" + strconv.Itoa(keys[2][0]), "n" + strconv.Itoa(keys[2][1])}, 2},
			{"SELECT count(*), max(id) FROM users WHERE id IN (" + same + ")", []string{fmt.Sprintf("2|%d", max(keys[2][0], keys[2][1]))}, 2},
			{"SELECT name, count(*) FROM users WHERE id IN (" + same + ") GROUP BY name ORDER BY name LIMIT 1", []string{fmt.Sprintf("n%d|1", min(keys[2][0], keys[2][1]))}, 2},
		} {
			r := c.mustRun(t, simple, tc.sql)
			r.wantRows(t, tc.rows...)
			r.wantRoute(t, routeNotice("primary", tc.shard))
		}
	})

	t.Run("shard key change", func(t *testing.T) {
		// The new key may belong on another shard: refused, in both
		// protocols, even where the row is pinned.
		for _, mode := range keyModes {
			c.mustFailUnrouted(t, "0A000", mode, fmt.Sprintf("UPDATE users SET id = %d WHERE id = %d", keys[1][0], keys[0][0]))
			c.checkUsable(t)
			c.mustFailUnrouted(t, "0A000", mode, fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'x') ON CONFLICT (id) DO UPDATE SET id = %d", keys[0][0], keys[1][0]))
			c.checkUsable(t)
		}
	})

	// Nothing refused changed anything.
	want := make(map[string]int)
	for s, ks := range keys {
		for _, k := range ks {
			want[strconv.Itoa(k)] = s
		}
	}
	rc.checkPlacement(t, "users", "id", want)
	rc.checkShardRows(t, [][]string{userRows(keys[0]...), userRows(keys[1]...), userRows(keys[2]...)}, "SELECT id || '|' || name FROM users")
	rc.checkEverywhere(t, nil, "SELECT code FROM countries")
}

// TestRoutingReplicatedTable: writes to a replicated table go to every
// shard, the tag counting the rows of one copy as PostgreSQL would; reads
// go to one shard, alone or joined with a sharded table.
func TestRoutingReplicatedTable(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "countries", "users")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	everywhere := routeNotice("primary", 0, 1, 2)
	oneShard := `routed to s[012] \(primary\)`

	r := c.mustRun(t, simple, "INSERT INTO countries (code, name) VALUES ('fr', 'France')")
	r.wantTag(t, "INSERT 0 1")
	r.wantRoute(t, everywhere)
	r = c.mustRun(t, simple, "INSERT INTO countries VALUES ('de', 'Germany'), ('it', 'Italy')")
	r.wantTag(t, "INSERT 0 2")
	r.wantRoute(t, everywhere)
	rc.checkEverywhere(t, []string{"de|Germany", "fr|France", "it|Italy"}, "SELECT code || '|' || name FROM countries")

	r = c.mustRun(t, simple, "UPDATE countries SET name = 'French Republic' WHERE code = 'fr'")
	r.wantTag(t, "UPDATE 1")
	r.wantRoute(t, everywhere)
	r = c.mustRun(t, simple, "DELETE FROM countries WHERE code = 'it'")
	r.wantTag(t, "DELETE 1")
	r.wantRoute(t, everywhere)
	r = c.mustRun(t, simple, "INSERT INTO countries VALUES ('de', 'Deutschland') ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING name")
	r.wantTag(t, "INSERT 0 1")
	r.wantRows(t, "Deutschland")
	r.wantRoute(t, everywhere)
	rc.checkEverywhere(t, []string{"de|Deutschland", "fr|French Republic"}, "SELECT code || '|' || name FROM countries")

	for _, mode := range keyModes {
		r = c.mustRun(t, mode, "SELECT name FROM countries WHERE code = $1", "fr")
		r.wantRows(t, "French Republic")
		r.wantRouteMatch(t, oneShard)
		// One copy: aggregates and ORDER BY need no merging.
		r = c.mustRun(t, mode, "SELECT count(*) FROM countries")
		r.wantRows(t, "2")
		r.wantRouteMatch(t, oneShard)
		r = c.mustRun(t, mode, "SELECT code FROM countries ORDER BY code LIMIT 1")
		r.wantRows(t, "de")
		r.wantRouteMatch(t, oneShard)
		// Joined with a sharded table pinned to one shard: that shard.
		r = c.mustRun(t, mode, "SELECT u.name, c.name FROM users u JOIN countries c ON c.code = 'fr' WHERE u.id = $1", keys[2][0])
		r.wantRows(t, fmt.Sprintf("n%d|French Republic", keys[2][0]))
		r.wantRoute(t, routeNotice("primary", 2))
	}

	r = c.mustRun(t, simple, "DELETE FROM countries")
	r.wantTag(t, "DELETE 2")
	r.wantRoute(t, everywhere)
	rc.checkEverywhere(t, nil, "SELECT code FROM countries")
}

// TestRoutingShardSubset: a hash rule over s1 and s2 only never touches
// s0, for single-key and keyless statements.
func TestRoutingShardSubset(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "logs")
	directExec(t, rc.shards[0], "INSERT INTO logs VALUES (-1, 'decoy on s0')")
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	var texts []string
	for k := 1; k <= 12; k++ {
		texts = append(texts, strconv.Itoa(k))
	}
	own := rc.owners(t, logsRule, texts...)
	want := map[string]int{"-1": 0}
	for k := 1; k <= 12; k++ {
		mode := keyModes[k%len(keyModes)]
		r := c.mustRun(t, mode, "INSERT INTO logs (id, msg) VALUES ($1, $2)", int64(k), "m")
		r.wantRoute(t, routeNotice("primary", own[strconv.Itoa(k)]))
		want[strconv.Itoa(k)] = own[strconv.Itoa(k)]
	}
	rc.checkPlacement(t, "logs", "id", want)
	r := c.mustRun(t, simple, "SELECT id FROM logs")
	r.wantRows(t, texts...)
	r.wantRoute(t, routeNotice("primary", 1, 2))
	r = c.mustRun(t, simple, "UPDATE logs SET msg = 'seen'")
	r.wantTag(t, "UPDATE 12")
	r.wantRoute(t, routeNotice("primary", 1, 2))
	r = c.mustRun(t, pgx.QueryExecModeCacheStatement, "SELECT msg FROM logs WHERE id = $1", int64(5))
	r.wantRows(t, "seen")
	r.wantRoute(t, routeNotice("primary", own["5"]))
	if got := directRows(t, rc.shards[0], "SELECT id || '|' || msg FROM logs"); !slices.Equal(got, []string{"-1|decoy on s0"}) {
		t.Errorf("s0 directly: logs hold %q; the rule's shards are s1 and s2", got)
	}
}
