package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgshard/pgshard/test/pgtest"
)

// streamTimeout bounds how long a replica may take to stream from its
// primary after it starts.
const streamTimeout = 20 * time.Second

// shard is one shard of the demo: a primary and a streaming replica of it,
// on fixed ports, with their clusters in .demo/<name> and
// .demo/<name>-replica. Its position in the demo's list of shards is its
// hash remainder. start, load and stop are called by one goroutine at a
// time.
type shard struct {
	name                     string
	primaryPort, replicaPort int

	primary, replica *pgtest.Server // nil until started
}

// replicaName is the replica's name: its directory, its cluster_name, and
// so its application_name in the primary's pg_stat_replication.
func (sh *shard) replicaName() string { return sh.name + "-replica" }

// slotName is the physical replication slot the replica streams through,
// so that the primary keeps the WAL the replica has not received yet, even
// across a crash of the demo.
func (sh *shard) slotName() string { return sh.name + "_replica" }

// The replication role of the demo's primaries, made by init-primary.sh
// and used by replica-entrypoint.sh.
const replicationUser, replicationPassword = "replicator", "replicator"

// start starts the primary (making its cluster on first use), sets it up
// with deploy/postgres/init-primary.sh (the demo's role and database, a
// replication role and slot), then starts the replica, made by
// deploy/postgres/replica-entrypoint.sh on first use, and waits until it
// streams. A replica left from an earlier primary is made again, as is
// one that does not stream (once).
func (sh *shard) start(ctx context.Context, root, demoDir string) error {
	primaryDir := filepath.Join(demoDir, sh.name)
	replicaDir := filepath.Join(demoDir, sh.replicaName())
	_, err := os.Stat(filepath.Join(primaryDir, "data", "PG_VERSION"))
	newPrimary := errors.Is(err, fs.ErrNotExist)

	p, err := pgtest.Start(ctx, pgtest.Options{
		Name: sh.name, Dir: primaryDir, Port: sh.primaryPort,
		Conf: map[string]string{"cluster_name": sh.name},
	})
	if err != nil {
		return err
	}
	sh.primary = p
	replication := []string{
		"REPLICATION_USER=" + replicationUser,
		"REPLICATION_PASSWORD=" + replicationPassword,
		"REPLICATION_SLOT=" + sh.slotName(),
	}
	err = p.RunClient(ctx, append([]string{"APP_USER=" + user, "APP_PASSWORD=" + password, "APP_DB=" + database}, replication...),
		"bash", filepath.Join(root, "deploy/postgres/init-primary.sh"))
	if err != nil {
		return err
	}

	if newPrimary {
		// Every pgtest cluster has the same system identifier, so a
		// replica of an earlier primary would start streaming from this
		// one and replay WAL that is not its own.
		if err := os.RemoveAll(replicaDir); err != nil {
			return err
		}
	}
	opts := pgtest.Options{
		Name: sh.replicaName(), Dir: replicaDir, Port: sh.replicaPort,
		// primary_slot_name is in postgresql.auto.conf too (pg_basebackup
		// --slot), but not in replicas made by earlier demos.
		Conf:    map[string]string{"cluster_name": sh.replicaName(), "primary_slot_name": sh.slotName()},
		Init:    []string{"bash", filepath.Join(root, "deploy/postgres/replica-entrypoint.sh")},
		InitEnv: append([]string{"PRIMARY_HOST=" + p.Host(), "PRIMARY_PORT=" + strconv.Itoa(p.Port())}, replication...),
	}
	for attempt := 1; ; attempt++ {
		if _, err := os.Stat(filepath.Join(replicaDir, "data", "PG_VERSION")); err != nil {
			fmt.Printf("demo: %s: pg_basebackup from %s\n", sh.replicaName(), sh.name)
		}
		// Not ctx: a base backup (a second or so) is let finish, and
		// Ctrl-C takes effect right after it.
		r, err := pgtest.Start(context.WithoutCancel(ctx), opts)
		if err == nil {
			sh.replica = r
			if err = ctx.Err(); err == nil {
				err = sh.waitStreaming(ctx)
			}
		}
		if err == nil || attempt == 2 || ctx.Err() != nil {
			return err
		}
		if sh.replica != nil {
			if stopErr := sh.replica.Stop(); stopErr != nil {
				return errors.Join(err, stopErr)
			}
			sh.replica = nil
		}
		first, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Printf("demo: %s\ndemo: %s: making it again from a new base backup\n", first, sh.replicaName())
		if err := os.RemoveAll(replicaDir); err != nil {
			return err
		}
	}
}

// waitStreaming waits until the primary's pg_stat_replication shows the
// replica streaming.
func (sh *shard) waitStreaming(ctx context.Context) error {
	deadline := time.Now().Add(streamTimeout)
	for {
		n, err := sh.primary.QueryInt(ctx, "postgres",
			"SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", sh.replicaName())
		switch {
		case err != nil:
			return err
		case n > 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%s is not streaming from %s after %v; see %s", sh.replicaName(), sh.name, streamTimeout, sh.replica.LogPath())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReplayed waits until the replica has replayed the WAL the primary
// has flushed (and so may send) by now: every transaction committed with
// synchronous_commit on.
func (sh *shard) waitReplayed(ctx context.Context) error {
	lsn, err := sh.primary.QueryString(ctx, "postgres", "SELECT pg_current_wal_flush_lsn()")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(streamTimeout)
	for {
		done, err := sh.replica.QueryInt(ctx, "postgres",
			"SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)::int", lsn)
		switch {
		case err != nil:
			return err
		case done == 1:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%s has not replayed %s's WAL up to %s after %v; see %s", sh.replicaName(), sh.name, lsn, streamTimeout, sh.replica.LogPath())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop stops the primary, whose shutdown checkpoint then reaches the
// replica, and then the replica. The clusters stay for the next run.
func (sh *shard) stop() error {
	var errs []error
	if sh.primary != nil {
		errs = append(errs, sh.primary.Stop())
	}
	if sh.replica != nil {
		errs = append(errs, sh.replica.Stop())
	}
	return errors.Join(errs...)
}
