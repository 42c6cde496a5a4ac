package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/test/pgtest"
)

// composeShard is one shard of docker-compose.yml made on local servers
// by the compose file's own scripts and environment.
type composeShard struct {
	name             string
	primary, replica *pgtest.Server
}

// startComposeShard starts a primary, runs init-primary.sh on it with the
// compose service's environment, and makes its replica with
// replica-entrypoint.sh, likewise. Replication needs the replication
// role's password: the primary's pg_hba.conf drops the harness's trust
// line for replication, leaving the one init-primary.sh adds.
func startComposeShard(t *testing.T, cf composeFile, name string) *composeShard {
	t.Helper()
	ctx := t.Context()
	ps, rs := cf.Services[name], cf.Services[name+"-replica"]
	pset := settings(ps.Command)
	p := pgtest.StartT(t, pgtest.Options{Name: name, Conf: map[string]string{
		"cluster_name": pset["cluster_name"], "max_prepared_transactions": pset["max_prepared_transactions"]}})
	hba := filepath.Join(p.DataDir(), "pg_hba.conf")
	raw, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "host" && f[1] == "replication" {
			continue
		}
		kept = append(kept, l)
	}
	if err := os.WriteFile(hba, []byte(strings.Join(kept, "\n")), 0); err != nil {
		t.Fatal(err)
	}

	initPrimary := absPath(t, ps.hostPath("/docker-entrypoint-initdb.d/10-pgshard.sh"))
	env := []string{"PGDATA=" + p.DataDir()}
	for k, v := range ps.Environment {
		env = append(env, k+"="+v)
	}
	// Twice: a second run changes nothing and does not fail.
	for range 2 {
		if err := p.RunClient(ctx, env, "bash", initPrimary); err != nil {
			t.Fatal(err)
		}
	}

	replicaScript := absPath(t, rs.hostPath(argAfter(rs.Entrypoint, "bash")))
	replicaEnv := func(password string) []string {
		env := []string{"PRIMARY_HOST=" + p.Host(), "PRIMARY_PORT=" + strconv.Itoa(p.Port())}
		for k, v := range rs.Environment {
			switch k {
			case "PRIMARY_HOST":
			case "REPLICATION_PASSWORD":
				env = append(env, k+"="+password)
			default:
				env = append(env, k+"="+v)
			}
		}
		return env
	}
	rsettings := settings(rs.Command)
	opts := pgtest.Options{Name: name + "-replica", Init: []string{"bash", replicaScript},
		Conf: map[string]string{"cluster_name": rsettings["cluster_name"], "max_prepared_transactions": rsettings["max_prepared_transactions"]}}

	// A wrong password is refused: the replica logs in with the role's.
	opts.InitEnv = replicaEnv("wrong")
	if r, err := pgtest.Start(ctx, opts); err == nil {
		r.Stop()
		t.Fatal("a replica was made with a wrong replication password")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("a wrong replication password: %v", err)
	}
	opts.InitEnv = replicaEnv(rs.Environment["REPLICATION_PASSWORD"])
	r, err := pgtest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
	})
	return &composeShard{name: name, primary: p, replica: r}
}

