package parser

import (
	"testing"
)

func TestClassify(t *testing.T) {
	type st struct {
		kind  Kind
		name  string
		text  string
		chain bool
	}
	cases := []struct {
		sql  string
		want []st // nil: nothing tracked
	}{
		{"SELECT 1", nil},
		{"select * from t where a = 'set x = 1; reset all'", nil},
		{"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3", nil},
		{"INSERT INTO t VALUES ($1); SELECT 2", nil},
		{"", nil},
		{";;  ;", nil},
		{"BEGIN", []st{{kind: Begin, text: "BEGIN"}}},
		{"start transaction isolation level serializable", []st{{kind: Begin, text: "start transaction isolation level serializable"}}},
		{"BEGIN; SELECT 1; COMMIT", []st{{kind: Begin, text: "BEGIN"}, {kind: Other, text: "SELECT 1"}, {kind: Commit, text: "COMMIT"}}},
		{"end work", []st{{kind: Commit, text: "end work"}}},
		{"COMMIT AND CHAIN", []st{{kind: Commit, text: "COMMIT AND CHAIN", chain: true}}},
		{"COMMIT AND NO CHAIN", []st{{kind: Commit, text: "COMMIT AND NO CHAIN"}}},
		{"abort", []st{{kind: Rollback, text: "abort"}}},
		{"ROLLBACK TO SAVEPOINT s1", []st{{kind: RollbackTo, name: "s1", text: "ROLLBACK TO SAVEPOINT s1"}}},
		{"rollback work to s2", []st{{kind: RollbackTo, name: "s2", text: "rollback work to s2"}}},
		{"COMMIT PREPARED 'gid'", nil},
		{"ROLLBACK PREPARED 'gid'", nil},
		{"PREPARE TRANSACTION 'gid'", []st{{kind: Commit, text: "PREPARE TRANSACTION 'gid'"}}},
		{"SAVEPOINT a", []st{{kind: Savepoint, name: "a", text: "SAVEPOINT a"}}},
		{"RELEASE SAVEPOINT a", []st{{kind: Release, name: "a", text: "RELEASE SAVEPOINT a"}}},
		{"release b", []st{{kind: Release, name: "b", text: "release b"}}},
		{"SET search_path TO a, b", []st{{kind: Set, name: "search_path", text: "SET search_path TO a, b"}}},
		{"set SESSION work_mem = '4MB'", []st{{kind: Set, name: "work_mem", text: "set SESSION work_mem = '4MB'"}}},
		{"SET LOCAL work_mem = '4MB'", []st{{kind: SetLocal, name: "work_mem", text: "SET LOCAL work_mem = '4MB'"}}},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", []st{{kind: SetLocal, text: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"}}},
		{"SET CONSTRAINTS ALL DEFERRED", []st{{kind: SetLocal, text: "SET CONSTRAINTS ALL DEFERRED"}}},
		{"SET TIME ZONE 'UTC'", []st{{kind: Set, name: "timezone", text: "SET TIME ZONE 'UTC'"}}},
		{"SET NAMES 'UTF8'", []st{{kind: Set, name: "client_encoding", text: "SET NAMES 'UTF8'"}}},
		{"SET SCHEMA 'x'", []st{{kind: Set, name: "search_path", text: "SET SCHEMA 'x'"}}},
		{"SET myapp.user_id = 42", []st{{kind: Set, name: "myapp.user_id", text: "SET myapp.user_id = 42"}}},
		{`SET "MyApp.Mixed" = 1`, []st{{kind: Set, name: "MyApp.Mixed", text: `SET "MyApp.Mixed" = 1`}}},
		{"SET SESSION AUTHORIZATION bob", []st{{kind: Set, name: "session_authorization", text: "SET SESSION AUTHORIZATION bob"}}},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", []st{{kind: Set, name: "session characteristics", text: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"}}},
		{"RESET ALL", []st{{kind: ResetAll, text: "RESET ALL"}}},
		{"reset TIME ZONE", []st{{kind: Reset, name: "timezone", text: "reset TIME ZONE"}}},
		{"RESET application_name", []st{{kind: Reset, name: "application_name", text: "RESET application_name"}}},
		{"DISCARD ALL", []st{{kind: DiscardAll, text: "DISCARD ALL"}}},
		{"DISCARD PLANS", nil},
		{"DEALLOCATE s1", []st{{kind: Deallocate, name: "s1", text: "DEALLOCATE s1"}}},
		{"deallocate prepare ALL", []st{{kind: DeallocateAll, text: "deallocate prepare ALL"}}},
		{"CREATE TEMP TABLE t (a int)", []st{{kind: SessionState, text: "CREATE TEMP TABLE t (a int)"}}},
		{"create global temporary table t (a int)", []st{{kind: SessionState, text: "create global temporary table t (a int)"}}},
		{"CREATE TABLE t (a int)", nil},
		{"SELECT * INTO TEMP t FROM x", []st{{kind: SessionState, text: "SELECT * INTO TEMP t FROM x"}}},
		{"LISTEN chan", []st{{kind: SessionState, text: "LISTEN chan"}}},
		{"PREPARE q AS SELECT 1", []st{{kind: SessionState, name: "q", text: "PREPARE q AS SELECT 1"}}},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", []st{{kind: SessionState, text: "DECLARE c CURSOR WITH HOLD FOR SELECT 1"}}},
		{"DECLARE c CURSOR FOR SELECT 1", nil},
		{"SELECT pg_advisory_lock(1)", []st{{kind: SessionState, text: "SELECT pg_advisory_lock(1)"}}},
		{"SELECT pg_advisory_xact_lock(1)", nil},
		{"select set_config('search_path', '', false)", []st{{kind: SessionState, text: "select set_config('search_path', '', false)"}}},
		// Quotes, comments and dollar quotes hide semicolons and keywords.
		{"SELECT ';' ; SET a.b = 1", []st{{kind: Other, text: "SELECT ';'"}, {kind: Set, name: "a.b", text: "SET a.b = 1"}}},
		{"SELECT $$ ; set x $$; -- ; SET\nSET a.c = 2 /* ; */", []st{{kind: Other, text: "SELECT $$ ; set x $$"}, {kind: Set, name: "a.c", text: "-- ; SET\nSET a.c = 2 /* ; */"}}},
		{"SELECT E'\\'; set'; BEGIN", []st{{kind: Other, text: "SELECT E'\\'; set'"}, {kind: Begin, text: "BEGIN"}}},
		{"/* a /* nested */ comment */ BEGIN", []st{{kind: Begin, text: "/* a /* nested */ comment */ BEGIN"}}},
		{"SELECT $1; BEGIN", []st{{kind: Other, text: "SELECT $1"}, {kind: Begin, text: "BEGIN"}}},
		// A SQL-standard function body holds semicolons only PostgreSQL's
		// own scanner sees past.
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SET a.d = 3",
			[]st{{kind: Other, text: "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END"}, {kind: Set, name: "a.d", text: "SET a.d = 3"}}},
	}
	for _, tc := range cases {
		got := Classify(tc.sql)
		if tc.want == nil {
			if got != nil {
				t.Errorf("Classify(%q) = %+v, want nil", tc.sql, got)
			}
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("Classify(%q): %d statements %+v, want %d", tc.sql, len(got), got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if g.Kind != w.kind || g.Name != w.name || g.Text != w.text || g.Chain != w.chain {
				t.Errorf("Classify(%q)[%d] = {%v %q %q %v}, want {%v %q %q %v}",
					tc.sql, i, g.Kind, g.Name, g.Text, g.Chain, w.kind, w.name, w.text, w.chain)
			}
		}
	}
}

func TestFirst(t *testing.T) {
	if s := First("  set LOCAL x = 1; BEGIN"); s.Kind != SetLocal {
		t.Errorf("First: %+v", s)
	}
	if s := First(""); s.Kind != Other {
		t.Errorf("First(empty): %+v", s)
	}
}

// The common case, a statement that changes no tracked state, must cost no
// allocation: it runs for every simple query.
func TestClassifyNoAllocs(t *testing.T) {
	sql := "SELECT abalance FROM pgbench_accounts WHERE aid = 12345"
	if n := testing.AllocsPerRun(100, func() { Classify(sql) }); n != 0 {
		t.Errorf("Classify allocates %v times per run", n)
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SELECT 1", "BEGIN; SET a = 1; COMMIT", "SELECT $$;$$", "E'\\''", "/* /* */", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, st := range Classify(sql) {
			if len(st.Text) > len(sql) {
				t.Fatalf("statement longer than input: %q", st.Text)
			}
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"select", "SELECT abalance FROM pgbench_accounts WHERE aid = 12345"},
		{"set", "SET application_name = 'bench'"},
		{"tx", "BEGIN; UPDATE t SET a = 1 WHERE id = 2; COMMIT"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(bc.sql)
			}
		})
	}
}
