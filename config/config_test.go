package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgshard/pgshard/proxy"
)

// Verifiers of the password "app" for the user "app".
const (
	scramApp = "SCRAM-SHA-256$4096:cGdzaGFyZC10ZXN0LXNhbHQ=$sk0utTO5EF4UHBXwoZoLvYRuW4jVG2N0uAvAMcvmNbM=:FwHYpn9e0q/j13ZUKGhbWgHMJynyK9XDDKhTXNpU5m4="
	md5App   = "md5fe63fea7be31b0200b496d08bc6b517d"
)

// Valid pieces that error cases combine with the one piece they break.
const (
	okUsers = "users:\n  - {name: app, password: app}\n"
	okDBs   = "databases:\n  - name: app\n    shards: [{name: s0, primary: \"postgres://127.0.0.1:5433/app\"}]\n"
	okBoth  = okUsers + okDBs
)

// db returns a databases section with one database made of lines (indented
// as keys of the list item).
func db(lines ...string) string {
	return "databases:\n  - " + strings.Join(lines, "\n    ") + "\n"
}

const okShards = `shards: [{name: s0, primary: "postgres://127.0.0.1:5433/app"}]`

func TestDefaults(t *testing.T) {
	c, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:                     "127.0.0.1:6432",
		PoolMode:                   proxy.PoolTransaction,
		MaxClientConn:              10000,
		MetricsListen:              "127.0.0.1:9930",
		TLS:                        TLS{Mode: TLSAllow},
		ClientLoginTimeout:         Duration(15 * time.Second),
		MaxMessageSize:             64 << 20,
		MaxMergeMemory:             256 << 20,
		ServerResetQuery:           "DISCARD ALL",
		ServerConnectTimeout:       Duration(5 * time.Second),
		ServerIdleTimeout:          Duration(10 * time.Minute),
		ServerLifetime:             Duration(time.Hour),
		QueryWaitTimeout:           Duration(120 * time.Second),
		PreparedStatementCacheSize: 500,
		InstanceID:                 proxy.DefaultInstanceID(),
		TwoPhaseTimeout:            Duration(time.Minute),
		ShutdownTimeout:            Duration(30 * time.Second),
		LogFormat:                  "text",
		LogLevel:                   "info",
		HealthCheckInterval:        Duration(10 * time.Second),
		HealthCheckTimeout:         Duration(3 * time.Second),
		BanTime:                    Duration(time.Minute),
		Users:                      []User{{Name: "app", Password: "app", Auth: proxy.AuthSCRAM}},
		Databases: []Database{{
			Name:           "app",
			PoolSize:       20,
			Shards:         []Shard{{Name: "s0", Primary: "postgres://127.0.0.1:5433/app"}},
			DefaultShard:   "s0",
			LoadBalance:    LoadBalanceRoundRobin,
			ReadYourWrites: ReadYourWrites{Mode: ReadYourWritesLSN},
			MaxReplicaLag:  16 << 20,
			CrossShard:     CrossShardAllow,
			Hints:          HintsAllow,
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%#v\nwant\n%#v", c, want)
	}
}

// TestEmptyValues checks that a key present with an empty value keeps it
// instead of taking the default.
func TestEmptyValues(t *testing.T) {
	c, err := Parse([]byte("metrics_listen: \"\"\nserver_reset_query:\nserver_idle_timeout: 0\nserver_lifetime: 0s\nquery_wait_timeout: 0\n" + okBoth))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsListen != "" || c.ServerResetQuery != "" || c.ServerIdleTimeout != 0 || c.ServerLifetime != 0 || c.QueryWaitTimeout != 0 {
		t.Errorf("empty values replaced by defaults: %+v", c)
	}
}

// TestExample keeps proxy.yaml.example true: it parses, and it shows the
// defaults (it equals the minimal file with the same users and databases).
func TestExample(t *testing.T) {
	c, err := Load("../proxy.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := Parse([]byte(`
users: [{name: app, password: app}]
databases:
  - name: app
    backend_user: app
    backend_password: app
    shards: [{name: s0, primary: "postgres://127.0.0.1:5433/app"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), minimal.String(); got != want {
		t.Errorf("proxy.yaml.example does not show the defaults:\n%s\nwant\n%s", got, want)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"empty file", "", []string{"users: at least one user is required", "databases: at least one database is required"}},
		{"empty lists", "users: []\ndatabases: []\n", []string{"users: at least one user is required (line 1)", "databases: at least one database is required (line 2)"}},
		{"unknown key", "lisen: x\n" + okBoth, []string{"lisen: unknown key; valid keys here: listen, pool_mode,", "(line 1)"}},
		{"unknown nested key", okUsers + db("name: app", `shards: [{name: s0, primary: "postgres://h/app", primry: x}]`),
			[]string{"databases[0].shards[0].primry: unknown key; valid keys here: name, primary, replicas, schema, role (line 5)"}},
		{"duplicate key", "listen: a:1\nlisten: b:2\n" + okBoth, []string{"listen: duplicate key (first set on line 1) (line 2)"}},
		{"wrong type", "max_client_conn: lots\n" + okBoth, []string{`max_client_conn: expected an integer, got a string "lots" (line 1)`}},
		{"list expected", "users: {name: app, password: app}\n" + okDBs, []string{"users: expected a list, got a mapping (line 1)"}},
		{"float for integer", "max_client_conn: 1.5\n" + okBoth, []string{`max_client_conn: expected an integer, got a number "1.5" (line 1)`}},
		{"list item of the wrong type", "users: [5]\n" + okDBs, []string{`users[0]: expected a mapping, got an integer "5" (line 1)`}},
		{"mapping expected", "tls: true\n" + okBoth, []string{"tls: expected a mapping, got a boolean"}},

		{"listen empty", "listen: \"\"\n" + okBoth, []string{"listen: required"}},
		{"listen no port", "listen: localhost\n" + okBoth, []string{`listen: "localhost" is not host:port (line 1)`}},
		{"listen bad port", "listen: \"localhost:99999\"\n" + okBoth, []string{`listen: port "99999" must be a number from 0 to 65535`}},
		{"metrics_listen bad", "metrics_listen: \"9930\"\n" + okBoth, []string{"metrics_listen: \"9930\" is not host:port"}},
		{"metrics_listen same", "listen: \":7000\"\nmetrics_listen: \":7000\"\n" + okBoth, []string{"metrics_listen: must differ from listen"}},
		{"pool_mode", "pool_mode: sesion\n" + okBoth, []string{`pool_mode: unknown pool mode "sesion"; use session, transaction or statement (line 1)`}},
		{"max_client_conn", "max_client_conn: 0\n" + okBoth, []string{"max_client_conn: must be at least 1"}},
		{"max_user_client_connections", "max_user_client_connections: -1\n" + okBoth, []string{"max_user_client_connections: must be 0 (no limit) or more (line 1)"}},
		{"max_user_client_connections not an integer", "max_user_client_connections: many\n" + okBoth, []string{`max_user_client_connections: expected an integer, got a string "many" (line 1)`}},
		{"user max_user_client_connections", "users: [{name: app, password: app, max_user_client_connections: -2}]\n" + okDBs,
			[]string{"users[0].max_user_client_connections: must be 0 (the top-level max_user_client_connections) or more (line 1)"}},
		{"user max_user_client_connections float", "users: [{name: app, password: app, max_user_client_connections: 2.5}]\n" + okDBs,
			[]string{`users[0].max_user_client_connections: expected an integer, got a number "2.5" (line 1)`}},

		{"tls cert only", "tls: {cert_file: " + notPEM + "}\n" + okBoth, []string{"tls.key_file: required when tls.cert_file is set"}},
		{"tls key only", "tls: {key_file: " + notPEM + "}\n" + okBoth, []string{"tls.cert_file: required when tls.key_file is set"}},
		{"tls missing files", "tls:\n  cert_file: " + missing + "\n  key_file: " + missing + "\n" + okBoth,
			[]string{"tls.cert_file: stat " + missing + ": no such file or directory (line 2)", "tls.key_file: stat " + missing + ": no such file or directory (line 3)"}},
		{"tls directory", "tls: {cert_file: " + dir + ", key_file: " + notPEM + "}\n" + okBoth, []string{"tls.cert_file: " + dir + " is a directory"}},
		{"tls mode unknown", "tls: {mode: verify-full}\n" + okBoth, []string{`tls.mode: unknown TLS mode "verify-full"; use allow or require (line 1)`}},
		{"tls mode require without a certificate", "tls: {mode: require}\n" + okBoth, []string{"tls.mode: require needs tls.cert_file and tls.key_file (line 1)"}},
		{"tls mode empty", "tls:\n  mode:\n" + okBoth, []string{`tls.mode: unknown TLS mode ""; use allow or require (line 2)`}},
		{"tls not a key pair", "tls: {cert_file: " + notPEM + ", key_file: " + notPEM + "}\n" + okBoth, []string{"tls: cannot load the certificate and key: tls: failed to find any PEM data"}},

		{"duration zero", "client_login_timeout: 0s\n" + okBoth, []string{"client_login_timeout: must be greater than 0 (line 1)"}},
		{"duration zero connect", "server_connect_timeout: 0\n" + okBoth, []string{"server_connect_timeout: must be greater than 0"}},
		{"duration negative", "server_idle_timeout: -1s\n" + okBoth, []string{"server_idle_timeout: must not be negative"}},
		{"duration negative lifetime", "server_lifetime: -1h\n" + okBoth, []string{"server_lifetime: must not be negative"}},
		{"duration negative wait", "query_wait_timeout: -5ms\n" + okBoth, []string{"query_wait_timeout: must not be negative"}},
		{"duration negative query timeout", "query_timeout: -1s\n" + okBoth, []string{"query_timeout: must not be negative"}},
		{"health check interval zero", "health_check_interval: 0s\n" + okBoth, []string{"health_check_interval: must be greater than 0"}},
		{"health check timeout negative", "health_check_timeout: -1s\n" + okBoth, []string{"health_check_timeout: must not be negative"}},
		{"ban time zero", "ban_time: 0\n" + okBoth, []string{"ban_time: must be greater than 0"}},
		{"shard role unknown", okUsers + db("name: app", "backend_user: app", `shards: [{name: s0, primary: "host=a", role: primary}]`),
			[]string{`databases[0].shards[0].role: unknown role "primary"; use static or auto`}},
		{"shard role auto without backend_user", okUsers + db("name: app", `shards: [{name: s0, primary: "host=a", replicas: ["host=b"], role: auto}]`),
			[]string{"databases[0].shards[0].role: auto needs backend_user"}},
		{"duration no unit", "client_login_timeout: 15\n" + okBoth, []string{`client_login_timeout: invalid duration "15": use a number with a unit, such as 500ms, 15s, 10m or 1h (line 1)`}},
		{"duration list", "server_lifetime: [1h]\n" + okBoth, []string{"server_lifetime: expected a duration such as 15s, got a list"}},
		{"size unit", "max_message_size: 64mb\n" + okBoth, []string{`max_message_size: invalid size "64mb": use a whole number of bytes or one with a unit B, kB, MB or GB (such as 64MB) (line 1)`}},
		{"size too small", "max_message_size: 512\n" + okBoth, []string{"max_message_size: must be between 1kB and 1GB"}},
		{"size too large", "max_message_size: 2GB\n" + okBoth, []string{"max_message_size: must be between 1kB and 1GB"}},
		{"cache size", "prepared_statement_cache_size: 0\n" + okBoth, []string{"prepared_statement_cache_size: must be at least 1"}},

		{"admin user unknown", "admin_users: [root]\n" + okBoth, []string{`admin_users[0]: "root" is not one of users; add it to users (with a password) first (line 1)`}},
		{"admin user duplicate", "admin_users: [app, app]\n" + okBoth, []string{`admin_users[1]: duplicate admin user "app" (also admin_users[0])`}},
		{"admin user empty", "admin_users: [\"\"]\n" + okBoth, []string{`admin_users[0]: must not be empty`}},

		{"user name", "users: [{password: app}]\n" + okDBs, []string{"users[0].name: required (line 1)"}},
		{"user duplicate", "users:\n  - {name: app, password: app}\n  - {name: app, password: app}\n" + okDBs, []string{`users[1].name: duplicate user "app" (also users[0]) (line 3)`}},
		{"user auth", "users: [{name: app, password: app, auth: password}]\n" + okDBs, []string{`users[0].auth: unknown auth method "password"; use scram-sha-256, md5 or trust`}},
		{"user password missing", "users: [{name: app}]\n" + okDBs, []string{"users[0].password: required for auth scram-sha-256 (or use auth: trust)"}},
		{"user password missing md5", "users: [{name: app, auth: md5}]\n" + okDBs, []string{"users[0].password: required for auth md5"}},
		{"scram with md5 verifier", "users: [{name: app, password: " + md5App + "}]\n" + okDBs,
			[]string{"users[0].password: auth scram-sha-256 needs a plain-text password or a SCRAM-SHA-256 verifier, not an md5 verifier"}},
		{"md5 with scram verifier", "users: [{name: app, password: \"" + scramApp + "\", auth: md5}]\n" + okDBs,
			[]string{"users[0].password: auth md5 needs a plain-text password or an md5 verifier, not a SCRAM-SHA-256 verifier"}},
		{"malformed verifier", "users: [{name: app, password: \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"}]\n" + okDBs,
			[]string{"users[0].password: invalid password verifier"}},
		{"client login needs plain password", "users:\n  - {name: app, password: app}\n  - {name: bob, password: \"" + scramApp + "\"}\n  - {name: eve, auth: trust}\n" + okDBs,
			[]string{`users[1].password: needs a plain-text password: database "app" has no backend_user, so the proxy logs in to its backends with the client's own password (or set databases[0].backend_user) (line 3)`,
				"users[2].password: needs a plain-text password"}},

		{"db name", okUsers + db(okShards), []string{"databases[0].name: required"}},
		{"db reserved", okUsers + db("name: pgshard", okShards), []string{`databases[0].name: "pgshard" is reserved for the admin console; choose another name (line 4)`}},
		{"db duplicate", okUsers + db("name: app", okShards) + "  - name: app\n    " + okShards + "\n", []string{`databases[1].name: duplicate database "app" (also databases[0]) (line 6)`}},
		{"backend_password alone", okUsers + db("name: app", "backend_password: secret", okShards), []string{"databases[0].backend_password: set without backend_user; set backend_user too, or remove it (line 5)"}},
		{"pool_size", okUsers + db("name: app", "pool_size: 0", okShards), []string{"databases[0].pool_size: must be at least 1"}},
		{"min_pool_size above", okUsers + db("name: app", "pool_size: 5", "min_pool_size: 6", okShards), []string{"databases[0].min_pool_size: must be between 0 and pool_size (5)"}},
		{"min_pool_size negative", okUsers + db("name: app", "min_pool_size: -1", okShards), []string{"databases[0].min_pool_size: must be between 0 and pool_size (20)"}},
		{"no shards", okUsers + db("name: app"), []string{"databases[0].shards: at least one shard is required (line 4)"}},
		{"shard name", okUsers + db("name: app", `shards: [{primary: "postgres://h/app"}]`), []string{"databases[0].shards[0].name: required"}},
		{"shard duplicate", okUsers + db("name: app", "shards:", "  - {name: s0, primary: \"host=a\"}", "  - {name: s0, primary: \"host=b\"}"),
			[]string{`databases[0].shards[1].name: duplicate shard "s0" (also shards[0]) (line 7)`}},
		{"primary missing", okUsers + db("name: app", "shards: [{name: s0}]"), []string{"databases[0].shards[0].primary: required"}},
		{"primary bad URL", okUsers + db("name: app", "shards:", "  - name: s0", "    primary: \"postgres://h:notaport/app\""),
			[]string{"databases[0].shards[0].primary: invalid connection string: ", "(line 7)"}},
		{"primary bad keyword", okUsers + db("name: app", "shards: [{name: s0, primary: \"host=a bogus\"}]"), []string{"databases[0].shards[0].primary: invalid connection string"}},
		{"primary with password", okUsers + db("name: app", "shards: [{name: s0, primary: \"postgres://app:pw@h/app\"}]"),
			[]string{"databases[0].shards[0].primary: must not contain a password or a user; backends are logged in to with the database's backend_user and backend_password"}},
		{"primary with user", okUsers + db("name: app", "shards: [{name: s0, primary: \"host=h user=app\"}]"), []string{"databases[0].shards[0].primary: must not contain a user;"}},
		{"replica bad", okUsers + db("name: app", "shards:", "  - name: s0", "    primary: \"host=a\"", "    replicas:", "      - \"host=b\"", "      - \"host=c password=x\""),
			[]string{"databases[0].shards[0].replicas[1]: must not contain a password; ", "(line 10)"}},
		{"replica empty", okUsers + db("name: app", "shards: [{name: s0, primary: \"host=a\", replicas: [\"\"]}]"), []string{"databases[0].shards[0].replicas[0]: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; config:\n%s", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.Path == "" && tt.name != "empty file" {
					t.Errorf("error without a path: %v", fe)
				}
			}
		})
	}
}

