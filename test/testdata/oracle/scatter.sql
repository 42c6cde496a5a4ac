-- Reads whose rows need no merging: each shard's rows, concatenated, are
-- the answer. Filters on every type, NULLs, keys pinned or spread over
-- shards, tables with an empty shard, joins of co-located tables and with
-- the replicated one, co-located subqueries, UNION ALL.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: all users
SELECT * FROM oracle.users

-- name: filter on an integer
SELECT id, name FROM oracle.users WHERE score > 50

-- name: IS NULL on a column that is not the key
SELECT id, name, score FROM oracle.users WHERE score IS NULL

-- name: NULL and the text NULL
SELECT id, name FROM oracle.users WHERE name IS NULL OR name = 'NULL'

-- name: ILIKE over mixed case
SELECT id, name FROM oracle.users WHERE name ILIKE 'alice'

-- name: text functions on names with spaces
SELECT id, upper(name), length(name), '[' || name || ']' AS bracketed FROM oracle.users WHERE name LIKE '% %'

-- name: text above Z (lower case and non-ASCII in C collation)
SELECT id, name FROM oracle.users WHERE name > 'Z'

-- name: numerics of several scales in expressions
SELECT id, balance, rating, balance * 2 AS doubled, rating / 3 AS third, round(rating, 1) AS rounded FROM oracle.users WHERE rating IS NOT NULL

-- name: dates and date arithmetic
SELECT id, born, born + 1 AS next_day, extract(year FROM born) AS y FROM oracle.users WHERE born < '1970-01-01'

-- name: coalesce over NULLs
SELECT id, coalesce(country, '??') AS country, coalesce(score, -1) AS score FROM oracle.users WHERE active IS NOT TRUE

-- name: negative scores
SELECT id, score FROM oracle.users WHERE score < 0

-- name: negative keys by range
SELECT id, name FROM oracle.users WHERE id < 0

-- name: key IN list over every shard
SELECT id, name FROM oracle.users WHERE id IN (-7, -5, -4, 2147483647, 1000000)

-- name: key = ANY array with a missing key
SELECT id FROM oracle.users WHERE id = ANY (ARRAY[1, 2, 3, 999])

-- name: key OR key OR key
SELECT id, name FROM oracle.users WHERE id = 3 OR id = 4 OR id = 5

-- name: no rows anywhere
SELECT id, name FROM oracle.users WHERE false

-- name: pinned key without a row
SELECT id, name FROM oracle.users WHERE id = 424242

-- name: pinned key
SELECT * FROM oracle.users WHERE id = 2147483647

-- name: all orders (s2 empty)
SELECT * FROM oracle.orders

-- name: IS DISTINCT FROM over NULL statuses
SELECT user_id, order_id, total, status FROM oracle.orders WHERE status IS DISTINCT FROM 'paid'

-- name: all events (s1 empty)
SELECT * FROM oracle.events

-- name: date range across the range shards
SELECT name, created_at FROM oracle.events WHERE created_at BETWEEN '2024-06-01' AND '2026-06-01'

-- name: date range on the last range shard
SELECT * FROM oracle.events WHERE created_at >= '2026-01-01'

-- name: date range on the empty shard only
SELECT * FROM oracle.events WHERE created_at >= '2025-01-01' AND created_at < '2026-01-01'

-- name: all tenant_data (list rule)
SELECT * FROM oracle.tenant_data

-- name: list keys on two shards
SELECT tenant, v, label FROM oracle.tenant_data WHERE tenant IN ('acme', 'initech')

-- name: all logs (rule over s1 and s2)
SELECT * FROM oracle.logs

-- name: logs by text filter
SELECT id, msg FROM oracle.logs WHERE msg ILIKE 'start' OR msg = ''

-- name: all accounts (text key)
SELECT * FROM oracle.accounts

-- name: text keys IN list, non-ASCII and empty
SELECT email, balance FROM oracle.accounts WHERE email IN ('zoë@example.com', '日本@example.jp', '', 'nobody@example.com')

-- name: all countries (replicated)
SELECT * FROM oracle.countries

-- name: all misc (default shard)
SELECT * FROM oracle.misc

