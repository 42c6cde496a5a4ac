package test

// Startup and negotiation: what a client sees from its first byte to its
// first ReadyForQuery. Most cases speak the protocol by hand (rawConn), since
// drivers will not send what is being tested; the rest use pgconn and psql.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgshard/pgshard/proxy"
)

// Startup packet codes and protocol versions, as on the wire.
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	proto30           = 3 << 16
	proto32           = 3<<16 | 2
	protoGrease       = 3<<16 | 9999 // what PostgreSQL 19 libpq sends first
)

// rawConn is a client that speaks the wire protocol by hand. Its methods
// fail the test on anything unexpected, so it is for the test goroutine.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	fe *pgproto3.Frontend
}

// dialRaw connects to addr with a 10s deadline on everything that follows.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
}

// write sends bytes as they are, in one write.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	if err := c.fe.Flush(); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *rawConn) receive() pgproto3.BackendMessage {
	c.t.Helper()
	m, err := c.fe.Receive()
	if err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			logProxyGoroutines(c.t)
		}
		c.t.Fatalf("receive: %v", err)
	}
	return m
}

// logProxyGoroutines logs the stacks of pgshard's goroutines, to show
// where a reply that never came got stuck.
func logProxyGoroutines(t testing.TB) {
	t.Helper()
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pgshard/proxy") || strings.Contains(g, "pgshard/pool") {
			ours = append(ours, g)
		}
	}
	t.Logf("no reply in time; pgshard's goroutines:\n%s", strings.Join(ours, "\n\n"))
}

// readByte reads the one-byte answer to SSLRequest or GSSENCRequest. It
// must come before anything is read through fe.
func (c *rawConn) readByte() byte {
	c.t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(c.nc, b[:]); err != nil {
		c.t.Fatalf("reading the answer to an encryption request: %v", err)
	}
	return b[0]
}

// startup sends a StartupMessage with protocol version v.
func (c *rawConn) startup(v uint32, params map[string]string) {
	c.t.Helper()
	c.send(&pgproto3.StartupMessage{ProtocolVersion: v, Parameters: params})
}

