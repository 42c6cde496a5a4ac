package proxy

import (
	"bufio"
	"bytes"
	"testing"
)

// TestScatterSinkBatches: a shard's reader hands over, in one batch, the
// whole messages its buffer holds, up to a ReadyForQuery; a message not
// whole yet starts the next batch; bodies are exact and do not overlap.
func TestScatterSinkBatches(t *testing.T) {
	var wire []byte
	wire = appendMsg(wire, 'T', []byte("desc"))
	for _, r := range []string{"r1", "row2", "r3"} {
		wire = appendMsg(wire, 'D', []byte(r))
	}
	wire = appendCommandComplete(wire, "SELECT 3")
	wire = appendReadyForQuery(wire, 'I')
	wire = appendMsg(wire, 'N', []byte("after")) // the next round's: not in this batch
	c := &serverConn{br: bufio.NewReaderSize(bytes.NewReader(wire), 4096)}
	k := newScatterSink()
	typ, n, err := peekHeader(c.br)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.read(c, typ, n); err != nil {
		t.Fatal(err)
	}
	batch := <-k.batches
	var got []string
	for _, m := range batch {
		got = append(got, string(m.typ)+":"+string(bytes.TrimRight(m.body, "\x00")))
	}
	want := []string{"T:desc", "D:r1", "D:row2", "D:r3", "C:SELECT 3", "Z:I"}
	if len(got) != len(want) {
		t.Fatalf("batch %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
	// Appending to one body must not write into the next.
	batch[1].body = append(batch[1].body, 'x')
	if string(batch[2].body) != "row2" {
		t.Errorf("bodies overlap: %q", batch[2].body)
	}
	// A message cut short in the buffer waits for the next batch.
	part := appendMsg(nil, 'D', []byte("whole"))
	part = append(part, appendMsg(nil, 'D', []byte("cut short"))[:7]...)
	c = &serverConn{br: bufio.NewReaderSize(bytes.NewReader(part), 4096)}
	c.br.Peek(len(part)) // all of it buffered
	typ, n, _ = peekHeader(c.br)
	if err := k.read(c, typ, n); err != nil {
		t.Fatal(err)
	}
	if b := <-k.batches; len(b) != 1 || string(b[0].body) != "whole" {
		t.Errorf("batch with a message cut short: %+v", b)
	}
}
