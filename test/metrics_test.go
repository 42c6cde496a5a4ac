package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape is one /metrics text, parsed into series.
type scrape struct {
	text   string
	series []series
}

type series struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseScrape reads the Prometheus text format, enough for these tests.
func parseScrape(t testing.TB, text string) *scrape {
	t.Helper()
	s := &scrape{text: text}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad /metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in /metrics line %q: %v", line, err)
		}
		head := line[:i]
		name, rest, _ := strings.Cut(head, "{")
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(rest, -1) {
			labels[m[1]] = m[2]
		}
		s.series = append(s.series, series{name: name, labels: labels, value: v})
	}
	return s
}

// sum adds the series of name whose labels include want ("k", "v", ...).
func (s *scrape) sum(name string, want ...string) float64 {
	total := 0.0
	for _, se := range s.series {
		if se.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			if se.labels[want[i]] != want[i+1] {
				ok = false
				break
			}
		}
		if ok {
			total += se.value
		}
	}
	return total
}

// has reports whether a series of name with those labels exists.
func (s *scrape) has(name string, want ...string) bool {
	for _, se := range s.series {
		if se.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			if se.labels[want[i]] != want[i+1] {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// metricsClient keeps no connections open between requests, so none is
// left running when a test ends.
var metricsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := metricsClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func getMetrics(t testing.TB, base string) *scrape {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	return parseScrape(t, body)
}

// promtool returns the path of promtool, failing the test when it is not
// installed: the metrics checks are part of the suite, not optional.
func promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): install Debian's prometheus package (apt-get install prometheus), as .ci/run does", err)
	}
	return p
}

// startMetricsProxy runs pgshard in front of the routing cluster with
// metrics served, and returns it with its metrics base URL.
func startMetricsProxy(t *testing.T) (*testProxy, string) {
	rc := routingServers(t)
	p := startRoutingProxy(t, rc, routingOptions{readWriteSplit: true, metricsListen: "127.0.0.1:0", noNotices: true})
	addr := p.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics address")
	}
	return p, "http://" + addr.String()
}