// isClosed says whether err is what reading from a connection the peer
// closed returns (pgproto3 reports a clean EOF as io.ErrUnexpectedEOF).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// expectClosed checks that the proxy closes the connection without sending
// anything more.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	m, err := c.fe.Receive()
	switch {
	case err == nil:
		c.t.Fatalf("got %T %+v, want the connection closed", m, m)
	case !isClosed(err):
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

// expectError reads the next message, which must be an ErrorResponse with
// this severity and SQLSTATE; with FATAL the connection must then close.
func (c *rawConn) expectError(severity, code string) pgproto3.ErrorResponse {
	c.t.Helper()
	return c.expectErrorOneOf(severity, code)
}

// expectErrorOneOf is expectError where any of codes will do.
func (c *rawConn) expectErrorOneOf(severity string, codes ...string) pgproto3.ErrorResponse {
	c.t.Helper()
	want := severity + " " + strings.Join(codes, " or ")
	m, err := c.fe.Receive()
	if err != nil {
		c.t.Fatalf("want ErrorResponse %s, got %v", want, err)
	}
	e, ok := m.(*pgproto3.ErrorResponse)
	if !ok {
		c.t.Fatalf("want ErrorResponse %s, got %T %+v", want, m, m)
	}
	got := *e
	if !slices.Contains(codes, got.Code) || got.Severity != severity || got.SeverityUnlocalized != severity {
		c.t.Fatalf("got ErrorResponse %s/%s %s %q, want %s", got.Severity, got.SeverityUnlocalized, got.Code, got.Message, want)
	}
	if severity == "FATAL" {
		c.expectClosed()
	}
	return got
}

// loginResult is what the proxy sent after AuthenticationOk.
type loginResult struct {
	types  []string // message types in order, as %T
	params map[string]string
	pid    uint32
	secret []byte
}

// finishLogin reads from AuthenticationOk (which must be next) to
// ReadyForQuery.
func (c *rawConn) finishLogin() loginResult {
	c.t.Helper()
	if m := c.receive(); fmt.Sprintf("%T", m) != "*pgproto3.AuthenticationOk" {
		c.t.Fatalf("got %T %+v, want AuthenticationOk", m, m)
	}
	return c.readToReady()
}

func (c *rawConn) readToReady() loginResult {
	c.t.Helper()
	r := loginResult{params: map[string]string{}}
	for {
		m := c.receive()
		r.types = append(r.types, fmt.Sprintf("%T", m))
		switch m := m.(type) {
		case *pgproto3.ParameterStatus:
			r.params[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			r.pid, r.secret = m.ProcessID, append([]byte(nil), m.SecretKey...)
		case *pgproto3.ReadyForQuery:
			if m.TxStatus != 'I' {
				c.t.Fatalf("first ReadyForQuery has status %q, want I", m.TxStatus)
			}
			return r
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("login failed: %s %s %s", m.Severity, m.Code, m.Message)
		case *pgproto3.NoticeResponse:
		default:
			c.t.Fatalf("unexpected %T %+v during login", m, m)
		}
	}
}

// rawResult is the outcome of a simple Query.
type rawResult struct {
	rows   [][]string
	tags   []string
	err    *pgproto3.ErrorResponse
	status byte
}

// query runs sql as a simple Query and reads to ReadyForQuery.
func (c *rawConn) query(sql string) rawResult {
	c.t.Helper()
	c.send(&pgproto3.Query{String: sql})
	return c.readResult()
}

func (c *rawConn) readResult() rawResult {
	c.t.Helper()
	var r rawResult
	for {
		switch m := c.receive().(type) {
		case *pgproto3.RowDescription, *pgproto3.EmptyQueryResponse, *pgproto3.NoticeResponse,
			*pgproto3.ParameterStatus, *pgproto3.ParseComplete, *pgproto3.BindComplete:
		case *pgproto3.DataRow:
			row := make([]string, len(m.Values))
			for i, v := range m.Values {
				row[i] = string(v)
			}
			r.rows = append(r.rows, row)
		case *pgproto3.CommandComplete:
			r.tags = append(r.tags, string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			e := *m
			r.err = &e
		case *pgproto3.ReadyForQuery:
			r.status = m.TxStatus
			return r
		default:
			c.t.Fatalf("unexpected %T %+v in a query result", m, m)
		}
	}
}

// queryOne runs sql, which must return one value and no error.
func (c *rawConn) queryOne(sql string) string {
	c.t.Helper()
	r := c.query(sql)
	if r.err != nil {
		c.t.Fatalf("%s: %s %s %s", sql, r.err.Severity, r.err.Code, r.err.Message)
	}
	if len(r.rows) != 1 || len(r.rows[0]) != 1 {
		c.t.Fatalf("%s: got rows %q, want one value", sql, r.rows)
	}
	return r.rows[0][0]
}

// loginTrust connects as trustuser to database app (backend user app),
// which needs no password exchange.
func loginTrust(t testing.TB, p *testProxy) *rawConn {
	t.Helper()
	c := dialRaw(t, p.addr)
	c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
	c.finishLogin()
	return c
}

// scram runs the client side of SCRAM-SHA-256 after AuthenticationSASL
// and checks the server's signature; AuthenticationOk is left unread.
func (c *rawConn) scram(password string) {
	c.t.Helper()
	nonce := make([]byte, 18)
	rand.Read(nonce)
	clientNonce := base64.StdEncoding.EncodeToString(nonce)
	first := "n=,r=" + clientNonce
	c.send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,," + first)})
	m := c.receive()
	cont, ok := m.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		c.t.Fatalf("got %T %+v, want AuthenticationSASLContinue", m, m)
	}
	serverFirst := string(cont.Data)
	var serverNonce, salt64 string
	var iters int
	for _, f := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			serverNonce = f[2:]
		case strings.HasPrefix(f, "s="):
			salt64 = f[2:]
		case strings.HasPrefix(f, "i="):
			fmt.Sscan(f[2:], &iters)
		}
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || !strings.HasPrefix(serverNonce, clientNonce) || iters <= 0 {
		c.t.Fatalf("bad server-first-message %q", serverFirst)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iters, 32)
	if err != nil {
		c.t.Fatal(err)
	}
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + serverNonce
	authMsg := first + "," + serverFirst + "," + withoutProof
	proof := mac(storedKey[:], authMsg)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.send(&pgproto3.SASLResponse{Data: []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))})
	m = c.receive()
	final, ok := m.(*pgproto3.AuthenticationSASLFinal)
	if !ok {
		if e, isErr := m.(*pgproto3.ErrorResponse); isErr {
			c.t.Fatalf("SCRAM failed: %s %s %s", e.Severity, e.Code, e.Message)
		}
		c.t.Fatalf("got %T %+v, want AuthenticationSASLFinal", m, m)
	}
	want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMsg))
	if string(final.Data) != want {
		c.t.Fatalf("server signature %q, want %q", final.Data, want)
	}
}

