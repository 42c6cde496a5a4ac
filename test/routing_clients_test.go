package test

// Routing through real clients other than pgx: psql (simple protocol,
// notices on stderr) and lib/pq through database/sql (extended protocol
// with text parameters, simple protocol without them).

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
)

// routeLines returns the route notices psql printed on stderr ("NOTICE:
// routed to ...", after "psql:<stdin>:3: " when reading a script).
func routeLines(stderr string) []string {
	var got []string
	for _, line := range strings.Split(stderr, "\n") {
		if _, msg, ok := strings.Cut(line, "NOTICE:  "); ok && strings.HasPrefix(msg, "routed to ") {
			got = append(got, msg)
		}
	}
	return got
}

// TestRoutingPsql runs psql -X -At -c through pgshard: single-shard and
// scattered statements, a hint, a refused statement, and a transaction
// script; psql prints the route notices on stderr.
func TestRoutingPsql(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	p := startRoutingProxy(t, rc, routingOptions{})
	keys := rc.intKeys(t, usersRule, 1, 2)
	psql := func(t *testing.T, stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := psqlThroughProxy(t, p, stdin, args...)
		if err != nil {
			t.Fatalf("psql %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
		}
		return out, errOut
	}
	wantNotice := func(t *testing.T, stderr string, want ...string) {
		t.Helper()
		if got := routeLines(stderr); !slices.Equal(got, want) {
			t.Errorf("psql printed route notices %q, want %q (stderr:\n%s)", got, want, stderr)
		}
	}

	placed := map[string]int{}
	for s := range 3 {
		for _, k := range keys[s] {
			_, errOut := psql(t, "", "-At", "-c", fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'psql %d')", k, k))
			wantNotice(t, errOut, routeNotice("primary", s))
			placed[strconv.Itoa(k)] = s
		}
	}
	rc.checkPlacement(t, "users", "id", placed)

	out, errOut := psql(t, "", "-At", "-c", fmt.Sprintf("SELECT name FROM users WHERE id = %d", keys[2][1]))
	if out != fmt.Sprintf("psql %d\n", keys[2][1]) {
		t.Errorf("key read: got %q", out)
	}
	wantNotice(t, errOut, routeNotice("primary", 2))

	out, errOut = psql(t, "", "-At", "-c", "SELECT id, name FROM users")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	var want []string
	for _, ks := range keys {
		for _, k := range ks {
			want = append(want, fmt.Sprintf("%d|psql %d", k, k))
		}
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("scattered read: got %q, want %q", lines, want)
	}
	wantNotice(t, errOut, routeNotice("primary", 0, 1, 2))

	out, errOut = psql(t, "", "-At", "-c", "/* pgshard: shard=s1 */ SELECT current_setting('port')")
	if out != strconv.Itoa(rc.shards[1].Port())+"\n" {
		t.Errorf("hinted shard s1: port %q, want %d", out, rc.shards[1].Port())
	}
	wantNotice(t, errOut, routeNotice("primary", 1))

	out, errOut, err := psqlThroughProxy(t, p, "", "-At", "-v", "VERBOSITY=verbose", "-c", "SELECT string_agg(name, ',') FROM users")
	if err == nil || !strings.Contains(errOut, "ERROR:  0A000") {
		t.Errorf("string_agg over every shard (not merged yet): psql %v, stdout %q, stderr %q; want ERROR 0A000", err, out, errOut)
	}

	// A script with a transaction, from stdin.
	fresh := rc.intKeys(t, usersRule, 100, 2)
	script := fmt.Sprintf(`BEGIN;
INSERT INTO users (id, name) VALUES (%[1]d, 'script');
INSERT INTO users (id, name) VALUES (%[2]d, 'script');
SELECT count(*) FROM users WHERE id IN (%[1]d, %[2]d);
COMMIT;
`, fresh[1][0], fresh[1][1])
	out, errOut = psql(t, script, "-At", "-q", "-f", "-")
	if out != "2\n" {
		t.Errorf("script: got %q, want 2", out)
	}
	// Two inserts and the count on s1; whether COMMIT, which goes to s1
	// too, gets a notice is left open.
	if got := routeLines(errOut); len(got) < 3 || len(got) > 4 || slices.ContainsFunc(got, func(n string) bool { return n != routeNotice("primary", 1) }) {
		t.Errorf("script: psql printed route notices %q, want 3 (or 4 with COMMIT) of %q: the transaction ran on s1", got, routeNotice("primary", 1))
	}
	placed[strconv.Itoa(fresh[1][0])] = 1
	placed[strconv.Itoa(fresh[1][1])] = 1
	rc.checkPlacement(t, "users", "id", placed)
}

// TestRoutingLibPQ: lib/pq sends parameters as text in the extended
// protocol (and queries without parameters in the simple protocol); keys
// are found in both, transactions bind to a shard, and a parameterized
// statement spanning shards is refused.
func TestRoutingLibPQ(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "accounts")
	p := startRoutingProxy(t, rc, routingOptions{})
	connector, err := pq.NewConnector(p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notices []string
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		n := notices
		notices = nil
		return n
	}
	db := sql.OpenDB(pq.ConnectorWithNoticeHandler(connector, func(e *pq.Error) {
		if strings.HasPrefix(e.Message, "routed to ") {
			mu.Lock()
			notices = append(notices, e.Message)
			mu.Unlock()
		}
	}))
	defer db.Close()
	db.SetMaxOpenConns(1) // notices in statement order
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// lastRoute checks the last route notice since the previous check (lib/pq
	// prepares a parameterized statement in a round of its own first).
	lastRoute := func(t *testing.T, what, want string) {
		t.Helper()
		got := take()
		if len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("%s: route notices %q, want the last to be %q", what, got, want)
		}
	}

	keys := rc.intKeys(t, usersRule, 1, 2)
	placed := map[string]int{}
	for s, ks := range keys {
		for _, k := range ks {
			if _, err := db.ExecContext(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", k, "pq"); err != nil {
				t.Fatalf("insert %d: %v", k, err)
			}
			lastRoute(t, fmt.Sprintf("insert %d", k), routeNotice("primary", s))
			placed[strconv.Itoa(k)] = s
		}
	}
	rc.checkPlacement(t, "users", "id", placed)
	emails := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
	own := rc.owners(t, accountsRule, emails...)
	for _, e := range emails {
		if _, err := db.ExecContext(ctx, "INSERT INTO accounts (email, balance) VALUES ($1, $2)", e, 10); err != nil {
			t.Fatal(err)
		}
		lastRoute(t, "insert "+e, routeNotice("primary", own[e]))
	}
	rc.checkPlacement(t, "accounts", "email", own)

	for s, ks := range keys {
		var name string
		if err := db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", ks[1]).Scan(&name); err != nil || name != "pq" {
			t.Errorf("read of key %d: %q, %v", ks[1], name, err)
		}
		lastRoute(t, "read", routeNotice("primary", s))
	}

	// A scattered read, without parameters (lib/pq sends a simple Query)
	// and with them (Parse, Bind, Execute).
	scattered := func(what, query string, args ...any) {
		t.Helper()
		take()
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer rows.Close()
		var ids []int
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		slices.Sort(ids)
		if want := []int{min(keys[0][0], keys[2][0]), max(keys[0][0], keys[2][0])}; !slices.Equal(ids, want) {
			t.Errorf("%s: ids %v, want %v", what, ids, want)
		}
		lastRoute(t, what, routeNotice("primary", 0, 2))
	}
	scattered("scattered read", fmt.Sprintf("SELECT id FROM users WHERE id IN (%d, %d)", keys[0][0], keys[2][0]))
	scattered("scattered read with parameters", "SELECT id FROM users WHERE id IN ($1, $2)", keys[0][0], keys[2][0])

	// Transactions.
	fresh := rc.intKeys(t, usersRule, 100, 2)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range fresh[2] {
		if _, err := tx.ExecContext(ctx, "INSERT INTO users (id, name) VALUES ($1, 'pq tx')", k); err != nil {
			t.Fatal(err)
		}
		lastRoute(t, "insert in a transaction", routeNotice("primary", 2))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, k := range fresh[2] {
		placed[strconv.Itoa(k)] = 2
	}
	rc.checkPlacement(t, "users", "id", placed)

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO users (id, name) VALUES ($1, 'pq rolled back')", fresh[0][0]); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO users (id, name) VALUES ($1, 'pq other shard')", fresh[1][0]); err != nil {
		t.Errorf("insert on another shard in the transaction: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	rc.checkPlacement(t, "users", "id", placed)
	if err := db.PingContext(ctx); err != nil {
		t.Errorf("after the refused transaction: %v", err)
	}
}
