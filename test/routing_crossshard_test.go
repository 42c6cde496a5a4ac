package test

// The cross_shard switch: deny refuses every statement that needs more
// than one shard, in both protocols and inside transactions, and changes
// nothing; log runs them and says so in pgshard's log.

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRoutingCrossShardDeny(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "countries")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "deny"})
	c := connectRouted(t, p)
	fresh := rc.intKeys(t, usersRule, 400, 1)

	for _, mode := range keyModes {
		for _, tc := range []struct {
			sql  string
			args []any
		}{
			{"SELECT id FROM users", nil},
			{"SELECT id FROM users WHERE id IN (%d, %d)", []any{keys[0][0], keys[1][0]}},
			{"UPDATE users SET name = 'x'", nil},
			{"DELETE FROM users WHERE name = 'nobody'", nil},
			{"INSERT INTO users (id, name) VALUES (%d, 'a'), (%d, 'b')", []any{fresh[0][0], fresh[2][0]}},
			{"INSERT INTO countries (code, name) VALUES ('fr', 'France')", nil},
		} {
			sql, args := tc.sql, tc.args
			if mode == simple {
				sql, args = fmt.Sprintf(sql, args...), nil
			} else {
				for i := range args {
					sql = strings.Replace(sql, "%d", "$"+strconv.Itoa(i+1), 1)
				}
			}
			pe := c.mustFailUnrouted(t, "0A000", mode, sql, args...)
			if !strings.Contains(pe.Message, "cross_shard: deny") {
				t.Errorf("%s [%s]: message %q does not name the setting", sql, modeName(mode), pe.Message)
			}
			c.checkUsable(t)
		}
		// One shard is fine.
		r := c.mustRun(t, mode, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[2][0]))
		r.wantRows(t, strconv.Itoa(keys[2][0]))
		r.wantRoute(t, routeNotice("primary", 2))
		// In a transaction the refusal fails the transaction.
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, mode, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[1][0]))
		c.mustFailUnrouted(t, "0A000", mode, "SELECT id FROM users")
		c.mustFail(t, "25P02", simple, "SELECT 1")
		c.mustRun(t, simple, "ROLLBACK")
		c.checkUsable(t)
	}
	// Nothing changed anywhere.
	want := map[string]int{}
	for s, ks := range keys {
		want[strconv.Itoa(ks[0])] = s
	}
	rc.checkPlacement(t, "users", "id", want)
	rc.checkShardRows(t, [][]string{userRows(keys[0]...), userRows(keys[1]...), userRows(keys[2]...)}, "SELECT id || '|' || name FROM users")
	rc.checkEverywhere(t, nil, "SELECT code FROM countries")
}

func TestRoutingCrossShardLog(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 1)
	var logs lockedBuffer
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "log", logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := connectRouted(t, p)

	r := c.mustRun(t, simple, "SELECT id, name FROM users")
	r.wantRows(t, userRows(keys[0][0], keys[1][0], keys[2][0])...)
	r = c.mustRun(t, pgx.QueryExecModeExec, "UPDATE users SET name = name WHERE id IN ($1, $2)", keys[0][0], keys[2][0])
	r.wantTag(t, "UPDATE 2")
	c.mustRun(t, simple, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[1][0]))
	got := logs.String()
	for _, want := range []string{`shards="s0, s1, s2" write=false`, `shards="s0, s2" write=true`} {
		if !regexp.MustCompile(`msg="cross-shard statement" .*` + regexp.QuoteMeta(want)).MatchString(got) {
			t.Errorf("pgshard's log lacks a cross-shard statement with %s:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "cross-shard statement"); n != 2 {
		t.Errorf("%d cross-shard statements logged, want 2 (a one-shard statement is not one):\n%s", n, got)
	}
}
