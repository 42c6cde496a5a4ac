package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/proxy/auth"
)

const (
	sslRequestCode    = 80877103
	gssencRequestCode = 80877104
	cancelRequestCode = 80877102
	protocol30        = 3 << 16

	// maxStartupLen is PostgreSQL's limit on a startup packet.
	maxStartupLen = 10000
	// maxAuthLen bounds password and SASL messages.
	maxAuthLen = 8192

	// clientReadBufSize and clientWriteBufSize size each client's buffers.
	// Clients mostly send small messages (larger ones are read into the
	// session's own buffer, COPY data is relayed in pieces), while
	// results stream to them: the read side is the smaller, since every
	// idle client holds both.
	clientReadBufSize  = 4 << 10
	clientWriteBufSize = 8 << 10
)

var syscallEMFILE = syscall.EMFILE

// startup is what a client asked for in its StartupMessage.
type startup struct {
	params  map[string]string
	unknown []string // _pq_. options we do not support
	minor   uint32
}

// serveConn runs one client connection from its first byte to its close,
// then calls done. A client that logs in is served by a goroutine of its
// own, started after login: login's deep calls (authentication, TLS,
// logging) grow a goroutine's stack to several KiB, and a fresh one keeps
// what an idle client holds small.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, done func()) {
	id := s.nextID.Add(1)
	log := s.log.With("conn_id", id, "client", nc.RemoteAddr().String())
	overLimit := s.clients.Add(1) > int64(s.current().opts.MaxClientConn)
	handedOver := false
	defer func() {
		if !handedOver {
			nc.Close()
			s.clients.Add(-1)
			done()
		}
	}()

	nc.SetDeadline(time.Now().Add(s.current().opts.ClientLoginTimeout))
	counted := countBytes(nc)
	conn, br, st, err := s.negotiate(ctx, counted)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, errCancelHandled) {
			log.Debug("startup failed", "error", err)
			if pe := (*pgError)(nil); errors.As(err, &pe) {
				writeFatal(conn, err)
			}
		}
		return
	}
	sess, err := s.login(ctx, conn, br, st, overLimit)
	if errors.Is(err, errAdminDone) {
		return // an admin console session, run and ended by login
	}
	if err != nil {
		var pe *pgError
		if !errors.As(err, &pe) {
			log.Debug("client left during login", "error", err)
			return // the connection failed: nobody to tell
		}
		log.Info("login refused", "error", err)
		writeFatal(conn, err)
		return
	}
	counted.loggedIn(sess)
	nc.SetDeadline(time.Time{})
	sess.log.Info("client connected", "pool_mode", string(sess.mode))
	handedOver = true
	go func() {
		defer done()
		defer s.clients.Add(-1)
		defer nc.Close()
		s.runSession(sess)
	}()
}

// runSession serves a logged-in client until it leaves.
func (s *Server) runSession(sess *session) {
	defer sess.leaveUser()
	defer s.unregister(sess)
	defer sess.leaveDB()
	defer sess.close()
	err := sess.serve()
	switch {
	case err == nil, errors.Is(err, io.EOF):
		sess.log.Info("client disconnected")
	default:
		var pe *pgError
		if errors.As(err, &pe) {
			sess.wmu.Lock()
			sess.clientBuf().Write(appendErrorResponse(nil, err))
			sess.clientBuf().Flush()
			sess.wmu.Unlock()
		}
		sess.log.Info("client connection closed", "error", err)
	}
}

var errCancelHandled = errors.New("cancel request handled")

// sessionPool returns the backend credentials a session of user u on db
// uses and the pool its statements go to unless routed elsewhere.
func (s *Server) sessionPool(db *database, u *user, userName string) (string, string, *backendPool, error) {
	backendUser, backendPassword := db.BackendUser, db.BackendPassword
	if backendUser == "" {
		pw, ok := u.verifier.Plain()
		if !ok && u.Auth != AuthTrust {
			return "", "", nil, newFatal(codeInvalidAuthSpec, "database %q has no backend_user and the password of user %q is not plain text, so pgshard cannot log in to the backend", db.Name, userName)
		}
		backendUser, backendPassword = userName, pw
	}
	def := 0
	if db.rt != nil {
		def = db.rt.def
	}
	bp, err := s.pool(db, backendUser, backendPassword, def, 0)
	if err != nil {
		return "", "", nil, newFatal(codeConnectionFailure, "database %q: %v", db.Name, err)
	}
	return backendUser, backendPassword, bp, nil
}

