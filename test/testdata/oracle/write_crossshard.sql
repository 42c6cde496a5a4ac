-- Writes whose effect depends on rows of other shards, and multi-shard
-- writes that fail on one shard only. A plain PostgreSQL applies each
-- statement whole or not at all, with subqueries over the whole table;
-- pgshard must do the same or refuse.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: UPDATE pinned, SET from an aggregate of every shard
-- refused: 0A000
UPDATE oracle.users SET score = (SELECT max(score) FROM oracle.users) WHERE id = 1 RETURNING id, score

-- name: DELETE everywhere, WHERE against an aggregate of every shard
-- refused: 0A000
DELETE FROM oracle.users WHERE score < (SELECT avg(score) FROM oracle.users) RETURNING id

-- name: UPDATE everywhere, WHERE on the replicated table's subquery
-- refused: 0A000
UPDATE oracle.users SET active = true WHERE country IN (SELECT code FROM oracle.countries WHERE continent = 'Asia') RETURNING id

-- name: UPDATE the replicated table from a sharded subquery
-- refused: 0A000
UPDATE oracle.countries SET population = -1 WHERE code NOT IN (SELECT country FROM oracle.users WHERE country IS NOT NULL) RETURNING code

-- name: multi-shard UPDATE failing on one shard only
-- error: 22012
UPDATE oracle.users SET score = 10 / (id - 5)

-- name: multi-row INSERT with a duplicate key on one shard only
-- error: 23505
INSERT INTO oracle.users (id, name) VALUES (33, 'new on s0'), (36, 'new on s1'), (1, 'duplicate on s2')

-- name: multi-shard DELETE failing on one shard only
-- error: 22012
DELETE FROM oracle.orders WHERE 1 / (user_id - 3) > -100
