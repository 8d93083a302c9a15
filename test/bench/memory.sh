#!/usr/bin/env bash
# test/bench/memory.sh - the backend's private memory (RssAnon) during each
# merge method on models with one 200M-element tensor (make bench-memory).
#
# Writes three bf16 checkpoints (two models and a base: one 200M-element
# tensor and a few small ones, 400 MB each), imports them into a throwaway
# cluster, runs every soup.merge method on them and samples the backend's
# RssAnon (from /proc/PID/status, every 20 ms) while it runs.  Prints the
# peak and the time of each method; asserts nothing.
#
#   MEMORY_ELEMS=200000000 bash test/bench/memory.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ELEMS="${MEMORY_ELEMS:-200000000}"
PYTHON="${PYTHON:-/usr/bin/python3}"

# shellcheck source=../../scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"
WORK="$(mktemp -d /tmp/pg_soup_memory.XXXXXX)"
trap 'cluster_stop || true; rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

echo "== writing 3 bf16 checkpoints with a $ELEMS-element tensor" >&2
"$PYTHON" - "$WORK" "$ELEMS" <<'EOF'
import json, struct, sys
import numpy as np
out, n = sys.argv[1], int(sys.argv[2])
for i, name in enumerate(["a", "b", "base"]):
    rng = np.random.default_rng(100 + i)
    tensors = {"embed": None, "norm": rng.standard_normal(4096, dtype=np.float32),
               "head.bias": rng.standard_normal(1000, dtype=np.float32)}
    header, off, blobs = {}, 0, []
    for k in tensors:
        if k == "embed":
            blob = bytearray()
            step = 1 << 24
            for s in range(0, n, step):         # bf16: the top half of float32
                f = rng.standard_normal(min(step, n - s), dtype=np.float32)
                blob += (f.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            header[k] = {"dtype": "BF16", "shape": [n], "data_offsets": [off, off + len(blob)]}
        else:
            blob = tensors[k].astype(np.float32).view(np.uint32)
            blob = (blob >> 16).astype(np.uint16).tobytes()
            header[k] = {"dtype": "BF16", "shape": [len(tensors[k])],
                         "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open("%s/%s.safetensors" % (out, name), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
EOF
chmod a+r "$WORK"/*.safetensors

cluster_start "shared_buffers = 512MB"
q "CREATE EXTENSION pg_soup"
for m in a b base; do
	q "SELECT soup.import_safetensors('$WORK/$m.safetensors', '$m')" >/dev/null
done
q "VACUUM ANALYZE soup.chunks" >/dev/null

# run one merge in its own session, sampling its backend's RssAnon
measure() {
	local label="$1" sql="$2"
	rm -f "$WORK/pid"
	psql -X -q -At -v ON_ERROR_STOP=1 >"$WORK/out" 2>&1 <<SQL &
SELECT pg_backend_pid() \\g $WORK/pid
\\timing on
$sql
SQL
	local psql_pid=$! pid="" peak=0 kb
	while [ -z "$pid" ] && kill -0 "$psql_pid" 2>/dev/null; do
		pid=$(cat "$WORK/pid" 2>/dev/null || true)
	done
	while kill -0 "$psql_pid" 2>/dev/null; do
		kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
		[ "${kb:-0}" -gt "$peak" ] && peak=$kb
		sleep 0.02
	done
	wait "$psql_pid" || { cat "$WORK/out"; return 1; }
	printf "%-14s peak RssAnon %6d MiB   %s\n" "$label" $((peak / 1024)) \
		"$(grep -o 'Time: [0-9.]* ms' "$WORK/out" | tail -1)"
	q "DELETE FROM soup.models WHERE name = 'out'" >/dev/null
}

echo "== soup.merge of 2 models with a $ELEMS-element bf16 tensor (shared_buffers 512MB)"
measure avg "SELECT soup.merge('out', 'avg', ARRAY['a', 'b']);"
measure ema "SELECT soup.merge('out', 'ema', ARRAY['a', 'b'], params => '{\"decay\": 0.9}');"
measure task "SELECT soup.merge('out', 'task_arithmetic', ARRAY['a', 'b'], base => 'base');"
measure ties "SELECT soup.merge('out', 'ties', ARRAY['a', 'b'], base => 'base', params => '{\"density\": 0.3}');"
measure dare_ties "SELECT soup.merge('out', 'dare_ties', ARRAY['a', 'b'], base => 'base', params => '{\"density\": 0.3, \"seed\": 1}');"
measure slerp "SELECT soup.merge('out', 'slerp', ARRAY['a', 'b'], params => '{\"t\": 0.3}');"
measure model_stock "SELECT soup.merge('out', 'model_stock', ARRAY['a', 'b'], base => 'base');"
echo "== the aggregate soup.magnitude_threshold by hand (holds every magnitude)"
measure threshold_agg "SELECT soup.magnitude_threshold(c.data, b.data, 0.3) FROM soup.weights c JOIN soup.weights b ON b.model = 'base' AND b.tensor = c.tensor AND b.chunk = c.chunk WHERE c.model = 'a' AND c.tensor = 'embed';"
measure threshold_radix "SELECT soup._magnitude_threshold(a.id, b.id, 'embed', 0.3) FROM soup.models a, soup.models b WHERE a.name = 'a' AND b.name = 'base';"
