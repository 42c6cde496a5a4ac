-- ORDER BY with several keys, ASC and DESC, NULLS FIRST and LAST, by
-- name, position, alias, expression and columns not in the output; LIMIT,
-- OFFSET and FETCH. Across shards these need a merge. Entries marked
-- ordered end their ORDER BY with a unique column so that the order is
-- total. Pinned to one shard, on the replicated table or on the default
-- shard they need no merge.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: order by the key
-- ordered
SELECT id, name FROM oracle.users ORDER BY id

-- name: order by text, NULLs last by default
-- ordered
SELECT id, name FROM oracle.users ORDER BY name, id

-- name: DESC NULLS LAST then ASC
-- ordered
SELECT id, score FROM oracle.users ORDER BY score DESC NULLS LAST, id ASC

-- name: ASC NULLS FIRST then DESC
-- ordered
SELECT id, score FROM oracle.users ORDER BY score ASC NULLS FIRST, id DESC

-- name: three keys, mixed directions and NULLs
-- ordered
SELECT country, name, id FROM oracle.users ORDER BY country DESC NULLS FIRST, name ASC NULLS LAST, id

-- name: order by position
-- ordered
SELECT name, score, id FROM oracle.users ORDER BY 2 DESC, 3

-- name: order by columns not in the output
-- ordered
SELECT name FROM oracle.users ORDER BY born NULLS FIRST, id

-- name: order by an expression
-- ordered
SELECT id, name FROM oracle.users ORDER BY lower(name) NULLS FIRST, id

-- name: order by an expression not in the output
-- ordered
SELECT id FROM oracle.users ORDER BY balance * -1 NULLS FIRST, id

-- name: order by an alias
-- ordered
SELECT id, coalesce(score, 0)::bigint * 2 AS doubled FROM oracle.users ORDER BY doubled DESC, id

-- name: order by numerics of several scales
-- ordered
SELECT id, rating FROM oracle.users ORDER BY rating DESC NULLS FIRST, id

-- name: order by dates, then a two-column key
-- ordered
SELECT user_id, order_id, placed FROM oracle.orders ORDER BY placed DESC NULLS LAST, user_id, order_id

-- name: order by a boolean
-- ordered
SELECT id, active FROM oracle.users ORDER BY active NULLS FIRST, id

-- name: DESC puts NULLs first by default
-- ordered
SELECT id, country FROM oracle.users ORDER BY country DESC, id DESC

-- name: order by non-ASCII text keys
-- ordered
SELECT email, balance FROM oracle.accounts ORDER BY email

-- name: order with whole duplicate rows, a shard empty
-- ordered
SELECT created_at, name, qty FROM oracle.events ORDER BY created_at DESC, name, qty

-- name: order by on a co-located join
-- ordered
SELECT u.name, o.total FROM oracle.users u JOIN oracle.orders o ON o.user_id = u.id ORDER BY o.total DESC NULLS LAST, o.user_id, o.order_id

-- name: order on a list rule
-- ordered
SELECT tenant, v, label FROM oracle.tenant_data ORDER BY v DESC NULLS FIRST, tenant, label NULLS FIRST

-- name: LIMIT
-- ordered
SELECT id, name FROM oracle.users ORDER BY id LIMIT 5

-- name: LIMIT and OFFSET
-- ordered
SELECT id, score FROM oracle.users ORDER BY score DESC NULLS LAST, id LIMIT 4 OFFSET 3

-- name: OFFSET alone
-- ordered
SELECT id FROM oracle.users ORDER BY id OFFSET 28

-- name: OFFSET past the end
SELECT id FROM oracle.users ORDER BY id OFFSET 100

-- name: LIMIT 0
SELECT id, name FROM oracle.users LIMIT 0

-- name: LIMIT without ORDER BY, counted
-- refused: 0A000
SELECT count(*) FROM (SELECT id FROM oracle.users LIMIT 10) s

-- name: FETCH FIRST
-- ordered
SELECT id FROM oracle.users ORDER BY name DESC NULLS LAST, id FETCH FIRST 3 ROWS ONLY

-- name: FETCH FIRST WITH TIES
-- refused: 0A000
SELECT id, score FROM oracle.users ORDER BY score DESC NULLS LAST FETCH FIRST 2 ROWS WITH TIES

-- name: LIMIT on a rule over two shards
-- ordered
SELECT id, msg FROM oracle.logs ORDER BY id DESC LIMIT 3

-- name: LIMIT on a date range spanning shards
-- ordered
SELECT created_at, name FROM oracle.events WHERE created_at > '2024-01-01' ORDER BY created_at, name LIMIT 4

-- name: ORDER BY and LIMIT pinned to one shard
-- ordered
SELECT order_id, total FROM oracle.orders WHERE user_id = 7 ORDER BY total DESC LIMIT 2

-- name: ORDER BY pinned to one list shard
-- ordered
SELECT v, label FROM oracle.tenant_data WHERE tenant = 'initech' ORDER BY v, label

-- name: ORDER BY on the empty range shard
-- ordered
SELECT created_at, name FROM oracle.events WHERE created_at = '2025-06-01' ORDER BY name

-- name: ORDER BY and LIMIT on the replicated table
-- ordered
SELECT code, population FROM oracle.countries ORDER BY population DESC NULLS FIRST, code LIMIT 5 OFFSET 1

-- name: ORDER BY on the default shard
-- ordered
SELECT id, note FROM oracle.misc ORDER BY note NULLS FIRST, id DESC
