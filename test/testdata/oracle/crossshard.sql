-- Reads that look as if each shard could answer alone but cannot: rows
-- of one shard meet rows of another (joins and subqueries not on the
-- shard key, tables of other rules), a subquery aggregates or limits, or a
-- replicated table's copies would each count. Concatenating what each
-- shard answers would be wrong; pgshard must refuse these until it can
-- answer them. A few that each shard can answer alone are here for
-- contrast.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: aggregate subquery in WHERE
-- refused: 0A000
SELECT id FROM oracle.users WHERE score > (SELECT avg(score) FROM oracle.users)

-- name: aggregate subquery in the output
-- refused: 0A000
SELECT id, (SELECT max(score) FROM oracle.users) AS top FROM oracle.users WHERE id < 0

-- name: self join not on the key
-- refused: 0A000
SELECT a.id, b.id FROM oracle.users a JOIN oracle.users b ON a.score = b.score AND a.id < b.id

-- name: EXISTS on the same table not on the key
-- refused: 0A000
SELECT id FROM oracle.users u WHERE EXISTS (SELECT 1 FROM oracle.users v WHERE lower(v.name) = lower(u.name) AND v.id <> u.id)

-- name: join of tables of different rules
-- refused: 0A000
SELECT u.id, l.msg FROM oracle.users u JOIN oracle.logs l ON l.id = u.id

-- name: join of co-located tables not on the key
-- refused: 0A000
SELECT u.id, o.user_id, o.order_id FROM oracle.users u JOIN oracle.orders o ON o.total = u.score

-- name: join of co-located tables on a shifted key
-- refused: 0A000
SELECT u.id, o.user_id FROM oracle.users u JOIN oracle.orders o ON o.user_id = u.id::bigint + 1

-- name: replicated table on the preserved side of an outer join
-- refused: 0A000
SELECT c.code, u.id FROM oracle.countries c LEFT JOIN oracle.users u ON u.country = c.code

-- name: UNION ALL of the replicated table and a sharded one
-- refused: 0A000
SELECT code FROM oracle.countries UNION ALL SELECT country FROM oracle.users WHERE country IS NOT NULL

-- name: replicated table filtered by a sharded subquery
-- refused: 0A000
SELECT code FROM oracle.countries WHERE code NOT IN (SELECT country FROM oracle.users WHERE country IS NOT NULL)

-- name: CTE with an aggregate
-- refused: 0A000
WITH t AS (SELECT count(*) AS n FROM oracle.users) SELECT n FROM t

-- name: grouped subquery in FROM
-- refused: 0A000
SELECT s.c FROM (SELECT country, count(*) AS c FROM oracle.users GROUP BY country) s WHERE s.country = 'us'

-- name: LIMIT in a subquery in FROM
-- refused: 0A000
SELECT id FROM (SELECT id FROM oracle.users ORDER BY id LIMIT 3) s

-- name: LIMIT in an IN subquery
-- refused: 0A000
SELECT id FROM oracle.users WHERE id IN (SELECT id FROM oracle.users ORDER BY score DESC NULLS LAST, id LIMIT 3)

-- name: window function in a subquery
-- refused: 0A000
SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM oracle.users) s WHERE rn <= 3

-- name: DISTINCT in a subquery
-- refused: 0A000
SELECT s.country FROM (SELECT DISTINCT country FROM oracle.users) s

-- name: correlated count on a co-located table
-- refused: 0A000
SELECT id, (SELECT count(*) FROM oracle.orders o WHERE o.user_id = u.id) AS n FROM oracle.users u

-- name: correlated lookup in the replicated table
SELECT id, (SELECT name FROM oracle.countries c WHERE c.code = u.country) AS country_name FROM oracle.users u

-- name: count of the replicated table in a filter
SELECT id FROM oracle.users WHERE score > (SELECT count(*) FROM oracle.countries)

-- name: IN subquery on the same table's key
SELECT id FROM oracle.users WHERE id IN (SELECT id FROM oracle.users WHERE score > 50)
