package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// Verifiers produced by PostgreSQL 15 (CREATE ROLE x PASSWORD 'secret' with
// password_encryption set to scram-sha-256, then md5; and CREATE ROLE y
// PASSWORD 'pässwörd ﬁ'), copied from pg_authid.rolpassword.
const (
	pgSCRAMSecret  = "SCRAM-SHA-256$4096:A1VHZXncApZURx75d1g4ww==$o3d5wR1V3pdoEBFjmb9F5e9WEKuDllF6aQ0zdA64hyo=:w3SnuOjlGa6U/gphu1bOb6lz22KtTGGYQ506NmNy6Dc="
	pgMD5Secret    = "md5ac2b10d9871b8fe9d086b7652279ff79"
	pgSCRAMUnicode = "SCRAM-SHA-256$4096:NYc7geHxabN6JmIw9beNog==$MrDtQ60yl/1u4PG0ofOD7jH0xYRIIuMJCm/A/H6hdCw=:H//paR9Bs0DZarMApzILYNf131wndSUHQ2IvOVH3E1M="

	// unicodePassword is the password of pgSCRAMUnicode as typed;
	// unicodePrepped is what SASLprep makes of it (NFKC turns the "fi"
	// ligature U+FB01 into "fi"), which PostgreSQL hashed.
	unicodePassword = "p\u00e4ssw\u00f6rd \ufb01"
	unicodePrepped  = "p\u00e4ssw\u00f6rd fi"
)

func mustParse(t testing.TB, user, password string) Verifier {
	t.Helper()
	v, err := ParseVerifier(user, password)
	if err != nil {
		t.Fatalf("ParseVerifier(%q): %v", user, err)
	}
	return v
}

// testRand returns a deterministic source of "random" bytes.
func testRand() *mrand.ChaCha8 { return mrand.NewChaCha8([32]byte{1}) }

// scramClient is the client side of SCRAM-SHA-256 as libpq and pgx run it,
// written from RFC 5802 so that the server is tested against an independent
// implementation.
type scramClient struct {
	password string
	gs2      string // GS2 header, "n,," unless set
	nonce    string // client nonce
	ext      string // extensions to put before the proof, e.g. ",x=1"

	bare         string
	serverFirst  string
	withoutProof string
	salted       []byte
	authMessage  string
}

func newClient(password string) *scramClient {
	return &scramClient{password: password, gs2: "n,,", nonce: "fyko+d2lbbFgONRv9qkxdawL"}
}

func (c *scramClient) first() []byte {
	c.bare = "n=,r=" + c.nonce
	return []byte(c.gs2 + c.bare)
}

