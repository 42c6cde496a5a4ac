package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// buildPgshard builds ./cmd/pgshard of the repository at root into out,
// with the go command of $GO (as the Makefile sets it) or else "go".
func buildPgshard(ctx context.Context, root, out string) error {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, "./cmd/pgshard")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build pgshard: %w\n%s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// startPgshard writes the configuration name.yaml in dir and runs the
// pgshard binary bin with it, its output in name.log: database app in
// transaction mode with poolSize backends per shard, clients logging in
// with SCRAM-SHA-256 as PgBouncer's do, and a shard for each of
// backendURLs, the PostgreSQL servers' databases.
func startPgshard(ctx context.Context, bin, dir, name string, backendURLs []string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(config, []byte(pgshardConfig(port, backendURLs)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", config)
	cmd.Dir = dir
	return startDaemon(ctx, name, cmd, nil, port, filepath.Join(dir, name+".log"))
}

// pgshardConfig is pgshard's configuration; the keys are those of
// proxy.yaml.example, and the others take their defaults. The shards are
// named s0, s1...; with more than one, pgbench_accounts is spread over
// them by shardedRule and every other table lives on s0.
func pgshardConfig(port int, backendURLs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by the pgshard bench.
listen: %q
pool_mode: transaction
max_client_conn: 1000
metrics_listen: ""

users:
  - name: %s
    password: %s
    auth: scram-sha-256

databases:
  - name: %s
    backend_user: %s
    backend_password: %s
    pool_size: %d
    shards:
`, net.JoinHostPort(host, strconv.Itoa(port)), appUser, appPassword, appDB, appUser, appPassword, poolSize)
	for i, u := range backendURLs {
		fmt.Fprintf(&b, "      - name: s%d\n        primary: %q\n", i, u)
	}
	if len(backendURLs) > 1 {
		fmt.Fprintf(&b, "    default_shard: s0\n    tables:\n      - %s\n", shardedRule)
	}
	return b.String()
}
