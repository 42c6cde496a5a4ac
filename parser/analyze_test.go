package parser

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	pgqparser "github.com/pganalyze/pg_query_go/v6/parser"
)

// Helpers that keep the cases below short.
func tb(name string) TableRef          { return TableRef{Name: name} }
func tbs(schema, name string) TableRef { return TableRef{Schema: schema, Name: name} }
func tba(name, alias string) TableRef  { return TableRef{Name: name, Alias: alias} }
func iv(s string) Value                { return Value{Kind: ValueInt, Text: s} }
func nv(s string) Value                { return Value{Kind: ValueNumeric, Text: s} }
func sv(s string) Value                { return Value{Kind: ValueString, Text: s} }
func pv(n int) Value                   { return Value{Kind: ValueParam, Param: n} }
func cast(v Value, typ string) Value   { v.Cast = typ; return v }
func pr(t TableRef, col string, vs ...Value) Pred {
	return Pred{Table: t, Column: col, Values: vs}
}
func arr(t TableRef, col string, vs ...Value) Pred {
	return Pred{Table: t, Column: col, Values: vs, Array: true}
}
func jn(lt TableRef, lc string, rt TableRef, rc string) JoinEq {
	return JoinEq{Left: ColumnRef{Table: lt, Column: lc}, Right: ColumnRef{Table: rt, Column: rc}}
}

var (
	nullV    = Value{Kind: ValueNull}
	defaultV = Value{Kind: ValueDefault}
	exprV    = Value{}
	trueV    = Value{Kind: ValueBool, Text: "true"}
)

type analyzeCase struct {
	sql     string
	kind    StmtKind
	ro      bool
	tables  []TableRef
	preds   []Pred
	joins   []JoinEq
	inserts []InsertRows
	hint    Hint
	funcs   []string // nil: not checked
}

const pgbench = "SELECT abalance FROM pgbench_accounts WHERE aid = 42"

