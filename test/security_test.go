package test

// Security: routing hints that a tenant cannot use to step around
// cross_shard: deny, client TLS (require, verify-full, refusing clients in
// the clear), TLS to the backends, passwords kept out of logs and error
// messages, the admin console closed to other users, and per-user client
// limits under a connection flood.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSecurityHintsDenied: in a database with cross_shard: deny (hints
// then default to deny) every way of giving a hint is refused with 42501
// naming the setting, in both protocols and inside a transaction, and
// nothing it would have done happens on any shard; statements routed by
// their key still run.
func TestSecurityHintsDenied(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "deny"})
	c := connectRouted(t, p)
	fresh := rc.intKeys(t, usersRule, 500, 1)

	denied := func(pe interface{ Error() string }, what string) {
		t.Helper()
		if !strings.Contains(pe.Error(), "hints: deny") {
			t.Errorf("%s: error %q does not name the setting", what, pe.Error())
		}
	}
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		for _, sql := range []string{
			"/* pgshard: shard=s1 */ SELECT id FROM users",
			"SELECT id FROM users -- pgshard: shard=s2",
			"SELECT id FROM users /* pgshard: key=" + strconv.Itoa(keys[1][0]) + " */",
			// A hint that agrees with the key is a hint all the same.
			"/* pgshard: shard=s0 */ SELECT id FROM users WHERE id = " + strconv.Itoa(keys[0][0]),
			fmt.Sprintf("/* pgshard: shard=s1 */ INSERT INTO users (id, name) VALUES (%d, 'hinted')", fresh[0][0]),
			"/* pgshard: shard=s2 */ UPDATE users SET name = 'hinted'",
			"/* pgshard: shard=s1 */ CREATE TABLE hinted_ddl (id int)",
		} {
			pe := c.mustFailUnrouted(t, "42501", mode, sql)
			denied(pe, sql)
			c.checkUsable(t)
		}
	}
	for _, sql := range []string{"SET pgshard.shard = 's1'", "SET pgshard.key = '7'", "SET pgshard.shard TO s2"} {
		pe := c.mustFailUnrouted(t, "42501", simple, sql)
		denied(pe, sql)
	}
	// RESET sets nothing: allowed.
	c.mustRun(t, simple, "RESET pgshard.shard").wantTag(t, "RESET")
	// Inside a transaction the refusal fails it.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[2][0])).wantRows(t, strconv.Itoa(keys[2][0]))
	c.mustFailUnrouted(t, "42501", simple, "SET LOCAL pgshard.shard = 's0'")
	c.mustFail(t, "25P02", simple, "SELECT 1")
	c.mustRun(t, simple, "ROLLBACK")
	c.mustRun(t, simple, "BEGIN")
	c.mustFailUnrouted(t, "42501", pgx.QueryExecModeExec, "/* pgshard: shard=s1 */ SELECT id FROM users")
	c.mustFail(t, "25P02", simple, "SELECT 1")
	c.mustRun(t, simple, "ROLLBACK")

	// Key-routed statements run; key-less ones are refused by cross_shard.
	r := c.mustRun(t, simple, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[1][0]))
	r.wantRows(t, strconv.Itoa(keys[1][0]))
	r.wantRoute(t, routeNotice("primary", 1))
	pe := c.mustFailUnrouted(t, "0A000", simple, "SELECT id FROM users")
	if strings.Contains(pe.Hint, "hint") {
		t.Errorf("cross_shard refusal suggests a hint, which this database refuses: %q", pe.Hint)
	}

	// Nothing the hinted statements asked for happened on any shard.
	rc.checkShardRows(t, [][]string{userRows(keys[0]...), userRows(keys[1]...), userRows(keys[2]...)}, "SELECT id || '|' || name FROM users")
	rc.checkEverywhere(t, []string{"0"}, "SELECT count(*) FROM pg_class WHERE relname = 'hinted_ddl'")
}

// TestSecurityHintsAllowed: with hints: allow next to cross_shard: deny a
// hint pins a statement to the one shard it names; a hint can name no
// more than one shard of the connected database: "all", lists, another
// database's shard or the admin console are unknown shards (22023).
func TestSecurityHintsAllowed(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "deny", hints: "allow"})
	c := connectRouted(t, p)

	r := c.mustRun(t, simple, "/* pgshard: shard=s1 */ SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[1][0]))
	r.wantRoute(t, routeNotice("primary", 1))
	c.mustRun(t, simple, "SET pgshard.shard = 's2'")
	r = c.mustRun(t, pgx.QueryExecModeExec, "SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[2][0]))
	c.mustRun(t, simple, "RESET pgshard.shard")
	c.mustFailUnrouted(t, "0A000", simple, "SELECT id FROM users")

	for _, shard := range []string{"all", "*", "'s0,s1'", "\"s0 s1\"", "pgshard", "other", "s3"} {
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec} {
			pe := c.mustFailUnrouted(t, "22023", mode, "/* pgshard: shard="+shard+" */ SELECT id FROM users")
			if !strings.Contains(pe.Message, "unknown shard") {
				t.Errorf("shard=%s: message %q", shard, pe.Message)
			}
		}
		val := strings.Trim(shard, `'"`)
		c.mustFailUnrouted(t, "22023", simple, "SET pgshard.shard = '"+val+"'")
	}
	// A hint naming two shards in two pairs keeps the last one only.
	r = c.mustRun(t, simple, "/* pgshard: shard=s0, shard=s2 */ SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[2][0]))
	r.wantRoute(t, routeNotice("primary", 2))
	c.checkUsable(t)
}