// final answers the server-first-message.
func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	parts := strings.Split(string(serverFirst), ",")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "r=") || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		return nil, fmt.Errorf("malformed server-first-message %q", serverFirst)
	}
	nonce := parts[0][2:]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, fmt.Errorf("server nonce %q does not extend client nonce", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1][2:])
	if err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	iter, err := strconv.Atoi(parts[2][2:])
	if err != nil || iter < 1 {
		return nil, fmt.Errorf("bad iteration count %q", parts[2])
	}
	c.salted, err = pbkdf2.Key(sha256.New, c.password, salt, iter, 32)
	if err != nil {
		return nil, err
	}
	c.serverFirst = string(serverFirst)
	c.withoutProof = "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + nonce + c.ext
	proof := c.proof(c.withoutProof)
	return []byte(c.withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// proof returns the ClientProof for a client-final-message-without-proof,
// once final has seen the server-first-message.
func (c *scramClient) proof(withoutProof string) []byte {
	c.authMessage = c.bare + "," + c.serverFirst + "," + withoutProof
	clientKey := testHMAC(c.salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	proof := testHMAC(storedKey[:], c.authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	return proof
}

// verify checks the server-final-message.
func (c *scramClient) verify(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(testHMAC(testHMAC(c.salted, "Server Key"), c.authMessage))
	if string(serverFinal) != want {
		return fmt.Errorf("server-final-message %q, want %q", serverFinal, want)
	}
	return nil
}

func testHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// exchange runs a whole SCRAM exchange between c and s.
func exchange(s *SCRAMServer, c *scramClient) error {
	serverFirst, err := s.ClientFirst(c.first())
	if err != nil {
		return fmt.Errorf("ClientFirst: %w", err)
	}
	clientFinal, err := c.final(serverFirst)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	serverFinal, err := s.ClientFinal(clientFinal)
	if err != nil {
		return fmt.Errorf("ClientFinal: %w", err)
	}
	return c.verify(serverFinal)
}

// verifierErrors are all the details ParseVerifier may report. None depends
// on the input, so none can leak a secret.
var verifierErrors = []string{
	"empty password",
	"malformed md5 verifier: want md5 followed by 32 lowercase hex digits",
	`malformed SCRAM-SHA-256 verifier: missing "$" between salt and keys`,
	`malformed SCRAM-SHA-256 verifier: missing ":" between iteration count and salt`,
	`malformed SCRAM-SHA-256 verifier: missing ":" between StoredKey and ServerKey`,
	"malformed SCRAM-SHA-256 verifier: iteration count is not a positive 32-bit integer",
	"malformed SCRAM-SHA-256 verifier: salt is not non-empty base64",
	"malformed SCRAM-SHA-256 verifier: StoredKey is not 32 bytes of base64",
	"malformed SCRAM-SHA-256 verifier: ServerKey is not 32 bytes of base64",
}

// checkVerifierError fails unless err is one of verifierErrors.
func checkVerifierError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidVerifier) {
		t.Fatalf("error %v does not wrap ErrInvalidVerifier", err)
	}
	for _, d := range verifierErrors {
		if err.Error() == ErrInvalidVerifier.Error()+": "+d {
			return
		}
	}
	t.Fatalf("unexpected error text %q", err)
}

func TestParseVerifier(t *testing.T) {
	const (
		key = "o3d5wR1V3pdoEBFjmb9F5e9WEKuDllF6aQ0zdA64hyo="
		hex = "ac2b10d9871b8fe9d086b7652279ff79"
	)
	tests := []struct {
		name     string
		password string
		kind     Kind
		plain    bool
		canSCRAM bool
		canMD5   bool
		err      string // detail of the error, "" for success
	}{
		{name: "plain", password: "secret", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "plain md5 prefix non-hex", password: "md5sum", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "plain md5 alone", password: "md5", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "plain SCRAM word", password: "SCRAM-SHA-256", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "plain other SCRAM", password: "SCRAM-SHA-1$4096:c2FsdA==$a:b", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "plain not UTF-8", password: "\xff\xfe", kind: Plain, plain: true, canSCRAM: true, canMD5: true},
		{name: "md5 from postgres", password: pgMD5Secret, kind: MD5, canMD5: true},
		{name: "scram from postgres", password: pgSCRAMSecret, kind: SCRAM, canSCRAM: true},
		{name: "scram one byte salt", password: "SCRAM-SHA-256$1:AA==$" + key + ":" + key, kind: SCRAM, canSCRAM: true},

		{name: "empty", password: "", err: verifierErrors[0]},
		{name: "md5 short", password: "md5" + hex[:31], err: verifierErrors[1]},
		{name: "md5 long", password: "md5" + hex + "0", err: verifierErrors[1]},
		{name: "md5 upper", password: "md5" + strings.ToUpper(hex), err: verifierErrors[1]},
		{name: "md5 32 non-hex", password: "md5" + strings.Repeat("z", 32), err: verifierErrors[1]},
		{name: "md5 one digit", password: "md51", err: verifierErrors[1]},
		{name: "scram empty", password: "SCRAM-SHA-256$", err: verifierErrors[2]},
		{name: "scram no keys", password: "SCRAM-SHA-256$4096:A1VHZXncApZURx75d1g4ww==", err: verifierErrors[2]},
		{name: "scram no salt", password: "SCRAM-SHA-256$4096$" + key + ":" + key, err: verifierErrors[3]},
		{name: "scram one key", password: "SCRAM-SHA-256$4096:AA==$" + key, err: verifierErrors[4]},
		{name: "scram iterations word", password: "SCRAM-SHA-256$many:AA==$" + key + ":" + key, err: verifierErrors[5]},
		{name: "scram iterations zero", password: "SCRAM-SHA-256$0:AA==$" + key + ":" + key, err: verifierErrors[5]},
		{name: "scram iterations negative", password: "SCRAM-SHA-256$-1:AA==$" + key + ":" + key, err: verifierErrors[5]},
		{name: "scram iterations huge", password: "SCRAM-SHA-256$4294967296:AA==$" + key + ":" + key, err: verifierErrors[5]},
		{name: "scram salt empty", password: "SCRAM-SHA-256$4096:$" + key + ":" + key, err: verifierErrors[6]},
		{name: "scram salt not base64", password: "SCRAM-SHA-256$4096:A*==$" + key + ":" + key, err: verifierErrors[6]},
		{name: "scram stored key short", password: "SCRAM-SHA-256$4096:AA==$AAAA:" + key, err: verifierErrors[7]},
		{name: "scram stored key not base64", password: "SCRAM-SHA-256$4096:AA==$" + key[:43] + "!:" + key, err: verifierErrors[7]},
		{name: "scram server key long", password: "SCRAM-SHA-256$4096:AA==$" + key + ":" + key + "AAAA", err: verifierErrors[8]},
		{name: "scram extra dollar", password: "SCRAM-SHA-256$4096:AA==$" + key + ":" + key + "$x", err: verifierErrors[8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVerifier("x", tt.password)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("got %v, want error %q", v, tt.err)
				}
				checkVerifierError(t, err)
				if want := ErrInvalidVerifier.Error() + ": " + tt.err; err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind() != tt.kind {
				t.Errorf("Kind() = %v, want %v", v.Kind(), tt.kind)
			}
			if p, ok := v.Plain(); ok != tt.plain || (ok && p != tt.password) {
				t.Errorf("Plain() = %q, %v", p, ok)
			}
			if v.CanSCRAM() != tt.canSCRAM || v.CanMD5() != tt.canMD5 {
				t.Errorf("CanSCRAM() = %v, CanMD5() = %v", v.CanSCRAM(), v.CanMD5())
			}
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				if s := fmt.Sprintf(format, v); strings.Contains(s, tt.password) {
					t.Errorf("%s of the verifier shows the secret: %s", format, s)
				}
			}
		})
	}
}

