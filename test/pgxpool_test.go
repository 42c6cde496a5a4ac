package test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
					if err := sharedConnRound(ctx, pool, "drv_pgxpool", w, i, errBoom); err != nil {
						return fmt.Errorf("iteration %d: %w", i, err)
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
	checkRounds(t, "drv_pgxpool", workers, iters)
	checkNoIdleInTransaction(t)
}
