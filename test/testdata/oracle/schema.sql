-- The tables of TestOracle (oracle_test.go), created as role app in
-- database app on the oracle and, directly, on every shard.
--
-- They live in schema "oracle", beside routingSchema's tables in public,
-- and are named after pgshard's rules in configYAML (routing_test.go): an
-- unqualified rule name matches the table in any schema, so oracle.users
-- is hashed on id like users, oracle.events ranged on created_at, and so
-- on. Unlike routingSchema's tables, the columns that are not keys accept
-- NULL. pgshard learns a rule's key type and position from whichever
-- schema's table it reads first, so each key column has the same type and
-- position as in routingSchema. A table added here needs an entry in
-- oracleTables (oracle_test.go), which says where its rows belong.

CREATE SCHEMA oracle;

-- Hash on id over s0, s1, s2.
CREATE TABLE oracle.users (
    id integer PRIMARY KEY,
    name text,
    country text,
    score integer,
    balance numeric(12,2),
    rating numeric,
    born date,
    active boolean
);

-- Hash on user_id over s0, s1, s2, placed like users.
CREATE TABLE oracle.orders (
    user_id bigint NOT NULL,
    order_id integer NOT NULL,
    total integer,
    amount numeric(10,3),
    status text,
    placed date,
    PRIMARY KEY (user_id, order_id)
);

-- Range on created_at: before 2025 on s0, 2025 on s1, from 2026 on s2.
CREATE TABLE oracle.events (
    created_at date NOT NULL,
    name text NOT NULL,
    kind text,
    qty integer,
    weight numeric(8,2)
);

-- List on tenant: acme and globex on s0, initech on s1, nothing else.
CREATE TABLE oracle.tenant_data (
    tenant text NOT NULL,
    v integer,
    label text
);

-- Replicated: a full copy on every shard.
CREATE TABLE oracle.countries (
    code text PRIMARY KEY,
    name text NOT NULL,
    continent text,
    population bigint
);

-- Hash on id over s1 and s2 only.
CREATE TABLE oracle.logs (
    id bigint NOT NULL,
    msg text,
    level smallint
);

-- Hash on email (text) over s0, s1, s2.
CREATE TABLE oracle.accounts (
    email text PRIMARY KEY,
    balance numeric(12,2),
    opened date
);

-- No rule: on the default shard, s0.
CREATE TABLE oracle.misc (
    id integer PRIMARY KEY,
    note text
);
