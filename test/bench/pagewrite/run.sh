#!/bin/bash
# test/bench/pagewrite/run.sh - what would an import gain by leaving TOAST?
#
# Writes the same file (the argument, e.g. a checkpoint; default 512 MB of
# random bytes) into a throwaway cluster with wal_level = replica
# (shared_buffers 1GB, fsync off, as make bench) three ways, each after a
# warm-up round and a CHECKPOINT, best of BENCH_REPEAT (3):
#   toast      1 MiB bytea rows (STORAGE EXTERNAL), as soup.chunks stores chunks
#   pages      whole pages, WAL-logged as full pages 32 to a record (an index build's path)
#   pages/nowal  the same without WAL (the ceiling: read the file, write pages)
# Prints seconds and GB/s (10^9).  Builds and installs pagewrite.so (root).
# Never asserts timings; not part of CI.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../../.. && pwd)
FILE="${1:-}"
REPEAT="${BENCH_REPEAT:-3}"
make -s >/dev/null
make -s install >/dev/null
TMP=$(mktemp -d /tmp/pagewrite.XXXXXX)
chmod 755 "$TMP"
if [ -z "$FILE" ]; then
	head -c $((512 * 1024 * 1024)) /dev/urandom >"$TMP/input.bin"
	FILE="$TMP/input.bin"
fi
chmod a+r "$FILE"
BYTES=$(stat -c %s "$FILE")
source "$ROOT/scripts/cluster.sh"
trap 'cluster_stop; rm -rf "$TMP"' EXIT
cluster_start "wal_level = replica" "autovacuum = off"
q "CREATE FUNCTION bench_pagewrite(regclass, text, int, boolean) RETURNS bigint
   AS 'pagewrite', 'bench_pagewrite' LANGUAGE C STRICT"
q "CREATE TABLE t_toast (id int PRIMARY KEY, b bytea); ALTER TABLE t_toast ALTER b SET STORAGE EXTERNAL"
q "CREATE TABLE t_pages (a int)"
chunks=$(( (BYTES + 1048575) / 1048576 ))
toast_sql="INSERT INTO t_toast SELECT i, pg_read_binary_file('$FILE', i::bigint * 1048576,
	least(1048576, $BYTES - i::bigint * 1048576)) FROM generate_series(0, $chunks - 1) i"
# seconds of one statement, after a TRUNCATE and CHECKPOINT
timed() {
	local table=$1 sql=$2
	q "TRUNCATE $table"
	q "CHECKPOINT"
	psql -X -q -At -v ON_ERROR_STOP=1 -c '\timing on' -c "$sql" | awk '/^Time:/ {printf "%.3f\n", $2 / 1000}'
}
best() {
	local table=$1 sql=$2 b=""
	timed "$table" "$sql" >/dev/null		# warm-up round
	for _ in $(seq "$REPEAT"); do
		t=$(timed "$table" "$sql")
		b=$(echo "${b:-$t} $t" | awk '{print ($2 < $1) ? $2 : $1}')
	done
	echo "$b"
}
t_toast=$(best t_toast "$toast_sql")
t_pages=$(best t_pages "SELECT bench_pagewrite('t_pages', '$FILE', 32, true)")
t_nowal=$(best t_pages "SELECT bench_pagewrite('t_pages', '$FILE', 32, false)")
q "TRUNCATE t_pages"
echo "pagewrite: $BYTES bytes of $FILE, best of $REPEAT after a warm-up, wal_level = replica"
for row in "toast $t_toast" "pages $t_pages" "pages/nowal $t_nowal"; do
	set -- $row
	awk -v n="$1" -v t="$2" -v b="$BYTES" -v base="$t_toast" \
		'BEGIN {printf "  %-12s %7.3f s  %5.2f GB/s  %4.2fx toast\n", n, t, b / t / 1e9, base / t}'
done
