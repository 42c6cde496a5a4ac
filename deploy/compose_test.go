// Package deploy holds the checks of pgshard's deployment files, which
// make test runs without Docker or Kubernetes: docker-compose.yml and what
// it mounts, deploy/Dockerfile, the Kubernetes manifests in deploy/k8s,
// the Grafana provisioning, and, against real servers started by
// test/pgtest, the replication scripts in deploy/postgres and the sample
// schema loaded through pgshard as the compose seed job does. The
// dashboard's metric names and promtool's check of the Prometheus
// configuration are in test/metrics_test.go (TestMetricsDashboard), which
// has a pgshard serving /metrics.
package deploy

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgshard/pgshard/config"
)

// root is the repository root, relative to this package's directory.
const root = ".."

// composeFile is what the checks read of docker-compose.yml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Hostname    string            `yaml:"hostname"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

// mount is one bind mount or named volume of a service.
type mount struct {
	source, target string
	bind           bool // source is a host path, relative to the root
}

func (s composeService) mounts() []mount {
	var ms []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0]}
		if len(parts) > 1 {
			m.target = parts[1]
		}
		m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")
		ms = append(ms, m)
	}
	return ms
}

// hostPath is the host file (relative to the root) that the container
// sees at p through a bind mount, or "" when no bind mount covers p.
func (s composeService) hostPath(p string) string {
	best := mount{}
	for _, m := range s.mounts() {
		if m.bind && (p == m.target || strings.HasPrefix(p, m.target+"/")) && len(m.target) > len(best.target) {
			best = m
		}
	}
	if best.target == "" {
		return ""
	}
	return filepath.Join(best.source, strings.TrimPrefix(p, best.target))
}

// argAfter is the argument that follows flag in args, or "".
func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// settings are the -c name=value settings of a postgres command line.
func settings(args []string) map[string]string {
	out := map[string]string{}
	for i, a := range args {
		if a == "-c" && i+1 < len(args) {
			k, v, _ := strings.Cut(args[i+1], "=")
			out[k] = v
		}
	}
	return out
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return cf
}

func mustExist(t *testing.T, what, rel string, dir bool) {
	t.Helper()
	st, err := os.Stat(filepath.Join(root, rel))
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case dir && !st.IsDir():
		t.Errorf("%s: %s is not a directory", what, rel)
	case !dir && st.IsDir():
		t.Errorf("%s: %s is a directory, not a file", what, rel)
	}
}

// The services docker-compose.yml must have, by role.
var (
	composePrimaries = []string{"s0", "s1"}
	composeReplicas  = map[string]string{"s0-replica": "s0", "s1-replica": "s1"}
	composePgshards  = []string{"pgshard-1", "pgshard-2"}
)

