package test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgshard/pgshard/proxy"
)

// TestFunctionCall sends the legacy FunctionCall message, which no common
// driver uses but libpq still offers (PQfn): it must reach the backend and
// its reply come back, in each pool mode.
func TestFunctionCall(t *testing.T) {
	for _, mode := range []proxy.PoolMode{proxy.PoolTransaction, proxy.PoolSession, proxy.PoolStatement} {
		t.Run(string(mode), func(t *testing.T) {
			checkNoGoroutineLeak(t)
			p := startProxy(t, proxyConfig{mode: mode, poolSize: 2})
			c := loginTrust(t, p)
			// int4pl (OID 177) adds two int4 arguments sent in binary.
			arg := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
			c.send(&pgproto3.FunctionCall{Function: 177, ArgFormatCodes: []uint16{1},
				Arguments: [][]byte{arg(40), arg(2)}, ResultFormatCode: 1})
			var got []string
			for {
				m := c.receive()
				switch m := m.(type) {
				case *pgproto3.FunctionCallResponse:
					if len(m.Result) != 4 || int32(binary.BigEndian.Uint32(m.Result)) != 42 {
						t.Fatalf("int4pl(40, 2) = %x, want 42", m.Result)
					}
					got = append(got, "V")
				case *pgproto3.ReadyForQuery:
					got = append(got, "Z:"+string(m.TxStatus))
				default:
					t.Fatalf("unexpected %T", m)
				}
				if len(got) > 0 && got[len(got)-1][0] == 'Z' {
					break
				}
			}
			if !slices.Equal(got, []string{"V", "Z:I"}) {
				t.Fatalf("got %v", got)
			}
			// The session goes on.
			c.send(&pgproto3.Query{String: "SELECT 1"})
			for {
				if _, ok := c.receive().(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
		})
	}
}
