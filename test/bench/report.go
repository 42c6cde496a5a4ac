package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/pgshard/pgshard/test/pgtest"
)

// runKey names the runs of one mode against one target.
type runKey struct{ mode, target string }

// results are the TPS of every measured run, the error of every failed
// mode and target, and the error of every target that could not run at
// all.
type results struct {
	tps        map[runKey][]float64
	errs       map[runKey]error
	targetErrs map[string]error
	// goals are the rows of the suites (suites.go); suiteErrs their
	// failures.
	goals     []goal
	suiteErrs []error
}

func newResults() *results {
	return &results{tps: map[runKey][]float64{}, errs: map[runKey]error{}, targetErrs: map[string]error{}}
}

func (r *results) add(mode, target string, tps float64) {
	k := runKey{mode, target}
	r.tps[k] = append(r.tps[k], tps)
}

func (r *results) fail(mode, target string, err error) { r.errs[runKey{mode, target}] = err }

// failTarget records that target cannot run in any mode.
func (r *results) failTarget(target string, err error) { r.targetErrs[target] = err }

func (r *results) failed(mode, target string) bool {
	return r.targetErrs[target] != nil || r.errs[runKey{mode, target}] != nil
}

// median is the median TPS of mode against target; ok is false when it
// has no successful run.
func (r *results) median(mode, target string) (tps float64, ok bool) {
	v := slices.Sorted(slices.Values(r.tps[runKey{mode, target}]))
	switch n := len(v); {
	case n == 0 || r.failed(mode, target):
		return 0, false
	case n%2 == 1:
		return v[n/2], true
	default:
		return (v[n/2-1] + v[n/2]) / 2, true
	}
}

// targetNames are the targets in table order.
var targetNames = []string{"direct", "pgbouncer", "pgshard", shardedTarget}

// failures joins the errors of the targets that did not run and of the
// failed runs, in table order.
func (r *results) failures() error {
	var errs []error
	for _, t := range targetNames {
		if err := r.targetErrs[t]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t, err))
			continue
		}
		for _, mode := range modes {
			if err := r.errs[runKey{mode, t}]; err != nil {
				errs = append(errs, fmt.Errorf("%s against %s: %w", mode, t, err))
			}
		}
	}
	return errors.Join(errs...)
}

// environment is what the report says about where it was measured.
type environment struct {
	date, cpu                  string
	nproc                      int
	load                       string // 1-minute load average before measuring
	postgres, pgbouncer, goVer string
}

// describeEnv collects the machine and the versions of what ran; load is
// the machine's load before the measurements.
func describeEnv(ctx context.Context, pg *pgtest.Server, bouncerBin, pgshardBin, load string) (environment, error) {
	env := environment{
		load:  load,
		date:  time.Now().UTC().Format("2006-01-02 15:04 MST"),
		cpu:   cpuModel(),
		nproc: runtime.NumCPU(),
		goVer: runtime.Version(),
	}
	if bi, err := buildinfo.ReadFile(pgshardBin); err == nil {
		env.goVer = bi.GoVersion // the Go that built pgshard
	}
	var err1, err2 error
	env.postgres, err1 = pg.QueryString(ctx, "postgres", "SHOW server_version")
	env.pgbouncer, err2 = pgBouncerVersion(bouncerBin)
	return env, errors.Join(err1, err2)
}

// loadAverage is the 1-minute load average of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// shardedGoal is the least TPS the sharded run should reach, as a
// fraction of the single-backend pgshard's.
const shardedGoal = 0.9

