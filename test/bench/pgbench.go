package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// pgbenchGrace is how long a pgbench run may take beyond its -T before it
// is taken to hang and killed: connecting, and finishing the transactions
// in flight.
const pgbenchGrace = time.Minute

// initPgbench runs pgbench's initialization steps (-I) at scale on appDB
// of the PostgreSQL server on port, logging in directly as its owner:
// "dtGvp" fills it, generating the data on the server side, which is the
// quickest, then vacuums and adds the primary keys.
func initPgbench(ctx context.Context, bin string, port int, steps string, scale int) error {
	args := append(connArgs(port), "-i", "-s", strconv.Itoa(scale), "-I", steps, appDB)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = pgbenchEnv()
	cmd.SysProcAttr = childAttr(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i -I %s: %w\n%s", steps, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runPgbench runs the select-only builtin script (-S) against t for d in
// query mode, with the clients and threads of s, and returns the TPS
// pgbench reports (without the initial connection time). A run in which a
// client aborts, or a transaction fails, is an error quoting pgbench.
func runPgbench(ctx context.Context, bin string, s settings, t target, mode string, d time.Duration) (float64, error) {
	return pgbenchTPS(ctx, bin, d, append(connArgs(t.port),
		"-n", "-S", "-M", mode,
		"-c", strconv.Itoa(s.clients), "-j", strconv.Itoa(s.threads),
		"-T", strconv.Itoa(int(d/time.Second)),
		t.database(mode)))
}

// Lookups of the routing check: lookupClients clients of lookupsPerClient
// each.
const lookupClients, lookupsPerClient = 4, 500

// checkLookups runs the script at lookupScript against t in query mode:
// lookupClients × lookupsPerClient -S queries of random accounts, any of
// which returning no row is an error.
func checkLookups(ctx context.Context, bin, lookupScript string, t target, mode string) error {
	_, err := pgbenchTPS(ctx, bin, 0, append(connArgs(t.port),
		"-n", "-f", lookupScript, "-M", mode,
		"-c", strconv.Itoa(lookupClients), "-j", "1", "-t", strconv.Itoa(lookupsPerClient),
		t.database(mode)))
	return err
}

// pgbenchTPS runs pgbench with args, which run for d (or 0 when they run
// a number of transactions), and returns the TPS it reports. A run in
// which a client aborts, or a transaction fails, is an error quoting
// pgbench.
func pgbenchTPS(ctx context.Context, bin string, d time.Duration, args []string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d+pgbenchGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = pgbenchEnv()
	cmd.SysProcAttr = childAttr(nil)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("did not finish within %v (a hang?); killed it", d+pgbenchGrace)
	}
	if err == nil {
		var tps float64
		if tps, err = parsePgbench(stdout.String()); err == nil {
			return tps, nil
		}
	}
	return 0, fmt.Errorf("pgbench %s: %w%s", strings.Join(args, " "), err, quote(stderr.String()))
}

var (
	tpsLine    = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	failedLine = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// parsePgbench returns the TPS in pgbench's report, or an error when there
// is none or some transactions failed.
func parsePgbench(out string) (float64, error) {
	if m := failedLine.FindStringSubmatch(out); m != nil && m[1] != "0" {
		return 0, fmt.Errorf("%s transactions failed", m[1])
	}
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0, errors.New("no tps in its report" + quote(out))
	}
	return strconv.ParseFloat(m[1], 64)
}

// connArgs are the options logging pgbench in on port.
func connArgs(port int) []string {
	return []string{"-h", host, "-p", strconv.Itoa(port), "-U", appUser}
}

// pgbenchEnv is our environment without libpq's variables, plus the
// password and no TLS or GSSAPI negotiation: every target is reached alike.
func pgbenchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGPASSWORD="+appPassword, "PGSSLMODE=disable", "PGGSSENCMODE=disable")
}

// quote indents up to the first 10 lines of a program's output, to follow
// an error.
func quote(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	lines := strings.Split(out, "\n")
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("(%d more lines)", len(lines)-10))
	}
	return "\n    " + strings.Join(lines, "\n    ")
}
