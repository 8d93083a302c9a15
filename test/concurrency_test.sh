#!/bin/bash
# test/concurrency_test.sh - 8 clients import, merge, delete, run the jobs and
# read at once (pgbench, CONCURRENCY_SECONDS, default 60).  Passes when no
# client sees an error, and afterwards the catalog is consistent: every
# model passes soup.verify and the shared models are intact.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${CONCURRENCY_SECONDS:-60}"
GEN=/tmp/pg_soup_regress/gen

source scripts/cluster.sh
trap cluster_stop EXIT
cluster_start "max_connections = 50"
q "CREATE EXTENSION pg_soup"
for i in 1 2 3; do
	q "SELECT soup.import_safetensors('$GEN/g$i.safetensors', 'src-$i', 'src', $i * 100)" >/dev/null
done
md5_before=$(q "SELECT md5(string_agg(md5(soup.safetensors(name)), ',' ORDER BY name)) FROM soup.models WHERE name LIKE 'src-%'")

# One pgbench a script, all at once, 8 clients in all: every client runs its
# script at least once (pgbench starts each client's first transaction at
# once), so what the checks below expect exists on a machine of any speed.
PGBENCH="$PG_BINDIR/pgbench"
pids=()
for spec in import_delete:2 merge:2 lawa_ema:2 read:2; do
	script=${spec%:*}
	"$PGBENCH" -n -c "${spec#*:}" -j 1 -T "$SECONDS_TO_RUN" -f "test/concurrency/$script.sql" \
		> "/tmp/pg_soup_pgbench_$script.log" 2>&1 &
	pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
cat /tmp/pg_soup_pgbench_*.log > /tmp/pg_soup_pgbench.log
grep -E "transactions|failed|latency average|aborted|ERROR" /tmp/pg_soup_pgbench.log | head -20

source test/check.sh
check "no client aborted or saw an error" \
	"$(grep -cE 'ERROR|aborted|error' /tmp/pg_soup_pgbench.log || true)" 0
for script in import_delete merge lawa_ema read; do
	check "the $script clients ran" "$(grep -oE 'number of transactions actually processed: [0-9]+' \
		"/tmp/pg_soup_pgbench_$script.log" | grep -oE '[0-9]+$' | awk '{print ($1 >= 2)}')" 1
done
check "every model passes soup.verify" \
	"$(q "SELECT count(*) FROM soup.models m, LATERAL soup.verify(m.name) v")" 0
check "no chunk without a model" \
	"$(q "SELECT count(*) FROM soup.chunks c WHERE NOT EXISTS (SELECT 1 FROM soup.models m WHERE m.id = c.model_id)")" 0
check "the shared sources are unchanged" \
	"$(q "SELECT md5(string_agg(md5(soup.safetensors(name)), ',' ORDER BY name)) FROM soup.models WHERE name LIKE 'src-%'")" \
	"$md5_before"
q "SELECT soup.merge('fresh', 'avg', ARRAY['src-1', 'src-2', 'src-3'])" >/dev/null
check "the merged models equal a fresh merge" \
	"$(q "SELECT count(*) > 0 AND bool_and(md5(soup.safetensors(name)) = md5(soup.safetensors('fresh'))) FROM soup.models WHERE name LIKE 'cc-merge-%'")" t
check "the EMA covers the sources once" "$(q "SELECT recipe -> 'steps' FROM soup.models WHERE name = 'cc-ema'")" "[100, 200, 300]"
check_summary concurrency