var analyzeCases = []analyzeCase{
	// SELECT: the shapes of a routing predicate.
	{sql: pgbench, kind: StmtSelect, ro: true, tables: []TableRef{tb("pgbench_accounts")},
		preds: []Pred{pr(tb("pgbench_accounts"), "aid", iv("42"))}},
	{sql: "select * from users where id = $1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", pv(1))}},
	{sql: "select * from users where $1 = id", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", pv(1))}},
	{sql: "select * from users where id in (1, 2, 2)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"), iv("2"))}},
	{sql: "select * from users where id not in (1, 2)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id in ($1, $2, $3)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", pv(1), pv(2), pv(3))}},
	{sql: "select * from users where id = any($1)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{arr(tb("users"), "id", pv(1))}},
	{sql: "select * from users where id = any($1::bigint[])", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{arr(tb("users"), "id", cast(pv(1), "int8[]"))}},
	{sql: "select * from users where id = any('{1,2}'::int[])", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{arr(tb("users"), "id", cast(sv("{1,2}"), "int4[]"))}},
	{sql: "select * from users where id = any(array[1,2])", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"), iv("2"))}},
	{sql: "select * from users where id = any(array[$1,$2]::int8[])", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", cast(pv(1), "int8"), cast(pv(2), "int8"))}},
	{sql: "select * from users where id <> all(array[1,2])", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = any(select uid from banned)", kind: StmtSelect, ro: true,
		tables: []TableRef{tb("users"), tb("banned")}},
	{sql: "select * from users where (id = 1 or id = 2)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"), iv("2"))}},
	{sql: "select * from users where id = 1 or id in (2, 3) or id = 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"), iv("2"), iv("3"))}},
	{sql: "select * from users where id = 1 or name = 'x'", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where (id = 1 and a = 2) or (id = 3 and b = 4)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"), iv("3"))}},
	{sql: "select * from users where id = 1 or id = any($1)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = 1 and other = 2", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1")), pr(tb("users"), "other", iv("2"))}},
	{sql: "select * from users where id = 1 and (a = 2 and b = 'x')", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1")), pr(tb("users"), "a", iv("2")), pr(tb("users"), "b", sv("x"))}},
	{sql: "select * from users where not (id = 1)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id <> 1 and id > 2 and id is null", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = other_col", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = 1 + 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = null", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", nullV)}},
	{sql: "select * from users where active = true and id = 1.5", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "active", trueV), pr(tb("users"), "id", nv("1.5"))}},
	// Literals: casts, negative numbers, big integers, strings.
	{sql: "select * from users where id = '42'::bigint", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", cast(sv("42"), "int8"))}},
	{sql: "select * from users where id = CAST($1 AS int)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", cast(pv(1), "int4"))}},
	{sql: "select * from users where id = bigint '7'", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", cast(sv("7"), "int8"))}},
	{sql: "select * from users where id = '7'::text::myschema.mytype", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", cast(sv("7"), "myschema.mytype"))}},
	{sql: "select * from users where id = -5", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("-5"))}},
	{sql: "select * from users where id = - 5", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("-5"))}},
	{sql: "select * from users where id = -(5)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("-5"))}},
	{sql: "select * from users where id = -(-5)", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("5"))}},
	{sql: "select * from users where id = -2.5e3", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", nv("-2.5e3"))}},
	{sql: "select * from users where id = 9223372036854775807", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("9223372036854775807"))}},
	{sql: "select * from users where id = -9223372036854775808", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("-9223372036854775808"))}},
	{sql: "select * from users where name = E'it\\'s' and tag = 'a''b' and d = $$x$$", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "name", sv("it's")), pr(tb("users"), "tag", sv("a'b")), pr(tb("users"), "d", sv("x"))}},
	// Names: schema-qualified, quoted, aliases.
	{sql: `select * from app.users where app.users.id = 3`, kind: StmtSelect, ro: true, tables: []TableRef{tbs("app", "users")},
		preds: []Pred{pr(tbs("app", "users"), "id", iv("3"))}},
	{sql: `select * from app.users u where u.id = 3`, kind: StmtSelect, ro: true,
		tables: []TableRef{{Schema: "app", Name: "users", Alias: "u"}},
		preds:  []Pred{pr(TableRef{Schema: "app", Name: "users", Alias: "u"}, "id", iv("3"))}},
	{sql: `select * from "App"."Users" where "Id" = 3`, kind: StmtSelect, ro: true, tables: []TableRef{tbs("App", "Users")},
		preds: []Pred{pr(tbs("App", "Users"), "Id", iv("3"))}},
	{sql: `select * from users u where users.id = 3`, kind: StmtSelect, ro: true, tables: []TableRef{tba("users", "u")}},
	// Joins.
	{sql: "select * from orders a join items b on a.user_id = b.user_id where a.user_id = 5", kind: StmtSelect, ro: true,
		tables: []TableRef{tba("orders", "a"), tba("items", "b")},
		preds:  []Pred{pr(tba("orders", "a"), "user_id", iv("5"))},
		joins:  []JoinEq{jn(tba("orders", "a"), "user_id", tba("items", "b"), "user_id")}},
	{sql: "select * from orders a, items b where a.user_id = b.user_id and b.user_id = $1", kind: StmtSelect, ro: true,
		tables: []TableRef{tba("orders", "a"), tba("items", "b")},
		preds:  []Pred{pr(tba("items", "b"), "user_id", pv(1))},
		joins:  []JoinEq{jn(tba("orders", "a"), "user_id", tba("items", "b"), "user_id")}},
	{sql: "select * from orders o join items i on o.id = i.order_id and i.shop = 7 left join notes n on n.order_id = o.id and n.kind = 1", kind: StmtSelect, ro: true,
		tables: []TableRef{tba("orders", "o"), tba("items", "i"), tba("notes", "n")},
		preds:  []Pred{pr(tba("items", "i"), "shop", iv("7"))},
		joins: []JoinEq{jn(tba("orders", "o"), "id", tba("items", "i"), "order_id"),
			jn(tba("notes", "n"), "order_id", tba("orders", "o"), "id")}},
	{sql: "select * from orders join items using (user_id) where user_id = 9", kind: StmtSelect, ro: true,
		tables: []TableRef{tb("orders"), tb("items")},
		preds:  []Pred{pr(TableRef{}, "user_id", iv("9"))},
		joins:  []JoinEq{jn(tb("orders"), "user_id", tb("items"), "user_id")}},
	{sql: "select * from s1.orders join s2.items on orders.k = items.k", kind: StmtSelect, ro: true,
		tables: []TableRef{tbs("s1", "orders"), tbs("s2", "items")},
		joins:  []JoinEq{jn(tbs("s1", "orders"), "k", tbs("s2", "items"), "k")}},
	// Subqueries: their tables count, their predicates do not.
	{sql: "select * from (select * from users where id = 1) s where s.id = 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from (select * from users where id = 1) s where id = 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "select * from users where id = 2 and org in (select org from orgs where id = 3)", kind: StmtSelect, ro: true,
		tables: []TableRef{tb("users"), tb("orgs")},
		preds:  []Pred{pr(tb("users"), "id", iv("2"))}},
	{sql: "select (select count(*) from items i where i.uid = u.id) from users u where u.id = 4", kind: StmtSelect, ro: true,
		tables: []TableRef{tba("items", "i"), tba("users", "u")},
		preds:  []Pred{pr(tba("users", "u"), "id", iv("4"))}, funcs: []string{"count"}},
	{sql: "select * from users where exists (select 1 from bans b where b.uid = users.id) and id = 1", kind: StmtSelect, ro: true,
		tables: []TableRef{tb("users"), tba("bans", "b")},
		preds:  []Pred{pr(tb("users"), "id", iv("1"))}},
	{sql: "select id from a where id = 1 union all select id from b where id = 1", kind: StmtSelect, ro: true,
		tables: []TableRef{tb("a"), tb("b")}},
	// CTEs.
	{sql: "with x as (select * from users where id = 1) select * from x where id = 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	{sql: "with x as (insert into log (uid) values (1) returning *) select * from x", kind: StmtSelect,
		tables:  []TableRef{tb("log")},
		inserts: []InsertRows{{Table: tb("log"), Columns: []string{"uid"}, Rows: [][]Value{{iv("1")}}, Returning: true}}},
	{sql: "with d as (delete from q where id = 1 returning *) select count(*) from d", kind: StmtSelect,
		tables: []TableRef{tb("q")}, funcs: []string{"count"}},
	{sql: "with recursive r(n) as (select 1 union all select n+1 from r where n < 5) select * from r", kind: StmtSelect, ro: true},
	// Locks, SELECT INTO, functions.
	{sql: "select * from users where id = 1 for update", kind: StmtSelect, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}},
	{sql: "select * from users where id = 1 for no key update skip locked", kind: StmtSelect, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}},
	{sql: "select * from users where id = 1 for share", kind: StmtSelect, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}},
	{sql: "select * from users where id = 1 for key share", kind: StmtSelect, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}},
	{sql: "select * into copy_of_users from users", kind: StmtSelect, tables: []TableRef{tb("copy_of_users"), tb("users")}},
	{sql: "select nextval('seq')", kind: StmtSelect, funcs: []string{"nextval"}},
	{sql: "select setval('seq', 1), pg_advisory_lock(1)", kind: StmtSelect, funcs: []string{"setval", "pg_advisory_lock"}},
	{sql: "select set_config('a.b', 'c', false)", kind: StmtSelect, funcs: []string{"set_config"}},
	{sql: "select lo_create(0)", kind: StmtSelect, funcs: []string{"lo_create"}},
	{sql: "select my_func(id) from users where id = 1", kind: StmtSelect, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}, funcs: []string{"my_func"}},
	{sql: "select app.f(1), pg_catalog.upper('x'), lower('Y'), count(*), now()", kind: StmtSelect,
		funcs: []string{"app.f", "pg_catalog.upper", "lower", "count", "now"}},
	{sql: "select lower(name), count(*) from users where id = 1 group by 1", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", iv("1"))}, funcs: []string{"lower", "count"}},
	{sql: "select * from generate_series(1, 3) g where g = 1", kind: StmtSelect, ro: true, funcs: []string{"generate_series"}},
	{sql: "select 1", kind: StmtSelect, ro: true},
	{sql: "values (1), (2)", kind: StmtSelect, ro: true},
	{sql: "table users", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")}},
	// UPDATE and DELETE.
	{sql: "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", kind: StmtUpdate,
		tables: []TableRef{tb("pgbench_accounts")},
		preds:  []Pred{pr(tb("pgbench_accounts"), "aid", pv(2))}},
	{sql: "update app.users u set name = 'x' where u.id in (1, 2) returning *", kind: StmtUpdate,
		tables: []TableRef{{Schema: "app", Name: "users", Alias: "u"}},
		preds:  []Pred{pr(TableRef{Schema: "app", Name: "users", Alias: "u"}, "id", iv("1"), iv("2"))}},
	{sql: "update users set n = 1 from orgs where users.org = orgs.id and orgs.id = 3", kind: StmtUpdate,
		tables: []TableRef{tb("users"), tb("orgs")},
		preds:  []Pred{pr(tb("orgs"), "id", iv("3"))},
		joins:  []JoinEq{jn(tb("users"), "org", tb("orgs"), "id")}},
	{sql: "update users set n = (select max(n) from other where id = 1)", kind: StmtUpdate,
		tables: []TableRef{tb("users"), tb("other")}, funcs: []string{"max"}},
	{sql: "delete from users where id = $1", kind: StmtDelete, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", pv(1))}},
	{sql: "delete from users u using bans b where u.id = b.uid and u.id = 5", kind: StmtDelete,
		tables: []TableRef{tba("users", "u"), tba("bans", "b")},
		preds:  []Pred{pr(tba("users", "u"), "id", iv("5"))},
		joins:  []JoinEq{jn(tba("users", "u"), "id", tba("bans", "b"), "uid")}},
	{sql: "delete from users", kind: StmtDelete, tables: []TableRef{tb("users")}},
	// INSERT.
	{sql: "insert into users (id, name) values (1, 'a')", kind: StmtInsert, tables: []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"id", "name"}, Rows: [][]Value{{iv("1"), sv("a")}}}}},
	{sql: "insert into users (name, id) values ($1, $2)", kind: StmtInsert, tables: []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"name", "id"}, Rows: [][]Value{{pv(1), pv(2)}}}}},
	{sql: "insert into users values (1, 'a', null)", kind: StmtInsert, tables: []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users"), Rows: [][]Value{{iv("1"), sv("a"), nullV}}}}},
	{sql: "insert into app.users as u (id, at) values (1, now()), (-2, default), ('3'::bigint, $1)", kind: StmtInsert,
		tables: []TableRef{{Schema: "app", Name: "users", Alias: "u"}}, funcs: []string{"now"},
		inserts: []InsertRows{{Table: TableRef{Schema: "app", Name: "users", Alias: "u"}, Columns: []string{"id", "at"},
			Rows: [][]Value{{iv("1"), exprV}, {iv("-2"), defaultV}, {cast(sv("3"), "int8"), pv(1)}}}}},
	{sql: "insert into users (id) select id from staging where batch = 1", kind: StmtInsert,
		tables:  []TableRef{tb("users"), tb("staging")},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"id"}, Query: true}}},
	{sql: "insert into users default values", kind: StmtInsert, tables: []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users")}}},
	{sql: "insert into users (id, n) values (1, 1) on conflict (id) do update set n = users.n + 1 returning id", kind: StmtInsert,
		tables:  []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"id", "n"}, Rows: [][]Value{{iv("1"), iv("1")}}, OnConflict: true, Returning: true}}},
	{sql: "insert into users (id) values (1) on conflict do nothing", kind: StmtInsert, tables: []TableRef{tb("users")},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"id"}, Rows: [][]Value{{iv("1")}}, OnConflict: true}}},
	{sql: "insert into users (id) values (nextval('users_id_seq'))", kind: StmtInsert, tables: []TableRef{tb("users")},
		funcs:   []string{"nextval"},
		inserts: []InsertRows{{Table: tb("users"), Columns: []string{"id"}, Rows: [][]Value{{exprV}}}}},
	// COPY.
	{sql: "copy users from stdin", kind: StmtCopy, tables: []TableRef{tb("users")}},
	{sql: "copy app.users (id, name) to stdout with (format binary)", kind: StmtCopy, ro: true, tables: []TableRef{tbs("app", "users")}},
	{sql: "copy (select * from users where id = 1) to stdout", kind: StmtCopy, ro: true, tables: []TableRef{tb("users")}},
	// DDL.
	{sql: "create table app.users (id bigint primary key, org int references orgs(id))", kind: StmtDDL,
		tables: []TableRef{tbs("app", "users"), tb("orgs")}},
	{sql: "create index concurrently on users (email)", kind: StmtDDL, tables: []TableRef{tb("users")}},
	{sql: "alter table users add column x int", kind: StmtDDL, tables: []TableRef{tb("users")}},
	{sql: "alter table users rename to people", kind: StmtDDL, tables: []TableRef{tb("users")}},
	{sql: "drop table if exists users, app.orders cascade", kind: StmtDDL, tables: []TableRef{tb("users"), tbs("app", "orders")}},
	{sql: "drop index app.users_email_idx", kind: StmtDDL, tables: []TableRef{tbs("app", "users_email_idx")}},
	{sql: "drop function f(int)", kind: StmtDDL},
	{sql: "truncate users, orders", kind: StmtDDL, tables: []TableRef{tb("users"), tb("orders")}},
	{sql: "create view v as select * from users", kind: StmtDDL, tables: []TableRef{tb("v"), tb("users")}},
	{sql: "create table t2 as select * from users", kind: StmtDDL, tables: []TableRef{tb("users"), tb("t2")}},
	// Transaction control and utility statements.
	{sql: "BEGIN", kind: StmtTxControl, ro: true},
	{sql: "start transaction read only", kind: StmtTxControl, ro: true},
	{sql: "COMMIT", kind: StmtTxControl, ro: true},
	{sql: "rollback to savepoint a", kind: StmtTxControl, ro: true},
	{sql: "SET search_path TO app", kind: StmtUtility, ro: true},
	{sql: "set local statement_timeout = 5", kind: StmtUtility, ro: true},
	{sql: "SHOW server_version", kind: StmtUtility, ro: true},
	{sql: "reset all", kind: StmtUtility, ro: true},
	{sql: "discard all", kind: StmtUtility, ro: true},
	{sql: "prepare p as select * from users where id = $1", kind: StmtUtility, ro: true, tables: []TableRef{tb("users")}},
	{sql: "execute p(1)", kind: StmtUtility},
	{sql: "lock table users in access exclusive mode", kind: StmtUtility, tables: []TableRef{tb("users")}},
	{sql: "explain select * from users where id = 1", kind: StmtOther, ro: true, tables: []TableRef{tb("users")}},
	{sql: "explain analyze delete from users", kind: StmtOther, tables: []TableRef{tb("users")}},
	{sql: "call app.do_it(1)", kind: StmtOther, funcs: []string{"app.do_it"}},
	{sql: "merge into t using s on t.id = s.id when matched then delete", kind: StmtOther, tables: []TableRef{tb("t"), tb("s")}},
	{sql: "vacuum users", kind: StmtDDL, tables: []TableRef{tb("users")}},
	// Hints.
	{sql: "/* pgshard: shard=s1 */ select * from users", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		hint: Hint{Shard: "s1"}},
	{sql: "select * from users /* pgshard: key=42 */", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		hint: Hint{Key: "42"}},
	{sql: "/*pgshard:shard=s1,key=42*/select 1", kind: StmtSelect, ro: true, hint: Hint{Shard: "s1", Key: "42"}},
	{sql: "/*  PGSHARD :  shard = 's 2' ,  key = \"x\"  */ select 1", kind: StmtSelect, ro: true, hint: Hint{Shard: "s 2", Key: "x"}},
	{sql: "select 1 -- pgshard: shard=s3", kind: StmtSelect, ro: true, hint: Hint{Shard: "s3"}},
	{sql: "/* pgshard: shard=s1 */ select 1 /* pgshard: shard=s2 */", kind: StmtSelect, ro: true, hint: Hint{Shard: "s2"}},
	{sql: "/* outer /* pgshard: shard=s1 */ */ select 1", kind: StmtSelect, ro: true},
	{sql: "/* not a pgshard: shard=s1 hint */ select 1", kind: StmtSelect, ro: true},
	{sql: "select '/* pgshard: shard=s1 */'", kind: StmtSelect, ro: true},
	{sql: "select E'\\' /* pgshard: shard=s1 */'", kind: StmtSelect, ro: true},
	{sql: `select 1 as "/* pgshard: shard=s1 */"`, kind: StmtSelect, ro: true},
	{sql: "select $$ /* pgshard: shard=s1 */ $$", kind: StmtSelect, ro: true},
	{sql: "select $a$ $$ /* pgshard: shard=s1 */ $$ $a$", kind: StmtSelect, ro: true},
	{sql: "select * from users where id = $1 /* pgshard: key=7 */", kind: StmtSelect, ro: true, tables: []TableRef{tb("users")},
		preds: []Pred{pr(tb("users"), "id", pv(1))}, hint: Hint{Key: "7"}},
	{sql: "/* pgshard: colour=red */ select 1", kind: StmtSelect, ro: true},
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestAnalyze(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range analyzeCases {
		if seen[c.sql] {
			t.Errorf("duplicate case %q", c.sql)
		}
		seen[c.sql] = true
		t.Run(c.sql, func(t *testing.T) {
			as, err := Analyze(c.sql)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if len(as) != 1 {
				t.Fatalf("got %d analyses, want 1", len(as))
			}
			checkAnalysis(t, as[0], c)
		})
	}
}

