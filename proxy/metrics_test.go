package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgshard/pgshard/pool"
)

type fakePool pool.Stats

func (f fakePool) Stats() pool.Stats { return pool.Stats(f) }

// collectorFunc adapts a collect function to prometheus.Collector.
type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestCollectPools(t *testing.T) {
	pools := []pooled{
		{db: "app", shard: "s0", role: "primary", p: fakePool{Total: 5, Idle: 2, Waiting: 1}},
		{db: "app", shard: "s0", role: "primary", p: fakePool{Total: 1, Idle: 1}}, // another backend user
		{db: "app", shard: "s0", role: "replica", p: fakePool{Total: 3, Idle: 0}},
		{db: "app", shard: "s1", role: "primary", p: fakePool{}},
	}
	c := collectorFunc(func(ch chan<- prometheus.Metric) { collectPools(ch, pools) })
	want := `
# HELP pgshard_server_connections Backend connections by state: active (lent to a client) or idle (in the pool).
# TYPE pgshard_server_connections gauge
pgshard_server_connections{database="app",role="primary",shard="s0",state="active"} 3
pgshard_server_connections{database="app",role="primary",shard="s0",state="idle"} 3
pgshard_server_connections{database="app",role="replica",shard="s0",state="active"} 3
pgshard_server_connections{database="app",role="replica",shard="s0",state="idle"} 0
pgshard_server_connections{database="app",role="primary",shard="s1",state="active"} 0
pgshard_server_connections{database="app",role="primary",shard="s1",state="idle"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCollectClients(t *testing.T) {
	states := map[clientKey]int{
		{"app", "alice", "active"}:  2,
		{"app", "alice", "idle"}:    1,
		{"app", "alice", "waiting"}: 0,
	}
	c := collectorFunc(func(ch chan<- prometheus.Metric) { collectClients(ch, states) })
	if n := testutil.CollectAndCount(c, "pgshard_client_connections"); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}

func TestMetricsCounters(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.SetBanned("app", "s0", "replica", 2)
	m.Reloaded(true)
	m.Reloaded(false)
	m.Reloaded(false)
	m.twoPhaseDone(nil)
	m.twoPhaseDone(&pgError{Code: codeTxResolutionUnknown})
	m.twoPhaseDone(errors.New("boom"))
	m.recoveredTx(true)
	d := m.db("app")
	m.errorClass(d, "22012")
	m.errorClass(d, "bad")
	d.queries[kindMulti].Add(3)

	for _, tc := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.banned.WithLabelValues("app", "s0", "replica"), 2},
		{m.reloads.WithLabelValues("success"), 1},
		{m.reloads.WithLabelValues("failure"), 2},
		{m.twoPhase.WithLabelValues("committed"), 1},
		{m.twoPhase.WithLabelValues("unknown"), 1},
		{m.twoPhase.WithLabelValues("rolled_back"), 1},
		{m.recovered.WithLabelValues("commit"), 1},
		{m.recovered.WithLabelValues("rollback"), 0},
		{m.errors.WithLabelValues("app", "22"), 1},
		{m.errors.WithLabelValues("app", "XX"), 1},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.c, got, tc.want)
		}
	}
	// The pedantic registry checks every metric is consistent with its
	// description.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"pgshard_build_info", "pgshard_queries_total", "pgshard_transactions_total", "pgshard_client_received_bytes_total"} {
		if !names[n] {
			t.Errorf("%s not gathered", n)
		}
	}
	// A second Metrics on the same registerer reuses the first's.
	m2 := NewMetrics(reg)
	if m2.reloads != m.reloads {
		t.Error("metrics not reused")
	}
}

func TestNoteServerError(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	srv := &Server{metrics: m}
	s := &session{srv: srv, met: &sessMetrics{db: m.db("app")}}
	body := []byte("SERROR\x00VERROR\x00C22012\x00Mdivision by zero\x00\x00")
	s.noteServerError(body)
	s.noteServerError(append([]byte{'E', 0, 0, 0, byte(4 + len(body))}, body...)) // a whole message
	if got := testutil.ToFloat64(m.errors.WithLabelValues("app", "22")); got != 2 {
		t.Errorf("errors{class=22} = %v, want 2", got)
	}
}

func TestStatsAndKinds(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	s := &Server{metrics: m}
	d := m.db("app")
	d.queries[kindSingle].Add(2)
	d.queries[kindAll].Add(1)
	d.xacts[kindSingle].Add(1)
	d.received.Add(10)
	d.sent.Add(20)
	d.queryTime.Add(int64(time.Second))
	st := s.Stats("app")
	if st.QueryCount != 3 || st.XactCount != 1 || st.BytesReceived != 10 || st.BytesSent != 20 || st.QueryTime != time.Second {
		t.Errorf("Stats = %+v", st)
	}
	if st := s.Stats("nope"); st != (DBStats{}) {
		t.Errorf("Stats of an unknown database = %+v", st)
	}
	sess := &session{db: &database{Database: Database{Shards: make([]Shard, 3)}}}
	for n, want := range map[int]routeKind{1: kindSingle, 2: kindMulti, 3: kindAll} {
		if got := sess.kindOf(n); got != want {
			t.Errorf("kindOf(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestMetricsHTTP(t *testing.T) {
	// A database whose primary is a listener that answers SSLRequest
	// with 'N', as PostgreSQL does without TLS.
	pg, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	go func() {
		for {
			c, err := pg.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [8]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write([]byte{'N'})
				}
			}()
		}
	}()
	host, port, _ := net.SplitHostPort(pg.Addr().String())
	srv, err := NewServer(Options{
		Listen:        "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		Users:         []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "app", Shards: []Shard{
			{Name: "s0", Primary: "host=" + host + " port=" + port + " dbname=app"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + srv.MetricsAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "pgshard_build_info{") || !strings.Contains(body, "pgshard_parse_cache_hits_total") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	// The primary goes away: not ready, saying which.
	pg.Close()
	srv.reach.note("app", 0, 0, errors.New("gone"))
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shard s0") {
		t.Errorf("/readyz with the primary down: %d %q", code, body)
	}
}

func TestMetricsListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	srv, err := NewServer(Options{Listen: "127.0.0.1:0", MetricsListen: busy.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Errorf("Run = %v, want a metrics_listen error", err)
	}
}