// fieldErrors returns the FieldErrors joined in err, failing the test on any
// other error.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("not a joined error: %T %v", err, err)
	}
	var fes []*FieldError
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a *FieldError: %T %v", e, e)
		}
		fes = append(fes, fe)
	}
	return fes
}

func TestValidForms(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"scram verifier with backend_user", "users: [{name: app, password: \"" + scramApp + "\"}]\n" + db("name: app", "backend_user: app", okShards)},
		{"md5 verifier with md5", "users: [{name: app, password: " + md5App + ", auth: md5}]\n" + db("name: app", "backend_user: app", "backend_password: app", okShards)},
		{"plain with md5", "users: [{name: app, password: app, auth: md5}]\n" + okDBs},
		{"trust with plain password", "users: [{name: app, password: app, auth: trust}]\n" + okDBs},
		{"trust without password", "users: [{name: app, auth: trust}]\n" + db("name: app", "backend_user: app", okShards)},
		{"keyword/value primary", okUsers + db("name: app", "shards: [{name: s0, primary: \"host=10.0.0.1 port=5432 dbname=app sslmode=disable\", replicas: [\"postgresql://10.0.0.2/app\"]}]")},
		{"durations and sizes", "client_login_timeout: 500ms\nmax_message_size: 1024\nserver_lifetime: 0\nquery_wait_timeout: 1h30m\n" + okBoth},
		{"flow style document", "{listen: \":6432\", max_message_size: 1kB, users: [{name: app, password: app}], databases: [{name: app, " + okShards + "}]}\n"},
		{"listen port 0", "listen: \"127.0.0.1:0\"\nmetrics_listen: \"\"\n" + okBoth},
		{"both port 0", "listen: \"127.0.0.1:0\"\nmetrics_listen: \"127.0.0.1:0\"\n" + okBoth},
		{"anchors and merge keys", "users: [{name: app, password: app}]\ndatabases:\n  - &d {name: a, pool_size: 7, " + okShards + "}\n  - {<<: *d, name: b}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.yaml)); err != nil {
				t.Error(err)
			}
		})
	}

	c, err := Parse([]byte("users: [{name: app, password: app}]\ndatabases:\n  - &d {name: a, pool_size: 7, " + okShards + "}\n  - {<<: *d, name: b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Databases[1].PoolSize != 7 {
		t.Errorf("merged pool_size = %d, want 7 (a default overrode the merge)", c.Databases[1].PoolSize)
	}
}

