package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/pgshard/pgshard/test/pgtest"
)

// The goals beyond pgbench -S throughput (latency, memory, streaming,
// scatter-gather) are suites: each measures one or more figures against an
// anchor from the same run and adds a row per figure to the goals table.
// A suite registers itself in an init function of its own file.

// suiteEnv is what a suite may use: everything run started, on loopback.
// Suites must stop what they start themselves.
type suiteEnv struct {
	s          settings
	dir        string              // temporary directory, removed at the end
	cred       *syscall.Credential // run servers as this OS user, when set
	pgbench    string
	pgshardBin string
	bouncerBin string
	pg         *pgtest.Server   // the single server, pgbench data at scale s.scale
	shards     []*pgtest.Server // the sharded run's servers (nil without -shards)
	bouncer    *daemon          // PgBouncer in front of pg (transaction pooling)
	pgshard    *daemon          // pgshard in front of pg (transaction pooling)
}

// suite is one registered measurement.
type suite struct {
	name string
	run  func(ctx context.Context, e *suiteEnv, res *results) error
}

// suites are run in order after the pgbench -S measurements.
var suites []suite

// goal is one row of the goals table: a figure, the anchor it is compared
// with, their ratio (or "–"), the goal and whether it was met.
type goal struct {
	figure string
	value  string
	anchor string
	ratio  string
	goal   string
	met    string // "yes", "no" or "–"
	note   string
}

func (r *results) addGoal(g goal) { r.goals = append(r.goals, g) }

// runSuites runs every registered suite, each failure recorded as a row.
func runSuites(ctx context.Context, e *suiteEnv, res *results) {
	for _, su := range suites {
		if !wanted(e.s.suites, su.name) {
			continue
		}
		fmt.Printf("bench: %s\n", su.name)
		if err := su.run(ctx, e, res); err != nil {
			res.addGoal(goal{figure: su.name, value: "failed", met: "–", note: err.Error()})
			res.suiteErrs = append(res.suiteErrs, fmt.Errorf("%s: %w", su.name, err))
		}
	}
}

// renderGoals is the goals table, or "" when no suite ran.
func renderGoals(r *results) string {
	if len(r.goals) == 0 {
		return ""
	}
	rows := [][]string{{"figure", "value", "anchor", "ratio", "goal", "met?"}}
	var notes []string
	for _, g := range r.goals {
		rows = append(rows, []string{g.figure, g.value, g.anchor, g.ratio, g.goal, g.met})
		if g.note != "" {
			notes = append(notes, "- "+g.figure+": "+g.note)
		}
	}
	var b strings.Builder
	b.WriteString("\nOther goals (same run):\n\n")
	writeTable(&b, rows)
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// yesNo is a met? cell.
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// wanted reports whether the -suites list selects the suite called name.
func wanted(list, name string) bool {
	if list == "all" {
		return true
	}
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" && p != "none" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
