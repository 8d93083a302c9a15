#!/bin/bash
# test/bench/means.sh - what each means buys, measured in one run on K = 4
# GPT-2-small-shaped f32 checkpoints (BENCH_QUICK=1: the small variant).
#
#  - PostgreSQL's own storage ceiling: the same volume written to and read
#    from a plain bytea column (STORAGE EXTERNAL, 1 MiB values, TOAST as for
#    soup.chunks), next to pg_soup's import and read+merge;
#  - WAL written by an import and by a merge;
#  - soup.threads 1 and 2; a serial plan and a forced parallel plan;
#  - the pg_soup client (COPY BINARY over libpq) next to the server-side
#    import and export functions;
#  - the kernels alone (test/bench/kernels.bin) against memory copy and
#    OpenBLAS.
# Prints a table; not run in CI (no timing is asserted anywhere).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT="$ROOT/test/bench/results/means.txt"
mkdir -p "$(dirname "$OUT")"
[ "$(id -u)" = 0 ] && bash scripts/deps.sh
make -s >/dev/null && make -s install >/dev/null && make -s test/bench/kernels.bin
PG_SOUP="$(pg_config --bindir)/pg_soup"

DIR=$(mktemp -d /tmp/pg_soup_means.XXXXXX)
chmod 755 "$DIR"
source scripts/cluster.sh
trap 'cluster_stop; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/ckpt"
/usr/bin/python3 test/bench/gen_checkpoints.py "$DIR/ckpt" 4 ${BENCH_QUICK:+--quick} >/dev/null
mkdir -p "$DIR/out"
chmod -R a+rX "$DIR"
[ "$(id -u)" = 0 ] && chown "${CLUSTER_USER:-postgres}" "$DIR/out"
cluster_start "wal_level = minimal" "max_wal_senders = 0" "work_mem = '256MB'" \
	"autovacuum = off" "max_parallel_workers_per_gather = 2"

# seconds taken by a command
secs() {
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null
	e=$(date +%s.%N)
	echo "$e - $s" | bc -l
}
lsn() { q "SELECT pg_current_wal_lsn()"; }
wal_mb() { q "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1e6)"; }
rate() { echo "$1 / $2 / 1000000000" | bc -l; }
rows=()
row() { rows+=("$(printf '%-66s %8.2f s %7.2f GB/s  %s' "$1" "$2" "$(rate "$3" "$2")" "${4:-}")"); }

q "CREATE EXTENSION pg_soup"
BYTES=$(stat -c %s "$DIR/ckpt/ckpt0.safetensors")
q "CHECKPOINT"