func checkAnalysis(t *testing.T, a Analysis, c analyzeCase) {
	t.Helper()
	if a.Kind != c.kind {
		t.Errorf("Kind = %v, want %v", a.Kind, c.kind)
	}
	if a.ReadOnly != c.ro {
		t.Errorf("ReadOnly = %v, want %v", a.ReadOnly, c.ro)
	}
	check := func(field string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s =\n  %+v\nwant\n  %+v", field, got, want)
		}
	}
	check("Tables", nilIfEmpty(a.Tables), c.tables)
	check("Preds", nilIfEmpty(a.Preds), c.preds)
	check("Joins", nilIfEmpty(a.Joins), c.joins)
	check("Inserts", nilIfEmpty(a.Inserts), c.inserts)
	check("Hint", a.Hint, c.hint)
	if c.funcs != nil {
		check("Functions", a.Functions, c.funcs)
	}
}

func TestAnalyzeMulti(t *testing.T) {
	sql := "/* pgshard: shard=s1 */ BEGIN; UPDATE a SET x = 1 WHERE id = 1 /* pgshard: key=1 */;\n" +
		"select * from b where id in (2, 3); /* pgshard: key=4 */ select 1; COMMIT -- pgshard: shard=s9\n"
	as, err := Analyze(sql)
	if err != nil {
		t.Fatal(err)
	}
	want := []analyzeCase{
		{kind: StmtTxControl, ro: true, hint: Hint{Shard: "s1"}},
		{kind: StmtUpdate, tables: []TableRef{tb("a")}, preds: []Pred{pr(tb("a"), "id", iv("1"))}, hint: Hint{Key: "1"}},
		{kind: StmtSelect, ro: true, tables: []TableRef{tb("b")}, preds: []Pred{pr(tb("b"), "id", iv("2"), iv("3"))}},
		{kind: StmtSelect, ro: true, hint: Hint{Key: "4"}},
		{kind: StmtTxControl, ro: true, hint: Hint{Shard: "s9"}},
	}
	if len(as) != len(want) {
		t.Fatalf("got %d analyses, want %d", len(as), len(want))
	}
	for i := range want {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAnalysis(t, as[i], want[i]) })
	}
	// A hint after the last semicolon belongs to the last statement.
	as, err = Analyze("select 1; select 2; /* pgshard: shard=s4 */")
	if err != nil || len(as) != 2 || as[1].Hint.Shard != "s4" || !as[0].Hint.IsZero() {
		t.Fatalf("trailing hint: %+v, %v", as, err)
	}
}

