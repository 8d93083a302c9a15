#!/usr/bin/env bash
# test/bench/run.sh - pg_soup performance benchmark (see DESIGN.md section 6).
#
#   bash test/bench/run.sh                 # full size: GPT-2 small (124M f32 params per file)
#   BENCH_QUICK=1 bash test/bench/run.sh   # ~1/7 size smoke test
#   BENCH_K=4 BENCH_METHODS="avg fisher" bash test/bench/run.sh   # a subset
#
# Needs the extension installed (make && make install), postgresql-15,
# python3-numpy and python3-torch (installed here with apt-get when missing
# and running as root; otherwise the PyTorch peer is skipped).  Generates
# deterministic checkpoints (K of them, K Fisher diagonals, a base), measures a
# memory-copy ceiling, the numpy and PyTorch peer scripts, and pg_soup on a
# throwaway cluster: import, read+merge over soup.weights, soup.merge and
# export, for avg, ema, fisher and model_stock at each K; checks every merge
# against numpy's float64 reference; prints one table (also saved, with
# plans and raw numbers, to test/bench/results/last_run.txt, or to
# last_quick_run.txt for BENCH_QUICK=1).  Never asserts timings.
#
# Duration on 2 cores: BENCH_QUICK=1 about 12 min; full size with BENCH_K=4
# about 18 min; the full default (K = 2, 4, 8; 17 files of 0.5 GB) about an
# hour (estimated from those two).  BENCH_REPEAT=1 roughly halves it.
#
# Knobs: BENCH_QUICK=1, BENCH_K="2 4 8", BENCH_METHODS="avg ema fisher
# model_stock", BENCH_REPEAT=3, BENCH_SLOW=40 (stop repeating once runs add up
# to this many seconds), BENCH_TORCH=0 (skip PyTorch), BENCH_CONFIGS=0 (skip
# the workers x threads table), BENCH_CHUNKS="65536 1048576" (also sweep
# soup.chunk_elems for avg at K=4), BENCH_SHARED_BUFFERS=4GB,
# PYTHON=/usr/bin/python3.
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

# the PyTorch peer: Debian's python3-torch, for /usr/bin/python3
if [ "${BENCH_TORCH:-1}" != 0 ] && ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	if [ "$(id -u)" = 0 ] && [ "$PYTHON" = /usr/bin/python3 ] && command -v apt-get >/dev/null; then
		echo "== installing python3-torch (the PyTorch peer)" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq --no-install-recommends python3-torch >/dev/null ||
			{ apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-torch >/dev/null; } ||
			echo "run.sh: could not install python3-torch; the PyTorch peer is skipped" >&2
	else
		echo "run.sh: no torch for $PYTHON (apt-get install python3-torch); the PyTorch peer is skipped" >&2
	fi
fi

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
export BENCH_K="${BENCH_K:-2 4 8}"
export BENCH_METHODS="${BENCH_METHODS:-avg ema fisher model_stock}"
gen=()
[ "$BENCH_QUICK" != 0 ] && gen+=(--quick)
case " $BENCH_METHODS " in *" fisher "*) gen+=(--fishers) ;; esac
case " $BENCH_METHODS " in *" model_stock "*) gen+=(--base) ;; esac
kmax=0
for k in $BENCH_K; do
	case "$k" in ''|*[!0-9]*) echo "run.sh: BENCH_K must list integers >= 2" >&2; exit 1 ;; esac
	[ "$k" -ge 2 ] || { echo "run.sh: BENCH_K must list integers >= 2" >&2; exit 1; }
	if [ "$k" -gt "$kmax" ]; then kmax=$k; fi
done
for m in $BENCH_METHODS; do
	case "$m" in avg|ema|fisher|model_stock) ;; *) echo "run.sh: unknown method in BENCH_METHODS: $m" >&2; exit 1 ;; esac
done

t_gen=$SECONDS
echo "== generating $kmax checkpoints (${gen[*]:-}) in $WORK/ckpt" >&2
BENCH_GEN_INFO="$("$PYTHON" "$HERE/gen_checkpoints.py" "$WORK/ckpt" "$kmax" "${gen[@]}")"
echo "   $BENCH_GEN_INFO" >&2

# Settings: fsync stays off as cluster.sh sets it (no durability cost on
# either side); autovacuum off so that it cannot run during a timing (the
# driver VACUUMs explicitly); wal_level replica, PostgreSQL's default and
# what a server with replicas or point-in-time recovery runs.
CONF=(
	"max_parallel_workers_per_gather = 2"
	"max_worker_processes = 8"
	"max_parallel_workers = 8"
	"work_mem = '256MB'"
	"maintenance_work_mem = '1GB'"
	"wal_level = replica"
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
echo "== total run time including generation and cluster start: $((SECONDS - t_gen)) s" >&2
