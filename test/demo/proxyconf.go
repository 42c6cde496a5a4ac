package main

import (
	"fmt"
	"strings"
)

// proxyConfig is the demo's pgshard configuration for shards; the keys are
// those of proxy.yaml.example and docs/config.md, and the others take their
// defaults. The hash rules spread rows over the shards in the order given,
// the order sampleRows places them in.
func proxyConfig(shards []*shard) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by the demo (make demo) at every run; edits are lost.
# Keys not set here take their defaults: see proxy.yaml.example.
listen: %q
pool_mode: transaction

users:
  - name: %s
    password: %s
    auth: scram-sha-256

databases:
  - name: %s
    backend_user: %s
    backend_password: %s
    pool_size: 20
    shards:
`, listenAddr, user, password, database, user, password)
	for _, sh := range shards {
		fmt.Fprintf(&b, `      - name: %s
        primary: "postgres://127.0.0.1:%d/%s"
        replicas: ["postgres://127.0.0.1:%d/%s"]
`, sh.name, sh.primaryPort, database, sh.replicaPort, database)
	}
	fmt.Fprintf(&b, `    default_shard: %s
    tables:
      # users and orders by user id, as PARTITION BY HASH would: the rows of
      # one user, and joins of users and orders on it, are on one shard.
      - {name: users, key: id, method: hash, key_type: bigint}
      - {name: orders, key: user_id, method: hash, key_type: bigint}
      # a full copy on every shard
      - {name: countries, replicated: true}
    read_write_split: true    # reads outside transactions go to replicas
    read_your_writes: lsn     # ... that have replayed the client's own writes
    route_notices: true       # a NOTICE says where each statement went
`, shards[0].name)
	return b.String()
}