-- name: co-located join on the key
SELECT u.id, u.name, o.order_id, o.total FROM oracle.users u JOIN oracle.orders o ON o.user_id = u.id

-- name: co-located LEFT JOIN, NULLs for users without orders
SELECT u.id, o.order_id, o.amount FROM oracle.users u LEFT JOIN oracle.orders o ON o.user_id = u.id

-- name: co-located RIGHT JOIN, orders without a user
SELECT u.name, o.user_id, o.order_id FROM oracle.users u RIGHT JOIN oracle.orders o ON o.user_id = u.id WHERE u.id IS NULL

-- name: join with the replicated table
SELECT u.id, c.name, c.population FROM oracle.users u JOIN oracle.countries c ON c.code = u.country

-- name: LEFT JOIN to the replicated table, unmatched users
SELECT u.id, u.country, c.continent FROM oracle.users u LEFT JOIN oracle.countries c ON c.code = u.country WHERE c.code IS NULL

-- name: IN subquery on a co-located table
-- refused: 0A000
SELECT id, name FROM oracle.users WHERE id IN (SELECT user_id FROM oracle.orders WHERE total > 100)

-- name: NOT EXISTS on a co-located table
-- refused: 0A000
SELECT id FROM oracle.users u WHERE NOT EXISTS (SELECT 1 FROM oracle.orders o WHERE o.user_id = u.id)

-- name: IN subquery on the replicated table
SELECT id, country FROM oracle.users WHERE country IN (SELECT code FROM oracle.countries WHERE continent = 'Europe')

-- name: LATERAL on a co-located table
-- refused: 0A000
SELECT u.id, o.total FROM oracle.users u, LATERAL (SELECT total FROM oracle.orders o WHERE o.user_id = u.id) o

-- name: UNION ALL of co-located tables
-- refused: 0A000
SELECT id, name FROM oracle.users WHERE score = 100 UNION ALL SELECT user_id, status FROM oracle.orders WHERE total = 50

-- name: UNION ALL of one table twice
SELECT id, 'low' AS band FROM oracle.users WHERE score < 0 UNION ALL SELECT id, 'high' FROM oracle.users WHERE score >= 88

-- name: CASE
SELECT id, CASE WHEN score >= 50 THEN 'high' WHEN score < 0 THEN 'negative' WHEN score IS NULL THEN NULL ELSE 'low' END AS band FROM oracle.users

-- name: integer to numeric division
SELECT id, score::numeric / 7 AS seventh FROM oracle.users WHERE score IS NOT NULL

-- name: row comparison
SELECT id FROM oracle.users WHERE (country, active) = ('us', true)

-- name: constants beside columns
SELECT 'literal' AS const, 42 AS answer, NULL::text AS nothing, id FROM oracle.users WHERE id < 5

-- name: quoted column aliases
SELECT name AS "Name", id AS "ID", score AS "select" FROM oracle.users WHERE country = 'de'

-- name: subquery in FROM
SELECT x.id, x.score FROM (SELECT id, score FROM oracle.users WHERE score > 0) x WHERE x.score < 100

-- name: CTE without aggregates
WITH big AS (SELECT id, score FROM oracle.users WHERE score >= 88) SELECT id, score FROM big

-- name: set-returning function per row
SELECT u.id, g FROM oracle.users u, generate_series(1, 2) g WHERE u.id < 0

-- name: IS NOT DISTINCT FROM NULL
SELECT id, name FROM oracle.users WHERE country IS NOT DISTINCT FROM NULL

-- name: boolean columns
SELECT id, active, NOT active AS inactive, active IS UNKNOWN AS unknown FROM oracle.users

-- name: numeric(10,3) and integer columns together
SELECT user_id, order_id, total, amount, total - amount AS diff FROM oracle.orders WHERE amount <> total

-- name: extreme integers
SELECT id, score, score::bigint * 2 AS twice FROM oracle.users WHERE id IN (2147483647, 1000000, -7)

-- name: an error on some shards
-- error: 22012
SELECT id, 100 / score FROM oracle.users

-- name: an error on one pinned shard
-- error: 22012
SELECT id, 1 / (id - 5) FROM oracle.users WHERE id = 5
