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

// startPgshard writes a configuration in dir and runs the pgshard binary
// bin in front of the PostgreSQL server at backendURL: database app in
// transaction mode with poolSize backends, clients logging in with
// SCRAM-SHA-256 as PgBouncer's do.
func startPgshard(ctx context.Context, bin, dir, backendURL string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "pgshard.yaml")
	if err := os.WriteFile(config, []byte(pgshardConfig(port, backendURL)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", config)
	cmd.Dir = dir
	return startDaemon(ctx, "pgshard", cmd, nil, port, filepath.Join(dir, "pgshard.log"))
}

// pgshardConfig is pgshard's configuration; the keys are those of
// proxy.yaml.example, and the others take their defaults.
func pgshardConfig(port int, backendURL string) string {
	return fmt.Sprintf(`# Written by the pgshard bench.
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
      - name: s0
        primary: %q
`, net.JoinHostPort(host, strconv.Itoa(port)), appUser, appPassword, appDB, appUser, appPassword, poolSize, backendURL)
}
