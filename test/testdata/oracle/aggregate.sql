-- Aggregates: count, sum, min, max, avg over integers, numerics of several
-- scales, text and dates, with NULLs and empty inputs; count(DISTINCT),
-- bool_and and bool_or; GROUP BY with HAVING. Across shards these need
-- a merge (the partial results of the shards combined); pinned to one
-- shard, on the replicated table or on the default shard they do not.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: count(*)
SELECT count(*) FROM oracle.users

-- name: count of columns with NULLs
SELECT count(*), count(score), count(name), count(country), count(active) FROM oracle.users

-- name: sum min max of integers with negatives
SELECT sum(score), min(score), max(score) FROM oracle.users

-- name: avg of integers
SELECT avg(score) FROM oracle.users

-- name: sum avg min max of numeric(12,2)
SELECT sum(balance), avg(balance), min(balance), max(balance) FROM oracle.users

-- name: sum and avg of numerics of several scales
SELECT sum(rating), avg(rating) FROM oracle.users

-- name: min and max of text
SELECT min(name), max(name) FROM oracle.users

-- name: min and max of dates
SELECT min(born), max(born) FROM oracle.users

-- name: aggregates with a shard empty
SELECT count(*), sum(total), avg(total), sum(amount), min(placed), max(placed) FROM oracle.orders

-- name: aggregates over the empty shard only
SELECT count(*), sum(qty), max(weight) FROM oracle.events WHERE created_at >= '2025-01-01' AND created_at < '2026-01-01'

-- name: aggregates over no rows at all
SELECT count(*), sum(score), avg(score), min(name), max(born), bool_and(active), bool_or(active) FROM oracle.users WHERE false

-- name: sum of bigint is numeric
SELECT sum(user_id), sum(total::bigint), avg(user_id) FROM oracle.orders

-- name: count(DISTINCT) of text with NULLs
SELECT count(DISTINCT country) FROM oracle.users

-- name: count(DISTINCT) of values repeated across shards
SELECT count(DISTINCT score), count(DISTINCT born), count(DISTINCT balance) FROM oracle.users

-- name: sum(DISTINCT) and avg(DISTINCT)
-- refused: 0A000
SELECT sum(DISTINCT score), avg(DISTINCT total) FROM oracle.users, oracle.orders WHERE orders.user_id = users.id

-- name: bool_and and bool_or with NULLs
SELECT bool_and(active), bool_or(active) FROM oracle.users

-- name: bool_and and bool_or of expressions
SELECT bool_and(score > -1000), bool_or(score > 1000000), bool_or(name IS NULL) FROM oracle.users

-- name: every
SELECT every(active) FROM oracle.users WHERE active IS NOT NULL

-- name: aggregate FILTER
-- refused: 0A000
SELECT count(*) FILTER (WHERE score > 0), sum(score) FILTER (WHERE active), max(name) FILTER (WHERE country = 'fr') FROM oracle.users

-- name: GROUP BY with a NULL group
SELECT country, count(*) FROM oracle.users GROUP BY country

-- name: GROUP BY with HAVING
SELECT country, count(*), sum(score), avg(balance), min(born) FROM oracle.users GROUP BY country HAVING count(*) > 1

-- name: GROUP BY a boolean
SELECT active, count(*), min(score), max(score), bool_or(score < 0) FROM oracle.users GROUP BY active

-- name: GROUP BY, HAVING on a sum, ORDER BY
-- ordered
SELECT status, count(*), sum(total) FROM oracle.orders GROUP BY status HAVING sum(total) > 50 ORDER BY status NULLS FIRST

-- name: GROUP BY an expression by position
-- ordered
SELECT extract(year FROM placed) AS y, count(*), sum(amount) FROM oracle.orders GROUP BY 1 ORDER BY 1 NULLS LAST

-- name: GROUP BY the shard key
SELECT user_id, count(*), sum(total), max(amount) FROM oracle.orders GROUP BY user_id

-- name: GROUP BY two columns
SELECT country, active, count(*) FROM oracle.users GROUP BY country, active

-- name: HAVING without GROUP BY
SELECT count(*) FROM oracle.users HAVING count(*) > 5

-- name: HAVING that keeps no group
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING count(*) > 100

-- name: count(DISTINCT) per group
SELECT active, count(DISTINCT country), count(DISTINCT score) FROM oracle.users GROUP BY active

-- name: GROUP BY over a co-located join
SELECT u.country, count(o.order_id), sum(o.total) FROM oracle.users u LEFT JOIN oracle.orders o ON o.user_id = u.id GROUP BY u.country

-- name: GROUP BY on a list rule
SELECT tenant, count(*), sum(v), count(label) FROM oracle.tenant_data GROUP BY tenant

-- name: GROUP BY on a range rule with a shard empty
SELECT kind, count(*), sum(qty), sum(weight) FROM oracle.events GROUP BY kind

-- name: GROUP BY, ORDER BY an aggregate, LIMIT
-- ordered
SELECT country, sum(balance) AS b FROM oracle.users GROUP BY country ORDER BY b DESC NULLS LAST, country LIMIT 3

-- name: aggregates over text keys
SELECT min(email), max(email), count(*), sum(balance) FROM oracle.accounts

-- name: aggregates on a rule over two shards
SELECT count(*), min(id), max(id), sum(level), avg(level) FROM oracle.logs

-- name: string_agg in order
-- refused: 0A000
SELECT string_agg(name, ',' ORDER BY id) FROM oracle.users

-- name: array_agg in order
-- refused: 0A000
SELECT array_agg(id ORDER BY id) FROM oracle.logs

-- name: stddev and variance
-- refused: 0A000
SELECT stddev(score), variance(balance) FROM oracle.users

-- name: aggregates pinned to one shard
SELECT count(*), sum(total), avg(amount), min(status), max(placed) FROM oracle.orders WHERE user_id = 7

-- name: GROUP BY pinned to one shard
-- ordered
SELECT status, count(*) FROM oracle.orders WHERE user_id = 2 GROUP BY status ORDER BY status NULLS FIRST

-- name: GROUP BY HAVING on the replicated table
-- ordered
SELECT continent, count(*), sum(population), avg(population) FROM oracle.countries GROUP BY continent HAVING count(*) > 1 ORDER BY continent

-- name: aggregates on the default shard
SELECT count(*), count(note), max(note), count(DISTINCT note) FROM oracle.misc
