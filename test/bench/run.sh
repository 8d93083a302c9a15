#!/usr/bin/env bash
# test/bench/run.sh - pg_soup performance benchmark (see DESIGN.md section 6).
#
#   bash test/bench/run.sh                 # full size: 4 x GPT-2 small (2 GB in), ~10-15 min
#   BENCH_QUICK=1 bash test/bench/run.sh   # ~1/7 size smoke test, ~2-3 min
#
# Needs the extension installed (make && make install), postgresql-15 and
# python3-numpy.  Generates deterministic checkpoints, measures a numpy copy
# ceiling and the numpy peer script, then pg_soup on a throwaway cluster for a
# sweep of soup.chunk_elems, and prints one report (also saved, with plans and
# raw numbers, to test/bench/results/last_run.txt).  Never asserts timings.
#
# Knobs: BENCH_QUICK=1, BENCH_CHUNKS="65536 262144 1048576 4194304",
# BENCH_REPEAT=3, BENCH_SLOW=40 (stop repeating once runs add up to this many
# seconds), BENCH_SHARED_BUFFERS=4GB, PYTHON=/usr/bin/python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# a python3 that has numpy (a pyenv shim may shadow the Debian one)
if [ -z "${PYTHON:-}" ]; then
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import numpy' 2>/dev/null; then PYTHON="$p"; break; fi
	done
fi
[ -n "${PYTHON:-}" ] || { echo "run.sh: no python3 with numpy (apt-get install python3-numpy)" >&2; exit 1; }

PG_CONFIG="${PG_CONFIG:-pg_config}"
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pg_soup.control" ]; then
	echo "run.sh: pg_soup is not installed; run 'make && make install' first" >&2
	exit 1
fi

# shellcheck source=../../scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"

WORK="$(mktemp -d /tmp/pg_soup_bench.XXXXXX)"
cleanup() {
	cluster_stop || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 755 "$WORK"
mkdir "$WORK/ckpt" "$WORK/out"
chmod 755 "$WORK/ckpt"
chmod 777 "$WORK/out"            # the server (user postgres) writes exports here
[ "$(id -u)" = 0 ] && chown "${CLUSTER_USER:-postgres}" "$WORK/out"

export BENCH_QUICK="${BENCH_QUICK:-0}"
quick=()
[ "$BENCH_QUICK" != 0 ] && quick=(--quick)

echo "== generating 4 checkpoints in $WORK/ckpt ${quick[*]:-}" >&2
BENCH_GEN_INFO="$("$PYTHON" "$HERE/gen_checkpoints.py" "$WORK/ckpt" 4 "${quick[@]}")"
echo "   $BENCH_GEN_INFO" >&2

# Settings: fsync stays off as cluster.sh sets it (no durability cost on
# either side); autovacuum off so that it cannot run during a timing (the
# driver VACUUMs explicitly); wal_level minimal as a bulk-load setup would.
CONF=(
	"max_parallel_workers_per_gather = 2"
	"max_worker_processes = 8"
	"max_parallel_workers = 8"
	"work_mem = '256MB'"
	"maintenance_work_mem = '1GB'"
	"wal_level = minimal"
	"max_wal_senders = 0"
	"autovacuum = off"
)
# cluster.sh sets shared_buffers = 1GB (less than the 2 GB of input: reads go
# through the OS page cache); BENCH_SHARED_BUFFERS=4GB measures the fitting case.
[ -n "${BENCH_SHARED_BUFFERS:-}" ] && CONF+=("shared_buffers = '$BENCH_SHARED_BUFFERS'")
echo "== starting a throwaway cluster" >&2
cluster_start "${CONF[@]}"

conf_str="$(printf '%s, ' "${CONF[@]}")"
export BENCH_CKPT_DIR="$WORK/ckpt" BENCH_OUT_DIR="$WORK/out" BENCH_GEN_INFO
export BENCH_CONF="${conf_str%, }"
"$PYTHON" "$HERE/bench.py"