func TestAnalyzeEmpty(t *testing.T) {
	for _, sql := range []string{"", " ; ;", "-- nothing"} {
		as, err := Analyze(sql)
		if err != nil || len(as) != 0 {
			t.Errorf("Analyze(%q) = %v, %v; want nothing", sql, as, err)
		}
	}
}

func TestAnalyzeSyntaxError(t *testing.T) {
	_, err := Analyze("select * fromm users where")
	if err == nil {
		t.Fatal("no error")
	}
	var pe *pgqparser.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) does not wrap *parser.Error", err, err)
	}
	if !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("error %q does not say syntax error", err)
	}
}

func TestReadOnlyWith(t *testing.T) {
	vouch := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, m := range names {
				if m == n {
					return true
				}
			}
			return false
		}
	}
	cases := []struct {
		sql   string
		allow func(string) bool
		want  bool
	}{
		{"select 1", nil, true},
		{"select app.f(1)", nil, false},
		{"select app.f(1)", vouch("app.f"), true},
		{"select app.f(1), g()", vouch("app.f"), false},
		{"select app.f(1), g()", vouch("app.f", "g"), true},
		{"select app.f(1) for update", vouch("app.f"), false},
		{"select app.f(nextval('s'))", vouch("app.f"), false},
		{"insert into t values (app.f(1))", vouch("app.f"), false},
	}
	for _, c := range cases {
		as, err := Analyze(c.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := as[0].ReadOnlyWith(c.allow); got != c.want {
			t.Errorf("%q: ReadOnlyWith = %v, want %v", c.sql, got, c.want)
		}
	}
}

