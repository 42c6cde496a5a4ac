package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// ErrAuthFailed is returned when the client's proof is wrong, and at the end
// of every mock exchange (unknown user, no SCRAM secret). Callers report it
// as SQLSTATE 28P01.
var ErrAuthFailed = errors.New("password authentication failed")

// ErrProtocol is wrapped by every error caused by a malformed or out-of-order
// SCRAM message. Callers report it as SQLSTATE 08P01.
var ErrProtocol = errors.New("SCRAM protocol violation")

// ErrUnsupported is wrapped, together with ErrProtocol, by the errors for
// SCRAM features the client asks for and pgshard does not offer: channel
// binding, an authorization identity, mandatory extensions. PostgreSQL reports
// these as SQLSTATE 0A000; a caller that checks ErrUnsupported before
// ErrProtocol can do the same.
var ErrUnsupported = errors.New("not supported")

// ErrInvalidVerifier is wrapped by the errors of ParseVerifier.
var ErrInvalidVerifier = errors.New("invalid password verifier")

// SCRAMMechanism is the only SASL mechanism pgshard offers, to be listed in
// AuthenticationSASL and matched against SASLInitialResponse. The channel
// binding variant SCRAM-SHA-256-PLUS is not offered.
const SCRAMMechanism = "SCRAM-SHA-256"

const (
	scramPrefix     = "SCRAM-SHA-256$"
	scramIterations = 4096 // PostgreSQL's default scram_iterations
	scramSaltLen    = 16   // PostgreSQL's SCRAM_DEFAULT_SALT_LEN
	scramNonceLen   = 18   // PostgreSQL's SCRAM_RAW_NONCE_LEN
	scramKeyLen     = sha256.Size
	md5Prefix       = "md5"
	md5HexLen       = 2 * md5.Size
)

// Kind is the form a configured password is stored in.
type Kind int

const (
	// Plain is a clear-text password; it can serve SCRAM, md5 and backend login.
	Plain Kind = iota
	// MD5 is "md5" followed by 32 hex digits of md5(password || user).
	MD5
	// SCRAM is "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>".
	SCRAM
)

// Verifier is what the proxy knows of one user's password. It is immutable
// and safe for concurrent use. The zero Verifier knows no password: Plain
// reports false and it can serve neither SCRAM nor md5.
//
// Printing a Verifier with the fmt package shows its Kind only, never the
// secret.
type Verifier struct {
	kind  Kind
	user  string
	plain string
	// md5 is the 32 lowercase hex digits of md5(password || user), or "".
	md5 string
	// scram is nil when the password cannot serve SCRAM.
	scram *scramKeys
}

// scramKeys is what a SCRAM exchange needs of a password. It is never
// modified after it is built.
type scramKeys struct {
	salt       []byte
	iterations int
	storedKey  [scramKeyLen]byte
	serverKey  [scramKeyLen]byte
	// mock keys come from MockVerifier: no password matches them.
	mock bool
}

// ParseVerifier recognises the three password forms. user is needed to derive
// an md5 verifier from a plain password.
//
// A password that starts with "SCRAM-SHA-256$" must be a well-formed SCRAM
// verifier. One that starts with "md5" and is followed by exactly 32
// characters, or by nothing but hex digits, must be a well-formed md5
// verifier. Anything else is plain text, which must not be empty (PostgreSQL
// treats an empty password as none). Errors wrap ErrInvalidVerifier and
// never contain the password.
//
// For a plain password ParseVerifier derives a SCRAM secret with a fresh
// random salt and 4096 iterations, as CREATE ROLE would. PostgreSQL applies
// SASLprep (RFC 4013) to the password first and falls back to the raw bytes
// when that fails; ParseVerifier always uses the raw bytes. The two agree for
// every ASCII password and for Unicode passwords already in NFKC form without
// special spaces or ignorable characters. For other Unicode passwords, clients
// that apply SASLprep (libpq, pgx) fail SCRAM against a plain password:
// configure the verifier PostgreSQL stores in pg_authid instead.
func ParseVerifier(user, password string) (Verifier, error) {
	switch {
	case strings.HasPrefix(password, scramPrefix):
		keys, err := parseSCRAM(password[len(scramPrefix):])
		if err != nil {
			return Verifier{}, fmt.Errorf("%w: malformed SCRAM-SHA-256 verifier: %s", ErrInvalidVerifier, err)
		}
		return Verifier{kind: SCRAM, user: user, scram: keys}, nil
	case looksLikeMD5(password):
		h := password[len(md5Prefix):]
		if len(h) != md5HexLen || !isLowerHex(h) {
			return Verifier{}, fmt.Errorf("%w: malformed md5 verifier: want md5 followed by %d lowercase hex digits", ErrInvalidVerifier, md5HexLen)
		}
		return Verifier{kind: MD5, user: user, md5: h}, nil
	case password == "":
		return Verifier{}, fmt.Errorf("%w: empty password", ErrInvalidVerifier)
	}
	salt := make([]byte, scramSaltLen)
	_, _ = rand.Read(salt) // never fails since Go 1.24
	keys, err := deriveSCRAM(password, salt, scramIterations)
	if err != nil {
		return Verifier{}, fmt.Errorf("%w: deriving SCRAM secret: %w", ErrInvalidVerifier, err)
	}
	return Verifier{kind: Plain, user: user, plain: password, md5: md5Hex(password + user), scram: keys}, nil
}

