package auth

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/. Run a target with
//
//	go test ./proxy/auth -run '^$' -fuzz FuzzSCRAMClientFirst -fuzztime 20s

// FuzzSCRAMClientFirst feeds arbitrary client-first-messages to a server. A
// message it accepts must lead to a successful exchange for a client that
// knows the password; one it refuses must give a protocol error.
func FuzzSCRAMClientFirst(f *testing.F) {
	f.Add([]byte("n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"))
	v := mustParse(f, "x", pgSCRAMSecret)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSCRAMServer(v, true, testRand())
		sf, err := s.ClientFirst(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFirst(%q): %v does not wrap ErrProtocol", data, err)
			}
			if _, err := s.ClientFinal([]byte("c=biws,r=x,p=x")); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFinal after failed ClientFirst: %v", err)
			}
			return
		}
		// The client nonce is the client's business: an empty one in the test
		// client only skips its own check.
		c := &scramClient{password: "secret", gs2: string(data[:3]), bare: string(data[3:])}
		final, err := c.final(sf)
		if err != nil {
			t.Fatalf("ClientFirst(%q) = %q, which a client cannot answer: %v", data, sf, err)
		}
		serverFinal, err := s.ClientFinal(final)
		if err != nil {
			t.Fatalf("ClientFirst(%q) accepted, then ClientFinal(%q): %v", data, final, err)
		}
		if err := c.verify(serverFinal); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzSCRAMClientFinal feeds arbitrary client-final-messages to a server
// that has accepted a valid client-first-message. Only a message carrying
// the proof the client computes for it may succeed; everything else must
// give ErrAuthFailed or a protocol error, and a mock exchange must always
// fail.
func FuzzSCRAMClientFinal(f *testing.F) {
	v := mustParse(f, "x", pgSCRAMSecret)
	c := newClient("secret")
	sf, err := newSCRAMServer(v, true, testRand()).ClientFirst(c.first())
	if err != nil {
		f.Fatal(err)
	}
	valid, err := c.final(sf)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	nonce := []byte(c.withoutProof + ",")

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tt := range []struct {
			v  Verifier
			ok bool
		}{{v, true}, {MockVerifier("x"), false}} {
			s := newSCRAMServer(tt.v, tt.ok, testRand())
			if _, err := s.ClientFirst(c.first()); err != nil {
				t.Fatal(err)
			}
			final, err := s.ClientFinal(data)
			if err == nil {
				if !tt.ok {
					t.Fatalf("mock exchange accepted %q", data)
				}
				// Accepted: the proof must be the one the client computes
				// for the signed part of the message.
				i := bytes.LastIndex(data, []byte(",p="))
				if i < 0 || !bytes.HasPrefix(data, nonce) {
					t.Fatalf("ClientFinal accepted %q, want a message starting %q", data, nonce)
				}
				proof, err := base64.StdEncoding.DecodeString(string(data[i+len(",p="):]))
				cc := *c
				if err != nil || !bytes.Equal(proof, cc.proof(string(data[:i]))) {
					t.Fatalf("ClientFinal accepted %q, whose proof is not the client's", data)
				}
				if err := cc.verify(final); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if errors.Is(err, ErrProtocol) == errors.Is(err, ErrAuthFailed) {
				t.Fatalf("ClientFinal(%q): %v, want exactly one of ErrProtocol and ErrAuthFailed", data, err)
			}
			if _, err := s.ClientFinal(valid); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFinal after the end: %v, want ErrProtocol", err)
			}
		}
	})
}