func TestUserFunctions(t *testing.T) {
	as, err := Analyze("select app.f(1), g(2), lower('x'), nextval('s'), pg_catalog.whatever(), app.f(3)")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app.f", "g"}; !reflect.DeepEqual(as[0].UserFunctions, want) {
		t.Errorf("UserFunctions = %v, want %v", as[0].UserFunctions, want)
	}
}

func TestParseHint(t *testing.T) {
	cases := []struct {
		body string
		want Hint
		ok   bool
	}{
		{" pgshard: shard=s1 ", Hint{Shard: "s1"}, true},
		{"pgshard:key=42", Hint{Key: "42"}, true},
		{"pgshard: key = '4''2'", Hint{Key: "4'2"}, true},
		{"pgshard: key = 'unterminated", Hint{Key: "unterminated"}, true},
		{"pgshard: shard=s1 key=2", Hint{Shard: "s1", Key: "2"}, true},
		{"pgshard: shard=", Hint{}, false},
		{"pgshard shard=s1", Hint{}, false},
		{"pgshard: !!", Hint{}, false},
		{"pgshard: shard=a, junk, key=3", Hint{Shard: "a"}, true},
		{"hello", Hint{}, false},
		{"", Hint{}, false},
	}
	for _, c := range cases {
		h, ok := parseHint(c.body)
		if h != c.want || ok != c.ok {
			t.Errorf("parseHint(%q) = %+v, %v; want %+v, %v", c.body, h, ok, c.want, c.ok)
		}
	}
}