func TestZeroVerifier(t *testing.T) {
	var v Verifier
	if _, ok := v.Plain(); ok || v.CanSCRAM() || v.CanMD5() {
		t.Errorf("zero Verifier: Plain ok %v, CanSCRAM %v, CanMD5 %v", ok, v.CanSCRAM(), v.CanMD5())
	}
	m := MockVerifier("ghost")
	if _, ok := m.Plain(); ok || m.CanSCRAM() || m.CanMD5() {
		t.Errorf("MockVerifier: Plain ok %v, CanSCRAM %v, CanMD5 %v", ok, m.CanSCRAM(), m.CanMD5())
	}
}

// TestPlainMatchesPostgres checks that a plain password yields the md5
// verifier PostgreSQL stores, and the SCRAM keys PostgreSQL stores for the
// same salt.
func TestPlainMatchesPostgres(t *testing.T) {
	v := mustParse(t, "x", "secret")
	if got := "md5" + v.md5; got != pgMD5Secret {
		t.Errorf("md5 verifier %s, PostgreSQL has %s", got, pgMD5Secret)
	}
	pg := mustParse(t, "x", pgSCRAMSecret)
	k, err := deriveSCRAM("secret", pg.scram.salt, pg.scram.iterations)
	if err != nil {
		t.Fatal(err)
	}
	if k.storedKey != pg.scram.storedKey || k.serverKey != pg.scram.serverKey {
		t.Error("SCRAM keys derived from the plain password differ from PostgreSQL's")
	}
	if v.scram.iterations != 4096 || len(v.scram.salt) != 16 {
		t.Errorf("plain password: %d iterations, %d-byte salt; want 4096, 16", v.scram.iterations, len(v.scram.salt))
	}
	if bytes.Equal(v.scram.salt, mustParse(t, "x", "secret").scram.salt) {
		t.Error("two parses of a plain password got the same salt")
	}
}

