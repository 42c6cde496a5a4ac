#!/usr/bin/env bash
# Sets up a shard primary for pgshard and for a streaming replica:
#
#   - the login role APP_USER (password APP_PASSWORD) and the database
#     APP_DB it owns: pgshard's backend_user and the shard's database;
#   - the role REPLICATION_USER (password REPLICATION_PASSWORD), with
#     REPLICATION, and the physical replication slot REPLICATION_SLOT,
#     through which the replica streams (the primary keeps the WAL the
#     replica has not received, even while it is down);
#   - when PGDATA is set, a pg_hba.conf line letting REPLICATION_USER
#     connect for replication from any address with scram-sha-256, and a
#     reload.
#
# Running it again changes nothing but the passwords, which are set again.
# It connects with psql as a superuser to the database postgres: through
# libpq's PGHOST, PGPORT and PGUSER when they are set, else over the Unix
# socket as POSTGRES_USER (or postgres).
#
# docker-compose.yml mounts it in /docker-entrypoint-initdb.d of the
# official postgres image, which runs it on the first start of an empty
# data directory (PGDATA and POSTGRES_USER set, the server on its socket
# only). `make demo` (test/demo) runs it against its local primaries, and
# deploy/deploy_test.go against servers started by test/pgtest.
#
# The body runs in a subshell, so that its shell options do not leak into
# the image's entrypoint should it be sourced rather than run.
pgshard_init_primary() (
	set -euo pipefail
	: "${APP_USER:?set APP_USER}" "${APP_PASSWORD:?set APP_PASSWORD}" "${APP_DB:?set APP_DB}"
	: "${REPLICATION_USER:?set REPLICATION_USER}" "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
	: "${REPLICATION_SLOT:?set REPLICATION_SLOT}"
	# The pg_hba.conf line takes the role name as it is.
	if [[ ! $REPLICATION_USER =~ ^[a-z_][a-z0-9_]*$ ]]; then
		echo "init-primary: REPLICATION_USER must be a plain lower-case name, not \"$REPLICATION_USER\"" >&2
		return 1
	fi

	echo "init-primary: role $APP_USER owning database $APP_DB; replication role $REPLICATION_USER, slot $REPLICATION_SLOT"
	psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet
		--username "${PGUSER:-${POSTGRES_USER:-postgres}}" --dbname postgres)
	"${psql[@]}" \
		--set app_user="$APP_USER" --set app_password="$APP_PASSWORD" --set app_db="$APP_DB" \
		--set repl_user="$REPLICATION_USER" --set repl_password="$REPLICATION_PASSWORD" \
		--set slot="$REPLICATION_SLOT" <<-'EOSQL'
		SET password_encryption = 'scram-sha-256';
		SELECT format('CREATE ROLE %I', :'app_user')
		 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
		ALTER ROLE :"app_user" LOGIN PASSWORD :'app_password';
		SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
		 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
		SELECT format('CREATE ROLE %I', :'repl_user')
		 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user') \gexec
		ALTER ROLE :"repl_user" LOGIN REPLICATION PASSWORD :'repl_password';
		SELECT pg_create_physical_replication_slot(:'slot', true)
		 WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = :'slot');
	EOSQL

	if [ -n "${PGDATA:-}" ]; then
		hba="$PGDATA/pg_hba.conf"
		line="host replication $REPLICATION_USER all scram-sha-256"
		if ! grep -qxF "$line" "$hba"; then
			printf '\n# streaming replicas (deploy/postgres/init-primary.sh)\n%s\n' "$line" >>"$hba"
		fi
		"${psql[@]}" --command 'SELECT pg_reload_conf()' >/dev/null
	fi
)

pgshard_init_primary