// expectSASL reads AuthenticationSASL offering SCRAM-SHA-256.
func (c *rawConn) expectSASL() {
	c.t.Helper()
	m := c.receive()
	sasl, ok := m.(*pgproto3.AuthenticationSASL)
	if !ok || len(sasl.AuthMechanisms) == 0 || sasl.AuthMechanisms[0] != "SCRAM-SHA-256" {
		c.t.Fatalf("got %T %+v, want AuthenticationSASL with SCRAM-SHA-256", m, m)
	}
}

// encRequest is an SSLRequest or GSSENCRequest packet.
func encRequest(code uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, 8)
	return binary.BigEndian.AppendUint32(b, code)
}

// waitBackendsClean waits until no backend of role app is running a query
// or sitting in a transaction, and fails the test if that takes over 5s.
func waitBackendsClean(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := backendStates(t, "app")
		if st["active"]+st["idle in transaction"]+st["idle in transaction (aborted)"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("backends of role app still busy 5s after the client left: %v", st)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkProxyServes logs in through the proxy as app (SCRAM) and runs a
// query, within 5s.
func checkProxyServes(t testing.TB, p *testProxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
	if err != nil {
		t.Fatalf("the proxy no longer serves clients: %v", err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT $1::int + 1", [][]byte{[]byte("41")}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "42" {
		t.Fatalf("query through the proxy: rows %q, err %v", res.Rows, res.Err)
	}
}

// pgconnQuery runs one query on conn and returns the first value.
func pgconnQuery(t testing.TB, conn *pgconn.PgConn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("%s: got %q, want one value", sql, res.Rows)
	}
	return string(res.Rows[0][0])
}

// wantPgError checks that err is a PostgreSQL error with this severity
// and SQLSTATE.
func wantPgError(t testing.TB, err error, severity, code string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want %s %s", err, severity, code)
	}
	if pe.Code != code || pe.Severity != severity {
		t.Fatalf("got %s %s %q, want %s %s", pe.Severity, pe.Code, pe.Message, severity, code)
	}
	return pe
}

// selfSignedTLS makes a server certificate for 127.0.0.1 and writes it, as
// PEM, to a file clients can trust.
func selfSignedTLS(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgshard test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, path
}

// runPsql runs psql with a connection string and returns its output.
func runPsql(t testing.TB, connStr, password string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", append([]string{connStr, "-X", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", connStr, err, out)
	}
	return string(out)
}