// TestMetricsTraffic runs real traffic through pgshard and checks that
// the counters moved by what was sent, per shard and role, and that the
// exposition passes promtool.
func TestMetricsTraffic(t *testing.T) {
	tool := promtool(t)
	routingServers(t) // started once for the package, before the leak check
	checkNoGoroutineLeak(t)
	p, base := startMetricsProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := pgxConnect(t, p.url("app", "app", "app"))

	before := getMetrics(t, base)

	// Single-shard statements: events of 2025 live on s1.
	const singles = 5
	for i := range singles {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM events WHERE created_at = $1", "2025-06-0"+strconv.Itoa(i+1)).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	after := getMetrics(t, base)
	if d := after.sum("pgshard_queries_total", "database", "app", "kind", "single") - before.sum("pgshard_queries_total", "database", "app", "kind", "single"); d != singles {
		t.Errorf("queries_total{kind=single} moved by %v, want %d", d, singles)
	}
	s1 := []string{"database", "app", "shard", "s1", "role", "primary"}
	if d := after.sum("pgshard_query_duration_seconds_count", s1...) - before.sum("pgshard_query_duration_seconds_count", s1...); d != singles {
		t.Errorf("query_duration_seconds_count{shard=s1,role=primary} moved by %v, want %d", d, singles)
	}
	if d := after.sum("pgshard_transactions_total", "database", "app", "kind", "single") - before.sum("pgshard_transactions_total", "database", "app", "kind", "single"); d != singles {
		t.Errorf("transactions_total{kind=single} moved by %v, want %d (each statement its own)", d, singles)
	}
	if after.sum("pgshard_pool_wait_seconds_count", s1...) < 1 {
		t.Error("no pool wait observed for s1's primary")
	}
	if d := after.sum("pgshard_client_received_bytes_total", "database", "app") - before.sum("pgshard_client_received_bytes_total", "database", "app"); d <= 0 {
		t.Errorf("client_received_bytes_total moved by %v", d)
	}
	if d := after.sum("pgshard_client_sent_bytes_total", "database", "app") - before.sum("pgshard_client_sent_bytes_total", "database", "app"); d <= 0 {
		t.Errorf("client_sent_bytes_total moved by %v", d)
	}

	// Multi-shard SELECTs: users on every shard, logs on s1 and s2.
	before = after
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM logs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	after = getMetrics(t, base)
	for _, kind := range []string{"all", "multi"} {
		if d := after.sum("pgshard_queries_total", "database", "app", "kind", kind) - before.sum("pgshard_queries_total", "database", "app", "kind", kind); d != 1 {
			t.Errorf("queries_total{kind=%s} moved by %v, want 1", kind, d)
		}
		if d := after.sum("pgshard_transactions_total", "database", "app", "kind", kind) - before.sum("pgshard_transactions_total", "database", "app", "kind", kind); d != 1 {
			t.Errorf("transactions_total{kind=%s} moved by %v, want 1", kind, d)
		}
	}
	for _, sh := range []string{"s1", "s2"} {
		l := []string{"database", "app", "shard", sh, "role", "primary"}
		if d := after.sum("pgshard_query_duration_seconds_count", l...) - before.sum("pgshard_query_duration_seconds_count", l...); d != 2 {
			t.Errorf("query_duration_seconds_count{shard=%s} moved by %v, want 2 (both scatters reach it)", sh, d)
		}
	}

	// Errors: a backend's (division by zero, class 22) and pgshard's own
	// (a SET pgshard.shard naming no shard, class 22).
	before = after
	if _, err := conn.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("1/0 did not fail")
	}
	if _, err := conn.Exec(ctx, "SET pgshard.shard = 'nope'"); err == nil {
		t.Fatal("SET pgshard.shard = 'nope' did not fail")
	}
	after = getMetrics(t, base)
	if d := after.sum("pgshard_errors_total", "database", "app", "class", "22") - before.sum("pgshard_errors_total", "database", "app", "class", "22"); d != 2 {
		t.Errorf("errors_total{class=22} moved by %v, want 2\n%s", d, after.text)
	}

	// A transaction on s1, then one across s0 and s1 (two-phase commit).
	before = after
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, day := range []string{"2025-02-01", "2025-02-02"} {
		if _, err := tx.Exec(ctx, "INSERT INTO events (created_at, name) VALUES ($1, 'metrics')", day); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, day := range []string{"2024-02-01", "2025-02-03"} {
		if _, err := tx.Exec(ctx, "INSERT INTO events (created_at, name) VALUES ($1, 'metrics')", day); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	after = getMetrics(t, base)
	for kind, want := range map[string]float64{"single": 1, "multi": 1} {
		if d := after.sum("pgshard_transactions_total", "database", "app", "kind", kind) - before.sum("pgshard_transactions_total", "database", "app", "kind", kind); d != want {
			t.Errorf("transactions_total{kind=%s} moved by %v after two transactions, want %v", kind, d, want)
		}
	}
	if d := after.sum("pgshard_two_phase_commits_total", "outcome", "committed") - before.sum("pgshard_two_phase_commits_total", "outcome", "committed"); d != 1 {
		t.Errorf("two_phase_commits_total{outcome=committed} moved by %v, want 1", d)
	}
	st := p.srv.Stats("app")
	if st.QueryCount < singles+2 || st.XactCount < singles+2 || st.BytesReceived <= 0 || st.BytesSent <= 0 || st.QueryTime <= 0 || st.XactTime <= 0 {
		t.Errorf("Stats(app) = %+v", st)
	}

	// Scrape-time gauges: this client, idle now; the pools' connections;
	// the replica of s0 monitored; the parse cache used.
	if after.sum("pgshard_client_connections", "database", "app", "user", "app", "state", "idle") < 1 {
		t.Errorf("no idle client of app/app:\n%s", after.text)
	}
	if after.sum("pgshard_server_connections", append(s1, "state", "idle")...) < 1 {
		t.Errorf("no idle server connection to s1's primary")
	}
	if after.sum("pgshard_parse_cache_misses_total") < 1 {
		t.Error("parse cache misses not counted")
	}
	if !after.has("pgshard_build_info", "goversion", runtime.Version()) {
		t.Errorf("no build info for %s", runtime.Version())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !after.has("pgshard_replica_lag_bytes", "database", "app", "shard", "s0") {
		if time.Now().After(deadline) {
			t.Fatalf("no replica lag for s0:\n%s", after.text)
		}
		time.Sleep(100 * time.Millisecond)
		after = getMetrics(t, base)
	}

	// promtool's lint of the exposition.
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(after.text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz in a healthy cluster: %d %q", code, body)
	}
	conn.Close(ctx)
	// Leave the events table as it was.
	for _, s := range routingServers(t).shards {
		if err := s.Exec(ctx, "app", "DELETE FROM events WHERE name = 'metrics'"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMetricsDashboard checks that every metric the Grafana dashboard
// queries is one pgshard serves, and that the Prometheus configuration
// passes promtool.
func TestMetricsDashboard(t *testing.T) {
	tool := promtool(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy/grafana/pgshard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/pgshard.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(dash)
	if len(exprs) < 8 {
		t.Fatalf("the dashboard has %d queries; expected its panels' PromQL", len(exprs))
	}

	// A scrape after some traffic, so errors and lag have series.
	p, base := startMetricsProxy(t)
	conn := pgxConnect(t, p.url("app", "app", "app"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn.Exec(ctx, "SELECT 1/0")
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sc := getMetrics(t, base)
		for _, se := range sc.series {
			served[se.name] = true
		}
		if served["pgshard_replica_lag_bytes"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	nameRE := regexp.MustCompile(`\bpgshard_[a-zA-Z0-9_]+`)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range nameRE.FindAllString(e, -1) {
			used[name] = true
		}
	}
	var missing []string
	for name := range used {
		if !served[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics pgshard does not serve: %v", missing)
	}

	cmd := exec.Command(tool, "check", "config", filepath.Join(root, "deploy/prometheus/prometheus.yml"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out.String())
	}
}
