package auth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestLibpqInterop logs psql (libpq, the reference client) in to a scripted
// server that authenticates with this package. It is skipped when psql is
// not installed.
func TestLibpqInterop(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not found")
	}
	tests := []struct {
		name     string
		method   string // "scram" or "md5"
		v        Verifier
		ok       bool
		password string // what psql sends
		wantErr  error  // what the server sees
	}{
		{name: "scram plain", method: "scram", v: mustParse(t, "x", "secret"), ok: true, password: "secret"},
		{name: "scram postgres verifier", method: "scram", v: mustParse(t, "x", pgSCRAMSecret), ok: true, password: "secret"},
		{name: "scram postgres unicode verifier", method: "scram", v: mustParse(t, "y", pgSCRAMUnicode), ok: true, password: unicodePassword},
		// libpq applies SASLprep, ParseVerifier does not: a plain password
		// that SASLprep changes cannot serve SCRAM (see ParseVerifier).
		{name: "scram plain unicode needing SASLprep", method: "scram", v: mustParse(t, "y", unicodePassword), ok: true, password: unicodePassword, wantErr: ErrAuthFailed},
		{name: "scram wrong password", method: "scram", v: mustParse(t, "x", pgSCRAMSecret), ok: true, password: "Secret", wantErr: ErrAuthFailed},
		{name: "scram unknown user", method: "scram", v: MockVerifier("x"), ok: false, password: "secret", wantErr: ErrAuthFailed},
		{name: "md5 plain", method: "md5", v: mustParse(t, "x", "secret"), ok: true, password: "secret"},
		{name: "md5 postgres verifier", method: "md5", v: mustParse(t, "x", pgMD5Secret), ok: true, password: "secret"},
		{name: "md5 wrong password", method: "md5", v: mustParse(t, "x", pgMD5Secret), ok: true, password: "secret!", wantErr: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				served <- serveAuth(conn, tt.method, tt.v, tt.ok)
			}()

			user := "x"
			if tt.v.user != "" {
				user = tt.v.user
			}
			cmd := exec.CommandContext(ctx, psql, "-X", "-w", "-At",
				"-h", "127.0.0.1", "-p", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
				"-U", user, "-d", "db", "-c", "select 1")
			cmd.Env = []string{
				"PGPASSWORD=" + tt.password,
				"PGSSLMODE=disable",
				"PGGSSENCMODE=disable",
				"PGPASSFILE=/dev/null",
				"PGCONNECT_TIMEOUT=5",
			}
			out, psqlErr := cmd.CombinedOutput()
			_ = ln.Close()
			serveErr := <-served
			if !errors.Is(serveErr, tt.wantErr) || (serveErr != nil && tt.wantErr == nil) {
				t.Fatalf("server: %v, want %v (psql: %v: %s)", serveErr, tt.wantErr, psqlErr, out)
			}
			if (psqlErr == nil) != (tt.wantErr == nil) {
				t.Fatalf("psql: %v: %s", psqlErr, out)
			}
		})
	}
}

// serveAuth plays a PostgreSQL server on conn up to the first query: it asks
// for a password by method, checks it with v, and answers the query with an
// EmptyQueryResponse.
func serveAuth(conn net.Conn, method string, v Verifier, ok bool) error {
	r := bufio.NewReader(conn)
	if err := readStartup(r, conn); err != nil {
		return err
	}
	switch method {
	case "scram":
		if err := writeMsg(conn, 'R', be32(10), []byte(SCRAMMechanism+"\x00\x00")); err != nil {
			return err
		}
		body, err := readMsg(r, 'p')
		if err != nil {
			return err
		}
		mech, rest, found := bytes.Cut(body, []byte{0})
		if !found || string(mech) != SCRAMMechanism || len(rest) < 4 {
			return fmt.Errorf("bad SASLInitialResponse %q", body)
		}
		s := NewSCRAMServer(v, ok)
		serverFirst, err := s.ClientFirst(rest[4:])
		if err != nil {
			return err
		}
		if err := writeMsg(conn, 'R', be32(11), serverFirst); err != nil {
			return err
		}
		body, err = readMsg(r, 'p')
		if err != nil {
			return err
		}
		serverFinal, err := s.ClientFinal(body)
		if err != nil {
			return errors.Join(err, writeAuthFailed(conn))
		}
		if err := writeMsg(conn, 'R', be32(12), serverFinal); err != nil {
			return err
		}
	case "md5":
		salt := NewMD5Salt()
		if err := writeMsg(conn, 'R', be32(5), salt[:]); err != nil {
			return err
		}
		body, err := readMsg(r, 'p')
		if err != nil {
			return err
		}
		if !CheckMD5(v, ok, salt, body) {
			return errors.Join(ErrAuthFailed, writeAuthFailed(conn))
		}
	}
	if err := writeMsg(conn, 'R', be32(0)); err != nil { // AuthenticationOk
		return err
	}
	if err := writeMsg(conn, 'S', []byte("server_version\x0015.0\x00")); err != nil {
		return err
	}
	if err := writeMsg(conn, 'Z', []byte("I")); err != nil {
		return err
	}
	if _, err := readMsg(r, 'Q'); err != nil {
		return err
	}
	if err := writeMsg(conn, 'I'); err != nil { // EmptyQueryResponse
		return err
	}
	if err := writeMsg(conn, 'Z', []byte("I")); err != nil {
		return err
	}
	_, _ = readMsg(r, 'X')
	return nil
}

// readStartup reads the StartupMessage, refusing SSL and GSS encryption
// requests that come before it.
func readStartup(r *bufio.Reader, w io.Writer) error {
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 8 || n > 10000 {
			return fmt.Errorf("startup packet length %d", n)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n-8)); err != nil {
			return err
		}
		switch code := binary.BigEndian.Uint32(hdr[4:]); code {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest
			if _, err := w.Write([]byte("N")); err != nil {
				return err
			}
		case 196608: // protocol 3.0
			return nil
		default:
			return fmt.Errorf("unexpected startup code %d", code)
		}
	}
}

// readMsg reads one message of type typ and returns its body.
func readMsg(r *bufio.Reader, typ byte) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != typ {
		return nil, fmt.Errorf("got message %q, want %q", hdr[0], typ)
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > 10000 {
		return nil, fmt.Errorf("message length %d", n)
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(r, body)
	return body, err
}

func writeMsg(w io.Writer, typ byte, parts ...[]byte) error {
	body := bytes.Join(parts, nil)
	msg := append([]byte{typ}, be32(uint32(len(body)+4))...)
	_, err := w.Write(append(msg, body...))
	return err
}

func writeAuthFailed(w io.Writer) error {
	return writeMsg(w, 'E', []byte("SFATAL\x00VFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"))
}

func be32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
