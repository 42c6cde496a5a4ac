package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The HTTP endpoint on Options.MetricsListen: /metrics for Prometheus,
// /healthz (the process runs) and /readyz (it can serve: every shard's
// primary answered recently).

// reachRecent is how long a primary that answered counts as up for
// /readyz without being asked again.
const reachRecent = 10 * time.Second

// reachProbeTimeout bounds a /readyz probe of one primary.
const reachProbeTimeout = 2 * time.Second

// reachability remembers when each shard's primary last answered a
// connection, and when one last failed. Safe for concurrent use.
type reachability struct {
	mu   sync.Mutex
	last map[reachKey]reach
}

type reachKey struct {
	db    string
	shard int
}

type reach struct {
	ok, failed time.Time
	err        error
}

// note records the outcome of a connection to a shard's server; only
// primaries (server 0) count.
func (r *reachability) note(db string, shard, server int, err error) {
	if server != 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[reachKey]reach{}
	}
	k := reachKey{db, shard}
	st := r.last[k]
	if err == nil {
		st.ok = now
	} else {
		st.failed, st.err = now, err
	}
	r.last[k] = st
}

func (r *reachability) get(db string, shard int) reach {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[reachKey{db, shard}]
}

// startHTTP listens on Options.MetricsListen, when set, and serves the
// endpoint until the returned stop is called.
func (s *Server) startHTTP() (stop func(), err error) {
	if s.opts.MetricsListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.opts.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	s.metricsAddr = ln.Addr()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", s.serveReady)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics endpoint stopped", "error", err)
		}
	}()
	s.log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			hs.Close()
		}
		<-done
	}, nil
}

// MetricsAddr returns the address the metrics endpoint listens on, or nil
// when Options.MetricsListen is empty, once the server serves.
func (s *Server) MetricsAddr() net.Addr {
	<-s.ready
	return s.metricsAddr
}

// serveReady answers /readyz: 200 once the server serves and every
// database's shard primaries answered a connection recently, else 503
// saying which are down.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	select {
	case <-s.ready:
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready: starting\n")
		return
	}
	if down := s.downPrimaries(r.Context()); len(down) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready: "+strings.Join(down, "; ")+"\n")
		return
	}
	io.WriteString(w, "ready\n")
}

// downPrimaries lists the shard primaries that did not answer: those that
// answered within reachRecent (and failed no later) count as up, the
// others are asked now.
func (s *Server) downPrimaries(ctx context.Context) []string {
	now := time.Now()
	var mu sync.Mutex
	var down []string
	var wg sync.WaitGroup
	for _, d := range s.current().dbs {
		for i, sh := range d.Shards {
			st := s.reach.get(d.Name, i)
			if !st.ok.IsZero() && now.Sub(st.ok) < reachRecent && !st.failed.After(st.ok) {
				continue
			}
			wg.Go(func() {
				err := probeServer(ctx, sh.Primary)
				s.reach.note(d.Name, i, 0, err)
				if err != nil {
					mu.Lock()
					down = append(down, fmt.Sprintf("database %s shard %s: primary down: %v", d.Name, sh.Name, err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	slices.Sort(down)
	return down
}

// probeServer checks that the PostgreSQL server of a connection string answers:
// it accepts a connection and answers an SSLRequest.
func probeServer(ctx context.Context, connString string) error {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return err
	}
	network, addr := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, addr = "unix", fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	ctx, cancel := context.WithTimeout(ctx, reachProbeTimeout)
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// SSLRequest: PostgreSQL answers 'S' or 'N'.
	if _, err := nc.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return err
	}
	if b[0] != 'S' && b[0] != 'N' {
		return fmt.Errorf("unexpected answer %q to SSLRequest", b[0])
	}
	return nil
}