// TestStartupSSLRequestWithoutTLS: without TLS configured, SSLRequest is
// answered 'N' and the client goes on in the clear.
func TestStartupSSLRequestWithoutTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})

	c := dialRaw(t, p.addr)
	c.write(encRequest(codeSSLRequest))
	if b := c.readByte(); b != 'N' {
		t.Fatalf("SSLRequest answered %q, want 'N'", b)
	}
	c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
	c.finishLogin()
	if got := c.queryOne("SELECT 6 * 7"); got != "42" {
		t.Fatalf("got %q", got)
	}

	// Drivers: prefer falls back to the clear, require gives up.
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, strings.Replace(p.url("app", "app", "app"), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatalf("sslmode=prefer: %v", err)
	}
	if got := pgconnQuery(t, conn, "SELECT 1"); got != "1" {
		t.Fatalf("got %q", got)
	}
	conn.Close(ctx)
	if conn, err := pgconn.Connect(ctx, strings.Replace(p.url("app", "app", "app"), "sslmode=disable", "sslmode=require", 1)); err == nil {
		conn.Close(ctx)
		t.Fatal("sslmode=require connected to a proxy without TLS")
	}
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestStartupTLS: with Options.TLS set, SSLRequest is answered 'S', and
// SCRAM login and queries work over TLS, for pgconn, psql and a raw client.
func TestStartupTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	tlsConf, rootCert := selfSignedTLS(t)
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.TLS = tlsConf }})
	ctx := context.Background()

	// pgconn, sslmode=require and verify-full against the test's root.
	for _, mode := range []string{"sslmode=require", "sslmode=verify-full&sslrootcert=" + rootCert} {
		conn, err := pgconn.Connect(ctx, strings.Replace(p.url("app", "app", "app"), "sslmode=disable", mode, 1))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if _, ok := conn.Conn().(*tls.Conn); !ok {
			t.Errorf("%s: connection is %T, not TLS", mode, conn.Conn())
		}
		if got := pgconnQuery(t, conn, "SELECT current_user"); got != "app" {
			t.Errorf("current_user = %q", got)
		}
		conn.Close(ctx)
	}

	// By hand: 'S', handshake, then the whole session inside TLS.
	c := dialRaw(t, p.addr)
	c.write(encRequest(codeSSLRequest))
	if b := c.readByte(); b != 'S' {
		t.Fatalf("SSLRequest answered %q, want 'S'", b)
	}
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.fe = pgproto3.NewFrontend(tc, tc)
	c.startup(proto30, map[string]string{"user": "app", "database": "app"})
	c.expectSASL()
	c.scram("app")
	c.finishLogin()
	if got := c.queryOne("SELECT 'over tls'"); got != "over tls" {
		t.Fatalf("got %q", got)
	}

	// libpq.
	out := runPsql(t, fmt.Sprintf("host=%s port=%s user=app dbname=app sslmode=require", p.host, p.port), "app", "-c", `\conninfo`)
	if !strings.Contains(out, "SSL connection") {
		t.Errorf("psql sslmode=require: \\conninfo says %q, want an SSL connection", out)
	}
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestStartupBytesAfterEncryptionRequest: bytes that arrive with the
// SSLRequest (or GSSENCRequest), before the handshake, could have been
// injected by a man in the middle; they are refused with 08P01 and the
// connection closed, with TLS configured or not.
func TestStartupBytesAfterEncryptionRequest(t *testing.T) {
	checkNoGoroutineLeak(t)
	tlsConf, _ := selfSignedTLS(t)
	plain := startProxy(t, proxyConfig{})
	withTLS := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.TLS = tlsConf }})
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: proto30,
		Parameters: map[string]string{"user": "trustuser", "database": "app"}}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	query, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	for _, tc := range []struct {
		name  string
		p     *testProxy
		code  uint32
		extra []byte
	}{
		{"ssl/no-tls/startup", plain, codeSSLRequest, startup},
		{"ssl/tls/startup", withTLS, codeSSLRequest, startup},
		{"ssl/tls/startup+query", withTLS, codeSSLRequest, append(append([]byte(nil), startup...), query...)},
		{"ssl/tls/one-byte", withTLS, codeSSLRequest, []byte{0x16}},
		{"gssenc/startup", plain, codeGSSENCRequest, startup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tc.p.addr)
			c.write(append(encRequest(tc.code), tc.extra...))
			c.expectError("FATAL", "08P01")
			checkProxyServes(t, tc.p)
		})
	}
	waitBackendsClean(t)
}

