#!/bin/bash
# scripts/test.sh - run every pg_soup test: build with -Werror, unit tests of
# the pure-C pieces, then pg_regress on a throwaway cluster.
#
# SOUP_FIXTURES names the safetensors fixtures (default ../shared/fixtures/safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FIXTURES="${SOUP_FIXTURES:-$ROOT/../shared/fixtures/safetensors}"
DATA="${SOUP_DATA:-$ROOT/../shared/data}"
REGRESS_DIR=/tmp/pg_soup_regress

[ "$(id -u)" = 0 ] && bash scripts/deps.sh
[ -d "$FIXTURES" ] || { echo "fixtures not found at $FIXTURES (set SOUP_FIXTURES)"; exit 1; }
[ -d "$DATA" ] || { echo "data not found at $DATA (set SOUP_DATA)"; exit 1; }

passed=0
failed=0
# suite TITLE SCRIPT: run one test script, count it passed or failed
suite() {
	echo "== $1"
	if bash "$2"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
}

echo "== build"
make -s clean
make -s -j"$(nproc)" 2>&1
make -s install >/dev/null

echo "== unit tests"
make -s unit SOUP_FIXTURES="$FIXTURES" SOUP_DATA="$DATA" | tee /tmp/pg_soup_unit.log
units=$(grep -c '^== test/unit' /tmp/pg_soup_unit.log)
passed=$((passed + units))

echo "== regression tests"
source scripts/cluster.sh
trap cluster_stop EXIT
cluster_start "max_parallel_workers_per_gather = 2"
rm -rf "$REGRESS_DIR"
mkdir -p "$REGRESS_DIR/out"
/usr/bin/python3 test/gen_test_data.py "$REGRESS_DIR" "$FIXTURES"
cp -r "$DATA" "$REGRESS_DIR/data"
chmod -R a+rX "$REGRESS_DIR"
[ "$(id -u)" = 0 ] && chown "$CLUSTER_USER" "$REGRESS_DIR/out"
status=0
make -s installcheck 2>&1 | tee /tmp/pg_soup_regress.log || status=1
ok=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok ' /tmp/pg_soup_regress.log || true)
bad=$(grep -cE 'FAILED|failed \(ignored\)' /tmp/pg_soup_regress.log || true)
passed=$((passed + ok))
failed=$((failed + bad))
if [ "$status" != 0 ]; then
	[ "$bad" = 0 ] && failed=$((failed + 1))
	[ -f regression.diffs ] && head -400 regression.diffs
fi

suite "scheduled jobs under pg_cron" test/cron_test.sh
suite "the pg_soup client over libpq" test/client_test.sh
suite "the Python package" test/python_test.sh
suite "8 clients at once" test/concurrency_test.sh
suite "sharded merges over postgres_fdw" test/shard_test.sh

echo "== crash safety (TAP)"
TAP_DIR=/tmp/pg_soup_tap
rm -rf "$TAP_DIR" && mkdir -p "$TAP_DIR"
/usr/bin/python3 test/gen_big.py "$REGRESS_DIR/big.safetensors" 200
chmod a+r "$REGRESS_DIR/big.safetensors"
PGXS_DIR="$(dirname "$(dirname "$(pg_config --pgxs)")")"
tap=(env PATH="$PG_BINDIR:$PATH" SOUP_CRASH_FILE="$REGRESS_DIR/big.safetensors"
	PG_REGRESS="$PGXS_DIR/test/regress/pg_regress" TESTDIR="$TAP_DIR"
	prove -I "$PGXS_DIR/test/perl" "$ROOT"/test/t/*.pl)
if [ "$(id -u)" = 0 ]; then
	chown "$CLUSTER_USER" "$TAP_DIR"
	tap=(runuser -u "$CLUSTER_USER" -- "${tap[@]}")
fi
if (cd "$TAP_DIR" && "${tap[@]}"); then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
	tail -40 "$TAP_DIR"/tmp_check/log/regress_log_* 2>/dev/null || true
fi

suite "release files (META.json, LICENSE, CHANGELOG, versions, make dist)" test/release_test.sh

# last: it installs 0.1.0 for a while (and the current build again after)
suite "upgrade of a 0.1.0 database" test/upgrade_test.sh

echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