# ---- import: server function, client, and a plain bytea table ----
l0=$(lsn)
t=$(secs q "SELECT soup.import_safetensors('$DIR/ckpt/ckpt0.safetensors', 'c0')")
l1=$(lsn)
row "import 1 file, soup.import_safetensors (SPI insert per chunk)" "$t" "$BYTES" "WAL $(wal_mb "$l0" "$l1") MB"
for i in 1 2 3; do q "SELECT soup.import_safetensors('$DIR/ckpt/ckpt$i.safetensors', 'c$i')" >/dev/null; done
t=$(secs "$PG_SOUP" -q import "$DIR/ckpt/ckpt0.safetensors" --model client0)
row "import 1 file, pg_soup client (COPY BINARY over libpq)" "$t" "$BYTES"
MIB=$(( BYTES / 1048576 ))
q "CREATE TABLE raw (k int, d bytea)"
q "ALTER TABLE raw ALTER COLUMN d SET STORAGE EXTERNAL"
l0=$(lsn)
t=$(secs q "INSERT INTO raw SELECT g, b FROM generate_series(1, $MIB) g,
	(SELECT decode(repeat('ab', 1048576), 'hex') AS b) s")
l1=$(lsn)
row "ceiling: INSERT $MIB x 1 MiB into a plain bytea column" "$t" "$((MIB * 1048576))" "WAL $(wal_mb "$l0" "$l1") MB"
q "VACUUM ANALYZE" && q "CHECKPOINT"

# ---- reading: full detoast of a bytea column vs read+merge ----
MERGE="SELECT tensor, chunk, soup.avg_weights(data) AS a FROM soup.weights
	WHERE model IN ('c0', 'c1', 'c2', 'c3') GROUP BY tensor, chunk"
readmerge() { psql -X -q -At -v ON_ERROR_STOP=1 -c "SET soup.threads = $1" -c "$2" -c "SELECT count(*), sum(soup.numel(a)) FROM ($MERGE) s" >/dev/null; }
readmerge 1 "SET max_parallel_workers_per_gather = 0"	# warm the caches
q "SELECT sum(get_byte(d, 0)) FROM raw" >/dev/null
t=$(secs q "SELECT sum(get_byte(d, 0)) FROM raw")
row "ceiling: read (detoast) $MIB x 1 MiB of plain bytea, warm" "$t" "$((MIB * 1048576))"
t=$(secs q "SELECT sum(soup.numel(soup.astype(data, 'f32'))) FROM soup.weights WHERE model = 'c0'")
row "read 1 model's chunks (detoast + copy), warm" "$t" "$BYTES"
for th in 1 2; do
	t=$(secs readmerge "$th" "SET max_parallel_workers_per_gather = 0")
	row "read+merge avg K=4, serial plan, soup.threads = $th, warm" "$t" "$((4 * BYTES))"
done
t=$(secs readmerge 1 "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET enable_hashagg = off")
row "read+merge avg K=4, forced parallel plan (2 workers), warm" "$t" "$((4 * BYTES))"

# ---- writing a merge ----
l0=$(lsn)
t=$(secs q "SELECT soup.merge('m', 'avg', ARRAY['c0', 'c1', 'c2', 'c3'])")
l1=$(lsn)
row "soup.merge avg K=4 (durable model)" "$t" "$((4 * BYTES))" "WAL $(wal_mb "$l0" "$l1") MB"

# ---- a new session right after a restart: huge pages for shared memory ----
# A backend faults in every 4 KiB page of shared_buffers it touches (about
# 262,000 for 1 GB); with huge_pages = on that is 512 faults of 2 MiB.
restart() {
	as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
		-w -m fast restart >/dev/null
}
fresh_row() {
	restart
	t=$(secs readmerge 1 "SET max_parallel_workers_per_gather = 0")
	row "read+merge avg K=4, new session after a restart, $1" "$t" "$((4 * BYTES))"
}
fresh_row "huge_pages off"
old_hp=$(cat /proc/sys/vm/nr_hugepages)
if [ "$(id -u)" = 0 ] && sysctl -qw vm.nr_hugepages=700 2>/dev/null &&
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 600 ]; then
	echo "huge_pages = on" >>"$CLUSTER_DIR/data/postgresql.conf"
	fresh_row "huge_pages = on"
	sed -i '/^huge_pages = on$/d' "$CLUSTER_DIR/data/postgresql.conf"
	restart
	sysctl -qw vm.nr_hugepages="$old_hp"
else
	rows+=("(huge pages not measured: vm.nr_hugepages could not be raised)")
fi

# ---- export: server function and client ----
t=$(secs q "SELECT soup.export_safetensors('m', '$DIR/out/server.safetensors')")
row "export, soup.export_safetensors" "$t" "$BYTES"
t=$(secs "$PG_SOUP" -q export m "$DIR/out/client.safetensors")
row "export, pg_soup client (COPY BINARY over libpq)" "$t" "$BYTES"
cmp -s "$DIR/out/server.safetensors" "$DIR/out/client.safetensors" || rows+=("MISMATCH: client and server exports differ")

{
	echo "pg_soup means, $(date -u +%F), $(nproc) cores, $(q 'SHOW server_version'), file $BYTES bytes"
	printf '%s\n' "${rows[@]}"
	echo
	./test/bench/kernels.bin $([ -n "${BENCH_QUICK:-}" ] && echo 4194304)
} | tee "$OUT"
