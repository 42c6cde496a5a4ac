package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/test/pgtest"
)

// The scatter-gather measurement (issue 6, goal 6) runs statements on
// every shard through pgshard and compares each with what the shards need
// for their parts: the same statement run on each shard directly, all at
// once, the slowest shard's time. It uses the streaming suite's shards
// (stream.go): streamRows rows of stream_t hashed on id, with no index, so
// that the ORDER BY … LIMIT makes each shard scan its part and sort the
// top rows.

// scatterRounds is how many timed runs each statement gets, after one
// untimed run; the median counts.
const scatterRounds = 5

// scatterCase is a statement measured and how to check its result, given
// the rows pgshard returned, decoded by pgx.
type scatterCase struct {
	figure string
	sql    string
	check  func(rows [][]any) error
}

var scatterCases = []scatterCase{
	{
		figure: "scatter count(*)",
		sql:    "SELECT count(*) FROM " + streamTable,
		check: func(rows [][]any) error {
			if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] != int64(streamRows) {
				return fmt.Errorf("count(*) through pgshard: got %v, want [[%d]]", rows, streamRows)
			}
			return nil
		},
	},
	{
		figure: "scatter ORDER BY id LIMIT 100",
		sql:    "SELECT id, pad FROM " + streamTable + " ORDER BY id LIMIT 100",
		check: func(rows [][]any) error {
			if len(rows) != 100 {
				return fmt.Errorf("ORDER BY id LIMIT 100 through pgshard: got %d rows", len(rows))
			}
			for i, r := range rows {
				if r[0] != int32(i+1) {
					return fmt.Errorf("ORDER BY id LIMIT 100 through pgshard: row %d has id %v, want %d", i+1, r[0], i+1)
				}
			}
			return nil
		},
	},
}

// measureScatter adds a row for each of scatterCases, through a pgshard of
// its own in front of shards.
func measureScatter(ctx context.Context, e *suiteEnv, res *results, shards []*pgtest.Server) (err error) {
	fmt.Printf("bench: scatter-gather over %d shards, %d rows\n", len(shards), streamRows)
	d, err := startStreamPgshard(ctx, e, "pgshard-scatter", shards)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.stop()) }()
	proxied, err := connectSimple(ctx, pgshardURL(d.port))
	if err != nil {
		return err
	}
	defer proxied.Close(context.Background())
	direct := make([]*pgx.Conn, len(shards))
	for i, srv := range shards {
		if direct[i], err = connectSimple(ctx, srv.URL(appUser, appPassword, appDB)); err != nil {
			return err
		}
		defer direct[i].Close(context.Background())
	}

	var errs []error
	for _, c := range scatterCases {
		pt, dt, err := scatterTimes(ctx, c, proxied, direct)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			res.addGoal(goal{figure: c.figure, value: "failed", met: "–", note: err.Error()})
			errs = append(errs, fmt.Errorf("%s: %w", c.figure, err))
			continue
		}
		res.addGoal(goal{
			figure: c.figure,
			value:  millis(pt),
			anchor: millis(dt),
			ratio:  ratio(pt.Seconds(), dt.Seconds(), true),
			goal:   "≤ 1.1",
			met:    yesNo(pt.Seconds() <= 1.1*dt.Seconds()),
			note: fmt.Sprintf("`%s` over %d shards holding %d rows (no index); value: through pgshard; anchor: the same statement on each shard directly, all at once, the slowest; medians of %d runs",
				c.sql, len(shards), streamRows, scatterRounds),
		})
	}
	return errors.Join(errs...)
}

// scatterTimes runs c once untimed on each side, then scatterRounds times
// through pgshard and directly, alternating, and returns the medians:
// pgshard's time, and the slowest shard's.
func scatterTimes(ctx context.Context, c scatterCase, proxied *pgx.Conn, direct []*pgx.Conn) (time.Duration, time.Duration, error) {
	var ps, ds []time.Duration
	for round := range scatterRounds + 1 {
		rows, pt, err := timedQuery(ctx, proxied, c.sql)
		if err != nil {
			return 0, 0, fmt.Errorf("through pgshard: %w", err)
		}
		if err := c.check(rows); err != nil {
			return 0, 0, err
		}
		dt, err := slowestShard(ctx, direct, c.sql)
		if err != nil {
			return 0, 0, fmt.Errorf("directly: %w", err)
		}
		if round > 0 {
			ps, ds = append(ps, pt), append(ds, dt)
		}
	}
	return median(ps), median(ds), nil
}

// slowestShard runs sql on every conn at once and returns the longest
// time.
func slowestShard(ctx context.Context, conns []*pgx.Conn, sql string) (time.Duration, error) {
	times := make([]time.Duration, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() { _, times[i], errs[i] = timedQuery(ctx, conn, sql) })
	}
	wg.Wait()
	return slices.Max(times), errors.Join(errs...)
}

// timedQuery runs sql on conn, reads every row and returns them with the
// time from sending it to the last row.
func timedQuery(ctx context.Context, conn *pgx.Conn, sql string) ([][]any, time.Duration, error) {
	start := time.Now()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, 0, err
	}
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			rows.Close()
			return nil, 0, err
		}
		out = append(out, v)
	}
	rows.Close()
	return out, time.Since(start), rows.Err()
}

// millis is a duration in milliseconds, "123.4 ms".
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