func TestSCRAMExchange(t *testing.T) {
	tests := []struct {
		name     string
		v        Verifier
		ok       bool
		gs2      string
		password string
		wantErr  error
	}{
		{name: "plain", v: mustParse(t, "x", "secret"), ok: true, password: "secret"},
		{name: "plain y header", v: mustParse(t, "x", "secret"), ok: true, gs2: "y,,", password: "secret"},
		{name: "plain wrong password", v: mustParse(t, "x", "secret"), ok: true, password: "Secret", wantErr: ErrAuthFailed},
		{name: "plain empty password", v: mustParse(t, "x", "secret"), ok: true, password: "", wantErr: ErrAuthFailed},
		{name: "plain unicode raw", v: mustParse(t, "y", unicodePassword), ok: true, password: unicodePassword},
		{name: "postgres verifier", v: mustParse(t, "x", pgSCRAMSecret), ok: true, password: "secret"},
		{name: "postgres verifier wrong password", v: mustParse(t, "x", pgSCRAMSecret), ok: true, password: "secret ", wantErr: ErrAuthFailed},
		{name: "postgres unicode verifier, prepped", v: mustParse(t, "y", pgSCRAMUnicode), ok: true, password: unicodePrepped},
		{name: "postgres unicode verifier, unprepped", v: mustParse(t, "y", pgSCRAMUnicode), ok: true, password: unicodePassword, wantErr: ErrAuthFailed},
		{name: "unknown user right password", v: mustParse(t, "x", "secret"), ok: false, password: "secret", wantErr: ErrAuthFailed},
		{name: "unknown user zero verifier", v: Verifier{}, ok: false, password: "secret", wantErr: ErrAuthFailed},
		{name: "zero verifier said to exist", v: Verifier{}, ok: true, password: "", wantErr: ErrAuthFailed},
		{name: "mock verifier", v: MockVerifier("x"), ok: false, password: "secret", wantErr: ErrAuthFailed},
		{name: "mock verifier said to exist", v: MockVerifier("x"), ok: true, password: "secret", wantErr: ErrAuthFailed},
		{name: "md5 verifier", v: mustParse(t, "x", pgMD5Secret), ok: true, password: "secret", wantErr: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(tt.password)
			if tt.gs2 != "" {
				c.gs2 = tt.gs2
			}
			s := NewSCRAMServer(tt.v, tt.ok)
			err := exchange(s, c)
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("exchange: %v, want %v", err, tt.wantErr)
			}
			// Whatever happened, the exchange is over.
			if _, err := s.ClientFinal([]byte(c.withoutProof + ",p=AAAA")); !errors.Is(err, ErrProtocol) {
				t.Errorf("ClientFinal after the end: %v, want ErrProtocol", err)
			}
		})
	}
}

// serverFirstSalt runs ClientFirst and returns the s= attribute.
func serverFirstSalt(t *testing.T, v Verifier, ok bool) string {
	t.Helper()
	sf, err := NewSCRAMServer(v, ok).ClientFirst(newClient("").first())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(sf), ",")[1]
}

// TestSCRAMMockSalt checks that an unknown user shows a stable salt, as
// PostgreSQL does, when the caller uses MockVerifier.
func TestSCRAMMockSalt(t *testing.T) {
	ghost := serverFirstSalt(t, MockVerifier("ghost"), false)
	if again := serverFirstSalt(t, MockVerifier("ghost"), false); again != ghost {
		t.Errorf("mock salt changed between attempts: %s, %s", ghost, again)
	}
	if other := serverFirstSalt(t, MockVerifier("spook"), false); other == ghost {
		t.Errorf("two unknown users share the mock salt %s", ghost)
	}
	md5User := serverFirstSalt(t, mustParse(t, "ghost", pgMD5Secret), true)
	if md5User != ghost {
		t.Errorf("md5 user's SCRAM salt %s, want the mock salt %s", md5User, ghost)
	}
	real := serverFirstSalt(t, mustParse(t, "x", pgSCRAMSecret), false)
	if real != "s=A1VHZXncApZURx75d1g4ww==" {
		t.Errorf("rejected real user shows salt %s, want its own", real)
	}
	if a, b := serverFirstSalt(t, Verifier{}, false), serverFirstSalt(t, Verifier{}, false); a == b {
		t.Errorf("zero Verifier: two exchanges got the same salt %s", a)
	}
}

