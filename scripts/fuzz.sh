#!/usr/bin/env bash
# Runs every native fuzz target (func FuzzXxx) in the module for FUZZTIME
# each (default 30s), one after another, with FUZZPARALLEL workers (default
# 2); stops at the first failure, which go test saves under the package's
# testdata/fuzz/<Target>/ (commit it once fixed: it becomes a regression
# input that plain go test runs).
#
# Memory: the test binary, built once a package with go test -c -fuzz, runs
# each input in worker processes, its children. A watchdog reads the resident set size of every test
# binary process under the run every 200ms and kills one that grows past
# FUZZMEM MiB (default 1024) with SIGABRT; the coordinator then reports the
# worker as crashed and saves the input it was running, so the run fails
# and the input is kept. GOMEMLIMIT (3/4 of FUZZMEM) makes the garbage collector
# work harder before that, so only memory that is really held counts.
#
# Hangs: the targets put a deadline on everything that can block and fail
# the input when it passes. As a backstop go test gets -timeout FUZZTIME
# plus 2 minutes: a worker stuck on one input then panics with every
# goroutine's stack, and the input is saved too.
#
# FUZZ, a regular expression, picks targets by name (default: all).
# Run one by hand with the same limits: FUZZ=FuzzSession make fuzz.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZPARALLEL=${FUZZPARALLEL:-2}
FUZZMEM=${FUZZMEM:-1024}
FUZZ=${FUZZ:-.}
# Minimizing an input can outlast -fuzztime, and go test then reports the
# worker it stops as a crash ("hung or terminated unexpectedly while
# minimizing"). Off by default: a failing input is saved as it is; set
# FUZZMINIMIZETIME=60s to have it made smaller.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-0s}

# go test -list prints a package's matching names, then its "ok" line.
targets=$("$GO" test -list '^Fuzz' ./... |
	awk '/^Fuzz/ { names[n++] = $1; next } /^ok / { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }' |
	awk -v re="$FUZZ" '$2 ~ re')
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found"
	exit 0
fi

# seconds converts a go duration of s, m or h (30s, 2m, 1h30m) to seconds.
seconds() {
	local d=$1 total=0 n
	while [[ $d =~ ^([0-9]+)([smh])(.*)$ ]]; do
		n=${BASH_REMATCH[1]}
		case ${BASH_REMATCH[2]} in
		s) total=$((total + n)) ;;
		m) total=$((total + n * 60)) ;;
		h) total=$((total + n * 3600)) ;;
		esac
		d=${BASH_REMATCH[3]}
	done
	if [ -n "$d" ]; then
		echo "fuzz: FUZZTIME=$FUZZTIME: use a duration such as 30s or 2m (a count of runs, 100x, is not supported)" >&2
		exit 2
	fi
	echo "$total"
}
timeout=$(($(seconds "$FUZZTIME") + 120))s
export GOMEMLIMIT=$((FUZZMEM * 3 / 4))MiB
limitKB=$((FUZZMEM * 1024))

# watch kills any *.test process in the process tree of pid $1 whose RSS
# passes the limit, and writes what it killed to $2.
watch() {
	local root=$1 report=$2
	while kill -0 "$root" 2>/dev/null; do
		ps -e -o pid=,ppid=,rss=,comm= | awk -v root="$root" -v limit="$limitKB" '
			{ parent[$1] = $2; rss[$1] = $3; comm[$1] = $4 }
			END {
				for (p in parent) {
					if (comm[p] !~ /\.test$/ || rss[p] <= limit) continue
					for (q = p; q in parent && q != root && q > 1; q = parent[q]) {}
					if (q == root) print p, rss[p], comm[p]
				}
			}' | while read -r pid rss comm; do
			echo "fuzz: $comm (pid $pid) holds $((rss / 1024)) MiB, over FUZZMEM=$FUZZMEM MiB: aborted" | tee -a "$report" >&2
			# SIGABRT makes the Go runtime print every goroutine's stack and
			# exit 2, which the coordinator counts as a crash of the input.
			kill -ABRT "$pid" 2>/dev/null || true
			(sleep 3 && kill -9 "$pid" 2>/dev/null) &
		done
		sleep 0.2
	done
}

work=$(mktemp -d)
report=$work/report
trap 'rm -rf "$work"' EXIT
cache=$("$GO" env GOCACHE)/fuzz
built=
while read -r pkg name; do
	# One instrumented test binary a package (go test -fuzz would link
	# one a target), run from the package's directory, where it finds and
	# saves testdata/fuzz, with go test's corpus cache.
	bin=$work/$(basename "$pkg").test
	if [ "$built" != "$pkg" ]; then
		"$GO" test -c -fuzz "^${name}\$" -o "$bin" "$pkg"
		dir=$("$GO" list -f '{{.Dir}}' "$pkg")
		built=$pkg
	fi
	for attempt in 1 2; do
		echo "--- fuzz: $pkg $name for $FUZZTIME ($FUZZPARALLEL workers, $FUZZMEM MiB each)"
		(cd "$dir" && exec "$bin" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$FUZZTIME" \
			-test.fuzzminimizetime "$FUZZMINIMIZETIME" -test.parallel "$FUZZPARALLEL" -test.timeout "$timeout" \
			-test.fuzzcachedir "$cache/$pkg") > >(tee "$work/out") 2>&1 &
		pid=$!
		watch "$pid" "$report" &
		watcher=$!
		status=0
		wait "$pid" || status=$?
		wait "$watcher" || true
		if [ -s "$report" ]; then
			echo "fuzz: $pkg $name: over the memory limit; the input is saved under testdata/fuzz/$name" >&2
			exit 1
		fi
		# Go's fuzzing engine can fail a run with "context deadline
		# exceeded" when -fuzztime ends while a worker is mid-input,
		# saving no input: not a finding. That alone is run once more.
		if [ "$status" -ne 0 ] && [ "$attempt" -eq 1 ] && grep -q 'context deadline exceeded' "$work/out" &&
			! grep -q 'Failing input written to' "$work/out"; then
			echo "fuzz: $pkg $name: the run ended with the fuzzing engine's own deadline and no failing input; once more"
			continue
		fi
		break
	done
	if [ "$status" -ne 0 ]; then
		echo "fuzz: $pkg $name failed; rerun the input with go test -run '$name/<file>' $pkg" >&2
		exit "$status"
	fi
	echo "ok   fuzz: $pkg $name"
done <<<"$targets"
