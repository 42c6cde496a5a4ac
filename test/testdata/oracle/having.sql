-- HAVING, count(DISTINCT) and expressions over aggregates across shards:
-- the shards run the grouped query without HAVING (with what it needs
-- added as hidden columns), pgshard merges the groups, then evaluates
-- HAVING and the output expressions. count(DISTINCT) of a shard key adds
-- up; of any other expression the shards group by it and pgshard counts
-- the distinct merged values.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: HAVING keeps the NULL group
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING country IS NULL OR count(*) >= 3

-- name: HAVING on a negative sum
SELECT country, sum(score) FROM oracle.users GROUP BY country HAVING sum(score) < -1

-- name: HAVING on a numeric with a negative literal
SELECT country, min(balance) FROM oracle.users GROUP BY country HAVING min(balance) <= -0.01

-- name: HAVING on text keys and aggregates
SELECT status, count(*) FROM oracle.orders GROUP BY status HAVING max(status) >= 'p' AND status <> 'paid'

-- name: HAVING NOT and IS NOT NULL over a NULL sum
SELECT status, sum(total) FROM oracle.orders GROUP BY status HAVING NOT (sum(total) IS NULL) AND NOT sum(total) < 0

-- name: HAVING compared with NULL keeps nothing
SELECT status, count(*) FROM oracle.orders GROUP BY status HAVING sum(total) = NULL

-- name: HAVING on an aggregate that is not an output column
SELECT country FROM oracle.users GROUP BY country HAVING avg(score) > 40

-- name: HAVING with ORDER BY, LIMIT and OFFSET
-- ordered
SELECT country, count(*) AS n FROM oracle.users GROUP BY country HAVING count(*) > 1 ORDER BY n DESC, country LIMIT 3 OFFSET 1

-- name: HAVING with a shard empty
SELECT kind, count(*), sum(qty) FROM oracle.events GROUP BY kind HAVING sum(qty) > 0

-- name: HAVING without GROUP BY over no rows
SELECT count(*), sum(score) FROM oracle.users WHERE false HAVING count(*) = 0 AND sum(score) IS NULL

-- name: HAVING without GROUP BY that drops the one row
SELECT count(*) FROM oracle.users HAVING count(*) < 0

-- name: HAVING IN and NOT IN
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING count(*) IN (1, 3) AND country NOT IN ('fr', 'xx')

-- name: HAVING on a date
SELECT country, min(born) FROM oracle.users GROUP BY country HAVING min(born) < '1970-01-01'

-- name: HAVING on a boolean aggregate
SELECT country FROM oracle.users GROUP BY country HAVING bool_and(active) OR bool_or(active) IS NULL

-- name: HAVING comparing two aggregates
SELECT country, max(score), min(score) FROM oracle.users GROUP BY country HAVING max(score) > min(score) OR count(score) * 2 <> count(*) + 1

-- name: HAVING arithmetic that overflows, as on one server
-- error: 22003
SELECT country, max(score), min(score) FROM oracle.users GROUP BY country HAVING max(score) > 2 * min(score)

-- name: HAVING on a key that is not an output column
SELECT count(*) FROM oracle.users GROUP BY country HAVING country > 'f'

-- name: GROUP BY a key that is not an output column
SELECT count(*), sum(score) FROM oracle.users GROUP BY country

-- name: HAVING avg against a numeric literal
SELECT active, avg(score) FROM oracle.users GROUP BY active HAVING avg(score) >= 42.5

-- name: HAVING with a string literal read as a number
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING count(*) > '2'

-- name: HAVING with a string literal that is not a number
-- error: 22P02
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING count(*) > 'abc'

-- name: HAVING on a list rule
SELECT tenant, sum(v) FROM oracle.tenant_data GROUP BY tenant HAVING sum(v) > 0 AND count(label) >= 2

-- name: HAVING with LIKE
-- refused: 0A000
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING country LIKE 'f%'

-- name: HAVING with a function call
-- refused: 0A000
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING length(max(name)) > 4

-- name: HAVING with a subquery
-- refused: 0A000
SELECT country, count(*) FROM oracle.users GROUP BY country HAVING count(*) > (SELECT 1)

-- name: HAVING pinned to one shard
SELECT status, count(*) FROM oracle.orders WHERE user_id = 2 GROUP BY status HAVING count(*) > 0

