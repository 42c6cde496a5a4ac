package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseGauge(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 10021\n" +
		"go_goroutines_other 3\ngo_threads 9\npgshard_clients{database=\"app\"} 5\n"
	if got, err := parseGauge(text, "go_goroutines"); err != nil || got != 10021 {
		t.Errorf("go_goroutines = %v, %v; want 10021", got, err)
	}
	if got, err := parseGauge(text, "go_threads"); err != nil || got != 9 {
		t.Errorf("go_threads = %v, %v; want 9", got, err)
	}
	if _, err := parseGauge(text, "go_gc_duration_seconds"); err == nil {
		t.Error("missing metric: no error")
	}
}

func TestStartupPacket(t *testing.T) {
	got := startupPacket("app", "appdb")
	want := []byte("\x00\x00\x00\x21\x00\x03\x00\x00user\x00app\x00database\x00appdb\x00\x00")
	if !bytes.Equal(got, want) {
		t.Errorf("startupPacket = %q, want %q", got, want)
	}
	if n := binary.BigEndian.Uint32(got); int(n) != len(got) {
		t.Errorf("length %d, packet %d bytes", n, len(got))
	}
}

// msg is a backend message of type typ with body.
func msg(typ byte, body string) string {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)+4))
	return string(typ) + string(n[:]) + body
}

func TestReadUntilReady(t *testing.T) {
	authOK := msg('R', "\x00\x00\x00\x00")
	params := msg('S', "server_version\x0015.8\x00")
	key := msg('K', "\x00\x00\x00\x01\x00\x00\x00\x02")
	ready := msg('Z', "I")
	for _, tc := range []struct {
		name, stream, wantErr string
	}{
		{name: "trust", stream: authOK + params + key + ready},
		{name: "password", stream: msg('R', "\x00\x00\x00\x0a"+"SCRAM-SHA-256\x00\x00"), wantErr: "asks for authentication (code 10)"},
		{name: "error", stream: msg('E', "SFATAL\x00C53300\x00Mtoo many connections\x00\x00"), wantErr: "FATAL 53300 too many connections"},
		{name: "eof", stream: authOK + params, wantErr: "EOF"},
		{name: "bad length", stream: "Z\x00\x00\x00\x02", wantErr: "invalid length"},
	} {
		err := readUntilReady(strings.NewReader(tc.stream))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.wantErr)
		}
	}
}