func TestSCRAMClientFirst(t *testing.T) {
	tests := []struct {
		name        string
		msg         string
		unsupported bool
		wantErr     bool
	}{
		{name: "libpq", msg: "n,,n=,r=abc"},
		{name: "y flag and user name", msg: "y,,n=someone,r=abc"},
		{name: "escaped user name", msg: "n,,n=a=2Cb=3D,r=!~"},
		{name: "extensions after nonce", msg: "n,,n=,r=abc,x=1,Y="},

		{name: "empty", msg: "", wantErr: true},
		{name: "NUL", msg: "n,,n=,r=a\x00bc", wantErr: true},
		{name: "flag only", msg: "n", wantErr: true},
		{name: "unknown flag", msg: "q,,n=,r=abc", wantErr: true},
		{name: "no comma after flag", msg: "n;,n=,r=abc", wantErr: true},
		{name: "header only", msg: "n,,", wantErr: true},
		{name: "one comma", msg: "n,n=,r=abc", wantErr: true},
		{name: "no user", msg: "n,,r=abc", wantErr: true},
		{name: "no nonce", msg: "n,,n=", wantErr: true},
		{name: "empty nonce", msg: "n,,n=,r=", wantErr: true},
		{name: "nonce with space", msg: "n,,n=,r=a c", wantErr: true},
		{name: "nonce not ASCII", msg: "n,,n=,r=\xc3\xa4", wantErr: true},
		{name: "nonce with DEL", msg: "n,,n=,r=a\x7f", wantErr: true},
		{name: "second attribute not nonce", msg: "n,,n=,s=abc", wantErr: true},
		{name: "trailing comma", msg: "n,,n=,r=abc,", wantErr: true},
		{name: "bad extension name", msg: "n,,n=,r=abc,1=x", wantErr: true},
		{name: "extension without value sign", msg: "n,,n=,r=abc,x", wantErr: true},
		{name: "channel binding", msg: "p=tls-server-end-point,,n=,r=abc", unsupported: true},
		{name: "authzid", msg: "n,a=admin,n=,r=abc", unsupported: true},
		{name: "empty authzid", msg: "n,a=,n=,r=abc", unsupported: true},
		{name: "mandatory extension", msg: "n,,m=ext,n=,r=abc", unsupported: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSCRAMServer(mustParse(t, "x", pgSCRAMSecret), true, testRand())
			sf, err := s.ClientFirst([]byte(tt.msg))
			switch {
			case tt.unsupported:
				if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrProtocol) {
					t.Fatalf("got %q, %v; want ErrUnsupported and ErrProtocol", sf, err)
				}
			case tt.wantErr:
				if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrUnsupported) {
					t.Fatalf("got %q, %v; want ErrProtocol only", sf, err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				// r=<client nonce><24 characters of server nonce>,s=<salt>,i=<iterations>
				nonce := strings.Split(strings.Split(tt.msg, ",r=")[1], ",")[0]
				const rest = ",s=A1VHZXncApZURx75d1g4ww==,i=4096"
				if sf := string(sf); !strings.HasPrefix(sf, "r="+nonce) || !strings.HasSuffix(sf, rest) || len(sf) != len("r=")+len(nonce)+24+len(rest) {
					t.Errorf("server-first-message %q, want r=%s<server nonce>%s", sf, nonce, rest)
				}
				return
			}
			if _, err := s.ClientFinal([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrProtocol) {
				t.Errorf("ClientFinal after a failed ClientFirst: %v, want ErrProtocol", err)
			}
		})
	}
}

