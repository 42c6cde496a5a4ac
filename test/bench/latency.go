package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The latency suite measures what a proxy adds to the latency of one
// statement: pgbench -S in the simple protocol with a single client, so
// that nothing queues, against PostgreSQL directly, through PgBouncer and
// through pgshard, taking turns in the same run. pgbench logs every
// transaction (-l); the percentiles come from those logs, and the figure
// is a proxy's percentile minus the direct one.

func init() {
	suites = append(suites, suite{name: "latency", run: runLatency})
}

const (
	// latencyGoalP50 is the most pgshard may add to the median latency.
	latencyGoalP50 = 40.0 // µs
	// latencyRounds is how many turns each target takes, the duration
	// shared between them (at least a second each).
	latencyRounds = 3
)

// runLatency measures the three targets and adds the p50 and p99 rows.
func runLatency(ctx context.Context, e *suiteEnv, res *results) error {
	dir := filepath.Join(e.dir, "latency")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	targets := []target{
		{name: "direct", port: e.pg.Port()},
		{name: "pgbouncer", port: e.bouncer.port},
		{name: "pgshard", port: e.pgshard.port},
	}
	if e.s.warmup > 0 {
		for _, t := range targets {
			if _, err := pgbenchTPS(ctx, e.pgbench, e.s.warmup, latencyArgs(t.port, e.s.warmup, "")); err != nil {
				return fmt.Errorf("warm-up against %s: %w", t.name, err)
			}
		}
	}
	// The duration is split in rounds, the targets taking turns in a
	// rotating order, so that drift on a busy machine hits them alike.
	secs := int(e.s.duration / time.Second)
	rounds := min(latencyRounds, secs)
	per := time.Duration(secs/rounds) * time.Second
	for round := range rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			prefix := filepath.Join(dir, fmt.Sprintf("%s.r%d", t.name, round))
			if _, err := pgbenchTPS(ctx, e.pgbench, per, latencyArgs(t.port, per, prefix)); err != nil {
				return fmt.Errorf("against %s: %w", t.name, err)
			}
		}
	}
	lat := make(map[string]latencies, len(targets))
	for _, t := range targets {
		l, err := readLatencyLogs(filepath.Join(dir, t.name))
		if err != nil {
			return fmt.Errorf("against %s: %w", t.name, err)
		}
		lat[t.name] = l
		fmt.Printf("bench: latency %-9s p50 %6.0f µs  p99 %6.0f µs  (%d transactions)\n", t.name, l.p50, l.p99, l.n)
	}
	direct, bouncer, shard := lat["direct"], lat["pgbouncer"], lat["pgshard"]
	run := fmt.Sprintf("pgbench -S -M simple, 1 client, %d rounds of %v per target, percentiles of every transaction's latency (%d, %d and %d transactions)",
		rounds, per, direct.n, bouncer.n, shard.n)

	added50, anchor50 := shard.p50-direct.p50, bouncer.p50-direct.p50
	res.addGoal(goal{
		figure: "p50 latency added by pgshard",
		value:  fmt.Sprintf("%.0f µs", added50),
		anchor: fmt.Sprintf("%.0f µs (PgBouncer)", anchor50),
		ratio:  ratio(added50, anchor50, added50 >= 0 && anchor50 > 0),
		goal:   fmt.Sprintf("≤ %.0f µs", latencyGoalP50),
		met:    yesNo(added50 <= latencyGoalP50),
		note: fmt.Sprintf("p50 direct %.0f µs, PgBouncer %.0f µs, pgshard %.0f µs; %s",
			direct.p50, bouncer.p50, shard.p50, run),
	})
	added99, anchor99 := shard.p99-direct.p99, bouncer.p99-direct.p99
	res.addGoal(goal{
		figure: "p99 latency added by pgshard",
		value:  fmt.Sprintf("%.0f µs", added99),
		anchor: fmt.Sprintf("%.0f µs (PgBouncer)", anchor99),
		ratio:  ratio(added99, anchor99, added99 >= 0 && anchor99 > 0),
		goal:   "reported",
		met:    "–",
		note:   fmt.Sprintf("p99 direct %.0f µs, PgBouncer %.0f µs, pgshard %.0f µs", direct.p99, bouncer.p99, shard.p99),
	})
	return nil
}

// latencyArgs are pgbench's arguments for a single-client select-only run
// of d on port, logging each transaction to files named logPrefix.<pid>
// unless logPrefix is "".
func latencyArgs(port int, d time.Duration, logPrefix string) []string {
	args := append(connArgs(port), "-n", "-S", "-M", "simple", "-c", "1", "-j", "1",
		"-T", strconv.Itoa(int(d/time.Second)))
	if logPrefix != "" {
		args = append(args, "-l", "--log-prefix", logPrefix)
	}
	return append(args, appDB)
}

// latencies summarizes one run: the number of transactions and the 50th
// and 99th percentiles of their latency in µs.
type latencies struct {
	n        int
	p50, p99 float64
}

// readLatencyLogs reads the transaction logs pgbench wrote with
// logPrefix or logPrefix.<anything> as its --log-prefix (one per thread:
// logPrefix.<pid>[.<thread>]) and summarizes them.
func readLatencyLogs(logPrefix string) (latencies, error) {
	files, err := filepath.Glob(logPrefix + ".*")
	if err != nil {
		return latencies{}, err
	}
	if len(files) == 0 {
		return latencies{}, fmt.Errorf("pgbench wrote no transaction log %s.*", logPrefix)
	}
	var us []float64
	for _, f := range files {
		if us, err = appendLogLatencies(us, f); err != nil {
			return latencies{}, err
		}
	}
	if len(us) == 0 {
		return latencies{}, fmt.Errorf("no transactions in %s.*", logPrefix)
	}
	slices.Sort(us)
	return latencies{n: len(us), p50: percentile(us, 50), p99: percentile(us, 99)}, nil
}

// appendLogLatencies appends the latency of every transaction in the
// pgbench log file path to us.
func appendLogLatencies(us []float64, path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return us, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		v, err := parseLogLatency(sc.Text())
		if err != nil {
			return us, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		us = append(us, v)
	}
	return us, sc.Err()
}

// parseLogLatency returns the latency in µs of one line of pgbench's
// per-transaction log, "client_id transaction_no time script_no
// time_epoch time_us [schedule_lag [retries]]", where time is the latency
// or "failed" or "skipped".
func parseLogLatency(line string) (float64, error) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return 0, fmt.Errorf("pgbench log line %q: want at least 6 fields", line)
	}
	switch f[2] {
	case "failed", "skipped":
		return 0, fmt.Errorf("pgbench log line %q: a transaction %s", line, f[2])
	}
	v, err := strconv.ParseFloat(f[2], 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("pgbench log line %q: latency %q is not a number of µs", line, f[2])
	}
	return v, nil
}

// percentile is the p-th percentile (0 < p ≤ 100) of sorted, by the
// nearest-rank method: the smallest value at least p% of the values are
// less than or equal to. sorted must not be empty.
func percentile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// yesNo is the met column of a goal.
