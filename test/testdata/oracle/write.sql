-- Writes, in order, from a fresh load of data.sql: multi-row INSERTs split
-- over shards, UPDATE and DELETE on one shard and on many, with and
-- without RETURNING, on every rule (hash, range, list, replicated, the
-- default shard, a rule over two shards). Each runs twice (simple, then
-- extended protocol) unless marked once, so each must make sense twice.
-- After each, the table it writes is compared row by row and its rows'
-- placement checked. Keys by shard: see data.sql; new ones used here:
-- s0 27 29 33 34, s1 -3 36 40, s2 -8 35 39.
-- Format (the top of oracle_test.go has it all): entries are separated
-- by blank lines, one SQL statement each, after comment lines that may
-- hold directives: "-- name: <text>"; "-- ordered" (rows compared in
-- order); "-- refused: 0A000" (pgshard refuses it for now: the test fails
-- once pgshard answers it, so the marker goes); "-- error: 22012" (both
-- fail with it); "-- once" (a write run once, not once per protocol).

-- name: multi-row INSERT over three shards, RETURNING, DO NOTHING
INSERT INTO oracle.users (id, name, country, score) VALUES (33, 'Walter', 'de', 30), (36, 'Xavier', NULL, -31), (39, 'Yvonne', 'fr', NULL) ON CONFLICT (id) DO NOTHING RETURNING id, name, score

-- name: multi-row INSERT without a column list
-- once
INSERT INTO oracle.users VALUES (34, 'Olivia', 'br', 20, 20.20, 2.02, '2002-02-20', true), (-3, 'Neg Three', NULL, -3, -3.33, NULL, NULL, false), (-8, 'ünïcödé', 'se', NULL, NULL, 0.001, '2024-02-29', NULL)

-- name: multi-row INSERT RETURNING *, columns in another order
-- once
INSERT INTO oracle.users (name, id, born) VALUES ('x', 27, '2000-01-01'), ('y', 40, NULL), ('z', 35, '1999-12-31') RETURNING *

-- name: upsert over three shards
INSERT INTO oracle.users (id, name, score) VALUES (1, 'ignored', 5), (3, 'ignored', 5), (29, 'New', 5) ON CONFLICT (id) DO UPDATE SET score = coalesce(oracle.users.score, 0) + EXCLUDED.score RETURNING id, name, score

-- name: UPDATE everywhere without RETURNING
UPDATE oracle.users SET score = score + 1 WHERE score < 0

-- name: UPDATE everywhere with RETURNING
UPDATE oracle.users SET balance = balance * 2 WHERE country = 'fr' RETURNING id, name, balance

-- name: UPDATE to NULL
UPDATE oracle.users SET country = NULL WHERE country = 'gb' RETURNING id, country

-- name: UPDATE an IN list RETURNING *
UPDATE oracle.users SET active = NOT active WHERE id IN (-7, -5, -4, 0) RETURNING *

-- name: UPDATE pinned to one shard
UPDATE oracle.users SET name = name || '!' WHERE id = 7 RETURNING name

-- name: UPDATE dates and text
UPDATE oracle.users SET born = born + 365, name = upper(name) WHERE born < '1950-01-01' RETURNING id, name, born

-- name: UPDATE numerics of several scales
UPDATE oracle.users SET rating = rating * 1.5, balance = balance / 3 WHERE rating > 0 RETURNING id, rating, balance

-- name: UPDATE that matches nothing
UPDATE oracle.users SET score = 0 WHERE name = 'nobody' RETURNING id

-- name: UPDATE a table with an empty shard
UPDATE oracle.orders SET status = 'archived' WHERE placed < '2024-01-01' OR status IS NULL RETURNING user_id, order_id, status

-- name: UPDATE FROM a co-located table
UPDATE oracle.orders o SET amount = o.amount + 1 FROM oracle.users u WHERE u.id = o.user_id AND u.country = 'de' RETURNING o.user_id, o.order_id, o.amount

-- name: UPDATE FROM the replicated table
-- refused: 0A000
UPDATE oracle.users u SET country = upper(u.country) FROM oracle.countries c WHERE c.code = u.country AND c.continent = 'Asia' RETURNING u.id, u.country

-- name: UPDATE with a co-located EXISTS
-- refused: 0A000
UPDATE oracle.users u SET score = 0 WHERE EXISTS (SELECT 1 FROM oracle.orders o WHERE o.user_id = u.id AND o.status = 'refund') RETURNING u.id