func TestManyErrors(t *testing.T) {
	_, err := Load("testdata/many-errors.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.HasPrefix(err.Error(), "config testdata/many-errors.yaml:\n") {
		t.Errorf("error does not start with the file name: %v", err)
	}
	want := []string{
		`listen: "localhost" is not host:port (line 1)`,
		`pool_mode: unknown pool mode "sesion"`,
		`max_message_size: invalid size "64mb"`,
		`client_login_timeout: must be greater than 0 (line 4)`,
		`users[0].auth: unknown auth method "password"`,
		`users[1].name: duplicate user "app" (also users[0]) (line 9)`,
		`databases[0].name: "pgshard" is reserved`,
		`databases[0].pool_size: must be at least 1 (line 13)`,
		`databases[0].shards[0].primary: invalid connection string`,
		`databases[0].shards[0].replicas[1]: must not contain a user`,
		`databases[0].shards[1].name: duplicate shard "s0"`,
		`databases[0].shards[1].primary: required`,
		`databases[0].shards[1].primry: unknown key`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q", w)
		}
	}
	var joined error
	if u, ok := err.(interface{ Unwrap() error }); ok {
		joined = u.Unwrap()
	}
	fes := fieldErrors(t, joined)
	if len(fes) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(fes), len(want), err)
	}
	for i := 1; i < len(fes); i++ {
		if fes[i].Line < fes[i-1].Line {
			t.Errorf("errors not in line order: %v before %v", fes[i-1], fes[i])
		}
	}
}