func TestSCRAMClientFinal(t *testing.T) {
	// Every case starts from a valid client-final-message and changes it.
	tests := []struct {
		name    string
		gs2     string
		ext     string
		edit    func(valid, withoutProof, nonce, proof string) string
		wantErr error
	}{
		{name: "valid", edit: func(valid, _, _, _ string) string { return valid }},
		{name: "valid y header", gs2: "y,,", edit: func(valid, _, _, _ string) string { return valid }},
		{name: "extensions before proof", ext: ",x=1,q=", edit: func(valid, _, _, _ string) string { return valid }},
		{name: "proof bit flipped", wantErr: ErrAuthFailed, edit: func(_, wp, _, proof string) string {
			p, _ := base64.StdEncoding.DecodeString(proof)
			p[31] ^= 1
			return wp + ",p=" + base64.StdEncoding.EncodeToString(p)
		}},
		{name: "extension not signed", wantErr: ErrAuthFailed, edit: func(_, wp, _, proof string) string {
			return wp + ",x=1,p=" + proof
		}},
		{name: "empty", wantErr: ErrProtocol, edit: func(_, _, _, _ string) string { return "" }},
		{name: "NUL", wantErr: ErrProtocol, edit: func(valid, _, _, _ string) string { return valid + "\x00" }},
		{name: "no channel binding", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "r=" + nonce + ",p=" + proof
		}},
		{name: "channel binding of y header", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "c=eSws,r=" + nonce + ",p=" + proof
		}},
		{name: "channel binding data", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "c=" + base64.StdEncoding.EncodeToString([]byte("p=tls-server-end-point,,0123")) + ",r=" + nonce + ",p=" + proof
		}},
		{name: "channel binding not base64", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "c=n,,,r=" + nonce + ",p=" + proof
		}},
		{name: "no nonce", wantErr: ErrProtocol, edit: func(_, _, _, proof string) string { return "c=biws,p=" + proof }},
		{name: "channel binding only", wantErr: ErrProtocol, edit: func(_, _, _, _ string) string { return "c=biws" }},
		{name: "client nonce only", wantErr: ErrProtocol, edit: func(_, _, _, proof string) string {
			return "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=" + proof
		}},
		{name: "nonce extended", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "c=biws,r=" + nonce + "x,p=" + proof
		}},
		{name: "nonce changed", wantErr: ErrProtocol, edit: func(_, _, nonce, proof string) string {
			return "c=biws,r=" + strings.Replace(nonce, "f", "g", 1) + ",p=" + proof
		}},
		{name: "no proof", wantErr: ErrProtocol, edit: func(_, wp, _, _ string) string { return wp }},
		{name: "empty proof", wantErr: ErrProtocol, edit: func(_, wp, _, _ string) string { return wp + ",p=" }},
		{name: "proof not base64", wantErr: ErrProtocol, edit: func(_, wp, _, proof string) string { return wp + ",p=*" + proof[1:] }},
		{name: "proof too short", wantErr: ErrProtocol, edit: func(_, wp, _, proof string) string { return wp + ",p=" + proof[:40] }},
		{name: "proof too long", wantErr: ErrProtocol, edit: func(_, wp, _, proof string) string { return wp + ",p=" + proof[:43] + "AAAA" }},
		{name: "garbage after proof", wantErr: ErrProtocol, edit: func(valid, _, _, _ string) string { return valid + ",x=1" }},
		{name: "trailing comma", wantErr: ErrProtocol, edit: func(valid, _, _, _ string) string { return valid + "," }},
		{name: "malformed extension", wantErr: ErrProtocol, edit: func(_, wp, _, proof string) string { return wp + ",7=x,p=" + proof }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient("secret")
			c.ext = tt.ext
			if tt.gs2 != "" {
				c.gs2 = tt.gs2
			}
			s := newSCRAMServer(mustParse(t, "x", pgSCRAMSecret), true, testRand())
			sf, err := s.ClientFirst(c.first())
			if err != nil {
				t.Fatal(err)
			}
			valid, err := c.final(sf)
			if err != nil {
				t.Fatal(err)
			}
			nonce := strings.TrimPrefix(strings.Split(string(sf), ",")[0], "r=")
			proof := string(valid[len(c.withoutProof)+len(",p="):])
			msg := tt.edit(string(valid), c.withoutProof, nonce, proof)
			final, err := s.ClientFinal([]byte(msg))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.verify(final); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ClientFinal(%q) = %q, %v; want %v", msg, final, err, tt.wantErr)
			}
			if errors.Is(err, ErrProtocol) && errors.Is(err, ErrAuthFailed) {
				t.Errorf("error %v is both a protocol violation and an authentication failure", err)
			}
		})
	}
}