// TestStartupGSSENCRequest: GSSENCRequest is answered 'N' and the client
// may go on with SSLRequest (as libpq does) and then log in.
func TestStartupGSSENCRequest(t *testing.T) {
	checkNoGoroutineLeak(t)
	tlsConf, _ := selfSignedTLS(t)
	plain := startProxy(t, proxyConfig{})
	withTLS := startProxy(t, proxyConfig{edit: func(o *proxy.Options) { o.TLS = tlsConf }})

	t.Run("raw", func(t *testing.T) {
		c := dialRaw(t, plain.addr)
		c.write(encRequest(codeGSSENCRequest))
		if b := c.readByte(); b != 'N' {
			t.Fatalf("GSSENCRequest answered %q, want 'N'", b)
		}
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
		c.finishLogin()
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("raw-then-ssl", func(t *testing.T) {
		c := dialRaw(t, plain.addr)
		c.write(encRequest(codeGSSENCRequest))
		if b := c.readByte(); b != 'N' {
			t.Fatalf("GSSENCRequest answered %q, want 'N'", b)
		}
		c.write(encRequest(codeSSLRequest))
		if b := c.readByte(); b != 'N' {
			t.Fatalf("SSLRequest after GSSENCRequest answered %q, want 'N'", b)
		}
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
		c.finishLogin()
		if got := c.queryOne("SELECT 2"); got != "2" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("raw-then-tls", func(t *testing.T) {
		c := dialRaw(t, withTLS.addr)
		c.write(encRequest(codeGSSENCRequest))
		if b := c.readByte(); b != 'N' {
			t.Fatalf("GSSENCRequest answered %q, want 'N'", b)
		}
		c.write(encRequest(codeSSLRequest))
		if b := c.readByte(); b != 'S' {
			t.Fatalf("SSLRequest after GSSENCRequest answered %q, want 'S'", b)
		}
		tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c.fe = pgproto3.NewFrontend(tc, tc)
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
		c.finishLogin()
		if got := c.queryOne("SELECT 3"); got != "3" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("psql", func(t *testing.T) {
		for _, p := range []*testProxy{plain, withTLS} {
			out := runPsql(t, fmt.Sprintf("host=%s port=%s user=app dbname=app gssencmode=prefer sslmode=prefer", p.host, p.port),
				"app", "-Atc", "SELECT 40 + 2")
			if strings.TrimSpace(out) != "42" {
				t.Errorf("psql printed %q, want 42", out)
			}
		}
	})
	checkProxyServes(t, plain)
	checkProxyServes(t, withTLS)
	waitBackendsClean(t)
}

// TestStartupNegotiateProtocolVersion: a client asking for 3.x (x > 0) or
// sending _pq_. options gets exactly one NegotiateProtocolVersion, before
// authentication, saying 3.0 and listing the options, and the session goes
// on in 3.0.
func TestStartupNegotiateProtocolVersion(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	for _, tc := range []struct {
		name    string
		version uint32
		options map[string]string // _pq_ options
		want    []string          // UnrecognizedOptions, sorted as sent
	}{
		{name: "3.2", version: proto32},
		{name: "3.9999-grease", version: protoGrease},
		{name: "3.0+_pq_.foo", version: proto30, options: map[string]string{"_pq_.foo": "bar"}, want: []string{"_pq_.foo"}},
		{name: "3.2+_pq_.foo", version: proto32, options: map[string]string{"_pq_.foo": "1"}, want: []string{"_pq_.foo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p.addr)
			params := map[string]string{"user": "app", "database": "app"}
			for k, v := range tc.options {
				params[k] = v
			}
			c.startup(tc.version, params)
			m := c.receive()
			npv, ok := m.(*pgproto3.NegotiateProtocolVersion)
			if !ok {
				t.Fatalf("first message %T %+v, want NegotiateProtocolVersion", m, m)
			}
			if npv.NewestMinorProtocol != 0 {
				t.Errorf("NegotiateProtocolVersion newest minor %d, want 0", npv.NewestMinorProtocol)
			}
			if fmt.Sprint(npv.UnrecognizedOptions) != fmt.Sprint(tc.want) && !(len(npv.UnrecognizedOptions) == 0 && len(tc.want) == 0) {
				t.Errorf("NegotiateProtocolVersion options %q, want %q", npv.UnrecognizedOptions, tc.want)
			}
			// Then the normal login, with no second NegotiateProtocolVersion.
			c.expectSASL()
			c.scram("app")
			lr := c.finishLogin()
			for _, typ := range lr.types {
				if typ == "*pgproto3.NegotiateProtocolVersion" {
					t.Errorf("a second NegotiateProtocolVersion after authentication: %v", lr.types)
				}
			}
			if len(lr.secret) != 4 {
				t.Errorf("BackendKeyData secret of %d bytes, want 4 (protocol 3.0)", len(lr.secret))
			}
			if got := c.queryOne("SELECT current_user || '@' || current_database()"); got != "app@app" {
				t.Errorf("got %q", got)
			}
			if r := c.query("SELECT 1; SELECT 2"); r.err != nil || len(r.rows) != 2 {
				t.Errorf("multi-statement query: rows %q, err %v", r.rows, r.err)
			}
		})
	}
	t.Run("pgconn-max_protocol_version=3.2", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgconn.Connect(ctx, p.url("app", "app", "app")+"&max_protocol_version=3.2")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if got := pgconnQuery(t, conn, "SELECT 7"); got != "7" {
			t.Fatalf("got %q", got)
		}
	})
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestStartupUnsupportedProtocol: major versions other than 3 are refused
// with FATAL 0A000, as PostgreSQL does.
func TestStartupUnsupportedProtocol(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	for _, v := range []uint32{2 << 16, 4 << 16, 1<<16 | 0, 0xffff<<16 | 0xffff} {
		t.Run(fmt.Sprintf("%d.%d", v>>16, v&0xffff), func(t *testing.T) {
			c := dialRaw(t, p.addr)
			c.startup(v, map[string]string{"user": "trustuser", "database": "app"})
			c.expectError("FATAL", "0A000")
			checkProxyServes(t, p)
		})
	}
	waitBackendsClean(t)
}

// TestStartupAuthMethods: SCRAM, md5 and trust users log in with pgconn,
// and reach the backend as the database's backend user.
func TestStartupAuthMethods(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	ctx := context.Background()
	for _, u := range []struct{ user, password string }{{"app", "app"}, {"md5user", "md5pass"}, {"trustuser", ""}} {
		t.Run(u.user, func(t *testing.T) {
			conn, err := pgconn.Connect(ctx, p.url(u.user, u.password, "app"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if got := pgconnQuery(t, conn, "SELECT current_user"); got != "app" {
				t.Errorf("backend current_user = %q, want app", got)
			}
		})
	}
	// md5 by hand, to see the method really is md5.
	c := dialRaw(t, p.addr)
	c.startup(proto30, map[string]string{"user": "md5user", "database": "app"})
	m := c.receive()
	md5req, ok := m.(*pgproto3.AuthenticationMD5Password)
	if !ok {
		t.Fatalf("md5user: got %T, want AuthenticationMD5Password", m)
	}
	c.send(&pgproto3.PasswordMessage{Password: md5Password("md5user", "md5pass", md5req.Salt)})
	c.finishLogin()
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestStartupAuthFailures: wrong passwords and unknown users get 28P01
// (unknown users only after a SCRAM exchange that looks like a real one),
// unknown databases 3D000, a startup packet without user 28000, and
// replication connections 0A000. All FATAL.
func TestStartupAuthFailures(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	ctx := context.Background()
	for _, tc := range []struct {
		name, url, code string
	}{
		{"scram-wrong-password", p.url("app", "wrong", "app"), "28P01"},
		{"md5-wrong-password", p.url("md5user", "wrong", "app"), "28P01"},
		{"unknown-user", p.url("nosuchuser", "whatever", "app"), "28P01"},
		{"unknown-database", p.url("app", "app", "nosuchdb"), "3D000"},
		{"replication=database", p.url("app", "app", "app") + "&replication=database", "0A000"},
		{"replication=true", p.url("app", "app", "app") + "&replication=true", "0A000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := pgconn.Connect(ctx, tc.url)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected")
			}
			wantPgError(t, err, "FATAL", tc.code)
			checkProxyServes(t, p)
		})
	}

	// An unknown user sees the same exchange as a known one with a wrong
	// password: SASL, a server-first-message with a salt that is stable per
	// name, then 28P01 with the same wording.
	exchange := func(user string) (serverFirst string, e pgproto3.ErrorResponse) {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"user": user, "database": "app"})
		c.expectSASL()
		c.send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abcdefghijklmnop")})
		m := c.receive()
		cont, ok := m.(*pgproto3.AuthenticationSASLContinue)
		if !ok {
			t.Fatalf("user %s: got %T %+v, want AuthenticationSASLContinue", user, m, m)
		}
		serverFirst = string(cont.Data)
		nonce := strings.TrimPrefix(strings.Split(serverFirst, ",")[0], "r=")
		c.send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))})
		return serverFirst, c.expectError("FATAL", "28P01")
	}
	salt := func(sf string) string { return strings.Split(sf, ",")[1] }
	known, knownErr := exchange("app")
	unknown1, unknownErr := exchange("nosuchuser")
	unknown2, _ := exchange("nosuchuser")
	if salt(unknown1) != salt(unknown2) {
		t.Errorf("mock salt for an unknown user changes between attempts (%s, %s): that tells it is unknown", salt(unknown1), salt(unknown2))
	}
	if !strings.Contains(known, ",i=") || !strings.Contains(unknown1, ",i=") || strings.Split(known, ",")[2] != strings.Split(unknown1, ",")[2] {
		t.Errorf("server-first-messages differ in shape: known %q, unknown %q", known, unknown1)
	}
	if strings.Replace(knownErr.Message, `"app"`, `"nosuchuser"`, 1) != unknownErr.Message {
		t.Errorf("messages differ: known user %q, unknown user %q", knownErr.Message, unknownErr.Message)
	}

	t.Run("no-user", func(t *testing.T) {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"database": "app"})
		c.expectError("FATAL", "28000")
		checkProxyServes(t, p)
	})
	t.Run("replication=false-is-fine", func(t *testing.T) {
		c := dialRaw(t, p.addr)
		c.startup(proto30, map[string]string{"user": "trustuser", "database": "app", "replication": "false"})
		c.finishLogin()
		if got := c.queryOne("SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	})
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestStartupParameters: application_name and options=-c ... in the
// startup packet are reported back and take effect on whatever backend
// the client's transactions run on, even with a pool of one backend
// shared with a client that asked for other values.
func TestStartupParameters(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{poolSize: 1})
	ctx := context.Background()
	if err := backend.Exec(ctx, "app", `
		CREATE SCHEMA IF NOT EXISTS startup_a AUTHORIZATION app;
		CREATE SCHEMA IF NOT EXISTS startup_b AUTHORIZATION app`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Exec(context.Background(), "app", "DROP SCHEMA IF EXISTS startup_a, startup_b") })

	// The same startup packet sent straight to PostgreSQL says what the
	// settings must look like.
	connect := func(url, app, schema, timeout string) *pgconn.PgConn {
		t.Helper()
		cfg, err := pgconn.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = app
		cfg.RuntimeParams["options"] = "-c search_path=" + schema + ",public -c statement_timeout=" + timeout
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		if got := conn.ParameterStatus("application_name"); got != app {
			t.Errorf("ParameterStatus application_name = %q, want %q", got, app)
		}
		return conn
	}
	queries := []string{"SHOW search_path", "SHOW statement_timeout", "SELECT current_setting('application_name')", "SELECT current_schema()"}
	type client struct {
		name       string
		conn, want *pgconn.PgConn
	}
	var clients []client
	for _, c := range []struct{ app, schema, timeout string }{{"client-a", "startup_a", "1234ms"}, {"client-b", "startup_b", "4321ms"}} {
		clients = append(clients, client{c.app,
			connect(p.url("app", "app", "app"), c.app, c.schema, c.timeout),
			connect(backend.URL("app", "app", "app"), c.app, c.schema, c.timeout)})
	}
	if got := pgconnQuery(t, clients[0].want, "SELECT current_schema()"); got != "startup_a" {
		t.Fatalf("direct to PostgreSQL, current_schema() = %q; the test is wrong", got)
	}
	for range 3 { // with one backend, the clients take turns on it
		for _, c := range clients {
			for _, q := range queries {
				if got, want := pgconnQuery(t, c.conn, q), pgconnQuery(t, c.want, q); got != want {
					t.Errorf("%s: %s = %q through pgshard, %q from PostgreSQL", c.name, q, got, want)
				}
			}
		}
	}

	// By hand: ParameterStatus application_name comes before ReadyForQuery.
	c := dialRaw(t, p.addr)
	c.startup(proto30, map[string]string{"user": "trustuser", "database": "app", "application_name": "raw client",
		"options": `-c search_path=startup_b`})
	lr := c.finishLogin()
	if got, ok := lr.params["application_name"]; !ok || got != "raw client" {
		t.Errorf("ParameterStatus application_name = %q (sent: %v), want %q", got, ok, "raw client")
	}
	if got := c.queryOne("SHOW search_path"); got != "startup_b" {
		t.Errorf("search_path = %q", got)
	}
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// md5Password is the PasswordMessage of md5 authentication.
func md5Password(user, password string, salt [4]byte) string {
	inner := fmt.Sprintf("%x", md5.Sum([]byte(password+user)))
	return "md5" + fmt.Sprintf("%x", md5.Sum(append([]byte(inner), salt[:]...)))
}