// MockVerifier returns a Verifier for a user name that does not exist. It
// matches no password, but a SCRAM exchange run with it (through
// NewSCRAMServer with ok false) shows a salt that depends only on the name
// and stays the same for the life of the process, like the salt of a real
// user. Without it, a client that logs in twice as an unknown user would see
// two different salts and learn that the user does not exist.
//
// Its Kind is SCRAM; CanSCRAM and CanMD5 report false. It is safe for
// concurrent use.
func MockVerifier(user string) Verifier {
	return Verifier{kind: SCRAM, user: user, scram: mockKeys(user)}
}

// Kind reports the form the password was configured in.
func (v Verifier) Kind() Kind { return v.kind }

// Plain returns the clear-text password and true, or "" and false when only a
// verifier is known.
func (v Verifier) Plain() (string, bool) { return v.plain, v.kind == Plain && v.plain != "" }

// CanSCRAM reports whether a client can pass a SCRAM-SHA-256 exchange against
// v: true for a plain password or a SCRAM verifier.
func (v Verifier) CanSCRAM() bool { return v.scram != nil && !v.scram.mock }

// CanMD5 reports whether a client can pass md5 authentication against v:
// true for a plain password or an md5 verifier.
func (v Verifier) CanMD5() bool { return v.md5 != "" }

// String describes v without its secret, so that a Verifier printed with
// %v or %+v (in a config dump, say) gives nothing away.
func (v Verifier) String() string {
	switch {
	case v.scram != nil && v.scram.mock:
		return "auth.Verifier(mock)"
	case !v.CanSCRAM() && !v.CanMD5():
		return "auth.Verifier(none)"
	}
	switch v.kind {
	case Plain:
		return "auth.Verifier(plain, redacted)"
	case MD5:
		return "auth.Verifier(md5, redacted)"
	default:
		return "auth.Verifier(scram-sha-256, redacted)"
	}
}

// GoString is String, so that %#v redacts too.
func (v Verifier) GoString() string { return v.String() }

// parseSCRAM parses "<iterations>:<salt>$<StoredKey>:<ServerKey>", the part
// of a SCRAM verifier after "SCRAM-SHA-256$". Its errors name the faulty
// field and never quote the input.
func parseSCRAM(s string) (*scramKeys, error) {
	params, keys, ok := strings.Cut(s, "$")
	if !ok {
		return nil, errors.New(`missing "$" between salt and keys`)
	}
	iterStr, saltStr, ok := strings.Cut(params, ":")
	if !ok {
		return nil, errors.New(`missing ":" between iteration count and salt`)
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return nil, errors.New(`missing ":" between StoredKey and ServerKey`)
	}
	iter, err := strconv.ParseInt(iterStr, 10, 32)
	if err != nil || iter < 1 {
		return nil, errors.New("iteration count is not a positive 32-bit integer")
	}
	salt, err := base64.StdEncoding.DecodeString(saltStr)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("salt is not non-empty base64")
	}
	k := &scramKeys{salt: salt, iterations: int(iter)}
	if !decodeKey(k.storedKey[:], storedStr) {
		return nil, fmt.Errorf("StoredKey is not %d bytes of base64", scramKeyLen)
	}
	if !decodeKey(k.serverKey[:], serverStr) {
		return nil, fmt.Errorf("ServerKey is not %d bytes of base64", scramKeyLen)
	}
	return k, nil
}

