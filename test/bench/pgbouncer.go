package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// sessionDB is the PgBouncer database in session mode that the prepared
// mode runs against: PgBouncer 1.18 does not keep prepared statements
// across transactions in transaction mode, so `pgbench -M prepared` fails
// there.
const sessionDB = "app_session"

// findPgBouncer returns path when set, else PgBouncer's usual place or the
// one on PATH, or an error saying how to install it.
func findPgBouncer(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("-pgbouncer: %w", err)
		}
		return path, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	return "", errors.New("PgBouncer is not installed, and the bench compares pgshard with it. Install it " +
		"(Debian, Ubuntu: apt-get update && apt-get install -y pgbouncer; RHEL, Fedora: dnf install pgbouncer; " +
		"macOS: brew install pgbouncer) or point -pgbouncer at its binary, then run the bench again")
}

// startPgBouncer writes a configuration in dir and runs PgBouncer in front
// of the PostgreSQL server on pgPort: database app in transaction mode
// with poolSize backends, and sessionDB, the same database in session
// mode with a backend for each of clients. As root, it runs as cred.
func startPgBouncer(ctx context.Context, bin, dir string, cred *syscall.Credential, pgPort, clients int) (*daemon, error) {
	return launchPgBouncer(ctx, bin, dir, "pgbouncer", cred, func(userlist string, port int) string {
		return pgBouncerIni(userlist, port, pgPort, clients)
	})
}

// launchPgBouncer starts a PgBouncer called name on a free port, with the
// configuration ini returns for its userlist (the app login) and port, as
// cred when not nil. Its files and log are name.ini, name-userlist.txt
// and name.log in dir.
func launchPgBouncer(ctx context.Context, bin, dir, name string, cred *syscall.Credential, ini func(userlist string, port int) string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	iniPath := filepath.Join(dir, name+".ini")
	userlist := filepath.Join(dir, name+"-userlist.txt")
	files := map[string]string{
		iniPath:  ini(userlist, port),
		userlist: fmt.Sprintf("%q %q\n", appUser, appPassword),
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, err
		}
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	// PgBouncer logs to stderr, which goes to name.log. With a logfile
	// setting it would log everything twice, and with -q on top say
	// nothing of a configuration it cannot load.
	cmd := exec.Command(bin, iniPath)
	cmd.Dir = dir
	return startDaemon(ctx, name, cmd, cred, port, filepath.Join(dir, name+".log"))
}

// pgBouncerIni is PgBouncer's configuration. Clients and backends log in
// with SCRAM-SHA-256 using the plain-text password of userlist.
func pgBouncerIni(userlist string, port, pgPort, clients int) string {
	backend := fmt.Sprintf("host=%s port=%d dbname=%s", host, pgPort, appDB)
	return fmt.Sprintf(`;; Written by the pgshard bench.
[databases]
%[1]s = %[2]s
%[3]s = %[2]s pool_mode=session pool_size=%[4]d

[pgbouncer]
listen_addr = %[5]s
listen_port = %[6]d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %[7]s
pool_mode = transaction
default_pool_size = %[8]d
max_client_conn = 1000
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
`, appDB, backend, sessionDB, clients, host, port, userlist, poolSize)
}

// pgBouncerVersion is what the first line of pgbouncer --version says:
// "PgBouncer 1.18.0".
func pgBouncerVersion(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first), nil
}
