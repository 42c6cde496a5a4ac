-- The data set of TestOracle (oracle_test.go). Each statement runs on the
-- oracle directly and through pgshard (simple protocol), which must place
-- every row; the test then checks, on each shard directly, that every row
-- is where the rules put it and that the shards together hold exactly what
-- the oracle holds. It reloads this before each write file.
--
-- Same format as the corpus: statements separated by blank lines.
--
-- Choices the corpus relies on:
--   * users on every shard: ids on s0 -7 2 4 6 8 15 16 18 19 20 1000000,
--     on s1 -5 3 7 10 13 14 21 2147483647, on s2 -4 -1 0 1 5 9 11 12 17
--     22 23 24 (PostgreSQL's hash of the integer, modulus 3).
--   * orders only of users on s0 and s1 (and of the missing users 25 and
--     26, both on s1): s2 holds no orders.
--   * events before 2025 (s0) and from 2026 (s2): s1 holds no events.
--   * tenant_data: no list maps to s2, so s2 holds none.
--   * NULLs in every column that is not a key; duplicated values and
--     whole duplicated rows; negative numbers; text differing only in
--     case, with spaces, empty, the string 'NULL', non-ASCII; numerics of
--     several scales (rating keeps its input scale: 4.5 and 4.50 are
--     equal but print differently, so the corpus does not DISTINCT, GROUP
--     BY, min or max it); dates on the range bounds.

INSERT INTO oracle.users VALUES
    (-7, 'Zoë', 'fr', -15, -10.50, -0.5, '1969-07-20', false),
    (-5, 'Ångström', 'se', 0, 0.00, 0, '2000-02-29', true),
    (-4, 'bob', NULL, NULL, NULL, NULL, NULL, NULL),
    (-1, 'Bob', 'us', -1, -0.01, 0.001, '1999-12-31', true),
    (0, '', 'us', 0, 0, 0.0, '1970-01-01', false),
    (1, 'Alice', 'fr', 100, 1234.56, 4.5, '1985-03-14', true),
    (2, 'alice', 'de', 100, 99.99, 4.50, '1990-06-01', true),
    (3, 'ALICE', 'de', 75, 1234.56, 3.25, '1990-06-01', false),
    (4, 'Mary Ann', 'us', 50, 10.00, 2.125, '1975-11-30', true),
    (5, ' leading space', 'jp', 50, 10.1, 2, '2001-09-09', NULL),
    (6, 'trailing space ', 'jp', NULL, 5.5, 1.5, NULL, true),
    (7, '日本', 'jp', 88, 88.88, 8.88, '1988-08-08', true)

INSERT INTO oracle.users (id, name, country, score, balance, rating, born, active) VALUES
    (8, 'Ødegaard', 'no', -3, -300.00, -3.000, '1998-12-17', false),
    (9, 'Émile', 'fr', 42, 42.00, 4.2, '1942-04-02', true),
    (10, 'NULL', NULL, 10, NULL, 1.0, '2010-10-10', true),
    (11, NULL, 'de', 11, 11.11, NULL, '2011-11-11', false),
    (12, 'Carol', 'us', 100, 0.05, 9.999, '1965-01-01', true),
    (13, 'carol', 'ca', 7, 7.70, 7.7, '1977-07-07', NULL),
    (14, 'Dave', NULL, -100, -1.00, -1.25, '1960-02-29', false)

INSERT INTO oracle.users (name, active, id, country, score, balance, rating, born) VALUES
    ('Eve', true, 15, 'gb', 100, 1234.56, 4.5, '1985-03-14'),
    ('Frank', true, 16, 'gb', 0, 0.10, 0.10, '2020-02-02'),
    ('Grace', true, 17, 'us', 1, 1.00, 1, '1906-12-09'),
    ('Heidi', NULL, 18, 'de', 33, 33.30, 3.33, '1993-03-03'),
    ('Ivan', false, 19, 'ru', -42, -42.42, -4.242, '1942-12-31'),
    ('Judy', true, 20, 'ca', 65, 650.00, 6.5, '1980-05-05'),
    ('Mallory', NULL, 21, 'au', NULL, NULL, NULL, '2024-02-29'),
    ('Niaj', true, 22, 'in', 20, 20.20, 2.02, '2002-02-20'),
    ('Olivia', true, 23, 'br', 20, 20.20, 2.020, '2002-02-20')

INSERT INTO oracle.users (id, name, country, score) VALUES (24, 'Peggy', 'fr', 95)

INSERT INTO oracle.users VALUES
    (1000000, 'Trent', 'us', 1000000, 9999999999.99, 1000000.000001, '2038-01-19', true),
    (2147483647, 'Max Int', 'xx', -2147483648, -9999999999.99, -0.000001, '0001-01-01', false)

INSERT INTO oracle.orders (user_id, order_id, total, amount, status, placed) VALUES
    (-7, 1, 120, 120.500, 'paid', '2024-01-05'),
    (-7, 2, -20, -20.000, 'refund', '2024-01-06'),
    (2, 1, 50, 50.000, 'paid', '2024-02-01'),
    (2, 2, 50, 49.995, 'shipped', '2024-02-01'),
    (2, 3, NULL, NULL, NULL, NULL),
    (4, 1, 300, 300.125, 'paid', '2023-12-31'),
    (6, 1, 15, 15.1, 'cancelled', '2024-03-03'),
    (8, 1, 0, 0, 'paid', '2024-03-04'),
    (8, 2, 0, 0.000, 'Paid', '2024-03-04'),
    (15, 1, 999, 999.999, 'shipped', '2024-12-31'),
    (16, 1, 42, 42.42, 'paid', NULL),
    (18, 1, 7, 7, 'pending', '2025-01-01'),
    (18, 2, 7, 7, 'pending', '2025-01-01'),
    (19, 1, -5, -5.5, 'refund', '2024-06-30'),
    (20, 1, 60, 60.06, 'shipped', '2024-07-04'),
    (1000000, 1, 1, 0.001, 'paid', '2024-02-29')

INSERT INTO oracle.orders VALUES
    (-5, 1, 80, 80.8, 'paid', '2024-01-05'),
    (3, 1, 50, 50.000, 'paid', '2024-02-01'),
    (3, 2, 25, 25.250, NULL, '2024-02-02'),
    (7, 1, 888, 888.888, 'shipped', '2024-08-08'),
    (7, 2, 88, 88.8, 'shipped', '2024-08-08'),
    (7, 3, 8, 8.08, 'cancelled', NULL),
    (10, 1, 100, 100, 'paid', '2024-10-10'),
    (13, 1, 13, 13.013, 'paid', '2024-01-13'),
    (14, 1, -100, -100.000, 'refund', '2024-02-14'),
    (21, 1, 21, 21.21, 'pending', '2025-02-21'),
    (2147483647, 1, 2147483647, 9999999.999, 'paid', '2024-12-31'),
    (25, 1, 5, 5.5, 'paid', '2024-05-25'),
    (26, 1, 6, 6.6, 'paid', '2024-05-26')

INSERT INTO oracle.events (created_at, name, kind, qty, weight) VALUES
    ('2023-01-01', 'new year', 'holiday', 1, 1.00),
    ('2023-06-15', 'launch', 'release', 100, 12.50),
    ('2023-06-15', 'launch', 'release', 100, 12.50),
    ('2024-02-29', 'leap', NULL, NULL, NULL),
    ('2024-07-04', 'Fireworks', 'holiday', -3, -0.75),
    ('2024-12-31', 'eve', 'holiday', 0, 0),
    ('2026-01-01', 'new year', 'holiday', 1, 1.5),
    ('2026-03-15', 'ides', NULL, 15, 3.14),
    ('2026-03-15', 'Ides', 'history', 15, 3.14),
    ('2027-12-31', 'last', 'holiday', NULL, 99.99),
    ('2099-01-01', 'far future', 'release', 2147483647, -999.99),
    ('1970-01-01', 'epoch', 'history', 0, 0.01)

INSERT INTO oracle.tenant_data VALUES
    ('acme', 1, 'one'),
    ('acme', 2, NULL),
    ('acme', 2, 'two'),
    ('globex', NULL, 'none'),
    ('globex', -5, 'negative'),
    ('initech', 10, 'ten'),
    ('initech', 10, 'ten'),
    ('initech', 0, ''),
    ('acme', 100, 'Hundred')

INSERT INTO oracle.countries (code, name, continent, population) VALUES
    ('fr', 'France', 'Europe', 68000000),
    ('de', 'Germany', 'Europe', 84000000),
    ('us', 'United States', 'North America', 333000000),
    ('jp', 'Japan', 'Asia', 125000000),
    ('se', 'Sweden', 'Europe', 10500000),
    ('no', 'Norway', 'Europe', 5500000),
    ('ca', 'Canada', 'North America', 39000000),
    ('gb', 'United Kingdom', 'Europe', 67000000),
    ('ru', 'Russia', 'Europe', NULL),
    ('au', 'Australia', 'Oceania', 26000000),
    ('in', 'India', 'Asia', 1430000000),
    ('br', 'Brazil', 'South America', 216000000),
    ('aq', 'Antarctica', NULL, 0)

INSERT INTO oracle.logs (id, msg, level) VALUES
    (1, 'start', 1),
    (2, 'warn: disk', 2),
    (3, 'error', 3),
    (4, NULL, NULL),
    (5, 'start', 1),
    (6, 'Start', 1),
    (7, 'ünïcödé', 2),
    (8, '', 0),
    (9, 'stop', -1),
    (10, 'start', 1),
    (-1, 'negative id', 1),
    (10000000000, 'big id', 3)

INSERT INTO oracle.accounts VALUES
    ('alice@example.com', 100.00, '2020-01-01'),
    ('Alice@Example.com', 100.00, '2020-01-01'),
    ('bob@example.com', -5.25, NULL),
    ('zoë@example.com', 0, '2021-02-28'),
    ('日本@example.jp', 1234.50, '2019-12-31'),
    ('with space@example.com', NULL, '2022-06-30'),
    ('', 0.01, '1999-01-01'),
    ('carol@example.com', 99.99, '2020-01-01')

INSERT INTO oracle.misc VALUES (1, 'one'), (2, NULL), (3, 'three'), (-1, 'minus one'), (4, 'one')
