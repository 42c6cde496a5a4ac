package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgshard/pgshard/routing"
)

// exampleUser is the user the suggested queries are about.
const exampleUser = 7

// printBanner tells how to use the running demo: queries to try through
// pgshard, with where each should go, and how to look at the shards.
func printBanner(root, configPath string, shards []*shard) {
	host, port, _ := net.SplitHostPort(listenAddr)
	where := placement(shards)
	u := strconv.Itoa(exampleUser)
	fmt.Printf(`
pgshard demo is running.

  connect:  psql -h %s -p %s -U %s %s   (password: %s)
  config:   %s

Try these through pgshard; route_notices is on, so a NOTICE says which
shard and which role (primary or replica) each statement went to:

  SELECT * FROM users WHERE id = %s;
      -- user %s lives on %s; a read outside a transaction goes to its replica
  SELECT u.name, o.id, o.amount, o.created_at
    FROM users u JOIN orders o ON o.user_id = u.id
   WHERE u.id = %s ORDER BY o.created_at;
      -- a user's orders live with the user: %s alone runs the join
  INSERT INTO orders (id, user_id, amount, created_at) VALUES (1001, %s, 19.99, now());
      -- a write: %s's primary
  SELECT * FROM orders WHERE user_id = %s ORDER BY id DESC LIMIT 3;
      -- read_your_writes: lsn: %s's primary until its replica has replayed
      -- your insert (a moment later), then the replica
  SELECT * FROM users WHERE id IN (1, 2);
      -- %s
  SELECT * FROM users WHERE id IN (1, 3);
      -- %s
  SELECT * FROM countries ORDER BY code;
      -- replicated: every shard has all of it, so any one replica answers
`, host, port, user, database, password, relTo(root, configPath),
		u, u, where(exampleUser), u, where(exampleUser), u, where(exampleUser), u, where(exampleUser),
		inList(where, 1, 2), inList(where, 1, 3))
	printShards(root, shards)
	fmt.Print("\nCtrl-C stops pgshard, then the servers; the data stays in .demo (rm -rf .demo starts afresh).\n\n")
}

// printShards tells how to reach each shard's servers directly.
func printShards(root string, shards []*shard) {
	fmt.Println("\nThe shards themselves (PostgreSQL, the superuser needs no password):")
	fmt.Println()
	for _, sh := range shards {
		fmt.Printf("  %s primary:  psql -h %s -p %d -U postgres %s   log: %s\n",
			sh.name, sh.primary.Host(), sh.primary.Port(), database, relTo(root, sh.primary.LogPath()))
		fmt.Printf("  %s replica:  psql -h %s -p %d -U postgres %s   log: %s\n",
			sh.name, sh.replica.Host(), sh.replica.Port(), database, relTo(root, sh.replica.LogPath()))
	}
	s0, s1 := shards[0], shards[1]
	fmt.Printf(`
  psql -h %[1]s -p %[2]d -U postgres %[4]s -c 'SELECT id, name, country FROM users ORDER BY id'   # %[5]s's users
  psql -h %[1]s -p %[3]d -U postgres %[4]s -c 'SELECT id, name, country FROM users ORDER BY id'   # %[6]s's users
  psql -h %[1]s -p %[7]d -U postgres %[4]s -c 'SELECT pg_is_in_recovery(), count(*) FROM orders'   # %[5]s's replica
  psql -h %[1]s -p %[2]d -U postgres -c 'SELECT application_name, state, replay_lsn FROM pg_stat_replication'
`, s0.primary.Host(), s0.primary.Port(), s1.primary.Port(), database, s0.name, s1.name, s0.replica.Port())
}

// placement returns where pgshard's hash rule for users and orders puts a
// user id: the name of its shard.
func placement(shards []*shard) func(id int64) string {
	byUser, err := routing.NewHash(routing.KeyInt, len(shards))
	return func(id int64) string {
		if err != nil {
			return "?"
		}
		i, err := byUser.Shard(strconv.FormatInt(id, 10))
		if err != nil {
			return "?"
		}
		return shards[i].name
	}
}

// inList says where a query for the users with ids goes.
func inList(where func(int64) string, ids ...int64) string {
	names := map[string]bool{}
	var list []string
	for _, id := range ids {
		s := where(id)
		list = append(list, fmt.Sprintf("%d on %s", id, s))
		names[s] = true
	}
	if len(names) == 1 {
		return strings.Join(list, ", ") + ": that shard alone"
	}
	return strings.Join(list, ", ") + ": both shards, the rows merged"
}

// relTo is p relative to root when it is under it.
func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
