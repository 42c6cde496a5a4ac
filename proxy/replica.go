package proxy

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Replicas serve reads when read_write_split is on. The health checks
// (health.go) sample each shard's primary WAL position and each replica's
// replay position; a replica is used while it passes its checks, is not
// banned, lags less than max_replica_lag and, for a client that wrote,
// provably holds that write.

// replicaInterval is how often the health checks sample WAL positions in
// a database whose lag is monitored (health.go).
const replicaInterval = 200 * time.Millisecond

// shardState is what the health checks (health.go) know of one shard's
// servers; it is the one place that knows whether a server is up, banned
// or promoted.
type shardState struct {
	mu       sync.Mutex
	primary  uint64    // WAL position
	primAt   time.Time // when it was sampled
	replicas []replicaState
	next     uint64 // round robin
	// health is each server's: [0] the primary, [i] replica i-1.
	health []serverHealth
	// writer is the server that takes the shard's writes: 0, or a replica
	// that role: auto saw promoted while the primary was down.
	writer int
}

type replicaState struct {
	replay    uint64    // replay position, 0 when unknown
	replayAt  time.Time // when it was sampled (after primAt of that round)
	downUntil time.Time // banned for reads until then (Ban, or a failure)
	known     bool      // sampled at least once
	// caughtUp is when it last had replayed all the primary had (for
	// the lag metric).
	caughtUp time.Time
}

func newShardState(replicas int) *shardState {
	return &shardState{replicas: make([]replicaState, replicas), health: make([]serverHealth, 1+replicas)}
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
		if now.Before(r.downUntil) || st.health[j+1].err != nil {
			continue // banned, or failing its checks
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

// replicaFailed bans a replica for ban_time after it could not serve.
func (s *Server) replicaFailed(d *database, p *backendPool) {
	if p.server == 0 {
		return
	}
	st := d.shards[p.shardIdx]
	st.mu.Lock()
	s.banLocked(st, p.server)
	st.mu.Unlock()
}