// negotiate reads startup packets until a StartupMessage, answering
// SSLRequest and GSSENCRequest and serving CancelRequest.
func (s *Server) negotiate(ctx context.Context, nc net.Conn) (net.Conn, *bufio.Reader, *startup, error) {
	var conn net.Conn = nc
	br := bufio.NewReaderSize(nc, clientReadBufSize)
	secured := false
	for {
		pkt, err := readStartupPacket(br)
		if err != nil {
			return conn, nil, nil, err
		}
		code := binary.BigEndian.Uint32(pkt)
		switch code {
		case sslRequestCode, gssencRequestCode:
			if br.Buffered() > 0 {
				// Bytes sent before the handshake could have been injected
				// by a man in the middle; PostgreSQL refuses them too.
				return conn, nil, nil, newFatal(codeProtocolViolation, "received unencrypted data after SSL request")
			}
			if code == sslRequestCode && s.current().opts.TLS != nil && !secured {
				if _, err := conn.Write([]byte{'S'}); err != nil {
					return conn, nil, nil, err
				}
				tc := tls.Server(nc, s.current().opts.TLS)
				if err := tc.HandshakeContext(ctx); err != nil {
					return conn, nil, nil, fmt.Errorf("TLS handshake: %w", err)
				}
				conn, secured = tc, true
				br = bufio.NewReaderSize(tc, clientReadBufSize)
				continue
			}
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return conn, nil, nil, err
			}
		case cancelRequestCode:
			if len(pkt) < 12 || len(pkt) > 4+4+256 {
				return conn, nil, nil, io.EOF
			}
			k := cancelKey{pid: binary.BigEndian.Uint32(pkt[4:])}
			if len(pkt) == 12 {
				k.secret = binary.BigEndian.Uint32(pkt[8:])
				s.cancel(ctx, k)
			}
			return conn, nil, nil, errCancelHandled
		default:
			if code>>16 != 3 {
				return conn, nil, nil, newFatal(codeFeatureNotSupported,
					"unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", code>>16, code&0xffff)
			}
			st, err := parseStartup(pkt[4:])
			if err != nil {
				return conn, nil, nil, err
			}
			if !secured && s.current().opts.TLSRequired {
				return conn, nil, nil, &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec,
					Message: "pgshard accepts only TLS connections, and this one is not encrypted",
					Hint:    "Connect with sslmode=require (or verify-ca, verify-full); the server's tls.mode is require."}
			}
			st.minor = code & 0xffff
			return conn, br, st, nil
		}
	}
}

// readStartupPacket reads a length-prefixed packet without a type byte and
// returns it without the length.
func readStartupPacket(br *bufio.Reader) ([]byte, error) {
	h, err := br.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h))
	if n < 8 || n > maxStartupLen {
		return nil, newFatal(codeProtocolViolation, "invalid length of startup packet")
	}
	pkt := make([]byte, n)
	if _, err := io.ReadFull(br, pkt); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	return pkt[4:], nil
}

