#!/bin/bash
# scripts/demo.sh - install what pg_soup needs, build it, start a throwaway
# cluster and run the demo: import checkpoints, merge in SQL, export, check
# the result against numpy.  Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] && bash scripts/deps.sh
echo "== build and install"
make -s -j"$(nproc)" 2>&1 | grep -v '^gcc' || true
make -s install >/dev/null

source scripts/cluster.sh
DEMO_DIR="$(mktemp -d /tmp/pg_soup_demo.XXXXXX)"
trap 'cluster_stop; rm -rf "$DEMO_DIR"' EXIT
chmod 755 "$DEMO_DIR"
/usr/bin/python3 scripts/demo_checkpoints.py make "$DEMO_DIR"
[ "$(id -u)" = 0 ] && chown -R "$CLUSTER_USER" "$DEMO_DIR"
cluster_start
echo "== throwaway cluster on $PGHOST, port $PGPORT"
psql -X -q -v dir="$DEMO_DIR" -f scripts/demo.sql
echo "== 5. check the exported file with numpy"
/usr/bin/python3 scripts/demo_checkpoints.py check "$DEMO_DIR" "$DEMO_DIR/demo-soup.safetensors"
