#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries are installed (for make demo),
# installing them with apt-get when we are root on Debian or Ubuntu.
#
# Which binaries count is decided in one place, test/pgtest, asked here
# through `go run ./test/demo -pg-bindir`: $PG_BINDIR when set, else a real
# postgres on PATH, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail
GO=${GO:-go}

find_bindir() { "$GO" run ./test/demo -pg-bindir 2>&1; }

if out=$(find_bindir); then
	echo "PostgreSQL binaries: $out"
	exit 0
fi
if ! grep -q 'PostgreSQL server binaries not found' <<<"$out"; then
	echo "$out" >&2 # a bad PG_BINDIR, or the demo does not build
	exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "PostgreSQL server binaries not found; run: sudo apt-get install -y postgresql" >&2
		exit 1
	fi
	echo "PostgreSQL server binaries not found; installing them: apt-get install -y postgresql"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y postgresql
elif command -v brew >/dev/null 2>&1; then
	echo "PostgreSQL server binaries not found; run: brew install postgresql@17 (or set PG_BINDIR)" >&2
	exit 1
elif command -v dnf >/dev/null 2>&1; then
	echo "PostgreSQL server binaries not found; run: sudo dnf install -y postgresql-server (or set PG_BINDIR)" >&2
	exit 1
else
	echo "PostgreSQL server binaries not found; install the PostgreSQL server (initdb and postgres, version 13 or later)," >&2
	echo "or set PG_BINDIR to the directory holding them" >&2
	exit 1
fi

if ! out=$(find_bindir); then
	echo "$out" >&2
	exit 1
fi
echo "PostgreSQL binaries: $out"
