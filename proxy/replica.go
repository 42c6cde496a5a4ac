package proxy

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Replicas serve reads when read_write_split is on. A monitor samples each
// shard's primary WAL position and each replica's replay position; a
// replica is used while it answers, lags less than max_replica_lag and,
// for a client that wrote, provably holds that write.

// replicaInterval is how often the monitor samples WAL positions.
const replicaInterval = 200 * time.Millisecond

// replicaDownFor is how long a replica that failed stays out of use.
const replicaDownFor = 2 * time.Second

// shardState is what the monitor knows of one shard's servers.
type shardState struct {
	mu       sync.Mutex
	primary  uint64    // WAL position
	primAt   time.Time // when it was sampled
	replicas []replicaState
	next     uint64 // round robin
}

type replicaState struct {
	replay    uint64    // replay position, 0 when unknown
	replayAt  time.Time // when it was sampled (after primAt of that round)
	downUntil time.Time
	known     bool // sampled at least once
	// caughtUp is when it last had replayed all the primary had (for
	// the lag metric).
	caughtUp time.Time
}

// monitor samples the WAL positions of a database's shards until ctx ends.
func (s *Server) monitor(ctx context.Context, d *database) {
	t := time.NewTicker(replicaInterval)
	defer t.Stop()
	conns := map[poolKey]*pgconn.PgConn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	query := func(k poolKey, sql string) (uint64, bool) {
		c := conns[k]
		if c == nil {
			p, err := s.pool(d, d.BackendUser, d.BackendPassword, k.shard, k.server)
			if err != nil {
				return 0, false
			}
			cctx, cancel := context.WithTimeout(ctx, s.opts.ServerConnectTimeout)
			c, err = pgconn.ConnectConfig(cctx, p.cfg)
			cancel()
			if err != nil {
				return 0, false
			}
			conns[k] = c
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		rs, err := c.Exec(qctx, sql).ReadAll()
		if err != nil || len(rs) == 0 || len(rs[0].Rows) == 0 {
			c.Close(context.Background())
			delete(conns, k)
			return 0, false
		}
		return parseLSN(string(rs[0].Rows[0][0]))
	}
	for {
		for i := range d.Shards {
			st := d.shards[i]
			lsn, ok := query(poolKey{shard: i}, "SELECT pg_current_wal_lsn()")
			at := time.Now()
			if ok {
				st.mu.Lock()
				st.primary, st.primAt = lsn, at
				st.mu.Unlock()
			}
			for j := range d.Shards[i].Replicas {
				replay, ok := query(poolKey{shard: i, server: j + 1}, "SELECT pg_last_wal_replay_lsn()")
				now := time.Now()
				st.mu.Lock()
				r := &st.replicas[j]
				if ok {
					r.replay, r.replayAt, r.known = replay, now, true
					if replay >= st.primary {
						r.caughtUp = now
					}
				} else {
					r.known = false
					r.downUntil = now.Add(replicaDownFor)
				}
				st.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// parseLSN reads an LSN such as 0/16B3748.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// pickReplica chooses a replica of a shard for a client's read: 1 + its
// index, or 0 for the primary when none is usable.
// wrote is when the client's last write committed.
func (s *Server) pickReplica(sess *session, shard int, wrote time.Time) int {
	d := sess.db
	st := d.shards[shard]
	now := time.Now()
	ryw := d.ReadYourWrites
	if !wrote.IsZero() && ryw.Window > 0 && now.Sub(wrote) < ryw.Window {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var usable []int
	for j := range st.replicas {
		r := &st.replicas[j]
		if now.Before(r.downUntil) {
			continue
		}
		if d.monitored {
			if !r.known {
				continue
			}
			if st.primary > r.replay && int64(st.primary-r.replay) > d.MaxReplicaLag {
				continue
			}
			if ryw.LSN && !wrote.IsZero() {
				// The primary's position sampled after the write
				// committed covers it; the replica must have replayed
				// that far, sampled later still.
				if !st.primAt.After(wrote) || !r.replayAt.After(st.primAt) || r.replay < st.primary {
					continue
				}
			}
		} else if ryw.LSN && !wrote.IsZero() {
			continue // nothing proves the replica has the write
		}
		usable = append(usable, j)
	}
	if len(usable) == 0 {
		return 0
	}
	var j int
	switch d.LoadBalance {
	case LoadBalanceRandom:
		j = usable[rand.IntN(len(usable))]
	case LoadBalanceLeastBusy:
		best := -1
		for _, k := range usable {
			p, err := s.pool(d, sess.buser, sess.bpass, shard, k+1)
			if err != nil {
				continue
			}
			ps := p.Stats()
			busy := ps.Total - ps.Idle + ps.Waiting
			if best < 0 || busy < best {
				best, j = busy, k
			}
		}
	default:
		st.next++
		j = usable[int(st.next%uint64(len(usable)))]
	}
	return j + 1
}

// replicaFailed takes a replica out of use for a while after it could not
// serve.
func (s *Server) replicaFailed(d *database, p *backendPool) {
	if p.server == 0 {
		return
	}
	st := d.shards[p.shardIdx]
	st.mu.Lock()
	st.replicas[p.server-1].downUntil = time.Now().Add(replicaDownFor)
	st.mu.Unlock()
}
