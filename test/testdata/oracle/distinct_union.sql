-- DISTINCT, DISTINCT ON, set operations and window functions: across
-- shards each needs a merge (duplicates across shards removed, windows
-- over all the rows).
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: DISTINCT text with NULL
SELECT DISTINCT country FROM oracle.users

-- name: DISTINCT with ORDER BY
-- ordered
SELECT DISTINCT score FROM oracle.users ORDER BY score NULLS FIRST

-- name: DISTINCT over two columns
SELECT DISTINCT country, active FROM oracle.users

-- name: DISTINCT with a shard empty
SELECT DISTINCT status FROM oracle.orders

-- name: DISTINCT of an expression equal across shards
SELECT DISTINCT lower(name) FROM oracle.users

-- name: DISTINCT of whole duplicate rows
SELECT DISTINCT name, kind FROM oracle.events

-- name: DISTINCT dates
SELECT DISTINCT born FROM oracle.users WHERE born IS NOT NULL

-- name: DISTINCT counted in a subquery
-- refused: 0A000
SELECT count(*) FROM (SELECT DISTINCT country FROM oracle.users) s

-- name: DISTINCT ON
-- ordered
-- refused: 0A000
SELECT DISTINCT ON (country) country, id, name FROM oracle.users ORDER BY country, id

-- name: DISTINCT pinned to one shard
SELECT DISTINCT status FROM oracle.orders WHERE user_id = 7

-- name: DISTINCT on the replicated table
SELECT DISTINCT continent FROM oracle.countries

-- name: UNION ALL with ORDER BY
-- ordered
-- refused: 0A000
SELECT id, score FROM oracle.users WHERE score > 80 UNION ALL SELECT id, score FROM oracle.users WHERE score < -10 ORDER BY 2, 1

-- name: UNION ALL with LIMIT
-- ordered
-- refused: 0A000
(SELECT id FROM oracle.users WHERE score > 0 UNION ALL SELECT id FROM oracle.users WHERE score < 0) ORDER BY id DESC LIMIT 5

-- name: UNION
-- refused: 0A000
SELECT country FROM oracle.users UNION SELECT country FROM oracle.users WHERE active

-- name: UNION of one table's columns
-- refused: 0A000
SELECT name FROM oracle.users WHERE score > 50 UNION SELECT lower(name) FROM oracle.users

-- name: INTERSECT
-- refused: 0A000
SELECT country FROM oracle.users WHERE active INTERSECT SELECT country FROM oracle.users WHERE NOT active

-- name: EXCEPT
-- refused: 0A000
SELECT score FROM oracle.users EXCEPT SELECT score FROM oracle.users WHERE active

-- name: row_number over everything
-- refused: 0A000
SELECT id, row_number() OVER (ORDER BY id) FROM oracle.users

-- name: rank per partition
-- refused: 0A000
SELECT id, country, rank() OVER (PARTITION BY country ORDER BY score DESC NULLS LAST, id) FROM oracle.users

-- name: window sum over everything
-- refused: 0A000
SELECT id, sum(score) OVER () FROM oracle.users

-- name: window partitioned by the shard key
-- refused: 0A000
SELECT user_id, order_id, sum(total) OVER (PARTITION BY user_id) FROM oracle.orders

-- name: lag over dates
-- refused: 0A000
SELECT created_at, name, lag(created_at) OVER (ORDER BY created_at, name) FROM oracle.events

-- name: window pinned to one shard
-- ordered
SELECT order_id, total, sum(total) OVER (ORDER BY order_id) FROM oracle.orders WHERE user_id = 7 ORDER BY order_id

-- name: window on the replicated table
-- ordered
SELECT code, continent, rank() OVER (PARTITION BY continent ORDER BY population DESC NULLS LAST) FROM oracle.countries ORDER BY code
