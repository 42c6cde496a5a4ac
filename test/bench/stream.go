package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/test/pgtest"
)

// The streaming suite (issue 6, goal 5) reads a table of streamRows rows
// with one pgx client in the simple protocol, every row, directly from
// PostgreSQL and through pgshard, and compares the times; and it measures
// pgshard's memory while a client reads the same result slowly. It does
// both with one shard (the single server, e.pg) and with the table hashed
// on id over streamShards servers of its own, which the scatter-gather
// suite (scatter.go, goal 6) then uses too. Each pgshard is one of the
// suite's own, with the bench's configuration: a fresh one for each slow
// read, so that its peak RSS (VmHWM) is that read's.
//
// The table is made on each server with generate_series, never through
// pgshard: on the single server whole, on each shard only the rows that
// PostgreSQL's PARTITION BY HASH (id) puts in its remainder, which package
// routing reproduces (see fillShard).

const (
	streamRows   = 5_000_000
	streamShards = 3
	streamTable  = "stream_t"
	streamRule   = "{name: stream_t, key: id, method: hash, key_type: integer}"
	streamQuery  = "SELECT id, pad FROM stream_t"
	// streamRounds is how many times each fast read runs; the median counts.
	streamRounds = 5
	// slowReadFor is how long the slow client reads before it gives up;
	// slowBatch rows are read between pauses of slowPause, so it reads at
	// most slowBatch/slowPause rows a second (100,000: a fifth of the table
	// in slowReadFor).
	slowReadFor = 12 * time.Second
	slowBatch   = 2000
	slowPause   = 20 * time.Millisecond
	// rssSampleEvery is how often pgshard's VmRSS is read during a slow read.
	rssSampleEvery = 100 * time.Millisecond
	// rssGoal is the most pgshard may hold while streaming to a slow client.
	rssGoal = 100 << 20
)

func init() {
	suites = append(suites, suite{name: "streaming and scatter-gather (" + streamTable + ")", run: runStream})
}

// runStream fills the table on e.pg and on shards of its own, measures,
// and removes or stops everything it made.
func runStream(ctx context.Context, e *suiteEnv, res *results) (err error) {
	fmt.Printf("bench: filling %s with %d rows on the single server and, hashed on id, on %d more servers\n", streamTable, streamRows, streamShards)
	var (
		shards       []*pgtest.Server
		pgErr, shErr error
		wg           sync.WaitGroup
	)
	wg.Go(func() { pgErr = fillStreamSingle(ctx, e.pg) })
	wg.Go(func() { shards, shErr = startStreamShards(ctx) })
	wg.Wait()
	defer func() {
		err = errors.Join(err, e.pg.Exec(context.Background(), appDB, "DROP TABLE IF EXISTS "+streamTable))
	}()
	if shards != nil {
		defer func() { err = errors.Join(err, stopServers(shards)) }()
	}
	if err := errors.Join(pgErr, shErr); err != nil {
		return err
	}

	single := []*pgtest.Server{e.pg}
	var errs []error
	for _, part := range []struct {
		what string
		f    func() error
	}{
		{"1 shard", func() error { return measureStream(ctx, e, res, "1 shard", single) }},
		{fmt.Sprintf("%d shards", streamShards), func() error {
			return measureStream(ctx, e, res, fmt.Sprintf("%d shards", streamShards), shards)
		}},
		{"scatter-gather", func() error { return measureScatter(ctx, e, res, shards) }},
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := part.f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part.what, err))
		}
	}
	return errors.Join(errs...)
}

// fillStreamSingle makes the whole table on pg, owned by appUser.
func fillStreamSingle(ctx context.Context, pg *pgtest.Server) error {
	return fillStream(ctx, pg, fmt.Sprintf(
		"CREATE TABLE %s AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, %d) g", streamTable, streamRows))
}