// render is the report in Markdown, aligned to read as well in a terminal.
// shardRows are the pgbench_accounts rows on each shard of the sharded
// run; without a sharded run (-shards 0) its columns are left out.
func render(r *results, s settings, env environment, shardRows []int) string {
	sharded := s.shards > 0
	sh := fmt.Sprintf("%d-shard", s.shards)
	header := []string{"mode", "direct TPS", "pgbouncer TPS", "pgshard TPS"}
	if sharded {
		header = append(header, sh+" TPS")
	}
	header = append(header, "pgshard/pgbouncer", "pgshard/direct")
	if sharded {
		header = append(header, sh+"/pgshard", sh+"/pgbouncer")
	}
	header = append(header, "pgshard >= pgbouncer?")
	if sharded {
		header = append(header, fmt.Sprintf("%s/pgshard >= %.2f?", sh, shardedGoal))
	}
	rows := [][]string{header}
	yesNo := map[bool]string{true: "yes", false: "no"}
	for _, mode := range modes {
		direct, dok := r.median(mode, "direct")
		bouncer, bok := r.median(mode, "pgbouncer")
		shard, sok := r.median(mode, "pgshard")
		multi, mok := r.median(mode, shardedTarget)
		bouncerCell := tpsCell(r, mode, "pgbouncer", bouncer, bok)
		if mode == "prepared" && bok {
			bouncerCell += " (session mode)"
		}
		row := []string{mode, tpsCell(r, mode, "direct", direct, dok), bouncerCell, tpsCell(r, mode, "pgshard", shard, sok)}
		if sharded {
			row = append(row, tpsCell(r, mode, shardedTarget, multi, mok))
		}
		row = append(row, ratio(shard, bouncer, sok && bok), ratio(shard, direct, sok && dok))
		if sharded {
			row = append(row, ratio(multi, shard, mok && sok), ratio(multi, bouncer, mok && bok))
		}
		met := "–"
		if bok && sok {
			met = yesNo[shard >= bouncer]
		}
		row = append(row, met)
		if sharded {
			met := "–"
			if mok && sok {
				met = yesNo[multi >= shardedGoal*shard]
			}
			row = append(row, met)
		}
		rows = append(rows, row)
	}

	var b strings.Builder
	warmup := "no warm-up"
	if s.warmup > 0 {
		warmup = fmt.Sprintf("a %v warm-up", s.warmup)
	}
	fmt.Fprintf(&b, "pgbench -S (select only), scale %d: %d clients, %d threads, %v per run, median of %d round(s) after %s.\n\n",
		s.scale, s.clients, s.threads, s.duration, s.rounds, warmup)
	right := []int{1, 2, 3, 4, 5}
	if sharded {
		right = append(right, 6, 7, 8)
	}
	writeTable(&b, rows, right...)
	fmt.Fprintf(&b, `
- direct: PostgreSQL itself, one backend per client.
- pgbouncer and pgshard: transaction pooling, %d backend connections, SCRAM-SHA-256 logins.
`, poolSize)
	if sharded {
		fmt.Fprintf(&b, "- %[1]s: pgshard as above (%[2]d backend connections per shard) in front of %[3]d PostgreSQL servers, with `%[4]s`: each server holds the pgbench_accounts rows pgshard routes to it (%[5]s; checked aid by aid) and s0 the other pgbench tables. In each mode, %[6]d lookups through it that must each return their row precede its runs (-S does not check).\n",
			sh, poolSize, s.shards, shardedRule, rowsLine(shardRows), lookupClients*lookupsPerClient)
	}
	fmt.Fprintf(&b, `- prepared mode, pgbouncer: PgBouncer %s cannot keep prepared statements in transaction mode, so this row runs it in session mode with a backend per client (%d); pgshard stays in transaction mode with %d.
- measured %s on %d CPUs (nproc), %s, load average %s before measuring; PostgreSQL %s, %s, %s.
`, strings.TrimPrefix(env.pgbouncer, "PgBouncer "), s.clients, poolSize,
		env.date, env.nproc, env.cpu, env.load, env.postgres, env.pgbouncer, env.goVer)
	return b.String()
}

func tpsCell(r *results, mode, target string, tps float64, ok bool) string {
	switch {
	case ok:
		return fmt.Sprintf("%.0f", tps)
	case r.failed(mode, target):
		return "failed"
	default:
		return "–"
	}
}

func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// writeTable writes rows as a Markdown table, the first row the header,
// the columns numbered in right right-aligned and the others left-aligned.
func writeTable(b *strings.Builder, rows [][]string, right ...int) {
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)), 3)
		}
	}
	line := func(row []string) {
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if slices.Contains(right, i) {
				fmt.Fprintf(b, "| %s%s ", pad, cell)
			} else {
				fmt.Fprintf(b, "| %s%s ", cell, pad)
			}
		}
		b.WriteString("|\n")
	}
	line(rows[0])
	for i, w := range width {
		if slices.Contains(right, i) {
			fmt.Fprintf(b, "|-%s:", strings.Repeat("-", w))
		} else {
			fmt.Fprintf(b, "|-%s-", strings.Repeat("-", w))
		}
	}
	b.WriteString("|\n")
	for _, row := range rows[1:] {
		line(row)
	}
}