-- name: DELETE everywhere with RETURNING
DELETE FROM oracle.users WHERE score = 100 RETURNING id, name

-- name: DELETE everywhere without RETURNING
DELETE FROM oracle.orders WHERE total < 0

-- name: DELETE pinned RETURNING *
DELETE FROM oracle.orders WHERE user_id = 7 AND order_id = 3 RETURNING *

-- name: DELETE an IN list
DELETE FROM oracle.users WHERE id IN (5, 6, 2147483647) RETURNING id

-- name: INSERT over the range shards, the empty one included
INSERT INTO oracle.events VALUES ('2025-06-01', 'mid', NULL, 1, 1.1), ('2026-06-01', 'late', 'x', 2, 2.2), ('2024-06-01', 'early', 'y', NULL, NULL) RETURNING name, created_at

-- name: UPDATE over the range shards
UPDATE oracle.events SET qty = coalesce(qty, 0) - 1 WHERE kind = 'holiday' RETURNING created_at, name, qty

-- name: DELETE a date range spanning shards
DELETE FROM oracle.events WHERE created_at BETWEEN '2024-01-01' AND '2026-12-31' AND name <> 'mid' RETURNING created_at, name

-- name: INSERT over the list shards
INSERT INTO oracle.tenant_data (tenant, v, label) VALUES ('initech', 11, 'eleven'), ('globex', 12, NULL), ('acme', NULL, NULL)

-- name: UPDATE over the list shards
UPDATE oracle.tenant_data SET v = v * -1 WHERE v > 1 RETURNING tenant, v

-- name: DELETE pinned to a list value
DELETE FROM oracle.tenant_data WHERE tenant = 'globex' RETURNING v, label

-- name: upsert into the replicated table
INSERT INTO oracle.countries VALUES ('es', 'Spain', 'Europe', 48000000) ON CONFLICT (code) DO UPDATE SET population = oracle.countries.population + 1 RETURNING code, population

-- name: UPDATE the replicated table
UPDATE oracle.countries SET population = population / 2 WHERE continent = 'Europe' RETURNING code, population

-- name: DELETE from the replicated table
DELETE FROM oracle.countries WHERE population IS NULL OR population = 0 RETURNING code

-- name: INSERT on a rule over two shards
INSERT INTO oracle.logs VALUES (11, 'eleven', 1), (12, NULL, 2), (13, 'thirteen', NULL), (-2, 'minus two', 0) RETURNING id, msg

-- name: DELETE on a rule over two shards
DELETE FROM oracle.logs WHERE level IS NULL OR level < 1 RETURNING id, msg

-- name: INSERT text keys
INSERT INTO oracle.accounts VALUES ('dave@example.com', 1.5, '2024-01-01'), ('ÉMILE@example.fr', NULL, NULL), ('eve@example.com', -0.01, '2024-02-29') ON CONFLICT (email) DO NOTHING RETURNING email

-- name: UPDATE rounding numeric(12,2)
UPDATE oracle.accounts SET balance = balance + 0.005 WHERE balance IS NOT NULL RETURNING email, balance

-- name: INSERT on the default shard
INSERT INTO oracle.misc VALUES (10, 'ten'), (11, NULL) ON CONFLICT (id) DO NOTHING RETURNING id

-- name: UPDATE on the default shard
UPDATE oracle.misc SET note = coalesce(note, '∅') || '.' RETURNING id, note

-- name: INSERT ... SELECT
-- refused: 0A000
INSERT INTO oracle.users (id, name) SELECT id + 100, name FROM oracle.users WHERE id BETWEEN 1 AND 3

-- name: UPDATE of the shard key
-- refused: 0A000
UPDATE oracle.users SET id = id + 1000 WHERE id = 1

-- name: DELETE every row of a table with an empty shard
DELETE FROM oracle.orders RETURNING user_id, order_id, total

-- name: INSERT into the shard that was empty
INSERT INTO oracle.orders (user_id, order_id, total) VALUES (1, 1, 10), (2, 1, 20), (3, 1, 30), (1, 2, NULL) ON CONFLICT DO NOTHING RETURNING user_id, order_id

-- name: DELETE every row of a rule over two shards
DELETE FROM oracle.logs