// FuzzParseVerifier checks that ParseVerifier never panics, that its errors
// come from a fixed set (so they cannot quote the secret), that what it
// accepts is consistent, and that no Verifier prints its secret.
func FuzzParseVerifier(f *testing.F) {
	f.Add("x", "secret")
	f.Add("x", pgMD5Secret)
	f.Add("x", pgSCRAMSecret)
	f.Fuzz(func(t *testing.T, user, password string) {
		v, err := ParseVerifier(user, password)
		if err != nil {
			checkVerifierError(t, err)
			return
		}
		switch s := v.String(); s {
		case "auth.Verifier(plain, redacted)", "auth.Verifier(md5, redacted)", "auth.Verifier(scram-sha-256, redacted)":
		default:
			t.Fatalf("String() = %q", s)
		}
		if v.GoString() != v.String() {
			t.Fatalf("GoString() = %q", v.GoString())
		}
		plain, isPlain := v.Plain()
		switch v.Kind() {
		case Plain:
			if !isPlain || plain != password || !v.CanSCRAM() || !v.CanMD5() {
				t.Fatalf("plain: Plain() = %q, %v; CanSCRAM %v, CanMD5 %v", plain, isPlain, v.CanSCRAM(), v.CanMD5())
			}
			sum := md5.Sum([]byte(password + user))
			if v.md5 != hex.EncodeToString(sum[:]) {
				t.Fatalf("md5 of plain password is %s", v.md5)
			}
		case MD5:
			if isPlain || v.CanSCRAM() || !v.CanMD5() || "md5"+v.md5 != password {
				t.Fatalf("md5: Plain ok %v, CanSCRAM %v, CanMD5 %v", isPlain, v.CanSCRAM(), v.CanMD5())
			}
		case SCRAM:
			if isPlain || !v.CanSCRAM() || v.CanMD5() {
				t.Fatalf("scram: Plain ok %v, CanSCRAM %v, CanMD5 %v", isPlain, v.CanSCRAM(), v.CanMD5())
			}
			// Written out canonically, the verifier must parse to the same keys.
			k := v.scram
			canon := fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", k.iterations,
				base64.StdEncoding.EncodeToString(k.salt),
				base64.StdEncoding.EncodeToString(k.storedKey[:]),
				base64.StdEncoding.EncodeToString(k.serverKey[:]))
			w, err := ParseVerifier(user, canon)
			if err != nil {
				t.Fatalf("canonical form of an accepted verifier: %v", err)
			}
			if w.scram.iterations != k.iterations || !bytes.Equal(w.scram.salt, k.salt) ||
				w.scram.storedKey != k.storedKey || w.scram.serverKey != k.serverKey {
				t.Fatal("canonical form parses to different keys")
			}
		default:
			t.Fatalf("Kind() = %d", v.Kind())
		}
	})
}

// FuzzCheckMD5 compares CheckMD5 with an independent computation of the
// expected response.
func FuzzCheckMD5(f *testing.F) {
	salt := []byte{0x01, 0x02, 0xfe, 0x00}
	good := md5Response("x", "secret", [4]byte(salt))
	f.Add("x", "secret", salt, []byte(good))
	f.Add("x", pgMD5Secret, salt, []byte(good+"\x00"))
	f.Add("x", pgSCRAMSecret, salt, []byte(good))
	f.Fuzz(func(t *testing.T, user, password string, saltBytes, response []byte) {
		var salt [4]byte
		copy(salt[:], saltBytes)
		v, err := ParseVerifier(user, password)
		if err != nil {
			v = Verifier{}
		}
		var inner string
		switch {
		case err != nil:
		case v.Kind() == Plain:
			sum := md5.Sum([]byte(password + user))
			inner = hex.EncodeToString(sum[:])
		case v.Kind() == MD5:
			inner = password[3:]
		}
		want := false
		if inner != "" {
			sum := md5.Sum(append([]byte(inner), salt[:]...))
			expected := "md5" + hex.EncodeToString(sum[:])
			want = string(response) == expected || string(response) == expected+"\x00"
		}
		if got := CheckMD5(v, true, salt, response); got != want {
			t.Fatalf("CheckMD5(%s, %x, %s) = %v, want %v", v, salt, strconv.Quote(string(response)), got, want)
		}
		if CheckMD5(v, false, salt, response) {
			t.Fatal("CheckMD5 accepted an unknown user")
		}
	})
}