// fillStreamShard makes on srv, shard i of n, the table's rows that
// PostgreSQL's hash partitioning on id puts in remainder i.
func fillStreamShard(ctx context.Context, srv *pgtest.Server, i, n int) error {
	return fillStream(ctx, srv, fmt.Sprintf(`CREATE TABLE pgshard_bench_stream_hash (id int) PARTITION BY HASH (id);
CREATE TABLE %s AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, %d) g
  WHERE satisfies_hash_partition('pgshard_bench_stream_hash'::regclass, %d, %d, g);
DROP TABLE pgshard_bench_stream_hash`, streamTable, streamRows, n, i))
}

// fillStream runs create, gives the table to appUser and vacuums it, so
// that the first read does not set hint bits the others find set.
func fillStream(ctx context.Context, srv *pgtest.Server, create string) error {
	for _, sql := range []string{create, "ALTER TABLE " + streamTable + " OWNER TO " + appUser, "VACUUM ANALYZE " + streamTable} {
		if err := srv.Exec(ctx, appDB, sql); err != nil {
			return fmt.Errorf("%s: %w", srv.Name(), err)
		}
	}
	return nil
}

// startStreamShards starts the suite's shards, configured like the
// bench's others, and fills them; on failure it stops them.
func startStreamShards(ctx context.Context) (_ []*pgtest.Server, err error) {
	shards, err := pgtest.StartN(ctx, streamShards, pgtest.Options{Name: "bench-stream", Conf: serverConf})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, stopServers(shards))
		}
	}()
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, srv := range shards {
		wg.Go(func() {
			if errs[i] = srv.CreateUserDB(ctx, appUser, appPassword, appDB); errs[i] == nil {
				errs[i] = fillStreamShard(ctx, srv, i, len(shards))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var sum int64
	for _, srv := range shards {
		n, err := srv.QueryInt(ctx, appDB, "SELECT count(*) FROM "+streamTable)
		if err != nil {
			return nil, err
		}
		sum += n
	}
	if sum != streamRows {
		return nil, fmt.Errorf("the shards hold %d rows of %s together, not %d", sum, streamTable, streamRows)
	}
	return shards, nil
}

// startStreamPgshard starts a pgshard of the suite's own in front of
// servers, with the bench's configuration (metrics off) and, with more
// than one server, the table hashed on id over them.
func startStreamPgshard(ctx context.Context, e *suiteEnv, name string, servers []*pgtest.Server) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	urls := make([]string, len(servers))
	for i, srv := range servers {
		urls[i] = srv.URL("", "", appDB)
	}
	conf := pgshardConfig(port, urls)
	if len(servers) > 1 {
		// pgshardConfig ends with its table rules; this is one more.
		conf += "      - " + streamRule + "\n"
	}
	path := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(e.pgshardBin, "-config", path)
	cmd.Dir = e.dir
	return startDaemon(ctx, name, cmd, nil, port, filepath.Join(e.dir, name+".log"))
}

// measureStream adds the throughput and slow-client rows of one layout:
// the table on servers, through a pgshard in front of them.
func measureStream(ctx context.Context, e *suiteEnv, res *results, layout string, servers []*pgtest.Server) error {
	name := "pgshard-stream-" + strings.ReplaceAll(layout, " ", "")
	fmt.Printf("bench: streaming %d rows, %s: directly and through pgshard, %d times each\n", streamRows, layout, streamRounds)
	d, err := startStreamPgshard(ctx, e, name, servers)
	if err != nil {
		return err
	}
	direct, proxied, sequential, fastErr := streamTimes(ctx, servers, d.port)
	if fastErr = errors.Join(fastErr, d.stop()); fastErr == nil {
		anchorNote := "one client reading the server directly"
		if len(servers) > 1 {
			anchorNote = fmt.Sprintf("anchor: %d clients reading the %d shards directly in parallel, the time of the slowest (all %d rows at once); one client reading the shards one after another: %s (ratio %s); %d CPUs",
				len(servers), len(servers), streamRows, rowsPerSecond(streamRows, sequential),
				ratio(sequential.Seconds(), proxied.Seconds(), true), numCPU())
		}
		res.addGoal(goal{
			figure: "row stream throughput, " + layout,
			value:  rowsPerSecond(streamRows, proxied),
			anchor: rowsPerSecond(streamRows, direct),
			ratio:  ratio(direct.Seconds(), proxied.Seconds(), true),
			goal:   "≥ 0.8",
			met:    yesNo(direct.Seconds() >= 0.8*proxied.Seconds()),
			note: fmt.Sprintf("pgx, simple protocol, `%s`, every row read; median of %d; %s",
				streamQuery, streamRounds, anchorNote),
		})
	} else if ctx.Err() != nil {
		return fastErr
	} else {
		res.addGoal(goal{figure: "row stream throughput, " + layout, value: "failed", met: "–", note: fastErr.Error()})
	}

	fmt.Printf("bench: streaming %d rows, %s: a slow client through pgshard for %v\n", streamRows, layout, slowReadFor)
	d, err = startStreamPgshard(ctx, e, name+"-slow", servers)
	if err != nil {
		return errors.Join(fastErr, err)
	}
	slow, slowErr := slowRead(ctx, d)
	if err := errors.Join(slowErr, d.stop()); err != nil {
		return errors.Join(fastErr, err)
	}
	res.addGoal(goal{
		figure: "pgshard RSS while streaming 5M rows to a slow client, " + layout,
		value:  mib(slow.peakRSS),
		anchor: "–",
		ratio:  "–",
		goal:   "< 100 MiB",
		met:    yesNo(slow.peakRSS < rssGoal && slow.hwm < rssGoal),
		note: fmt.Sprintf("highest VmRSS sampled every %v; VmHWM %s, %s before the query; the client read %d rows in %v (%d rows then a %v pause), then canceled",
			rssSampleEvery, mib(slow.hwm), mib(slow.startRSS), slow.rows, slowReadFor, slowBatch, slowPause),
	})
	return fastErr
}

// streamTimes reads the table streamRounds times directly from servers
// (in parallel, one client each) and through pgshard on port, alternating,
// and returns the median times. With several servers it also returns the
// median time of one client reading them one after another (else 0).
func streamTimes(ctx context.Context, servers []*pgtest.Server, port int) (direct, proxied, sequential time.Duration, err error) {
	var ds, ps, ss []time.Duration
	for round := range streamRounds {
		if len(servers) > 1 {
			var sum time.Duration
			for _, srv := range servers {
				t, _, err := readAll(ctx, srv.URL(appUser, appPassword, appDB))
				if err != nil {
					return 0, 0, 0, err
				}
				sum += t
			}
			ss = append(ss, sum)
		}
		for i := range 2 {
			var t time.Duration
			if (i+round)%2 == 0 {
				if t, err = readDirectParallel(ctx, servers); err != nil {
					return 0, 0, 0, err
				}
				ds = append(ds, t)
			} else {
				if t, err = readAllTimed(ctx, pgshardURL(port), streamRows); err != nil {
					return 0, 0, 0, fmt.Errorf("through pgshard: %w", err)
				}
				ps = append(ps, t)
			}
		}
	}
	return median(ds), median(ps), median(ss), nil
}

// readDirectParallel reads each server's part with a client of its own,
// all at once, and returns the time until the last is done. Together they
// must return streamRows rows.
func readDirectParallel(ctx context.Context, servers []*pgtest.Server) (time.Duration, error) {
	times := make([]time.Duration, len(servers))
	errs := make([]error, len(servers))
	counts := make([]int64, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { times[i], counts[i], errs[i] = readAll(ctx, srv.URL(appUser, appPassword, appDB)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	var sum int64
	for _, n := range counts {
		sum += n
	}
	if sum != streamRows {
		return 0, fmt.Errorf("read %d rows directly, not %d", sum, streamRows)
	}
	return slices.Max(times), nil
}

// readAllTimed is readAll that fails unless it read want rows.
func readAllTimed(ctx context.Context, url string, want int64) (time.Duration, error) {
	t, n, err := readAll(ctx, url)
	if err == nil && n != want {
		err = fmt.Errorf("read %d rows, not %d", n, want)
	}
	return t, err
}

// readAll connects to url and runs streamQuery, reading every row's raw
// values; the time is the query's, from sending it to the last row.
func readAll(ctx context.Context, url string) (time.Duration, int64, error) {
	conn, err := connectSimple(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.Background())
	start := time.Now()
	rows, err := conn.Query(ctx, streamQuery)
	if err != nil {
		return 0, 0, err
	}
	var n, bytes int64
	for rows.Next() {
		for _, v := range rows.RawValues() {
			bytes += int64(len(v))
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, n, err
	}
	if bytes == 0 {
		return 0, n, errors.New("read no data")
	}
	return time.Since(start), n, nil
}

// connectSimple connects with pgx in the simple protocol, which any pool
// mode accepts.
func connectSimple(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// pgshardURL is the URL of database appDB as appUser on a pgshard's port.
func pgshardURL(port int) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", appUser, appPassword,
		net.JoinHostPort(host, strconv.Itoa(port)), appDB)
}

// slowResult is what slowRead saw: pgshard's VmRSS before the query, the
// highest VmRSS sampled while the client read, its VmHWM at the end, all
// in bytes, and the rows read.
type slowResult struct {
	startRSS, peakRSS, hwm int64
	rows                   int64
}

// slowRead reads streamQuery through pgshard d slowly for slowReadFor,
// sampling d's memory, then cancels the query.
func slowRead(ctx context.Context, d *daemon) (slowResult, error) {
	var r slowResult
	pid := d.cmd.Process.Pid
	conn, err := connectSimple(ctx, pgshardURL(d.port))
	if err != nil {
		return r, err
	}
	defer conn.Close(context.Background())
	if r.startRSS, err = procMemory(pid, "VmRSS"); err != nil {
		return r, err
	}
	r.peakRSS = r.startRSS

	readCtx, cancel := context.WithTimeout(ctx, slowReadFor)
	defer cancel()
	sampled := make(chan error, 1)
	go func() { // ends when readCtx does
		tick := time.NewTicker(rssSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-readCtx.Done():
				sampled <- nil
				return
			case <-tick.C:
				rss, err := procMemory(pid, "VmRSS")
				if err != nil {
					sampled <- err
					return
				}
				r.peakRSS = max(r.peakRSS, rss)
			}
		}
	}()
	rows, err := conn.Query(readCtx, streamQuery)
	if err == nil {
		for rows.Next() {
			if r.rows++; r.rows%slowBatch == 0 {
				select {
				case <-readCtx.Done():
				case <-time.After(slowPause):
				}
			}
		}
		rows.Close()
		err = rows.Err()
	}
	early := readCtx.Err() == nil // the read ended before its time was up
	<-readCtx.Done()
	sampleErr := <-sampled
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case early && err != nil:
		return r, fmt.Errorf("slow read: %w", err)
	case early:
		return r, fmt.Errorf("the slow client read all %d rows in less than %v: make it slower", r.rows, slowReadFor)
	case sampleErr != nil:
		return r, sampleErr
	}
	r.hwm, err = procMemory(pid, "VmHWM")
	return r, err
}

// procMemory reads field (VmRSS, VmHWM...) of /proc/pid/status, in bytes.
func procMemory(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatus(string(b), field)
}

// parseProcStatus finds field in the text of a /proc/<pid>/status file,
// a line like "VmRSS:	   12345 kB", and returns its value in bytes.
func parseProcStatus(status, field string) (int64, error) {
	for line := range strings.Lines(status) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(value), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status %s: %w", field, err)
		}
		switch strings.TrimSpace(unit) {
		case "kB":
			return n << 10, nil
		case "":
			return n, nil
		default:
			return 0, fmt.Errorf("/proc status %s: unknown unit %q", field, unit)
		}
	}
	return 0, fmt.Errorf("/proc status: no %s (not Linux?)", field)
}

// median is the middle of ds (the mean of the two middle ones for an even
// count), or 0 for none. It does not reorder ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rowsPerSecond is "1.95M rows/s (2.56 s)".
func rowsPerSecond(rows int64, d time.Duration) string {
	return fmt.Sprintf("%.2fM rows/s (%.2f s)", float64(rows)/d.Seconds()/1e6, d.Seconds())
}

// mib is bytes in MiB, "42.3 MiB".
func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

func numCPU() int { return runtime.NumCPU() }