// waitFor polls f until it returns true, failing the test after a while.
func waitFor(t *testing.T, what string, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s (last error: %v)", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestComposeShardsAndSeed sets up docker-compose.yml's two shards on
// local servers with its scripts (deploy/postgres), checks that each
// replica streams from its primary through its slot with the replication
// role, runs pgshard with the compose configuration in front of them, and
// runs the seed job's psql command through it: the tables reach both
// shards, every row its shard, and the replicas follow. Running the seed
// again changes nothing. The pgshard service's healthcheck command is run
// against that pgshard's /readyz.
func TestComposeShardsAndSeed(t *testing.T) {
	cf := readCompose(t)
	ctx := t.Context()
	shards := map[string]*composeShard{}
	for _, name := range composePrimaries {
		shards[name] = startComposeShard(t, cf, name)
	}

	for _, name := range composePrimaries {
		sh, env := shards[name], cf.Services[name].Environment
		// The replica streams, as the replication role, through the slot.
		waitFor(t, name+"-replica streaming", func() (bool, error) {
			n, err := sh.primary.QueryInt(ctx, "postgres", `SELECT count(*) FROM pg_stat_replication r
				JOIN pg_replication_slots s ON s.active_pid = r.pid
				WHERE r.state = 'streaming' AND r.usename = $1 AND s.slot_name = $2 AND r.application_name = $3`,
				env["REPLICATION_USER"], env["REPLICATION_SLOT"], name+"-replica")
			return n == 1, err
		})
		if got, err := sh.replica.QueryString(ctx, "postgres", "SELECT pg_is_in_recovery()"); err != nil || got != "t" {
			t.Errorf("%s-replica: pg_is_in_recovery() = %q, %v", name, got, err)
		}
		// The application role logs in to its database with its password.
		conn, err := pgx.Connect(ctx, sh.primary.URL(env["APP_USER"], env["APP_PASSWORD"], env["APP_DB"]))
		if err != nil {
			t.Fatalf("%s: %s logs in to %s: %v", name, env["APP_USER"], env["APP_DB"], err)
		}
		conn.Close(ctx)
	}

	// pgshard with the compose configuration, its shards' addresses made
	// those of the local servers.
	c, _ := composeProxyConfig(t, cf.Services[composePgshards[0]])
	c.Listen, c.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	local := func(u string) string {
		for name, sh := range shards {
			if strings.Contains(u, "//"+name+":") {
				return sh.primary.URL("", "", c.Databases[0].Name)
			}
			if strings.Contains(u, "//"+name+"-replica:") {
				return sh.replica.URL("", "", c.Databases[0].Name)
			}
		}
		t.Fatalf("%s is no compose shard", u)
		return ""
	}
	for i := range c.Databases[0].Shards {
		sh := &c.Databases[0].Shards[i]
		sh.Primary = local(sh.Primary)
		for j := range sh.Replicas {
			sh.Replicas[j] = local(sh.Replicas[j])
		}
	}
	opts, err := c.ProxyOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(srvCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pgshard: %v", err)
		}
	})
	_, proxyPort, _ := net.SplitHostPort(ln.Addr().String())
	_, metricsPort, _ := net.SplitHostPort(srv.MetricsAddr().String())

	// The service's healthcheck, on this pgshard's metrics port.
	hc := cf.Services[composePgshards[0]].Healthcheck.Test
	if len(hc) != 4 || hc[0] != "CMD" || hc[1] != "bash" || hc[2] != "-c" {
		t.Fatalf("healthcheck %q: want CMD bash -c ...", hc)
	}
	probe := strings.ReplaceAll(hc[3], "/127.0.0.1/9930", "/127.0.0.1/"+metricsPort)
	waitFor(t, "the pgshard healthcheck passing", func() (bool, error) {
		out, err := exec.CommandContext(ctx, "bash", "-c", probe).CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("%w: %s", err, out)
		}
		return true, nil
	})
	// ... and failing where nothing answers 200.
	if out, err := exec.CommandContext(ctx, "bash", "-c", strings.ReplaceAll(probe, "/readyz", "/nothing-here")).CombinedOutput(); err == nil {
		t.Errorf("the healthcheck passed on a 404 (%s)", out)
	}

	// The seed job, its host and port made this pgshard's, its files the
	// host's.
	seed := cf.Services["seed"]
	args := append([]string(nil), seed.Entrypoint[1:]...)
	for i := range args {
		switch {
		case i > 0 && args[i-1] == "-h":
			args[i] = "127.0.0.1"
		case i > 0 && args[i-1] == "-p":
			args[i] = proxyPort
		case i > 0 && args[i-1] == "-f":
			args[i] = filepath.Join(root, seed.hostPath(args[i]))
		}
	}
	runSeed := func() {
		cmd := exec.CommandContext(ctx, filepath.Join(pgBinDir(t), seed.Entrypoint[0]), args...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+seed.Environment["PGPASSWORD"], "PGSSLMODE=disable")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the seed job: %v\n%s", err, out)
		}
	}
	runSeed()

	type counts struct{ users, orders, countries, misplaced int64 }
	count := func(s *pgtest.Server) counts {
		var c counts
		conn, err := pgx.Connect(ctx, s.SuperURL("app"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		// misplaced: orders whose user is not on this shard.
		err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders),
			(SELECT count(*) FROM countries),
			(SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM users u WHERE u.id = o.user_id))`).
			Scan(&c.users, &c.orders, &c.countries, &c.misplaced)
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		return c
	}
	var total counts
	perShard := map[string]counts{}
	for _, name := range composePrimaries {
		c := count(shards[name].primary)
		perShard[name] = c
		total.users += c.users
		total.orders += c.orders
		if c.users == 0 || c.orders == 0 || c.countries != 8 || c.misplaced != 0 {
			t.Errorf("%s after the seed: %+v; want some users and orders, every order with its user, all 8 countries", name, c)
		}
	}
	if total.users != 100 || total.orders != 300 {
		t.Errorf("the seed loaded %d users and %d orders over the shards, want 100 and 300", total.users, total.orders)
	}
	for _, name := range composePrimaries {
		r := shards[name].replica
		waitFor(t, r.Name()+" holding its primary's rows", func() (bool, error) {
			n, err := r.QueryInt(ctx, "app", "SELECT count(*) FROM orders")
			return n == perShard[name].orders, err
		})
	}

	runSeed()
	for _, name := range composePrimaries {
		if c := count(shards[name].primary); c != perShard[name] {
			t.Errorf("%s after a second seed: %+v, before %+v", name, c, perShard[name])
		}
	}
}

// absPath is the absolute path of rel, relative to the root; scripts run
// in the servers' directories.
func absPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pgBinDir is the directory of the PostgreSQL binaries the harness uses.
func pgBinDir(t *testing.T) string {
	t.Helper()
	dir, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
