#!/usr/bin/env bash
# Makes a shard replica: when PGDATA holds no cluster yet, copies the
# primary's with pg_basebackup (streaming the WAL it needs through the
# replication slot, and writing standby.signal and primary_conninfo, so
# that the server starts as a hot standby streaming from the primary);
# then runs its arguments, if any, as the server. A data directory that
# already holds a cluster is left as it is.
#
#   PGDATA                the replica's data directory, empty or missing
#   PRIMARY_HOST          the primary; PRIMARY_PORT, default 5432
#   REPLICATION_USER      a role with REPLICATION, and its
#   REPLICATION_PASSWORD  password (deploy/postgres/init-primary.sh makes both)
#   REPLICATION_SLOT      the primary's physical replication slot for it
#
# docker-compose.yml makes it the entrypoint of the replicas, with the
# official postgres image's own entrypoint and the server's settings as
# arguments. `make demo` (test/demo) makes its replicas with it, and
# deploy/deploy_test.go tests it, both without arguments: the harness
# (test/pgtest) then starts the server.
set -euo pipefail
: "${PGDATA:?set PGDATA}" "${PRIMARY_HOST:?set PRIMARY_HOST}"
: "${REPLICATION_USER:?set REPLICATION_USER}" "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
: "${REPLICATION_SLOT:?set REPLICATION_SLOT}"
port=${PRIMARY_PORT:-5432}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	export PGPASSWORD=$REPLICATION_PASSWORD
	for _ in $(seq 60); do
		pg_isready --quiet --host="$PRIMARY_HOST" --port="$port" && break
		echo "replica: waiting for the primary $PRIMARY_HOST:$port"
		sleep 1
	done
	echo "replica: pg_basebackup from $PRIMARY_HOST:$port through slot $REPLICATION_SLOT into $PGDATA"
	# On failure pg_basebackup removes what it wrote, so the next start
	# tries again from an empty directory.
	pg_basebackup --pgdata="$PGDATA" --host="$PRIMARY_HOST" --port="$port" \
		--username="$REPLICATION_USER" --no-password \
		--wal-method=stream --slot="$REPLICATION_SLOT" --write-recovery-conf \
		--checkpoint=fast
	unset PGPASSWORD
	chmod 0700 "$PGDATA"
fi

if [ $# -gt 0 ]; then
	exec "$@"
fi
