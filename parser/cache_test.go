package parser

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestCacheHitMiss(t *testing.T) {
	c := NewCache(1 << 20)
	a1, err := c.Analyze(pgbench)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.Analyze(pgbench)
	if err != nil {
		t.Fatal(err)
	}
	if &a1[0] != &a2[0] {
		t.Error("a hit did not return the cached slice")
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Entries != 1 || st.Bytes <= len(pgbench) {
		t.Errorf("Stats = %+v", st)
	}
	if _, err := c.Analyze("select 2"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Misses != 2 || st.Entries != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCacheErrors(t *testing.T) {
	c := NewCache(1 << 20)
	_, err1 := c.Analyze("selec 1")
	_, err2 := c.Analyze("selec 1")
	if err1 == nil || err2 == nil || err1 != err2 {
		t.Errorf("errors %v, %v: want the same cached error", err1, err2)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCacheEvictsByBytes(t *testing.T) {
	q := func(i int) string { return fmt.Sprintf("select * from t where id = %d", i) }
	// Measure one entry, then allow three.
	probe := NewCache(1 << 20)
	if _, err := probe.Analyze(q(0)); err != nil {
		t.Fatal(err)
	}
	one := probe.Stats().Bytes
	c := NewCache(3*one + one/2)
	for i := 0; i < 3; i++ {
		if _, err := c.Analyze(q(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Entries != 3 || st.Evictions != 0 || st.Bytes != 3*one {
		t.Fatalf("Stats = %+v (one entry = %d bytes)", st, one)
	}
	// Touch q(0) so that q(1) is the least recently used, then add q(3).
	c.Analyze(q(0))
	c.Analyze(q(3))
	st := c.Stats()
	if st.Entries != 3 || st.Evictions != 1 || st.Bytes > 3*one+one/2 {
		t.Fatalf("Stats = %+v", st)
	}
	hits := st.Hits
	c.Analyze(q(0))
	c.Analyze(q(2))
	c.Analyze(q(3))
	if st := c.Stats(); st.Hits != hits+3 {
		t.Errorf("q(0), q(2), q(3) should be cached: %+v", st)
	}
	c.Analyze(q(1))
	if st := c.Stats(); st.Hits != hits+3 || st.Evictions != 2 {
		t.Errorf("q(1) should have been evicted: %+v", st)
	}
	// A statement larger than the whole budget is answered, not kept.
	big := "select 1" + fmt.Sprintf("%*s", 4*one, "")
	if as, err := c.Analyze(big); err != nil || len(as) != 1 {
		t.Fatalf("big: %v %v", as, err)
	}
	if st := c.Stats(); st.Entries != 3 || st.Bytes > 3*one+one/2 {
		t.Errorf("big statement was kept: %+v", st)
	}
}

func TestCacheZeroBudget(t *testing.T) {
	c := NewCache(0)
	for i := 0; i < 2; i++ {
		if _, err := c.Analyze(pgbench); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Entries != 0 || st.Hits != 0 || st.Misses != 2 || st.Bytes != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCacheKeyIsCopied(t *testing.T) {
	c := NewCache(1 << 20)
	buf := []byte("select 1")
	if _, err := c.Analyze(string(buf)); err != nil {
		t.Fatal(err)
	}
	copy(buf, "select 2")
	if _, err := c.Analyze("select 1"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Hits != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(8 << 10) // small: forces evictions while others read
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				sql := fmt.Sprintf("select * from t where id = %d", (i*7+g)%40)
				as, err := c.Analyze(sql)
				if err != nil {
					t.Error(err)
					return
				}
				if len(as) != 1 || len(as[0].Preds) != 1 || as[0].Preds[0].Values[0].Text != fmt.Sprint((i*7+g)%40) {
					t.Errorf("%s: %+v", sql, as)
					return
				}
				_ = c.Stats()
			}
		}()
	}
	wg.Wait()
	st := c.Stats()
	if st.Hits+st.Misses != 8*300 || st.Bytes > 8<<10 || st.Evictions == 0 {
		t.Errorf("Stats = %+v", st)
	}
	// The list and the map agree.
	n, bytes := 0, 0
	for e := c.root.next; e != &c.root; e = e.next {
		n++
		bytes += e.size
		if c.entries[e.key] != e {
			t.Fatalf("entry %q not in map", e.key)
		}
	}
	if n != st.Entries || bytes != st.Bytes {
		t.Errorf("list has %d entries, %d bytes; stats %+v", n, bytes, st)
	}
}

func TestCacheHitAllocs(t *testing.T) {
	c := NewCache(1 << 20)
	c.Analyze(pgbench)
	if n := testing.AllocsPerRun(100, func() { c.Analyze(pgbench) }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
}

// TestCacheAnalyzeQuery: a statement seen before with other literals is a
// hit, and the new literals come back as the parameters' values; a text
// whose normalized form does not parse is analysed as it is.
func TestCacheAnalyzeQuery(t *testing.T) {
	c := NewCache(1 << 20)
	var sc Scratch
	for i, aid := range []string{"1", "22", "333"} {
		as, lits, err := c.AnalyzeQuery("SELECT abalance FROM pgbench_accounts WHERE aid = "+aid+";", &sc)
		if err != nil || len(as) != 1 || len(as[0].Preds) != 1 {
			t.Fatalf("aid %s: %v %+v", aid, err, as)
		}
		if v := as[0].Preds[0].Values[0]; v.Kind != ValueParam || v.Param != 1 || len(lits) != 1 || lits[0] != aid {
			t.Errorf("aid %s: value %v, literals %q", aid, v, lits)
		}
		if st := c.Stats(); st.Misses != 1 || st.Hits != uint64(i) {
			t.Errorf("aid %s: stats %+v, want one miss and the rest hits", aid, st)
		}
	}
	// varchar(20) wants a constant: normalized, it does not parse.
	as, lits, err := c.AnalyzeQuery("SELECT 'x'::varchar(20) FROM users WHERE id = 5", &sc)
	if err != nil || lits != nil || len(as) != 1 || as[0].Preds[0].Values[0].Text != "5" {
		t.Errorf("fallback: %v, literals %q, %+v", err, lits, as)
	}
	// A syntax error is still reported.
	if _, _, err := c.AnalyzeQuery("SELEC 1", &sc); err == nil {
		t.Error("SELEC 1 analysed without error")
	}
}

func TestCacheAnalyzeQueryHitAllocs(t *testing.T) {
	c := NewCache(1 << 20)
	var sc Scratch
	texts := []string{pgbench, strings.Replace(pgbench, "42", "43", 1)}
	c.AnalyzeQuery(texts[0], &sc)
	i := 0
	if n := testing.AllocsPerRun(100, func() { i++; c.AnalyzeQuery(texts[i%2], &sc) }); n != 0 {
		t.Errorf("a normalized cache hit allocates %v times", n)
	}
}

// BenchmarkCacheAnalyzeQuery: pgbench -S in simple mode, a new literal
// each time. The texts normalize to one key: after the first, each call is
// a hit. With a cache that keeps nothing, each is a miss (a cgo parse).
func BenchmarkCacheAnalyzeQuery(b *testing.B) {
	texts := make([]string, 1000)
	for i := range texts {
		texts[i] = "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(i*7919) + ";"
	}
	for _, bc := range []struct {
		name     string
		maxBytes int
		hits     bool
	}{{"hit", 1 << 20, true}, {"miss", 0, false}} {
		b.Run(bc.name, func(b *testing.B) {
			c := NewCache(bc.maxBytes)
			var sc Scratch
			c.AnalyzeQuery(texts[0], &sc)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, _, err := c.AnalyzeQuery(texts[i%len(texts)], &sc); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := c.Stats(); (st.Hits > 0) != bc.hits || (st.Misses > 1) == bc.hits {
				b.Fatalf("stats %+v: not the %s case", st, bc.name)
			}
		})
	}
}
