package test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPgxpool runs many goroutines on a pgxpool larger than pgshard's
// backend pool: queries with arguments, transactions that commit and that
// roll back, and batches.
func TestPgxpool(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 3})
	newTable(t, "drv_pgxpool", "worker int NOT NULL, i int NOT NULL, kept bool NOT NULL")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	errBoom := errors.New("boom")
	const workers, iters = 24, 20
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs[w] = func() error {
				for i := range iters {
					var got int
					if err := pool.QueryRow(ctx, "SELECT $1::int * 2 + $2::int", i, w).Scan(&got); err != nil || got != 2*i+w {
						return fmt.Errorf("query: %d, %v", got, err)
					}
					kept := i%4 != 0
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "INSERT INTO drv_pgxpool (worker, i, kept) VALUES ($1, $2, $3)", w, i, kept); err != nil {
							return err
						}
						if !kept {
							return errBoom // rolls back
						}
						return nil
					})
					if kept && err != nil || !kept && !errors.Is(err, errBoom) {
						return fmt.Errorf("transaction %d: %v", i, err)
					}
					b := &pgx.Batch{}
					b.Queue("SELECT $1::int", i)
					b.Queue("SELECT $1::text", fmt.Sprint(w))
					br := pool.SendBatch(ctx, b)
					var n int
					var s string
					err1 := br.QueryRow().Scan(&n)
					err2 := br.QueryRow().Scan(&s)
					if err := errors.Join(err1, err2, br.Close()); err != nil || n != i || s != fmt.Sprint(w) {
						return fmt.Errorf("batch: %d %q %v", n, s, err)
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	pool.Close()
	wantKept := int64(0)
	for i := range iters {
		if i%4 != 0 {
			wantKept++
		}
	}
	if got := backendInt(t, "SELECT count(*) FROM drv_pgxpool WHERE kept"); got != workers*wantKept {
		t.Errorf("backend has %d committed rows, want %d", got, workers*wantKept)
	}
	if got := backendInt(t, "SELECT count(*) FROM drv_pgxpool WHERE NOT kept"); got != 0 {
		t.Errorf("backend has %d rows from rolled back transactions", got)
	}
	checkNoIdleInTransaction(t)
}