func parseStartup(b []byte) (*startup, error) {
	st := &startup{params: map[string]string{}}
	for {
		k, rest, ok := cstring(b)
		if !ok {
			return nil, newFatal(codeProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
		}
		if len(k) == 0 {
			if len(rest) != 0 {
				return nil, newFatal(codeProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
			}
			return st, nil
		}
		v, rest2, ok := cstring(rest)
		if !ok {
			return nil, newFatal(codeProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
		}
		if strings.HasPrefix(string(k), "_pq_.") {
			st.unknown = append(st.unknown, string(k))
		} else {
			st.params[string(k)] = string(v)
		}
		b = rest2
	}
}

// login authenticates the client, sets up its session and sends the
// messages that end the startup phase.
func (s *Server) login(ctx context.Context, conn net.Conn, br *bufio.Reader, st *startup, overLimit bool) (*session, error) {
	cw := bufio.NewWriterSize(conn, clientWriteBufSize)
	if st.minor > 0 || len(st.unknown) > 0 {
		// Protocol 3.x for x > 0 and _pq_ options: say what we speak, once.
		b := appendHeader(nil, 'v', 8+lenStrings(st.unknown))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(st.unknown)))
		for _, o := range st.unknown {
			b = append(append(b, o...), 0)
		}
		cw.Write(b)
	}
	userName := st.params["user"]
	if userName == "" {
		return nil, newFatal(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet")
	}
	dbName := st.params["database"]
	if dbName == "" {
		dbName = userName
	}
	if r := st.params["replication"]; r != "" && !slices.Contains([]string{"false", "off", "no", "0"}, strings.ToLower(r)) {
		return nil, newFatal(codeFeatureNotSupported, "replication connections are not supported by pgshard")
	}
	if overLimit {
		return nil, &pgError{Severity: "FATAL", Code: codeTooManyConnections, Message: "sorry, too many clients already",
			Hint: fmt.Sprintf("pgshard accepts at most %d client connections (max_client_conn).", s.current().opts.MaxClientConn)}
	}
	// Authenticate first, as PostgreSQL does, so database names cannot be
	// probed without a password.
	conf := s.current()
	u := conf.users[userName]
	if err := s.authenticate(cw, br, u, userName); err != nil {
		return nil, err
	}
	leave, err := s.admitUser(u)
	if err != nil {
		return nil, err
	}
	admitted := false
	defer func() {
		if !admitted {
			leave()
		}
	}()
	if dbName == adminDatabase {
		return nil, s.serveAdmin(ctx, conn, br, cw, u, st)
	}
	db := conf.dbs[dbName]
	if db == nil {
		return nil, newFatal(codeInvalidCatalog, "database %q does not exist", dbName)
	}
	backendUser, backendPassword, bp, err := s.sessionPool(db, u, userName)
	if err != nil {
		return nil, err
	}
	sess := &session{
		srv:       s,
		id:        s.nextToken(),
		nc:        conn,
		cr:        br,
		cw:        cw,
		db:        db,
		pool:      bp,
		rt:        db.rt,
		buser:     backendUser,
		bpass:     backendPassword,
		user:      userName,
		mode:      s.opts.PoolMode,
		ctx:       ctx,
		connected: time.Now(),
		stmts:     map[string]*clientStmt{},
		startup:   startupSettings(st.params),
		met:       s.newSessMetrics(db),
		leaveUser: leave,
	}
	sess.params = maps.Clone(sess.startup)
	sess.txStatus = 'I'
	sess.log = s.log.With("conn_id", sess.id, "user", userName, "database", dbName, "client", conn.RemoteAddr().String())

	// Learn the server's parameters, and check it is up, before saying
	// the client is in. In session mode the client keeps this backend.
	var pid uint32
	if sess.mode == PoolSession {
		c, err := sess.attachAtLogin()
		if err != nil {
			return nil, err
		}
		pid = c.pid
	} else if bp.params.Load() == nil {
		// One login at a time learns them; the others wait for it, not
		// for a backend.
		select {
		case bp.learning <- struct{}{}:
		case <-ctx.Done():
			return nil, newFatal(codeAdminShutdown, "pgshard is shutting down")
		case <-time.After(s.current().opts.ClientLoginTimeout):
			return nil, newFatal(codeConnectionFailure, "timed out waiting for server %s to accept a connection", bp.addr)
		}
		var err error
		if bp.params.Load() == nil {
			_, err = sess.attachAtLogin()
		}
		<-bp.learning
		if err != nil {
			return nil, err
		}
	}
	s.register(sess, pid)

	// A backend reader may be flushing this writer already (replies to the
	// settings sent to the backend above): write under the session's lock.
	sess.wmu.Lock()
	server := *bp.params.Load()
	for _, name := range slices.Sorted(maps.Keys(server)) {
		v := server[name]
		for k, cv := range st.params {
			if strings.EqualFold(k, name) {
				v = cv
			}
		}
		cw.Write(appendParameterStatus(nil, name, v))
	}
	if _, ok := server["application_name"]; !ok {
		cw.Write(appendParameterStatus(nil, "application_name", st.params["application_name"]))
	}
	b := appendHeader(nil, 'K', 8)
	b = binary.BigEndian.AppendUint32(b, sess.key.pid)
	b = binary.BigEndian.AppendUint32(b, sess.key.secret)
	cw.Write(b)
	cw.Write(appendReadyForQuery(nil, 'I'))
	err = cw.Flush()
	sess.wmu.Unlock()
	if err != nil {
		// The client left at the last moment: give back what it holds.
		s.unregister(sess)
		sess.close()
		return nil, err
	}
	sess.db.sessions.Add(1) // until leaveDB
	admitted = true
	return sess, nil
}

// attachAtLogin attaches a backend during login: kept in session mode,
// given back at once otherwise (it was needed only to learn the server's
// parameters and that it is up).
func (s *session) attachAtLogin() (*serverConn, error) {
	c, err := s.attach()
	if err != nil {
		pe := toPgError(err)
		pe.Severity = "FATAL"
		return nil, pe
	}
	if s.mode != PoolSession {
		s.mu.Lock()
		s.releasePending = true
		s.mu.Unlock()
	}
	s.endBatch()
	return c, nil
}

// startupSettings turns startup parameters (and -c options) into the SET
// statements that apply them on a backend, by setting name.
func startupSettings(params map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		switch k {
		case "user", "database", "replication":
			continue
		case "options":
			for name, val := range parseOptions(v) {
				out[strings.ToLower(name)] = setStatement(name, val)
			}
			continue
		}
		out[strings.ToLower(k)] = setStatement(k, v)
	}
	return out
}

// setStatement applies a startup parameter the way PostgreSQL reads one
// from the startup packet: set_config parses the value as the setting's
// own syntax (so "search_path=a,b" is a list, not one quoted name).
func setStatement(name, value string) string {
	return "SELECT pg_catalog.set_config(" + quoteLiteral(strings.ToLower(name)) + ", " + quoteLiteral(value) + ", false)"
}

func quoteLiteral(s string) string {
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `''`) + `'`
	}
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// parseOptions reads "-c name=value" and "--name=value" switches from the
// startup options parameter; backslash escapes a space.
func parseOptions(s string) map[string]string {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inArg = true
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" && i+1 < len(args):
			i++
			a = args[i]
		case strings.HasPrefix(a, "-c"):
			a = a[2:]
		case strings.HasPrefix(a, "--"):
			a = a[2:]
		default:
			continue
		}
		if name, val, ok := strings.Cut(a, "="); ok {
			out[strings.ReplaceAll(name, "-", "_")] = val
		}
	}
	return out
}