func TestStringers(t *testing.T) {
	if StmtDDL.String() != "ddl" || StmtKind(200).String() != "unknown" {
		t.Error("StmtKind.String")
	}
	if ValueParam.String() != "param" || ValueKind(200).String() != "unknown" {
		t.Error("ValueKind.String")
	}
	vs := []Value{iv("1"), sv("it's"), cast(pv(2), "int8"), nullV, defaultV, exprV, trueV}
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.String() + " ")
	}
	if got, want := b.String(), "1 'it''s' $2::int8 NULL DEFAULT <expr> true "; got != want {
		t.Errorf("Value.String: %q, want %q", got, want)
	}
	if tbs("a", "b").String() != "a.b" || tb("b").String() != "b" {
		t.Error("TableRef.String")
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, c := range analyzeCases {
		f.Add(c.sql)
	}
	f.Add("select 1; /* pgshard: shard=")
	f.Add("select $1$ /* unterminated")
	f.Add("select E'\\")
	f.Fuzz(func(t *testing.T, sql string) {
		as, err := Analyze(sql)
		if err != nil {
			return
		}
		for i := range as {
			_ = as[i].ReadOnlyWith(func(string) bool { return true })
			_ = analysesSize(as)
		}
		// Hints are scanned on their own too.
		_ = scanHints(sql)
	})
}

