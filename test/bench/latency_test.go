package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"one value p50", []float64{42}, 50, 42},
		{"one value p99", []float64{42}, 99, 42},
		{"ten p50", ten, 50, 5},
		{"ten p99", ten, 99, 10},
		{"ten p100", ten, 100, 10},
		{"ten p1", ten, 1, 1},
		{"hundred p50", hundred, 50, 50},
		{"hundred p99", hundred, 99, 99},
		{"two p50", []float64{10, 20}, 50, 10},
		{"two p51", []float64{10, 20}, 51, 20},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v, %v) = %v, want %v", tc.name, tc.sorted, tc.p, got, tc.want)
		}
	}
}

func TestParseLogLatency(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    float64
		wantErr string
	}{
		{line: "0 1 74 0 1733430000 123456", want: 74},
		{line: "0 199 1203 0 1733430000 999999 0", want: 1203},
		{line: "3 7 61.5 0 1733430001 5 12 0", want: 61.5},
		{line: "0 1 failed 0 1733430000 123456", wantErr: "a transaction failed"},
		{line: "0 1 skipped 0 1733430000 123456 2000", wantErr: "a transaction skipped"},
		{line: "0 1 74", wantErr: "at least 6 fields"},
		{line: "0 1 x 0 1733430000 123456", wantErr: "not a number"},
		{line: "0 1 -3 0 1733430000 123456", wantErr: "not a number"},
	} {
		got, err := parseLogLatency(tc.line)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseLogLatency(%q) error %v, want one saying %q", tc.line, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("parseLogLatency(%q): %v", tc.line, err)
		case got != tc.want:
			t.Errorf("parseLogLatency(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestReadLatencyLogs(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "pgshard")
	var a, b strings.Builder
	for i := 1; i <= 60; i++ {
		a.WriteString("0 " + strconv.Itoa(i) + " " + strconv.Itoa(i) + " 0 1733430000 0\n")
	}
	for i := 61; i <= 100; i++ {
		b.WriteString("1 " + strconv.Itoa(i) + " " + strconv.Itoa(i) + " 0 1733430000 0\n")
	}
	b.WriteString("\n")
	if err := os.WriteFile(prefix+".123", []byte(a.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".123.1", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Another target's log is not read.
	if err := os.WriteFile(filepath.Join(dir, "direct.9"), []byte("0 1 x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readLatencyLogs(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := (latencies{n: 100, p50: 50, p99: 99}); got != want {
		t.Errorf("readLatencyLogs = %+v, want %+v", got, want)
	}
	if _, err := readLatencyLogs(filepath.Join(dir, "pgbouncer")); err == nil {
		t.Error("readLatencyLogs without a log: no error")
	}
}
