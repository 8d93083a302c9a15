#!/bin/bash
# test/cron_test.sh - pg_cron, not the test, keeps an EMA model of a live run
# up to date.  Starts its own cluster with pg_cron preloaded, schedules
# soup.refresh_ema every minute, adds checkpoints, and waits for the
# scheduler's runs to fold them in; the result must equal the reference
# written by test/gen_test_data.py (checkpoints in /tmp/pg_soup_regress/gen).
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=/tmp/pg_soup_regress/gen

source scripts/cluster.sh
trap cluster_stop EXIT
cluster_start "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
	"cron.use_background_workers = on" "max_worker_processes = 16"

q "CREATE EXTENSION pg_cron"
q "CREATE EXTENSION pg_soup"
q "SELECT soup.import_safetensors('$GEN/g1.safetensors', 'live-100', 'live', 100)" >/dev/null
q "SELECT soup.import_safetensors('$GEN/expected_ema_update.safetensors', 'reference')" >/dev/null
q "SELECT cron.schedule('soup-ema-live', '* * * * *', \$\$CALL soup.refresh_ema('live', 'live-ema', 0.9)\$\$)" >/dev/null

# wait until the EMA covers the given steps: pg_cron runs the job at the
# start of each minute, so this takes up to a minute or two; the deadline
# (6 minutes) only stops a test whose scheduler never runs
wait_for_steps() {
	local want="$1"
	for _ in $(seq 1 360); do
		got=$(q "SELECT recipe -> 'steps' FROM soup.models WHERE name = 'live-ema'")
		[ "$got" = "$want" ] && return 0
		sleep 1
	done
	echo "timed out waiting for steps $want (have: ${got:-none})"
	q "SELECT status, return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 3"
	return 1
}

source test/check.sh

wait_for_steps "[100]" && check "the scheduler created the EMA model" ok ok || check "created" no ok
q "SELECT soup.import_safetensors('$GEN/g2.safetensors', 'live-200', 'live', 200)" >/dev/null
q "SELECT soup.import_safetensors('$GEN/g3.safetensors', 'live-300', 'live', 300)" >/dev/null
wait_for_steps "[100, 200, 300]" && check "the scheduler folded in new checkpoints" ok ok || check "folded" no ok
check "the EMA equals the reference" \
	"$(q "SELECT md5(soup.safetensors('live-ema')) = md5(soup.safetensors('reference'))")" t
check "runs by pg_cron succeeded" \
	"$(q "SELECT count(*) > 0 AND bool_and(status = 'succeeded') FROM cron.job_run_details")" t
q "SELECT cron.unschedule('soup-ema-live')" >/dev/null
check_summary cron
