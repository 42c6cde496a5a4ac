package main

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/routing"
)

// pgbench15 is the report of a pgbench 15 run.
const pgbench15 = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 61234
number of failed transactions: 0 (0.000%)
latency average = 2.600 ms
initial connection time = 40.123 ms
tps = 12304.567890 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    float64
		wantErr string
	}{
		{"pgbench 15", pgbench15, 12304.56789, ""},
		{"older pgbench", "tps = 812.5 (excluding connections establishing)\n", 812.5, ""},
		{"failed transactions", strings.Replace(pgbench15, "failed transactions: 0", "failed transactions: 7", 1), 0, "7 transactions failed"},
		{"no report", "pgbench: error: connection to server failed\n", 0, "no tps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePgbench(tt.out)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	r := newResults()
	if _, ok := r.median("simple", "pgshard"); ok {
		t.Error("median of no runs")
	}
	for _, tps := range []float64{30, 10, 20} {
		r.add("simple", "pgshard", tps)
	}
	if got, ok := r.median("simple", "pgshard"); !ok || got != 20 {
		t.Errorf("median of 3: %v, %v", got, ok)
	}
	r.add("simple", "pgshard", 40)
	if got, _ := r.median("simple", "pgshard"); got != 25 {
		t.Errorf("median of 4: %v", got)
	}
	r.fail("simple", "pgshard", errors.New("boom"))
	if _, ok := r.median("simple", "pgshard"); ok {
		t.Error("median of a failed target")
	}
}

func TestRender(t *testing.T) {
	r := newResults()
	for _, mode := range modes {
		r.add(mode, "direct", 1000)
		r.add(mode, "pgbouncer", 500)
		r.add(mode, "pgshard", 600)
		r.add(mode, shardedTarget, 570)
	}
	r.add("prepared", shardedTarget, 500) // median 535: below 0.9 × 600
	r.fail("extended", "pgshard", errors.New("boom"))
	s := settings{duration: 10 * time.Second, warmup: 2 * time.Second, rounds: 1, clients: 32, threads: 2, scale: 10, shards: 2}
	out := render(r, s, environment{nproc: 2, pgbouncer: "PgBouncer 1.18.0"}, []int{499874, 500126})
	for _, want := range []string{
		"| mode     | direct TPS |      pgbouncer TPS | pgshard TPS | 2-shard TPS | pgshard/pgbouncer | pgshard/direct | 2-shard/pgshard | 2-shard/pgbouncer | pgshard >= pgbouncer? | 2-shard/pgshard >= 0.90? |",
		"| simple   |       1000 |                500 |         600 |         570 |              1.20 |           0.60 |            0.95 |              1.14 | yes                   | yes                      |",
		"| extended |       1000 |                500 |      failed |         570 |                 – |              – |               – |              1.14 | –                     | –                        |",
		"| prepared |       1000 | 500 (session mode) |         600 |         535 |              1.20 |           0.60 |            0.89 |              1.07 | yes                   | no                       |",
		"PgBouncer 1.18.0 cannot keep prepared statements",
		"s0 499874, s1 500126",
		shardedRule,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if err := r.failures(); err == nil || !strings.Contains(err.Error(), "extended against pgshard: boom") {
		t.Errorf("failures: %v", err)
	}

	// A sharded pgshard that did not start fails every mode, once.
	r.failTarget(shardedTarget, errors.New("refused"))
	out = render(r, s, environment{nproc: 2, pgbouncer: "PgBouncer 1.18.0"}, []int{499874, 500126})
	if want := "|         600 |      failed |              1.20 |           0.60 |               – |                 – | yes                   | –                        |"; !strings.Contains(out, want) {
		t.Errorf("report lacks %q:\n%s", want, out)
	}
	if err := r.failures(); err == nil || strings.Count(err.Error(), "refused") != 1 || !strings.Contains(err.Error(), shardedTarget+": refused") {
		t.Errorf("failures: %v", err)
	}

	// Without a sharded run, its columns are left out.
	s.shards = 0
	out = render(r, s, environment{nproc: 2, pgbouncer: "PgBouncer 1.18.0"}, nil)
	if want := "| simple   |       1000 |                500 |         600 |              1.20 |           0.60 | yes                   |"; !strings.Contains(out, want) {
		t.Errorf("report lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "-shard") || strings.Contains(out, shardedRule) {
		t.Errorf("report of no sharded run mentions one:\n%s", out)
	}
}

func TestPlacement(t *testing.T) {
	const scale = 1
	shardOf := func(aid int) int {
		h, err := routing.NewHash(routing.KeyInt, 2)
		if err != nil {
			t.Fatal(err)
		}
		i, err := h.Shard(strconv.Itoa(aid))
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	fill := func(p *placement, skip int) {
		t.Helper()
		for aid := 1; aid <= accountsPerScale*scale; aid++ {
			if aid == skip {
				continue
			}
			if err := p.add(shardOf(aid), int32(aid)); err != nil {
				t.Fatal(err)
			}
		}
	}

	p, err := newPlacement(2, scale)
	if err != nil {
		t.Fatal(err)
	}
	fill(p, 0)
	if err := p.complete(); err != nil {
		t.Errorf("every account where routing puts it: %v", err)
	}
	if p.rows[0]+p.rows[1] != accountsPerScale || p.rows[0] < accountsPerScale/3 || p.rows[1] < accountsPerScale/3 {
		t.Errorf("rows per shard %v: not a hash split of %d", p.rows, accountsPerScale)
	}
	if err := p.add(shardOf(7), 7); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("an account added twice: %v", err)
	}
	if err := p.add(1-shardOf(8), 8); err == nil || !strings.Contains(err.Error(), "which pgshard routes to") {
		t.Errorf("an account on the wrong shard: %v", err)
	}
	for _, aid := range []int32{0, accountsPerScale*scale + 1} {
		if err := p.add(0, aid); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("aid %d: %v", aid, err)
		}
	}

	p, _ = newPlacement(2, scale)
	fill(p, 4242)
	if err := p.complete(); err == nil || !strings.Contains(err.Error(), "aid 4242") {
		t.Errorf("a missing account: %v", err)
	}
}

// TestPgshardConfig checks that pgshard takes the configurations the bench
// writes, the sharded one with its routing rule.
func TestPgshardConfig(t *testing.T) {
	single, err := config.Parse([]byte(pgshardConfig(6432, []string{"postgres://127.0.0.1:5433/app?sslmode=disable"})))
	if err != nil {
		t.Fatalf("single-backend configuration: %v", err)
	}
	if db := single.Databases[0]; len(db.Shards) != 1 || len(db.Tables) != 0 {
		t.Errorf("single-backend configuration: %d shards, %d table rules", len(db.Shards), len(db.Tables))
	}

	cfg, err := config.Parse([]byte(pgshardConfig(6432, []string{
		"postgres://127.0.0.1:5433/app?sslmode=disable",
		"postgres://127.0.0.1:5434/app?sslmode=disable",
	})))
	if err != nil {
		t.Fatalf("sharded configuration: %v", err)
	}
	db := cfg.Databases[0]
	if len(db.Shards) != 2 || db.DefaultShard != "s0" || len(db.Tables) != 1 {
		t.Fatalf("sharded configuration: %d shards, default %q, %d table rules", len(db.Shards), db.DefaultShard, len(db.Tables))
	}
	rule := db.Tables[0]
	if rule.Name != shardedTable || rule.Key != "aid" || rule.Method != config.MethodHash || rule.KeyType != config.KeyInteger ||
		!slices.Equal(rule.Shards, []string{"s0", "s1"}) {
		t.Errorf("sharded configuration's rule: %+v", rule)
	}
	if db.PoolSize != poolSize || cfg.PoolMode != "transaction" {
		t.Errorf("sharded configuration: pool_size %d, pool_mode %q", db.PoolSize, cfg.PoolMode)
	}
}

func TestWantedSuites(t *testing.T) {
	for _, c := range []struct {
		list, name string
		want       bool
	}{
		{"all", "memory", true},
		{"none", "memory", false},
		{"latency,memory", "memory", true},
		{"latency, streaming", "streaming and scatter-gather (stream_t)", true},
		{"latency", "memory", false},
		{"", "memory", false},
	} {
		if got := wanted(c.list, c.name); got != c.want {
			t.Errorf("wanted(%q, %q) = %v, want %v", c.list, c.name, got, c.want)
		}
	}
}