// FuzzSCRAMExchange runs whole exchanges in which any step may be the
// fuzzer's: the client-first-message, the client-final-message (else the
// one an honest client computes for the server's first message), and
// messages after the end or out of order. Exactly the exchanges whose
// final message carries the proof of the password succeed; every failure
// is ErrProtocol or ErrAuthFailed, and a server is done after its first
// failure.
func FuzzSCRAMExchange(f *testing.F) {
	f.Add(uint8(0), []byte("n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=x,p=x"), []byte(""))
	f.Add(uint8(1), []byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p="), []byte("n,,n=,r=abc"))
	f.Add(uint8(2), []byte("y,,n=u,r=abc"), []byte(""), []byte("c=biws"))
	f.Add(uint8(7), []byte("n,a=x,n=,r=a,ext=1"), []byte("c=eSws,r=a"), []byte("\x00"))
	v := mustParse(f, "x", pgSCRAMSecret)
	f.Fuzz(func(t *testing.T, mode uint8, first, final, extra []byte) {
		ok := mode&8 == 0 // a known user, else a mock exchange
		verifier := v
		if !ok {
			verifier = MockVerifier("x")
		}
		s := newSCRAMServer(verifier, ok, testRand())
		c := newClient("secret")
		if mode&4 != 0 {
			// Out of order: a final message before the first fails the
			// exchange for good.
			if _, err := s.ClientFinal(final); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFinal(%q) first: %v, want ErrProtocol", final, err)
			}
			if _, err := s.ClientFirst(c.first()); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFirst after a failure: %v, want ErrProtocol", err)
			}
			return
		}
		msg := c.first()
		if mode&1 != 0 {
			msg = first
			if len(first) >= 3 {
				c.gs2, c.nonce = "", ""
				c.bare = ""
			}
		}
		sf, err := s.ClientFirst(msg)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFirst(%q): %v, want ErrProtocol", msg, err)
			}
			if _, err := s.ClientFinal(final); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ClientFinal after a failed ClientFirst: %v, want ErrProtocol", err)
			}
			return
		}
		honest := mode&2 == 0
		send := final
		if honest {
			// The proof for what was sent: the client's own bare message,
			// or the fuzzer's after its GS2 header.
			if mode&1 != 0 {
				c.gs2, c.bare = string(msg[:3]), string(msg[3:])
				if i := bytes.IndexByte(msg, ','); i >= 0 {
					if j := bytes.IndexByte(msg[i+1:], ','); j >= 0 {
						c.gs2, c.bare = string(msg[:i+j+2]), string(msg[i+j+2:])
					}
				}
			}
			if send, err = c.final(sf); err != nil {
				t.Fatalf("ClientFirst(%q) = %q, which a client cannot answer: %v", msg, sf, err)
			}
		}
		serverFinal, err := s.ClientFinal(send)
		switch {
		case err == nil && !ok:
			t.Fatalf("a mock exchange accepted %q then %q", msg, send)
		case err == nil:
			if !honest {
				// The fuzzer found the proof: only the client's own
				// message can carry it.
				cc := *c
				if w, ferr := cc.final(sf); ferr != nil || !bytes.Equal(w, send) {
					t.Fatalf("ClientFinal accepted %q, not the honest client's message", send)
				}
			}
			if err := c.verify(serverFinal); err != nil {
				t.Fatal(err)
			}
		case honest && ok:
			t.Fatalf("the honest exchange %q, %q failed: %v", msg, send, err)
		case errors.Is(err, ErrProtocol) == errors.Is(err, ErrAuthFailed):
			t.Fatalf("ClientFinal(%q): %v, want exactly one of ErrProtocol and ErrAuthFailed", send, err)
		}
		// Whatever comes after the end is refused.
		if _, err := s.ClientFirst(extra); !errors.Is(err, ErrProtocol) {
			t.Fatalf("ClientFirst(%q) after the end: %v, want ErrProtocol", extra, err)
		}
		if _, err := s.ClientFinal(extra); !errors.Is(err, ErrProtocol) {
			t.Fatalf("ClientFinal(%q) after the end: %v, want ErrProtocol", extra, err)
		}
	})
}
