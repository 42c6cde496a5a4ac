package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/routing"
	"github.com/pgshard/pgshard/test/pgtest"
)

// The sharded run spreads pgbench_accounts over the shard servers by
// this rule, as pgshard's configuration writes it; the other pgbench
// tables stay whole on the first shard, the default one.
const (
	shardedTable = "pgbench_accounts"
	shardedRule  = "{name: pgbench_accounts, key: aid, method: hash, key_type: integer}"
)

// accountsPerScale is how many pgbench_accounts rows pgbench makes per
// unit of scale: aid runs from 1 to accountsPerScale × scale.
const accountsPerScale = 100000

// startShards starts n PostgreSQL servers for the sharded run, configured
// like the single one, each with the login and database appDB, and fills
// them with fillShard. On failure it stops the servers it started.
func startShards(ctx context.Context, pgbench string, n, scale int, conf map[string]string) (_ []*pgtest.Server, err error) {
	shards, err := pgtest.StartN(ctx, n, pgtest.Options{Name: "bench-shard", Conf: conf})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, stopServers(shards))
		}
	}()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, srv := range shards {
		wg.Go(func() {
			if err := srv.CreateUserDB(ctx, appUser, appPassword, appDB); err != nil {
				errs[i] = err
				return
			}
			if err := fillShard(ctx, pgbench, srv, i, n, scale); err != nil {
				errs[i] = fmt.Errorf("shard s%d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return shards, errors.Join(errs...)
}

// stopServers stops every server.
func stopServers(servers []*pgtest.Server) error {
	var errs []error
	for _, srv := range servers {
		errs = append(errs, srv.Stop())
	}
	return errors.Join(errs...)
}

// fillShard makes shard i of n hold what pgshard's routing expects there:
// the pgbench_accounts rows that PostgreSQL's PARTITION BY HASH (aid) with
// MODULUS n puts in remainder i, and, on shard 0 only, the other pgbench
// tables. It runs pgbench -i like the single server's, deletes the other
// shards' accounts (PostgreSQL decides which, with satisfies_hash_partition
// on an empty hash-partitioned table), compacts the table, then lets
// pgbench vacuum and add its primary keys.
func fillShard(ctx context.Context, pgbench string, srv *pgtest.Server, i, n, scale int) error {
	if err := initPgbench(ctx, pgbench, srv.Port(), "dtG", scale); err != nil {
		return err
	}
	keepOwn := fmt.Sprintf(`CREATE TABLE pgshard_bench_hash (aid int) PARTITION BY HASH (aid);
DELETE FROM pgbench_accounts WHERE NOT satisfies_hash_partition('pgshard_bench_hash'::regclass, %d, %d, aid);
DROP TABLE pgshard_bench_hash`, n, i)
	if err := srv.Exec(ctx, appDB, keepOwn); err != nil {
		return fmt.Errorf("keep the shard's own accounts: %w", err)
	}
	if err := srv.Exec(ctx, appDB, "VACUUM FULL pgbench_accounts"); err != nil {
		return err
	}
	if err := initPgbench(ctx, pgbench, srv.Port(), "vp", scale); err != nil {
		return err
	}
	if i > 0 {
		// pgbench reads pgbench_branches first thing: a copy here would
		// hide a query pgshard sent to the wrong shard.
		if err := srv.Exec(ctx, appDB, "DROP TABLE pgbench_branches, pgbench_tellers, pgbench_history"); err != nil {
			return err
		}
	}
	return nil
}

// checkShards reads every aid of every shard and checks, with pgshard's
// own routing, that each shard holds exactly the accounts pgshard sends to
// it and that together they hold each account of the scale once. It
// returns the rows of pgbench_accounts on each shard.
func checkShards(ctx context.Context, shards []*pgtest.Server, scale int) ([]int, error) {
	p, err := newPlacement(len(shards), scale)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, srv := range shards {
		wg.Go(func() { errs[i] = readAids(ctx, srv, func(aid int32) error { return p.add(i, aid) }) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p.rows, p.complete()
}

// readAids calls f with every aid of pgbench_accounts on srv, read in a
// sequential scan: the bench leaves the index's statistics to pgbench.
func readAids(ctx context.Context, srv *pgtest.Server, f func(aid int32) error) error {
	conn, err := pgx.Connect(ctx, srv.SuperURL(appDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT aid FROM pgbench_accounts")
	if err != nil {
		return err
	}
	defer rows.Close()
	var aid int32
	for rows.Next() {
		if err := rows.Scan(&aid); err != nil {
			return err
		}
		if err := f(aid); err != nil {
			return err
		}
	}
	return rows.Err()
}

// placement checks, account by account, that the shards hold each aid of
// 1..total exactly once, each on the shard pgshard's routing picks for it
// (routing.Hash, the function pgshard routes with). add may be called
// concurrently for different shards.
type placement struct {
	hash routing.Hash
	// seen[aid-1] is set by the shard holding aid; shards hold distinct
	// aids when each is where routing says, so they never share an entry.
	seen []bool
	rows []int // accounts found on each shard
}

func newPlacement(shards, scale int) (*placement, error) {
	h, err := routing.NewHash(routing.KeyInt, shards)
	if err != nil {
		return nil, err
	}
	return &placement{hash: h, seen: make([]bool, accountsPerScale*scale), rows: make([]int, shards)}, nil
}

// add records that shard holds aid.
func (p *placement) add(shard int, aid int32) error {
	if aid < 1 || int(aid) > len(p.seen) {
		return fmt.Errorf("shard s%d holds aid %d, outside pgbench's 1..%d", shard, aid, len(p.seen))
	}
	want, err := p.hash.Shard(strconv.Itoa(int(aid)))
	if err != nil {
		return err
	}
	if want != shard {
		return fmt.Errorf("shard s%d holds aid %d, which pgshard routes to s%d: PostgreSQL's hash placement and package routing disagree", shard, aid, want)
	}
	if p.seen[aid-1] {
		return fmt.Errorf("shard s%d holds aid %d twice", shard, aid)
	}
	p.seen[aid-1] = true
	p.rows[shard]++
	return nil
}

// complete reports an error unless every aid of 1..total was added.
func (p *placement) complete() error {
	sum := 0
	for _, n := range p.rows {
		sum += n
	}
	if sum == len(p.seen) {
		return nil
	}
	missing := slices.Index(p.seen, false) + 1
	return fmt.Errorf("the shards hold %d accounts, not %d: aid %d, for one, is on none", sum, len(p.seen), missing)
}

// rowsLine is rows per shard as the bench prints them:
// "s0 499874, s1 500126".
func rowsLine(rows []int) string {
	parts := make([]string, len(rows))
	for i, n := range rows {
		parts[i] = fmt.Sprintf("s%d %d", i, n)
	}
	return strings.Join(parts, ", ")
}

// lookupScript is a pgbench script running -S's query on random accounts
// that fails, unlike -S, when one returns no row: \gset needs exactly one.
// Each shard holds only its own accounts, so a statement pgshard sends to
// the wrong shard finds nothing.
func lookupScript(scale int) string {
	return fmt.Sprintf(`\set aid random(1, %d)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid \gset
`, accountsPerScale*scale)
}

// writeLookupScript writes lookupScript in dir and returns its path.
func writeLookupScript(dir string, scale int) (string, error) {
	path := filepath.Join(dir, "lookup.sql")
	return path, os.WriteFile(path, []byte(lookupScript(scale)), 0o644)
}