func BenchmarkAnalyzeUncached(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(pgbench); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnalyzeCached(b *testing.B) {
	c := NewCache(1 << 20)
	if _, err := c.Analyze(pgbench); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Analyze(pgbench); err != nil {
			b.Fatal(err)
		}
	}
}

func TestConcat(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT * FROM users WHERE id IN (1, 2)", true},
		{"SELECT id, lower(name), (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u", true},
		{"SELECT a FROM t UNION ALL SELECT b FROM u", true},
		{"INSERT INTO t VALUES (1) RETURNING *", true},
		{"UPDATE t SET a = 1", true},
		{"DELETE FROM t RETURNING id", true},
		{"SELECT * FROM users ORDER BY id", false},
		{"SELECT * FROM users LIMIT 5", false},
		{"SELECT * FROM users OFFSET 5", false},
		{"SELECT DISTINCT country FROM users", false},
		{"SELECT count(*) FROM users", false},
		{"SELECT sum(x) + 1 FROM t", false},
		{"SELECT country FROM users GROUP BY country", false},
		{"SELECT row_number() OVER () FROM users", false},
		{"SELECT my_agg(x) FROM t", false},
		{"SELECT a FROM t UNION SELECT b FROM u", false},
		{"SELECT a FROM t INTERSECT SELECT b FROM u", false},
		{"VALUES (1)", false},
		{"CREATE TABLE x (a int)", false},
	} {
		as, err := Analyze(tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		if got := as[0].Concat; got != tc.want {
			t.Errorf("%s: Concat = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestSplitInsert(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		keep   func(int) bool
		want   string
		params []int
	}{
		{"insert into users (name, id) values ('a', 1), ('b', $1), ('c', 3) returning id", func(i int) bool { return i != 1 },
			"INSERT INTO users (name, id) VALUES ('a', 1), ('c', 3) RETURNING id", nil},
		{"insert into users (id, name) values ($1, $2), ($3, $4), ($5, $6)", func(i int) bool { return i != 0 },
			"INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4)", []int{3, 4, 5, 6}},
		{"insert into users (id, name) values ($3, $1), ($4, $1) on conflict (id) do update set name = $2 returning $5::int",
			func(i int) bool { return i == 1 },
			"INSERT INTO users (id, name) VALUES ($3, $1) ON CONFLICT (id) DO UPDATE SET name = $2 RETURNING $4::int", []int{1, 2, 4, 5}},
	} {
		got, params, err := SplitInsert(tc.sql, tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || fmt.Sprint(params) != fmt.Sprint(tc.params) {
			t.Errorf("%s:\ngot  %q %v\nwant %q %v", tc.sql, got, params, tc.want, tc.params)
		}
	}
	if _, _, err := SplitInsert("insert into t select 1", func(int) bool { return true }); err == nil {
		t.Fatal("INSERT ... SELECT split without error")
	}
}

func TestAssigned(t *testing.T) {
	for sql, want := range map[string]string{
		"UPDATE users u SET name = 'x', id = 5 WHERE id = 1":                           "[users.name users.id]",
		"INSERT INTO users VALUES (1) ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id": "[users.id]",
		"INSERT INTO users VALUES (1) ON CONFLICT (id) DO NOTHING":                     "[]",
		"DELETE FROM users WHERE id = 1":                                               "[]",
	} {
		as, err := Analyze(sql)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range as[0].Assigned {
			got = append(got, c.Table.Name+"."+c.Column)
		}
		if s := fmt.Sprint(got); s != want && !(want == "[]" && len(got) == 0) {
			t.Errorf("%s: Assigned = %s, want %s", sql, s, want)
		}
	}
}
