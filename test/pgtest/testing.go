package pgtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// setupTimeout bounds starting the shared servers of Run and its setup.
const setupTimeout = 2 * time.Minute

// StartT starts a server for one test and stops it when the test and its
// subtests end; if the test failed, the end of the server's log is logged
// first. A server that cannot start fails the test at once. Empty
// opts.Name means the test's name.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of %s:\n%s", s.LogPath(), s.logTail(0))
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Run is the body of a TestMain whose package shares n servers among its
// tests: it starts them in parallel (as StartN), calls setup with them,
// runs the tests, stops the servers and returns the exit code for os.Exit.
// setup usually stores the servers in a package variable and creates roles
// and databases; an error from it, or a server that cannot start, fails
// the package with exit code 1. Listing tests (go test -list) starts no
// server.
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgtest.Run(m, 2, pgtest.Options{Name: "e2e"},
//			func(ctx context.Context, s []*pgtest.Server) error { shards = s; return nil }))
//	}
func Run(m *testing.M, n int, opts Options, setup func(ctx context.Context, servers []*Server) error) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run()
	}
	servers, err := startShared(n, opts, setup)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := stopAll(servers); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func startShared(n int, opts Options, setup func(context.Context, []*Server) error) ([]*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	servers, err := StartN(ctx, n, opts)
	if err != nil {
		return nil, err
	}
	if setup != nil {
		if err := setup(ctx, servers); err != nil {
			return nil, fmt.Errorf("pgtest: setup: %w", joinStop(err, servers))
		}
	}
	return servers, nil
}

func joinStop(err error, servers []*Server) error {
	if serr := stopAll(servers); serr != nil {
		return fmt.Errorf("%w (and stopping the servers: %w)", err, serr)
	}
	return err
}
