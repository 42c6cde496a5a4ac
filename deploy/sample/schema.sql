-- pgshard's sample schema: the tables of `make demo` and of the seed job
-- of docker-compose.yml (which runs it through pgshard, so that each shard
-- gets every table). users and orders are spread over the shards by user
-- id (the config's hash rules), so a user's orders live with the user;
-- countries is copied to every shard. Running it again changes nothing.
CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text);
CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text, country text);
CREATE TABLE IF NOT EXISTS orders (
	id bigint,
	user_id bigint,
	amount numeric,
	created_at timestamptz,
	PRIMARY KEY (user_id, id)
);
