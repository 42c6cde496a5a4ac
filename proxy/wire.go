package proxy

import (
	"bufio"
	"encoding/binary"
	"io"
)

// Message framing. Every message after startup is a type byte, a 4-byte
// big-endian length that counts itself, and a body. These helpers work on
// bufio buffers directly so that relaying a message costs no allocation.

const headerLen = 5

// peekHeader returns the type and body length of the next message without
// consuming it.
func peekHeader(r *bufio.Reader) (typ byte, bodyLen int, err error) {
	h, err := r.Peek(headerLen)
	if err != nil {
		return 0, 0, err
	}
	n := int(int32(binary.BigEndian.Uint32(h[1:])))
	if n < 4 {
		return h[0], -1, nil
	}
	return h[0], n - 4, nil
}

// relay copies the next message, whose header has been peeked, from r to w
// in chunks that fit r's buffer, so a message larger than the buffer streams
// through without being held.
func relay(w *bufio.Writer, r *bufio.Reader, total int) error {
	for total > 0 {
		n := min(total, r.Size())
		b, err := r.Peek(n)
		if err != nil {
			if len(b) == 0 {
				return err
			}
			n = len(b)
		}
		if _, werr := w.Write(b[:n]); werr != nil {
			return werr
		}
		r.Discard(n)
		total -= n
	}
	return nil
}

// skip discards the next total bytes of r.
func skip(r *bufio.Reader, total int) error {
	_, err := r.Discard(total)
	return err
}

// readFull reads the next total bytes into buf (grown as needed) and returns
// it. The result aliases buf.
func readFull(r *bufio.Reader, buf []byte, total int) ([]byte, error) {
	if total <= r.Size() {
		b, err := r.Peek(total)
		if err != nil {
			return nil, err
		}
		buf = append(buf[:0], b...)
		r.Discard(total)
		return buf, nil
	}
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// Encoders for the few messages the proxy writes itself.

func appendHeader(buf []byte, typ byte, bodyLen int) []byte {
	buf = append(buf, typ)
	return binary.BigEndian.AppendUint32(buf, uint32(bodyLen+4))
}

// writeHeader writes a message header to w byte by byte: a header array
// handed to w.Write would escape to the heap, once per message.
func writeHeader(w *bufio.Writer, typ byte, bodyLen int) error {
	n := uint32(bodyLen + 4)
	w.WriteByte(typ)
	w.WriteByte(byte(n >> 24))
	w.WriteByte(byte(n >> 16))
	w.WriteByte(byte(n >> 8))
	return w.WriteByte(byte(n)) // a bufio.Writer's error is sticky
}

func appendReadyForQuery(buf []byte, status byte) []byte {
	return append(appendHeader(buf, 'Z', 1), status)
}

func appendCommandComplete(buf []byte, tag string) []byte {
	buf = appendHeader(buf, 'C', len(tag)+1)
	buf = append(buf, tag...)
	return append(buf, 0)
}

func appendParameterStatus(buf []byte, name, value string) []byte {
	buf = appendHeader(buf, 'S', len(name)+len(value)+2)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, value...)
	return append(buf, 0)
}

// appendQuery encodes a simple Query message.
func appendQuery(buf []byte, sql string) []byte {
	buf = appendHeader(buf, 'Q', len(sql)+1)
	buf = append(buf, sql...)
	return append(buf, 0)
}

var (
	msgParseComplete = []byte{'1', 0, 0, 0, 4}
	msgBindComplete  = []byte{'2', 0, 0, 0, 4}
	msgNoData        = []byte{'n', 0, 0, 0, 4}
	msgCloseComplete = []byte{'3', 0, 0, 0, 4}
	msgSync          = []byte{'S', 0, 0, 0, 4}
	msgFlush         = []byte{'H', 0, 0, 0, 4}
	// msgTickClose closes a statement that never exists: a no-op the
	// server still answers with CloseComplete.
	msgTickClose = append(appendHeader(nil, 'C', len("Spgshard_tick")+1), "Spgshard_tick\x00"...)
)

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (s []byte, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}