func lenStrings(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s) + 1
	}
	return n
}

// authenticate runs the configured password exchange. An unknown user goes
// through a mock SCRAM exchange that fails at the end, so user names cannot
// be probed.
func (s *Server) authenticate(cw *bufio.Writer, br *bufio.Reader, u *user, name string) error {
	failed := &pgError{Severity: "FATAL", Code: codeInvalidPassword, Message: fmt.Sprintf("password authentication failed for user %q", name)}
	method := AuthSCRAM
	if u != nil {
		method = u.Auth
	}
	switch method {
	case AuthTrust:
	case AuthMD5:
		salt := auth.NewMD5Salt()
		b := appendHeader(nil, 'R', 8)
		b = binary.BigEndian.AppendUint32(b, 5)
		cw.Write(append(b, salt[:]...))
		resp, err := readAuthMessage(cw, br)
		if err != nil {
			return err
		}
		if !auth.CheckMD5(u.verifier, u.verifier.CanMD5(), salt, resp) {
			return failed
		}
	default:
		// Unknown users (and users without a SCRAM secret) get a mock
		// exchange with a salt that is stable per name, as PostgreSQL does.
		v, ok := auth.MockVerifier(name), false
		if u != nil && u.verifier.CanSCRAM() {
			v, ok = u.verifier, true
		}
		ss := auth.NewSCRAMServer(v, ok)
		mech := "SCRAM-SHA-256"
		b := appendHeader(nil, 'R', 4+len(mech)+2)
		b = binary.BigEndian.AppendUint32(b, 10)
		b = append(append(b, mech...), 0, 0)
		cw.Write(b)
		resp, err := readAuthMessage(cw, br)
		if err != nil {
			return err
		}
		got, rest, okName := cstring(resp)
		if !okName || len(rest) < 4 {
			return newFatal(codeProtocolViolation, "malformed SASLInitialResponse message")
		}
		if string(got) != mech {
			return newFatal(codeProtocolViolation, "client selected an invalid SASL authentication mechanism")
		}
		data := rest[4:]
		if n := int32(binary.BigEndian.Uint32(rest)); n != int32(len(data)) {
			return newFatal(codeProtocolViolation, "malformed SASLInitialResponse message")
		}
		first, err := ss.ClientFirst(data)
		if err != nil {
			return scramError(err, failed)
		}
		b = appendHeader(nil, 'R', 4+len(first))
		b = binary.BigEndian.AppendUint32(b, 11)
		cw.Write(append(b, first...))
		resp, err = readAuthMessage(cw, br)
		if err != nil {
			return err
		}
		final, err := ss.ClientFinal(resp)
		if err != nil {
			return scramError(err, failed)
		}
		b = appendHeader(nil, 'R', 4+len(final))
		b = binary.BigEndian.AppendUint32(b, 12)
		cw.Write(append(b, final...))
	}
	b := appendHeader(nil, 'R', 4)
	cw.Write(binary.BigEndian.AppendUint32(b, 0))
	return nil
}

func scramError(err, failed error) error {
	if errors.Is(err, auth.ErrAuthFailed) {
		return failed
	}
	return &pgError{Severity: "FATAL", Code: codeProtocolViolation, Message: "malformed SCRAM message", err: err}
}

// readAuthMessage flushes what the server said and reads the client's
// PasswordMessage (or SASL response) body.
func readAuthMessage(cw *bufio.Writer, br *bufio.Reader) ([]byte, error) {
	if err := cw.Flush(); err != nil {
		return nil, err
	}
	typ, n, err := peekHeader(br)
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, newFatal(codeProtocolViolation, "expected password response, got message type %q", typ)
	}
	if n < 0 || n > maxAuthLen {
		return nil, newFatal(codeProtocolViolation, "invalid password packet size")
	}
	br.Discard(headerLen)
	return readFull(br, nil, n)
}
