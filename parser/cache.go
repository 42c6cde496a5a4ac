package parser

import (
	"strings"
	"sync"
	"unsafe"
)

// Cache remembers the results of Analyze by query text, least recently
// used first out, within a budget of bytes: the text of each key plus an
// estimate of the memory its analysis holds. Syntax errors are cached too.
//
// A Cache is safe for concurrent use. The slices it returns are shared by
// every caller that asks for the same text: callers must treat them, and
// everything they point to, as read-only.
type Cache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	entries  map[string]*cacheEntry
	// head is the most recently used entry, tail the least; the list is
	// circular through root.
	root   cacheEntry
	hits   uint64
	misses uint64
	evicts uint64
}

type cacheEntry struct {
	key        string
	res        []Analysis
	err        error
	size       int
	prev, next *cacheEntry
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	// Hits and Misses count calls of Analyze answered from the cache and
	// not.
	Hits, Misses uint64
	// Evictions counts entries dropped to stay within the budget.
	Evictions uint64
	// Entries is the number of cached texts; Bytes their estimated size.
	Entries, Bytes int
}

// NewCache returns a cache that holds at most maxBytes of estimated size.
// An analysis larger than maxBytes by itself is returned but not kept;
// with maxBytes <= 0 nothing is kept.
func NewCache(maxBytes int) *Cache {
	c := &Cache{maxBytes: maxBytes, entries: make(map[string]*cacheEntry)}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

// Analyze returns Analyze(sql), from the cache when it holds sql. The
// result must not be modified (see Cache).
func (c *Cache) Analyze(sql string) ([]Analysis, error) {
	c.mu.Lock()
	if e, ok := c.entries[sql]; ok {
		c.hits++
		c.moveToFront(e)
		res, err := e.res, e.err
		c.mu.Unlock()
		return res, err
	}
	c.misses++
	c.mu.Unlock()

	// Parse outside the lock: two sessions may parse the same text at
	// once, and the first to finish fills the entry.
	// The analyses keep substrings of the text (hints): parse a copy, as
	// sql often aliases a network buffer the caller reuses.
	sql = strings.Clone(sql)
	res, err := Analyze(sql)
	return c.store(sql, res, err)
}

// store caches the analysis of key, a string the cache may keep, unless
// another caller stored one first, and returns what the cache holds.
func (c *Cache) store(key string, res []Analysis, err error) ([]Analysis, error) {
	size := len(key) + int(unsafe.Sizeof(cacheEntry{})) + analysesSize(res)
	if err != nil {
		size += len(err.Error())
	}
	if size > c.maxBytes {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.moveToFront(e)
		return e.res, e.err
	}
	e := &cacheEntry{key: key, res: res, err: err, size: size}
	c.entries[key] = e
	c.pushFront(e)
	c.bytes += size
	for c.bytes > c.maxBytes && c.root.prev != &c.root {
		old := c.root.prev
		c.unlink(old)
		delete(c.entries, old.key)
		c.bytes -= old.size
		c.evicts++
	}
	return res, err
}

// Scratch is the buffers AnalyzeQuery reuses between calls; one per
// goroutine.
type Scratch struct {
	key  []byte
	lits []string
}

// AnalyzeQuery is Analyze for the text of a simple Query, cached by the
// text with its literals replaced by parameters (see Normalize), so that
// the same statement with new literals costs no parse. lits, when not
// nil, are the values of the parameters $1, $2, ... the analyses then
// refer to: a number as written, a string's contents. They alias sql and
// sc, and are valid until the next call with sc. Texts that cannot be
// normalized, or whose normalized form does not parse, are analysed as
// they are, and lits is nil.
func (c *Cache) AnalyzeQuery(sql string, sc *Scratch) (as []Analysis, lits []string, err error) {
	key, lits, ok := Normalize(sc.key[:0], sc.lits[:0], sql)
	sc.key, sc.lits = key, lits
	if !ok {
		as, err := c.Analyze(sql)
		return as, nil, err
	}
	c.mu.Lock()
	e, hit := c.entries[string(key)]
	if hit {
		c.hits++
		c.moveToFront(e)
		as, err = e.res, e.err
	} else {
		c.misses++
	}
	c.mu.Unlock()
	if !hit {
		k := string(key)
		as, err = Analyze(k)
		as, err = c.store(k, as, err)
	}
	if err != nil {
		// The normalized text does not parse (a literal where the
		// grammar wants a constant): the text as it is may.
		as, err := c.Analyze(sql)
		return as, nil, err
	}
	return as, lits, nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Evictions: c.evicts, Entries: len(c.entries), Bytes: c.bytes}
}

func (c *Cache) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *cacheEntry) {
	e.prev = &c.root
	e.next = c.root.next
	c.root.next.prev = e
	c.root.next = e
}

func (c *Cache) moveToFront(e *cacheEntry) {
	if c.root.next == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

// analysesSize estimates the bytes an analysis holds: the structs and
// slices it allocated and the strings it does not share with the query
// text (most names are copies made by the protobuf decoder).
func analysesSize(as []Analysis) int {
	const (
		analysisSize = int(unsafe.Sizeof(Analysis{}))
		tableSize    = int(unsafe.Sizeof(TableRef{}))
		predSize     = int(unsafe.Sizeof(Pred{}))
		valueSize    = int(unsafe.Sizeof(Value{}))
		joinSize     = int(unsafe.Sizeof(JoinEq{}))
		insertSize   = int(unsafe.Sizeof(InsertRows{}))
		stringSize   = int(unsafe.Sizeof(""))
		sliceSize    = int(unsafe.Sizeof([]Value(nil)))
	)
	n := cap(as) * analysisSize
	tbl := func(t TableRef) int { return len(t.Schema) + len(t.Name) + len(t.Alias) }
	vals := func(vs []Value) int {
		m := cap(vs) * valueSize
		for _, v := range vs {
			m += len(v.Text) + len(v.Cast)
		}
		return m
	}
	for i := range as {
		a := &as[i]
		n += len(a.Hint.Shard) + len(a.Hint.Key)
		n += (cap(a.Functions) + cap(a.UserFunctions)) * stringSize
		for _, f := range a.Functions {
			n += len(f)
		}
		n += cap(a.Tables) * tableSize
		for _, t := range a.Tables {
			n += tbl(t)
		}
		n += cap(a.Preds) * predSize
		for _, p := range a.Preds {
			n += tbl(p.Table) + len(p.Column) + vals(p.Values)
		}
		n += cap(a.Joins) * joinSize
		for _, j := range a.Joins {
			n += tbl(j.Left.Table) + len(j.Left.Column) + tbl(j.Right.Table) + len(j.Right.Column)
		}
		n += cap(a.Inserts) * insertSize
		for _, ins := range a.Inserts {
			n += tbl(ins.Table) + cap(ins.Columns)*stringSize + cap(ins.Rows)*sliceSize
			for _, col := range ins.Columns {
				n += len(col)
			}
			for _, r := range ins.Rows {
				n += vals(r)
			}
		}
	}
	return n
}