// TestComposeFiles checks that docker-compose.yml parses, that every file
// and directory it names exists, and that the services refer to each
// other consistently: dependencies, health checks, mounted scripts.
func TestComposeFiles(t *testing.T) {
	cf := readCompose(t)
	for _, name := range slices.Concat(composePrimaries, slices.Collect(maps.Keys(composeReplicas)), composePgshards,
		[]string{"seed", "prometheus", "grafana"}) {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %s", name)
		}
	}
	for name, s := range cf.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if s.Build != nil {
			mustExist(t, name+": build context", s.Build.Context, true)
			mustExist(t, name+": dockerfile", filepath.Join(s.Build.Context, s.Build.Dockerfile), false)
		}
		for _, m := range s.mounts() {
			switch {
			case m.target == "" || !path.IsAbs(m.target):
				t.Errorf("%s: volume %q has no absolute container path", name, m.source)
			case m.bind:
				if !strings.HasPrefix(m.source, "./") {
					t.Errorf("%s: bind mount %s must be relative to the repository (./...)", name, m.source)
				}
				st, err := os.Stat(filepath.Join(root, m.source))
				if err != nil {
					t.Errorf("%s: %v", name, err)
				} else if strings.HasSuffix(m.target, ".sh") && st.Mode()&0o004 == 0 {
					t.Errorf("%s: %s is not readable by others, as the container's user needs", name, m.source)
				}
			default:
				if _, ok := cf.Volumes[m.source]; !ok {
					t.Errorf("%s: named volume %s is not declared under volumes", name, m.source)
				}
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := cf.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			case d.Condition == "service_healthy" && (target.Healthcheck == nil || len(target.Healthcheck.Test) == 0):
				t.Errorf("%s waits for %s to be healthy, but it has no healthcheck", name, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("%s waits for %s to complete, but its restart is %q, not \"no\"", name, dep, target.Restart)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition):
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
		// A script the container runs must be mounted.
		for _, arg := range slices.Concat(s.Entrypoint, s.Command) {
			if strings.HasSuffix(arg, ".sh") && strings.HasPrefix(arg, "/") && s.hostPath(arg) == "" {
				t.Errorf("%s runs %s, which no bind mount provides", name, arg)
			}
		}
	}

	// Every primary runs init-primary.sh at its initialisation; every
	// replica is made by replica-entrypoint.sh from its primary, through
	// the slot the primary made, with the same replication role.
	for _, name := range composePrimaries {
		s := cf.Services[name]
		if got := s.hostPath("/docker-entrypoint-initdb.d/10-pgshard.sh"); filepath.Clean(got) != filepath.Clean("deploy/postgres/init-primary.sh") {
			t.Errorf("%s: /docker-entrypoint-initdb.d/10-pgshard.sh is %q, want deploy/postgres/init-primary.sh", name, got)
		}
		for _, k := range []string{"APP_USER", "APP_PASSWORD", "APP_DB", "REPLICATION_USER", "REPLICATION_PASSWORD", "REPLICATION_SLOT", "POSTGRES_PASSWORD"} {
			if s.Environment[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		if n, err := strconv.Atoi(settings(s.Command)["max_prepared_transactions"]); err != nil || n < 1 {
			t.Errorf("%s: max_prepared_transactions is %q; pgshard's two-phase commit needs it above 0", name, settings(s.Command)["max_prepared_transactions"])
		}
	}
	for name, primaryName := range composeReplicas {
		s, p := cf.Services[name], cf.Services[primaryName]
		script := argAfter(s.Entrypoint, "bash")
		if got := s.hostPath(script); filepath.Clean(got) != filepath.Clean("deploy/postgres/replica-entrypoint.sh") {
			t.Errorf("%s: its entrypoint runs %q, mounted from %q, want deploy/postgres/replica-entrypoint.sh", name, script, got)
		}
		if len(s.Command) == 0 || s.Command[0] != "docker-entrypoint.sh" {
			t.Errorf("%s: command %q should start the image's own docker-entrypoint.sh", name, s.Command)
		}
		if s.Environment["PRIMARY_HOST"] != primaryName {
			t.Errorf("%s: PRIMARY_HOST is %q, want %s", name, s.Environment["PRIMARY_HOST"], primaryName)
		}
		for _, k := range []string{"REPLICATION_USER", "REPLICATION_PASSWORD", "REPLICATION_SLOT"} {
			if s.Environment[k] == "" || s.Environment[k] != p.Environment[k] {
				t.Errorf("%s: %s is %q, its primary's %q", name, k, s.Environment[k], p.Environment[k])
			}
		}
		if s.DependsOn[primaryName].Condition != "service_healthy" {
			t.Errorf("%s must wait for %s to be healthy", name, primaryName)
		}
		// A hot standby refuses to start with fewer than its primary's.
		if got, want := settings(s.Command)["max_prepared_transactions"], settings(p.Command)["max_prepared_transactions"]; got != want {
			t.Errorf("%s: max_prepared_transactions %q, its primary's %q", name, got, want)
		}
	}
}

// composeProxyConfig loads the pgshard configuration a compose service
// mounts at the path its command names.
func composeProxyConfig(t *testing.T, s composeService) (*config.Config, string) {
	t.Helper()
	confPath := argAfter(s.Command, "-config")
	host := s.hostPath(confPath)
	if host == "" {
		t.Fatalf("the config %q is not mounted", confPath)
	}
	c, err := config.Load(filepath.Join(root, host))
	if err != nil {
		t.Fatal(err)
	}
	return c, host
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return port
}

// TestComposePgshard checks the pgshard services: their configuration
// loads and validates with pgshard's own config package and matches the
// rest of the file (the shards' services, users and passwords, the ports
// published, health-checked and scraped), and the seed job loads files
// that exist through a pgshard service.
func TestComposePgshard(t *testing.T) {
	cf := readCompose(t)
	hostnames := map[string]bool{}
	var confFile string
	for _, name := range composePgshards {
		s := cf.Services[name]
		c, host := composeProxyConfig(t, s)
		if confFile != "" && host != confFile {
			t.Errorf("%s mounts %s, the other pgshard %s: they should share one configuration", name, host, confFile)
		}
		confFile = host
		// instance_id is left to the host name, which must then differ.
		var keys map[string]any
		if err := yaml.Unmarshal(mustRead(t, host), &keys); err != nil {
			t.Fatal(err)
		}
		if _, set := keys["instance_id"]; set {
			t.Errorf("%s: %s sets instance_id, which both instances would then share", name, host)
		}
		if s.Hostname == "" || hostnames[s.Hostname] {
			t.Errorf("%s: hostname %q must be set and unique (it is the instance_id)", name, s.Hostname)
		}
		hostnames[s.Hostname] = true
		for _, p := range composePrimaries {
			if s.DependsOn[p].Condition != "service_healthy" {
				t.Errorf("%s must wait for %s to be healthy", name, p)
			}
		}

		listenPort, metricsPort := portOf(t, c.Listen), portOf(t, c.MetricsListen)
		if !strings.HasPrefix(c.Listen, "0.0.0.0:") || !strings.HasPrefix(c.MetricsListen, "0.0.0.0:") {
			t.Errorf("%s: listen %q and metrics_listen %q must take connections from other containers", name, c.Listen, c.MetricsListen)
		}
		var published []string
		for _, p := range s.Ports {
			published = append(published, p[strings.LastIndexByte(p, ':')+1:])
		}
		if !slices.Contains(published, listenPort) || !slices.Contains(published, metricsPort) {
			t.Errorf("%s publishes container ports %v; listen and metrics are on %s and %s", name, published, listenPort, metricsPort)
		}
		if hc := s.Healthcheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "/dev/tcp/127.0.0.1/"+metricsPort) ||
			!strings.Contains(strings.Join(hc.Test, " "), "/readyz") {
			t.Errorf("%s: the healthcheck should ask /readyz on the metrics port %s", name, metricsPort)
		}

		// The shards are the compose services, with the roles the
		// primaries' init script made.
		if len(c.Databases) != 1 {
			t.Fatalf("%s: %d databases, want 1", name, len(c.Databases))
		}
		db := c.Databases[0]
		if len(db.Shards) != len(composePrimaries) {
			t.Errorf("%s: %d shards, want %d", name, len(db.Shards), len(composePrimaries))
		}
		for _, sh := range db.Shards {
			primary := checkShardURL(t, cf, sh.Primary)
			pe := cf.Services[primary].Environment
			if db.BackendUser != pe["APP_USER"] || string(db.BackendPassword) != pe["APP_PASSWORD"] {
				t.Errorf("%s: backend_user %s and its backend_password are not the APP_USER %s and APP_PASSWORD that %s's init script makes", name, db.BackendUser, pe["APP_USER"], primary)
			}
			if len(sh.Replicas) != 1 {
				t.Errorf("shard %s: %d replicas, want 1", sh.Name, len(sh.Replicas))
			}
			for _, r := range sh.Replicas {
				replica := checkShardURL(t, cf, r)
				if composeReplicas[replica] != primary {
					t.Errorf("shard %s: replica %s is not a replica of %s", sh.Name, replica, primary)
				}
			}
		}
	}

	// The seed job: psql through a pgshard service, as a configured user,
	// on files it mounts.
	seed := cf.Services["seed"]
	c, _ := composeProxyConfig(t, cf.Services[composePgshards[0]])
	target := argAfter(seed.Entrypoint, "-h")
	if _, ok := cf.Services[target]; !ok || !slices.Contains(composePgshards, target) {
		t.Errorf("seed: psql -h %q is not a pgshard service", target)
	}
	if seed.DependsOn[target].Condition != "service_healthy" {
		t.Errorf("seed must wait for %s to be healthy", target)
	}
	if got := argAfter(seed.Entrypoint, "-p"); got != portOf(t, c.Listen) {
		t.Errorf("seed: psql -p %s, pgshard listens on %s", got, portOf(t, c.Listen))
	}
	user, pw, dbName := argAfter(seed.Entrypoint, "-U"), seed.Environment["PGPASSWORD"], argAfter(seed.Entrypoint, "-d")
	if i := slices.IndexFunc(c.Users, func(u config.User) bool { return u.Name == user }); i < 0 || string(c.Users[i].Password) != pw {
		t.Errorf("seed: user %q with PGPASSWORD %q is not a pgshard user with that password", user, pw)
	}
	if !slices.ContainsFunc(c.Databases, func(d config.Database) bool { return d.Name == dbName }) {
		t.Errorf("seed: database %q is not in pgshard's configuration", dbName)
	}
	var files []string
	for i, a := range seed.Entrypoint {
		if a == "-f" && i+1 < len(seed.Entrypoint) {
			files = append(files, seed.Entrypoint[i+1])
		}
	}
	want := []string{"deploy/sample/schema.sql", "deploy/sample/data.sql"}
	if len(files) != len(want) {
		t.Errorf("seed runs %v, want the files %v", files, want)
	}
	for i, f := range files {
		host := seed.hostPath(f)
		if i < len(want) && filepath.Clean(host) != filepath.Clean(want[i]) {
			t.Errorf("seed: -f %s is %q on the host, want %s", f, host, want[i])
		}
		mustExist(t, "seed: -f "+f, host, false)
	}

	// Prometheus scrapes every pgshard service on its metrics port.
	prom := cf.Services["prometheus"]
	var pc struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(mustRead(t, prom.hostPath("/etc/prometheus/prometheus.yml")), &pc); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, name := range composePgshards {
		if want := name + ":" + portOf(t, c.MetricsListen); !slices.Contains(targets, want) {
			t.Errorf("prometheus.yml scrapes %v, not %s", targets, want)
		}
	}
}

// checkShardURL checks that a shard's URL names a compose service on
// PostgreSQL's port, and returns the service.
func checkShardURL(t *testing.T, cf composeFile, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%q: %v", raw, err)
		return ""
	}
	if _, ok := cf.Services[u.Hostname()]; !ok {
		t.Errorf("%s: %s is not a compose service", raw, u.Hostname())
	}
	if u.Port() != "5432" {
		t.Errorf("%s: the postgres image listens on 5432", raw)
	}
	return u.Hostname()
}

