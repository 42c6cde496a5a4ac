package main

import (
	"errors"
	"strings"
	"testing"
	"time"
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
	}
	r.fail("extended", "pgshard", errors.New("boom"))
	s := settings{duration: 10 * time.Second, warmup: 2 * time.Second, rounds: 1, clients: 32, threads: 2, scale: 10}
	out := render(r, s, environment{nproc: 2, pgbouncer: "PgBouncer 1.18.0"})
	for _, want := range []string{
		"| simple   |       1000 |                500 |         600 |              1.20 |           0.60 | pgshard >= pgbouncer | yes  |",
		"| extended |       1000 |                500 |      failed |                 – |              – | pgshard >= pgbouncer | –    |",
		"| prepared |       1000 | 500 (session mode) |         600 |",
		"PgBouncer 1.18.0 cannot keep prepared statements",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if err := r.failures(); err == nil || !strings.Contains(err.Error(), "extended against pgshard: boom") {
		t.Errorf("failures: %v", err)
	}
}
