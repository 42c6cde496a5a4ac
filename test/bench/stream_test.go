package main

import (
	"testing"
	"time"
)

const procStatus = `Name:	pgshard
Umask:	0022
State:	S (sleeping)
VmPeak:	 1261584 kB
VmHWM:	   40960 kB
VmRSS:	   20480 kB
Threads:	7
`

func TestParseProcStatus(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  int64
	}{
		{"VmRSS", 20 << 20},
		{"VmHWM", 40 << 20},
		{"Threads", 7},
	} {
		got, err := parseProcStatus(procStatus, tc.field)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d", tc.field, got, err, tc.want)
		}
	}
	for _, field := range []string{"VmSwap", "Vm", "State"} {
		if got, err := parseProcStatus(procStatus, field); err == nil {
			t.Errorf("%s: got %d, want an error", field, got)
		}
	}
	if _, err := parseProcStatus("VmRSS:\t12 MB\n", "VmRSS"); err == nil {
		t.Error("unknown unit: no error")
	}
}

func TestDurationMedian(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		ds := make([]time.Duration, len(n))
		for i, v := range n {
			ds[i] = time.Duration(v) * time.Millisecond
		}
		return ds
	}
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(5), 5 * time.Millisecond},
		{ms(30, 10, 20), 20 * time.Millisecond},
		{ms(40, 10, 30, 20), 25 * time.Millisecond},
	} {
		in := append([]time.Duration(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("median reordered its argument: %v", tc.in)
			}
		}
	}
}

func TestFormats(t *testing.T) {
	if got, want := rowsPerSecond(5_000_000, 2500*time.Millisecond), "2.00M rows/s (2.50 s)"; got != want {
		t.Errorf("rowsPerSecond = %q, want %q", got, want)
	}
	if got, want := mib(42<<20+1<<19), "42.5 MiB"; got != want {
		t.Errorf("mib = %q, want %q", got, want)
	}
	if got, want := millis(1234567*time.Microsecond/10), "123.5 ms"; got != want {
		t.Errorf("millis = %q, want %q", got, want)
	}
}