func TestNotAConfig(t *testing.T) {
	for _, in := range []string{"listen: [\n", "a: 1\n---\nb: 2\n"} {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: error without a line: %v", in, err)
		}
	}
	if _, err := Parse([]byte("just a string\n")); err == nil || !strings.Contains(err.Error(), "expected a mapping, got a string") {
		t.Errorf("scalar document: %v", err)
	}
	if _, err := Load("testdata/no-such-file.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestSecretsNotInErrors puts distinctive secrets where they cause errors.
func TestSecretsNotInErrors(t *testing.T) {
	in := `
users:
  - {name: a, password: "SCRAM-SHA-256$4096:Zm9vc2VjcmV0$hunter2:hunter2"}
  - {name: b, password: "md5hunter2hunter2hunter2hunter2hunter2", auth: bogus}
databases:
  - name: app
    backend_password: hunter2
    shards:
      - {name: s0, primary: "postgres://u:hunter2@h:badport/app"}
      - {name: s1, primary: "postgres://h/app?password=hunter2&port=x"}
      - {name: s2, primary: "host=h password='hunter2 port=x"}
      - {name: s3, primary: "host=h sslpassword=hunter2 port=x"}
      - {name: s4, primary: "postgres://u:hunter2@h/%zz"}
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "Zm9vc2VjcmV0") {
		t.Errorf("error shows a secret:\n%v", err)
	}
	if n := len(fieldErrors(t, err)); n < 7 {
		t.Errorf("got %d errors, want at least 7:\n%v", n, err)
	}
}

func TestRedacted(t *testing.T) {
	c, err := Parse([]byte(`
users:
  - {name: app, password: s3cret-user}
  - {name: ops, auth: trust}
databases:
  - name: app
    backend_user: app
    backend_password: s3cret-backend
    shards: [{name: s0, primary: "host=a", replicas: ["host=b"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if r.Users[0].Password != "*****" || r.Users[1].Password != "" || r.Databases[0].BackendPassword != "*****" {
		t.Errorf("not redacted: %+v %+v", r.Users, r.Databases)
	}
	if c.Users[0].Password != "s3cret-user" || c.Databases[0].BackendPassword != "s3cret-backend" {
		t.Error("Redacted changed the original")
	}
	r.Databases[0].Shards[0].Replicas[0] = "changed"
	if c.Databases[0].Shards[0].Replicas[0] != "host=b" {
		t.Error("Redacted shares memory with the original")
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", *c)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"String": c.String(), "%v": fmt.Sprintf("%v", *c), "%+v": fmt.Sprintf("%+v", c.Users), "%#v": fmt.Sprintf("%#v", *c),
		"slog": logged.String(), "json": string(js),
	} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows a secret:\n%s", name, out)
		}
	}
	if !strings.Contains(c.String(), "password: '*****'") {
		t.Errorf("String does not show the redacted password:\n%s", c)
	}

	// String is valid configuration: parsing it gives the same String.
	again, err := Parse([]byte(c.String()))
	if err != nil {
		t.Fatalf("String does not parse: %v\n%s", err, c)
	}
	if again.String() != c.String() {
		t.Errorf("String does not round-trip:\n%s\nthen\n%s", c, again)
	}
}

func TestProxyOptions(t *testing.T) {
	cert, key := writeKeyPair(t)
	c, err := Parse([]byte(`
listen: ":7432"
pool_mode: session
max_client_conn: 50
max_user_client_connections: 20
tls: {cert_file: ` + cert + `, key_file: ` + key + `, mode: require}
client_login_timeout: 3s
max_message_size: 8kB
server_reset_query: ""
server_connect_timeout: 2s
server_idle_timeout: 0
server_lifetime: 30m
query_wait_timeout: 500ms
query_timeout: 90s
prepared_statement_cache_size: 7
health_check_interval: 200ms
ban_time: 5s
users:
  - {name: app, password: app}
  - {name: md, password: ` + md5App + `, auth: md5, max_user_client_connections: 3}
databases:
  - name: app
    backend_user: owner
    backend_password: pw
    pool_size: 4
    min_pool_size: 1
    shards:
      - {name: s0, primary: "host=a", replicas: ["host=b", "host=c"], role: auto}
      - {name: s1, primary: "host=d", role: static}
`))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	o, err := c.ProxyOptions(logger)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS == nil || len(o.TLS.Certificates) != 1 {
		t.Fatalf("TLS not loaded: %+v", o.TLS)
	}
	if !o.TLSRequired {
		t.Error("tls.mode: require did not set TLSRequired")
	}
	o.TLS, o.TLSRequired = nil, false
	if o.Settings == nil {
		t.Fatal("Settings not set")
	}
	for _, st := range o.Settings() {
		if st.Key == "users[0].password" && st.Value != "*****" {
			t.Errorf("Settings show users[0].password as %q, want it redacted", st.Value)
		}
	}
	o.Settings = nil
	want := proxy.Options{
		Listen:                   ":7432",
		MetricsListen:            "127.0.0.1:9930",
		PoolMode:                 proxy.PoolSession,
		MaxClientConn:            50,
		MaxUserClientConnections: 20,
		Users:                    []proxy.User{{Name: "app", Password: "app", Auth: proxy.AuthSCRAM}, {Name: "md", Password: md5App, Auth: proxy.AuthMD5, MaxClientConnections: 3}},
		Databases: []proxy.Database{{Name: "app", BackendUser: "owner", BackendPassword: "pw", PoolSize: 4, MinPoolSize: 1, Shards: []proxy.Shard{{Name: "s0", Primary: "host=a", Replicas: []string{"host=b", "host=c"}, RoleAuto: true}, {Name: "s1", Primary: "host=d"}},
			DefaultShard: "s0", LoadBalance: proxy.LoadBalanceRoundRobin, ReadYourWrites: proxy.ReadYourWrites{LSN: true}, MaxReplicaLag: 16 << 20, CrossShard: proxy.CrossShardAllow,
			TwoPhaseCommit: true}},
		ClientLoginTimeout:         3 * time.Second,
		MaxMessageSize:             8192,
		MaxMergeMemory:             256 << 20,
		ServerConnectTimeout:       2 * time.Second,
		ServerLifetime:             30 * time.Minute,
		QueryWaitTimeout:           500 * time.Millisecond,
		QueryTimeout:               90 * time.Second,
		PreparedStatementCacheSize: 7,
		InstanceID:                 proxy.DefaultInstanceID(),
		TwoPhaseTimeout:            time.Minute,
		ShutdownTimeout:            30 * time.Second,
		HealthCheckInterval:        200 * time.Millisecond,
		HealthCheckTimeout:         3 * time.Second,
		BanTime:                    5 * time.Second,
		Logger:                     logger,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got\n%+v\nwant\n%+v", o, want)
	}

	o.Databases[0].Shards[0].Replicas[0] = "changed"
	if c.Databases[0].Shards[0].Replicas[0] != "host=b" {
		t.Error("Options share memory with the Config")
	}

	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProxyOptions(logger); err == nil {
		t.Error("no error for a missing key file")
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		out  string // String; "" if parsing fails
	}{
		{"1024", 1024, "1kB"},
		{"100", 100, "100B"},
		{"100B", 100, "100B"},
		{"1kB", 1024, "1kB"},
		{"1KB", 1024, "1kB"},
		{"1536kB", 1536 << 10, "1536kB"},
		{"64MB", 64 << 20, "64MB"},
		{"64 MB", 64 << 20, "64MB"},
		{"1GB", 1 << 30, "1GB"},
		{"64mb", 0, ""},
		{"1.5MB", 0, ""},
		{"-1", 0, ""},
		{"+1", 0, ""},
		{"MB", 0, ""},
		{"1TB", 0, ""},
		{"99999999999999GB", 0, ""},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != (tt.out == "") || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if tt.out != "" && got.String() != tt.out {
			t.Errorf("Size(%d).String() = %q, want %q", got, got.String(), tt.out)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 500 * time.Millisecond: "500ms", 15 * time.Second: "15s", 120 * time.Second: "2m",
		10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "90m", 1500 * time.Microsecond: "1.5ms",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("%q does not parse back to %v", want, d)
		}
	}
}

// writeKeyPair writes a self-signed certificate and its key to a temporary
// directory.
func writeKeyPair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pgshard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