// decodeKey decodes base64 s into dst and reports whether it held exactly
// len(dst) bytes.
func decodeKey(dst []byte, s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(dst) {
		return false
	}
	copy(dst, b)
	return true
}

// deriveSCRAM computes the SCRAM secret of a password, as
// scram_build_secret does in PostgreSQL (without SASLprep).
func deriveSCRAM(password string, salt []byte, iterations int) (*scramKeys, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, scramKeyLen)
	if err != nil {
		return nil, err
	}
	k := &scramKeys{salt: salt, iterations: iterations}
	clientKey := hmacSHA256(salted, "Client Key")
	k.storedKey = sha256.Sum256(clientKey)
	copy(k.serverKey[:], hmacSHA256(salted, "Server Key"))
	return k, nil
}

// mockSecret keys the mock salts; it lives as long as the process.
var mockSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return b
})

// mockKeys returns SCRAM keys for a user that does not exist: a salt that is
// stable for the name, and keys no client can know.
func mockKeys(user string) *scramKeys {
	secret := mockSecret()
	k := &scramKeys{
		salt:       hmacSHA256(secret, "salt\x00"+user)[:scramSaltLen],
		iterations: scramIterations,
		mock:       true,
	}
	copy(k.storedKey[:], hmacSHA256(secret, "StoredKey\x00"+user))
	copy(k.serverKey[:], hmacSHA256(secret, "ServerKey\x00"+user))
	return k
}

