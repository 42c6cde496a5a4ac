#!/usr/bin/env bash
# Runs every native fuzz target (func FuzzXxx) in the module for FUZZTIME
# each (default 30s), one after another; stops at the first failure, which
# go test saves under the package's testdata/fuzz.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

# go test -list prints a package's matching names, then its "ok" line.
targets=$("$GO" test -list '^Fuzz' ./... |
	awk '/^Fuzz/ { names[n++] = $1; next } /^ok / { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }')
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found"
	exit 0
fi
while read -r pkg name; do
	echo "--- fuzz: $pkg $name for $FUZZTIME"
	"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done <<<"$targets"