-- name: count(DISTINCT) of the shard key
SELECT count(DISTINCT id), count(*) FROM oracle.users

-- name: count(DISTINCT) of the shard key per group
SELECT country, count(DISTINCT id) FROM oracle.users GROUP BY country

-- name: count(DISTINCT) of a shard key with duplicates
SELECT count(DISTINCT user_id), count(*) FROM oracle.orders

-- name: count(DISTINCT) of the shard key over a co-located join
SELECT count(DISTINCT u.id), count(DISTINCT o.status) FROM oracle.users u JOIN oracle.orders o ON o.user_id = u.id

-- name: count(DISTINCT) of columns with NULLs and duplicates
SELECT count(DISTINCT status), count(DISTINCT placed), count(*), sum(total), avg(amount) FROM oracle.orders

-- name: count(DISTINCT) with avg per group
SELECT status, count(DISTINCT user_id), count(DISTINCT total), avg(total) FROM oracle.orders GROUP BY status

-- name: count(DISTINCT) of numerics equal at different scales
SELECT count(DISTINCT rating), count(DISTINCT balance) FROM oracle.users

-- name: count(DISTINCT) over no rows
SELECT count(DISTINCT country), count(*), max(score) FROM oracle.users WHERE false

-- name: count(DISTINCT) over the empty shard only
SELECT count(DISTINCT kind), count(DISTINCT name) FROM oracle.events WHERE created_at >= '2025-01-01' AND created_at < '2026-01-01'

-- name: count(DISTINCT) of an expression
SELECT count(DISTINCT lower(name)), count(DISTINCT id % 3) FROM oracle.users

-- name: count(DISTINCT) in HAVING
SELECT active, count(*) FROM oracle.users GROUP BY active HAVING count(DISTINCT country) > 5

-- name: count(DISTINCT) with ORDER BY and LIMIT
-- ordered
SELECT country, count(DISTINCT score) AS n FROM oracle.users GROUP BY country ORDER BY n DESC, country NULLS FIRST LIMIT 4

-- name: count(DISTINCT) on a list rule
SELECT count(DISTINCT tenant), count(DISTINCT v), count(DISTINCT label) FROM oracle.tenant_data

-- name: count(DISTINCT) on a rule over two shards
SELECT level, count(DISTINCT msg) FROM oracle.logs GROUP BY level

-- name: min and max of DISTINCT values
SELECT min(DISTINCT score), max(DISTINCT name), bool_or(DISTINCT active) FROM oracle.users

-- name: sum over count
SELECT sum(score) / count(*), sum(score) % count(*) FROM oracle.users

-- name: spread, mean and doubled avg
SELECT max(score) - min(score) AS spread, sum(balance) / count(balance), avg(score) * 2 FROM oracle.users WHERE id < 1000

-- name: a spread that overflows, as on one server
-- error: 22003
SELECT max(score) - min(score) FROM oracle.users

-- name: arithmetic per group
SELECT country, sum(score) % 7, -sum(score), count(*) + 1 FROM oracle.users GROUP BY country

-- name: arithmetic on numerics
SELECT sum(amount) / count(*), sum(amount) * 2.5, max(amount) - min(amount), sum(amount) % 7 FROM oracle.orders

-- name: arithmetic on a GROUP BY key
SELECT score + 1, count(*) * 10 FROM oracle.users GROUP BY score

-- name: arithmetic with HAVING and ORDER BY
-- ordered
SELECT country, sum(score) / count(*) AS a FROM oracle.users GROUP BY country HAVING count(*) > 1 ORDER BY a DESC, country

-- name: constants beside aggregates
SELECT 'x', count(*), 1, 2.50 FROM oracle.users

-- name: arithmetic over no rows
SELECT sum(score) + 1, count(*) - 1 FROM oracle.users WHERE false

-- name: division by zero after the merge
-- error: 22012
SELECT sum(score) / 0 FROM oracle.users

-- name: integer overflow after the merge
-- error: 22003
SELECT max(score) * 2147483647 FROM oracle.users

-- name: a NULL sum over a zero count is NULL
SELECT country, sum(score) / count(score) FROM oracle.users GROUP BY country

-- name: function of an aggregate
-- refused: 0A000
SELECT round(avg(score), 2) FROM oracle.users