// looksLikeMD5 reports whether a password is meant as an md5 verifier, so
// that a broken one is an error rather than a plain-text password.
func looksLikeMD5(s string) bool {
	h, ok := strings.CutPrefix(s, md5Prefix)
	if !ok || h == "" {
		return false
	}
	if len(h) == md5HexLen {
		return true
	}
	for i := 0; i < len(h); i++ {
		if !isHexDigit(h[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// NewMD5Salt returns a random salt for AuthenticationMD5Password. It is safe
// for concurrent use.
func NewMD5Salt() [4]byte {
	var salt [4]byte
	_, _ = rand.Read(salt[:]) // never fails since Go 1.24
	return salt
}

// CheckMD5 reports whether response, the body of the client's PasswordMessage
// (with or without its terminating NUL), answers the md5 challenge salt for
// v: "md5" followed by the hex digits of md5(hex(md5(password || user)) ||
// salt). It reports false when ok is false (the user does not exist) or v
// cannot serve md5, taking about as long as for a real user. The comparison
// is constant-time. It is safe for concurrent use.
func CheckMD5(v Verifier, ok bool, salt [4]byte, response []byte) bool {
	if n := len(response); n > 0 && response[n-1] == 0 {
		response = response[:n-1]
	}
	secret := v.md5
	usable := ok && v.CanMD5()
	if !usable {
		secret = strings.Repeat("0", md5HexLen)
	}
	sum := md5.Sum(append([]byte(secret), salt[:]...))
	want := make([]byte, 0, len(md5Prefix)+md5HexLen)
	want = append(want, md5Prefix...)
	want = hex.AppendEncode(want, sum[:])
	match := subtle.ConstantTimeCompare(response, want) == 1
	return match && usable
}

// scramState is where a SCRAMServer is in the exchange.
type scramState int

const (
	scramWantFirst scramState = iota // waiting for client-first-message
	scramWantFinal                   // waiting for client-final-message
	scramDone                        // finished, successfully or not
)

// SCRAMServer is the server side of one SCRAM-SHA-256 exchange, as
// PostgreSQL runs it: the caller passes ClientFirst the data of the
// client's SASLInitialResponse and sends back the result in
// AuthenticationSASLContinue, then passes ClientFinal the data of the
// SASLResponse and, on success, sends the result in AuthenticationSASLFinal
// followed by AuthenticationOk.
//
// Every error ends the exchange; later calls fail with ErrProtocol. A
// SCRAMServer belongs to the goroutine of the session that created it and is
// not safe for concurrent use. It copies what it keeps of its input, so the
// caller may reuse its buffers.
type SCRAMServer struct {
	state scramState
	keys  *scramKeys
	// doomed exchanges run to the end and then fail with ErrAuthFailed.
	doomed bool
	rand   io.Reader

	gs2Header       string // "n,," or "y,,"
	clientFirstBare string
	serverFirst     string
	nonce           string // client nonce followed by server nonce
}

// NewSCRAMServer starts a SCRAM exchange for a user whose password is v. When
// ok is false (no such user) or v cannot serve SCRAM (an md5 verifier), it
// runs a mock exchange that looks like a real one to the client and fails at
// the end with ErrAuthFailed, so that a client cannot tell which users exist
// or how their passwords are stored.
//
// The mock uses v's salt when v has one: pass MockVerifier(user) for an
// unknown user to keep the salt stable across attempts, as PostgreSQL does.
// An md5 verifier gets MockVerifier's salt for its user. With the zero
// Verifier the mock salt is random for each exchange.
func NewSCRAMServer(v Verifier, ok bool) *SCRAMServer {
	return newSCRAMServer(v, ok, rand.Reader)
}

// newSCRAMServer is NewSCRAMServer reading nonces and mock salts from r.
func newSCRAMServer(v Verifier, ok bool, r io.Reader) *SCRAMServer {
	s := &SCRAMServer{rand: r}
	switch {
	case ok && v.CanSCRAM():
		s.keys = v.scram
	case v.scram != nil:
		s.keys, s.doomed = v.scram, true
	case v.kind == MD5:
		s.keys, s.doomed = mockKeys(v.user), true
	default:
		// keys are made up in ClientFirst, where a failure to read random
		// bytes can be returned.
		s.doomed = true
	}
	return s
}

// protocolErr returns an error wrapping ErrProtocol.
func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// unsupportedErr returns an error wrapping ErrProtocol and ErrUnsupported.
func unsupportedErr(what string) error {
	return fmt.Errorf("%w: %w: %s", ErrProtocol, ErrUnsupported, what)
}

// ClientFirst takes the client-first-message (the data of SASLInitialResponse)
// and returns the server-first-message to send in AuthenticationSASLContinue.
//
// It accepts the GS2 header "n,," or "y,," (the client could bind the channel
// but sees no SCRAM-SHA-256-PLUS offered); a header asking for channel
// binding, an authorization identity or a mandatory extension is refused with
// an error wrapping ErrUnsupported and ErrProtocol. The user name in "n=" is
// ignored, as in PostgreSQL: the startup packet's user is the one that counts.
// Other malformed messages give errors wrapping ErrProtocol.
func (s *SCRAMServer) ClientFirst(msg []byte) (serverFirst []byte, err error) {
	if s == nil {
		return nil, protocolErr("no SCRAM exchange in progress")
	}
	if s.state != scramWantFirst {
		s.state = scramDone
		return nil, protocolErr("unexpected client-first-message")
	}
	s.state = scramDone // until the exchange is known to go on
	if err := checkMessage(msg); err != nil {
		return nil, err
	}
	in := string(msg)

	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	switch in[0] {
	case 'n', 'y':
	case 'p':
		return nil, unsupportedErr("client requires channel binding (SCRAM-SHA-256-PLUS), which is not offered")
	default:
		return nil, protocolErr("unexpected channel-binding flag %s", sanitize(in[0]))
	}
	if len(in) < 2 || in[1] != ',' {
		return nil, protocolErr("comma expected after the channel-binding flag")
	}
	if len(in) > 2 && in[2] == 'a' {
		return nil, unsupportedErr("client uses an authorization identity")
	}
	if len(in) < 3 || in[2] != ',' {
		return nil, protocolErr("comma expected after the GS2 header")
	}
	gs2Header, bare := in[:3], in[3:]

	// client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
	if strings.HasPrefix(bare, "m") {
		return nil, unsupportedErr("client requires a SCRAM extension")
	}
	fields := strings.Split(bare, ",")
	if _, err := attrValue(fields[0], 'n'); err != nil {
		return nil, err
	}
	if len(fields) < 2 {
		return nil, protocolErr(`expected attribute "r" after "n" in client-first-message`)
	}
	clientNonce, err := attrValue(fields[1], 'r')
	if err != nil {
		return nil, err
	}
	if clientNonce == "" || !isPrintable(clientNonce) {
		return nil, protocolErr("client nonce is empty or has characters that are not printable ASCII")
	}
	for _, f := range fields[2:] {
		if _, _, err := anyAttr(f); err != nil {
			return nil, err
		}
	}

	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.keys == nil {
		salt := make([]byte, scramSaltLen)
		if _, err := io.ReadFull(s.rand, salt); err != nil {
			return nil, fmt.Errorf("auth: reading random salt: %w", err)
		}
		s.keys = &scramKeys{salt: salt, iterations: scramIterations, mock: true}
		s.doomed = true
	}
	raw := make([]byte, scramNonceLen)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, fmt.Errorf("auth: reading random nonce: %w", err)
	}

	s.gs2Header = gs2Header
	s.clientFirstBare = bare
	s.nonce = clientNonce + base64.StdEncoding.EncodeToString(raw)
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(s.keys.salt) +
		",i=" + strconv.Itoa(s.keys.iterations)
	s.state = scramWantFinal
	return []byte(s.serverFirst), nil
}

// ClientFinal takes the client-final-message (the data of SASLResponse) and,
// when the client's proof is right, returns the server-final-message
// ("v=<ServerSignature>") to send in AuthenticationSASLFinal.
//
// A wrong proof, and every mock exchange, gives ErrAuthFailed. A message that
// is malformed, whose channel binding does not repeat the GS2 header of the
// first message, or whose nonce is not the one agreed gives an error wrapping
// ErrProtocol, as does a call before ClientFirst or after the exchange ended.
func (s *SCRAMServer) ClientFinal(msg []byte) (serverFinal []byte, err error) {
	if s == nil {
		return nil, protocolErr("no SCRAM exchange in progress")
	}
	if s.state != scramWantFinal {
		s.state = scramDone
		return nil, protocolErr("unexpected client-final-message")
	}
	s.state = scramDone
	if err := checkMessage(msg); err != nil {
		return nil, err
	}
	in := string(msg)

	// client-final-message = channel-binding "," nonce ["," extensions] "," proof
	fields := strings.Split(in, ",")
	cbind, err := attrValue(fields[0], 'c')
	if err != nil {
		return nil, err
	}
	if cbind != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return nil, protocolErr("channel-binding data does not match the GS2 header of client-first-message")
	}
	if len(fields) < 2 {
		return nil, protocolErr(`expected attribute "r" after "c" in client-final-message`)
	}
	nonce, err := attrValue(fields[1], 'r')
	if err != nil {
		return nil, err
	}
	if nonce != s.nonce {
		return nil, protocolErr("nonce does not match")
	}
	var proofB64 string
	found := false
	for i, f := range fields[2:] {
		attr, value, err := anyAttr(f)
		if err != nil {
			return nil, err
		}
		if attr == 'p' {
			if i != len(fields)-3 {
				return nil, protocolErr("garbage after the proof in client-final-message")
			}
			proofB64, found = value, true
		}
	}
	if !found {
		return nil, protocolErr("client-final-message has no proof")
	}
	var proof [scramKeyLen]byte
	if !decodeKey(proof[:], proofB64) {
		return nil, protocolErr("proof is not %d bytes of base64", scramKeyLen)
	}
	withoutProof := in[:len(in)-len(",p=")-len(proofB64)]

	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientKey := hmacSHA256(s.keys.storedKey[:], authMessage)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	storedKey := sha256.Sum256(clientKey)
	match := subtle.ConstantTimeCompare(storedKey[:], s.keys.storedKey[:]) == 1
	if !match || s.doomed || s.keys.mock {
		return nil, ErrAuthFailed
	}
	sig := hmacSHA256(s.keys.serverKey[:], authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(sig)), nil
}

// checkMessage rejects what no SCRAM message may be: empty, or holding a NUL
// (PostgreSQL reads them as C strings).
func checkMessage(msg []byte) error {
	if len(msg) == 0 {
		return protocolErr("empty message")
	}
	for _, c := range msg {
		if c == 0 {
			return protocolErr("message contains a NUL byte")
		}
	}
	return nil
}

// attrValue returns the value of field, which must be attr "=" value.
func attrValue(field string, attr byte) (string, error) {
	if len(field) < 2 || field[0] != attr || field[1] != '=' {
		return "", protocolErr("expected attribute %q", attr)
	}
	return field[2:], nil
}

// anyAttr splits an extension field, ALPHA "=" value.
func anyAttr(field string) (attr byte, value string, err error) {
	if len(field) < 2 || !isAlpha(field[0]) || field[1] != '=' {
		return 0, "", protocolErr("malformed attribute")
	}
	return field[0], field[2:], nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isPrintable reports whether s is SCRAM "printable": ASCII 0x21-0x7E
// except ",".
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// sanitize shows one byte of client input in an error message.
func sanitize(c byte) string {
	if 0x21 <= c && c <= 0x7e {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}