func TestSCRAMOutOfOrder(t *testing.T) {
	v := mustParse(t, "x", "secret")
	tests := []struct {
		name  string
		steps func(s *SCRAMServer, c *scramClient) error
	}{
		{name: "final first", steps: func(s *SCRAMServer, c *scramClient) error {
			_, err := s.ClientFinal([]byte("c=biws,r=abc,p=" + strings.Repeat("A", 43) + "="))
			return err
		}},
		{name: "first twice", steps: func(s *SCRAMServer, c *scramClient) error {
			if _, err := s.ClientFirst(c.first()); err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			_, err := s.ClientFirst(c.first())
			return err
		}},
		{name: "final after repeated first", steps: func(s *SCRAMServer, c *scramClient) error {
			sf, err := s.ClientFirst(c.first())
			if err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			_, _ = s.ClientFirst(c.first())
			final, err := c.final(sf)
			if err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			_, err = s.ClientFinal(final)
			return err
		}},
		{name: "first after success", steps: func(s *SCRAMServer, c *scramClient) error {
			if err := exchange(s, c); err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			_, err := s.ClientFirst(c.first())
			return err
		}},
		{name: "final twice", steps: func(s *SCRAMServer, c *scramClient) error {
			sf, err := s.ClientFirst(c.first())
			if err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			final, err := c.final(sf)
			if err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			if _, err := s.ClientFinal(final); err != nil {
				return fmt.Errorf("unexpected: %v", err)
			}
			_, err = s.ClientFinal(final)
			return err
		}},
		{name: "nil server first", steps: func(_ *SCRAMServer, c *scramClient) error {
			var s *SCRAMServer
			_, err := s.ClientFirst(c.first())
			return err
		}},
		{name: "nil server final", steps: func(_ *SCRAMServer, c *scramClient) error {
			var s *SCRAMServer
			_, err := s.ClientFinal([]byte("c=biws"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.steps(NewSCRAMServer(v, true), newClient("secret"))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
}

// TestSCRAMZeroServer checks that a SCRAMServer not made by NewSCRAMServer
// runs a mock exchange instead of panicking or letting anyone in.
func TestSCRAMZeroServer(t *testing.T) {
	if err := exchange(&SCRAMServer{}, newClient("")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("exchange with a zero SCRAMServer: %v, want ErrAuthFailed", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSCRAMRandomFailure(t *testing.T) {
	for _, v := range []Verifier{mustParse(t, "x", pgSCRAMSecret), {}} {
		s := newSCRAMServer(v, true, failingReader{})
		if _, err := s.ClientFirst(newClient("").first()); err == nil || errors.Is(err, ErrProtocol) {
			t.Errorf("%v: ClientFirst with a failing random source: %v", v, err)
		}
	}
}

// md5Response is what a client sends for md5 authentication.
func md5Response(user, password string, salt [4]byte) string {
	inner := md5.Sum([]byte(password + user))
	outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), salt[:]...))
	return "md5" + hex.EncodeToString(outer[:])
}

func TestCheckMD5(t *testing.T) {
	salt := [4]byte{0x01, 0x02, 0xfe, 0x00}
	good := md5Response("x", "secret", salt)
	tests := []struct {
		name     string
		v        Verifier
		ok       bool
		salt     [4]byte
		response string
		want     bool
	}{
		{name: "plain", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: good, want: true},
		{name: "plain with NUL", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: good + "\x00", want: true},
		{name: "postgres verifier", v: mustParse(t, "x", pgMD5Secret), ok: true, salt: salt, response: good, want: true},
		{name: "postgres verifier with NUL", v: mustParse(t, "x", pgMD5Secret), ok: true, salt: salt, response: good + "\x00", want: true},
		{name: "two NULs", v: mustParse(t, "x", pgMD5Secret), ok: true, salt: salt, response: good + "\x00\x00"},
		{name: "upper case", v: mustParse(t, "x", pgMD5Secret), ok: true, salt: salt, response: "md5" + strings.ToUpper(good[3:])},
		{name: "no prefix", v: mustParse(t, "x", pgMD5Secret), ok: true, salt: salt, response: good[3:]},
		{name: "wrong password", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: md5Response("x", "Secret", salt)},
		{name: "other user's hash", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: md5Response("y", "secret", salt)},
		{name: "wrong salt", v: mustParse(t, "x", "secret"), ok: true, salt: [4]byte{1, 2, 3, 4}, response: good},
		{name: "plain text password", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: "secret"},
		{name: "verifier itself", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: pgMD5Secret},
		{name: "empty", v: mustParse(t, "x", "secret"), ok: true, salt: salt, response: ""},
		{name: "unknown user", v: mustParse(t, "x", "secret"), ok: false, salt: salt, response: good},
		{name: "scram verifier", v: mustParse(t, "x", pgSCRAMSecret), ok: true, salt: salt, response: good},
		{name: "zero verifier", v: Verifier{}, ok: true, salt: salt, response: md5Response("", "", salt)},
		{name: "zero verifier zero hash", v: Verifier{}, ok: true, salt: salt, response: "md5" + hex.EncodeToString(func() []byte {
			s := md5.Sum(append([]byte(strings.Repeat("0", 32)), salt[:]...))
			return s[:]
		}())},
		{name: "mock verifier", v: MockVerifier("x"), ok: true, salt: salt, response: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckMD5(tt.v, tt.ok, tt.salt, []byte(tt.response)); got != tt.want {
				t.Errorf("CheckMD5(%q) = %v, want %v", tt.response, got, tt.want)
			}
		})
	}
}

func TestNewMD5Salt(t *testing.T) {
	a, b, c := NewMD5Salt(), NewMD5Salt(), NewMD5Salt()
	if a == b && b == c {
		t.Errorf("three salts are all %x", a)
	}
}
