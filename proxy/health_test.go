package proxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestHealthBanUnban: Ban takes a replica out of reads (serverHealth
// says banned) until Unban; a primary cannot be banned; an unknown
// address is refused with the configured ones.
func TestHealthBanUnban(t *testing.T) {
	srv, err := NewServer(Options{
		Users: []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", ReadWriteSplit: true, Shards: []Shard{
			{Name: "s0", Primary: "postgres://10.0.0.1:5432/db", Replicas: []string{"postgres://10.0.0.2:5432/db", "host=10.0.0.3 port=5433 dbname=db"}},
			{Name: "s1", Primary: "postgres://10.0.0.4:5432/db"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := srv.current().dbs["db"]
	state := func(shard, server int) string {
		h, _ := d.serverHealth(shard, server)
		return h
	}
	if err := srv.Ban("10.0.0.3:5433"); err != nil {
		t.Fatalf("Ban: %v", err)
	}
	if got := state(0, 2); got != "banned" {
		t.Errorf("banned replica: %s, want banned", got)
	}
	if got := state(0, 1); got != "up" {
		t.Errorf("other replica: %s, want up", got)
	}
	err = srv.Ban("10.0.0.1:5432")
	if err == nil || !strings.Contains(err.Error(), "only replicas can be banned") || !strings.Contains(err.Error(), "shard s0") {
		t.Errorf("Ban(primary) = %v", err)
	}
	err = srv.Ban("10.0.0.9:5432")
	if err == nil || !strings.Contains(err.Error(), "10.0.0.1:5432, 10.0.0.2:5432, 10.0.0.3:5433, 10.0.0.4:5432") {
		t.Errorf("Ban(unknown) = %v", err)
	}
	if err := srv.Unban("10.0.0.3:5433"); err != nil {
		t.Fatalf("Unban: %v", err)
	}
	if got := state(0, 2); got != "up" {
		t.Errorf("unbanned replica: %s, want up", got)
	}
}

// TestHealthStates: a failed check marks a primary down and bans a
// replica; a passing one brings the primary back at once and the replica
// once its ban is over. Lag is the primary's WAL position minus the
// replica's replay position.
func TestHealthStates(t *testing.T) {
	srv, err := NewServer(Options{
		BanTime: 50 * time.Millisecond,
		Users:   []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", Shards: []Shard{
			{Name: "s0", Primary: "postgres://10.0.0.1:5432/db", Replicas: []string{"postgres://10.0.0.2:5432/db"}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := srv.current().dbs["db"]
	check := func(want0, want1 string, lag int64) {
		t.Helper()
		h0, _ := d.serverHealth(0, 0)
		h1, l1 := d.serverHealth(0, 1)
		if h0 != want0 || h1 != want1 || l1 != lag {
			t.Errorf("got primary %s, replica %s lag %d; want %s, %s lag %d", h0, h1, l1, want0, want1, lag)
		}
	}
	check("up", "up", -1)
	down := errors.New("connection refused")
	srv.noteChecks(d, 0, []probeResult{{err: down}, {err: down}})
	check("down", "down", -1)
	ok := []probeResult{{lsn: 1000, lsnOK: true, at: time.Now()}, {standby: true, lsn: 400, lsnOK: true, at: time.Now()}}
	srv.noteChecks(d, 0, ok)
	check("up", "banned", 600)
	time.Sleep(60 * time.Millisecond)
	check("up", "up", 600)
}

func TestHealthServerFault(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp: connection refused"), true},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: "57P03"}), true},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: "57P01"}), true},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01"}), false},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: "53300"}), false},
	} {
		if got := serverFault(tt.err); got != tt.want {
			t.Errorf("serverFault(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
