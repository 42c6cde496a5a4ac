package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLoggerFormats(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, "json", "info", "")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("client connected", "user", "app")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", b.String(), err)
	}
	if rec["msg"] != "client connected" || rec["user"] != "app" {
		t.Errorf("record %v", rec)
	}
	b.Reset()
	l, err = newLogger(&b, "text", "info", "debug") // the flag wins
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("shown")
	if !strings.Contains(b.String(), "msg=shown") {
		t.Errorf("text at debug: %q", b.String())
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"text", "loud"}} {
		if _, err := newLogger(&b, bad[0], bad[1], ""); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestRateLimitedRepeats(t *testing.T) {
	var b bytes.Buffer
	h := newRateLimited(slog.NewTextHandler(&b, nil), time.Hour)
	l := slog.New(h).With("conn_id", 1)
	for range 5 {
		l.Warn("backend connection lost", "shard", "s1")
	}
	l.Warn("another warning")
	l.Info("info is never limited")
	l.Info("info is never limited")
	got := b.String()
	if n := strings.Count(got, "backend connection lost"); n != 1 {
		t.Errorf("repeated warning logged %d times, want once:\n%s", n, got)
	}
	if strings.Count(got, "another warning") != 1 || strings.Count(got, "info is never limited") != 2 {
		t.Errorf("other records:\n%s", got)
	}
	// After the period the next one says how many were dropped.
	h.state.period = 0
	l.Warn("backend connection lost", "shard", "s1")
	if !strings.Contains(b.String(), "suppressed=4") {
		t.Errorf("no suppressed count:\n%s", b.String())
	}
}
