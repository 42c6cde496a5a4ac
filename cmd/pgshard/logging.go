package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// newLogger makes the process logger: text or JSON, at the config's level
// unless the -log-level flag says otherwise, with repeated warnings and
// errors rate-limited.
func newLogger(w io.Writer, format, level, levelFlag string) (*slog.Logger, error) {
	if levelFlag != "" {
		level = levelFlag
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "json":
		h = slog.NewJSONHandler(w, ho)
	case "text", "":
		h = slog.NewTextHandler(w, ho)
	default:
		return nil, fmt.Errorf("unknown log format %q; use text or json", format)
	}
	return slog.New(newRateLimited(h, 10*time.Second)), nil
}

// rateLimited passes on at most one warning or error with the same
// message per period; the next one that passes says how many were
// suppressed. Lower levels pass untouched.
type rateLimited struct {
	slog.Handler
	state *limitState // shared by the handlers With makes
}

type limitState struct {
	period time.Duration
	mu     sync.Mutex
	last   map[string]*seen
}

type seen struct {
	at         time.Time
	suppressed int
}

func newRateLimited(h slog.Handler, period time.Duration) *rateLimited {
	return &rateLimited{Handler: h, state: &limitState{period: period, last: map[string]*seen{}}}
}

func (r *rateLimited) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelWarn {
		return r.Handler.Handle(ctx, rec)
	}
	st := r.state
	st.mu.Lock()
	e := st.last[rec.Message]
	if e != nil && rec.Time.Sub(e.at) < st.period {
		e.suppressed++
		st.mu.Unlock()
		return nil
	}
	suppressed := 0
	if e != nil {
		suppressed = e.suppressed
	}
	if len(st.last) > 1000 {
		clear(st.last) // bounded: messages are a fixed set, but be safe
	}
	st.last[rec.Message] = &seen{at: rec.Time}
	st.mu.Unlock()
	if suppressed > 0 {
		rec = rec.Clone()
		rec.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return r.Handler.Handle(ctx, rec)
}

func (r *rateLimited) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &rateLimited{Handler: r.Handler.WithAttrs(attrs), state: r.state}
}

func (r *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{Handler: r.Handler.WithGroup(name), state: r.state}
}
