// Package pgtest starts real PostgreSQL servers for pgshard's integration
// tests, its demo and its benchmarks. It is the one place that knows how to
// find the server binaries, initialise a cluster, run it as a child process
// and tear it down; tests must not start PostgreSQL any other way.
//
// A server listens on 127.0.0.1 on a free port (or Options.Port), tuned for
// tests rather than durability: fsync, synchronous_commit and
// full_page_writes are off. Authentication over TCP is:
//
//	host all postgres    127.0.0.1/32 trust
//	host all all         127.0.0.1/32 scram-sha-256
//	host replication all 127.0.0.1/32 trust
//
// so the superuser connects without a password (SuperURL) and roles made by
// CreateUserDB must log in with SCRAM, as they would in production.
//
// The postgres process runs in its own process group and, on Linux, is
// killed when the test process dies, so a crashed or timed-out test leaves
// no server behind (a later run removes its directory). Strictly, Linux
// sends that signal when the OS thread that started the server ends, and Go
// ends a thread only when a goroutine that locked it (runtime.LockOSThread)
// returns without unlocking: a test doing that may take a server down. When the test process is root, initdb and postgres run
// as the "postgres" OS user, which must be able to reach the server's
// directory.
//
// One test:
//
//	srv := pgtest.StartT(t, pgtest.Options{})
//	if err := srv.Exec(ctx, "postgres", "CREATE TABLE t (id int)"); err != nil { ... }
//
// A package whose tests share servers starts them once in TestMain:
//
//	var shards []*pgtest.Server
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgtest.Run(m, 2, pgtest.Options{Name: "e2e"},
//			func(ctx context.Context, s []*pgtest.Server) error {
//				shards = s
//				for _, srv := range s {
//					if err := srv.CreateUserDB(ctx, "app", "secret", "app"); err != nil {
//						return err
//					}
//				}
//				return nil
//			}))
//	}
//
// A new cluster is a copy of a template that initdb makes once a day in
// os.TempDir and that test processes share, so every server started that
// way has the same system identifier (pg_control_system()); tell servers
// apart by port or data_directory.
//
// The package does not log; failures come back as errors that include the
// end of the server's log. It runs on Unix only.
package pgtest