func mustRead(t *testing.T, rel string) []byte {
	t.Helper()
	if rel == "" {
		t.Fatal("no such file is mounted")
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestComposeGrafana checks Grafana's provisioning: a Prometheus data
// source on the compose Prometheus, and a dashboard provider reading the
// directory where pgshard.json is mounted.
func TestComposeGrafana(t *testing.T) {
	cf := readCompose(t)
	g := cf.Services["grafana"]
	var ds struct {
		Datasources []struct {
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(mustRead(t, g.hostPath("/etc/grafana/provisioning/datasources/prometheus.yml")), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault {
		t.Fatalf("data sources %+v: want one, the default, of type prometheus (the dashboard's datasource variable asks for one)", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cf.Services[u.Hostname()]; !ok || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("the data source's URL %s is not the prometheus service on 9090", u)
	}

	var dp struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(mustRead(t, g.hostPath("/etc/grafana/provisioning/dashboards/pgshard.yml")), &dp); err != nil {
		t.Fatal(err)
	}
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v: want one of type file", dp.Providers)
	}
	dash := g.hostPath(dp.Providers[0].Options.Path + "/pgshard.json")
	if filepath.Clean(dash) != filepath.Clean("deploy/grafana/pgshard.json") {
		t.Errorf("the provider's directory %s holds %q, not deploy/grafana/pgshard.json", dp.Providers[0].Options.Path, dash)
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" && g.hostPath(home) == "" {
		t.Errorf("the home dashboard %s is not mounted", home)
	}
}
