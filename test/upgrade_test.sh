#!/bin/bash
# test/upgrade_test.sh - a database that pg_soup 0.1.0 filled reaches 0.2.0
# by ALTER EXTENSION pg_soup UPDATE and keeps everything, bit for bit.
#
# 0.1.0 is built and installed exactly as it shipped: from the commit that
# released it (git history of this repository), its own Makefile, library
# and install script.  It fills a cluster with pg_cron preloaded: models of
# every dtype (the FluxML fixtures: f32, f16, bf16, f64 and the raw integer
# and float8 tensors), a sharded import, checkpoints of runs with metrics,
# merges with recipes and lineage (avg, weighted avg, ties, slerp, ema,
# task arithmetic, a soup of soups), an EMA of a live run kept by a pg_cron
# job.  Then the current tree is installed and the extension updated, and:
#   - every model exports byte-identical to its 0.1.0 export, and the catalog
#     tables, lineage and the job list read the same as before;
#   - a pg_dump of the 0.1.0 database restores into a new 0.2.0 database with
#     the same exports;
#   - soup.verify finds nothing wrong with any model;
#   - 0.2.0's functions work on the old models: soup.merge gives 0.1.0's
#     average bit for bit, merge_config's breadcrumbs_ties (gamma 0) gives
#     0.1.0's ties, karcher and della give the same bits on the old models as
#     on fresh 0.2.0 imports of the same files, soup.rechunk keeps the bits,
#     and the client exports an old model as the server does;
#   - the pg_cron job scheduled under 0.1.0 keeps running under 0.2.0 and
#     folds in new checkpoints into the EMA of the reference file.
# Needs test/gen_test_data.py's files in /tmp/pg_soup_regress (scripts/test.sh).
# Installs the current build again when it ends, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# the commit that shipped 0.1.0 (its Makefile says EXTVERSION = 0.1.0)
OLD_COMMIT=6b51a078aeec00ce34205fc4ca31334ca42fcf20
GEN=/tmp/pg_soup_regress/gen
FIX=/tmp/pg_soup_regress/fixtures

[ -f "$GEN/g1.safetensors" ] || { echo "run test/gen_test_data.py first (scripts/test.sh does)"; exit 1; }
git cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null \
	|| { echo "0.1.0's commit $OLD_COMMIT is not in this clone's history"; exit 1; }

source scripts/cluster.sh
WORK=$(mktemp -d /tmp/pg_soup_upgrade.XXXXXX)
finish() {
	cluster_stop
	make -s -C "$ROOT" install >/dev/null
	rm -rf "$WORK"
}
trap finish EXIT

echo "building 0.1.0 from $OLD_COMMIT"
mkdir -p "$WORK/v0.1.0" "$WORK/out"
git archive "$OLD_COMMIT" | tar -x -C "$WORK/v0.1.0"
grep -q '^EXTVERSION = 0.1.0$' "$WORK/v0.1.0/Makefile"
make -s -C "$WORK/v0.1.0" -j"$(nproc)" >/dev/null 2>&1 \
	|| { make -C "$WORK/v0.1.0" 2>&1 | tail -20; exit 1; }
make -s -C "$WORK/v0.1.0" install >/dev/null
chmod 755 "$WORK"
[ "$(id -u)" = 0 ] && chown "$CLUSTER_USER" "$WORK/out"

cluster_start "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
	"cron.use_background_workers = on" "max_worker_processes = 16"
source test/check.sh

# ---- 0.1.0 fills the database ----
q "CREATE EXTENSION pg_cron"
q "CREATE EXTENSION pg_soup"
check "0.1.0 is installed" "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_soup'")" 0.1.0
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO soup.runs (name, params, tokens, batch_size, seq_len, learning_rate, config) VALUES
	('gen-run', 85000000, 1700000000, 64, 1024, 0.0006, '{"optimizer": "adamw", "warmup": 200}'),
	('peft', 125000000, NULL, 32, 128, 0.0001, '{"task": "mrpc"}');
SELECT soup.log_metrics('gen-run', s, jsonb_build_object('loss', 7.5 / ln(s + 2), 'lr', 0.0006), s * 65536)
FROM generate_series(0, 300, 10) s;
SELECT soup.log_metrics('peft', s, jsonb_build_object('eval_f1', 0.8 + s / 100000.0)) FROM (VALUES (230), (2300)) v(s);
SELECT soup.import_safetensors('$GEN/g' || i || '.safetensors', 'g' || i, 'gen-run', i * 100) FROM generate_series(1, 3) i;
SELECT soup.import_safetensors('$GEN/base.safetensors', 'base');
SET soup.chunk_elems = 1000;
SELECT soup.import_safetensors('$FIX/peft-finegates-mrpc/checkpoint-' || s || '/adapter_model.safetensors',
							   'peft-' || s, 'peft', s) FROM (VALUES (230), (2300)) v(s);
SET soup.chunk_elems = 7;
SELECT soup.import_safetensors('$FIX/fluxml-safetensors-jl/non_sharded/model.with_metadata.safetensors', 'flux');
SELECT soup.import_safetensors('$FIX/fluxml-safetensors-jl/sharded/model.safetensors.index.json', 'flux-sharded');
RESET soup.chunk_elems;
SELECT soup.import_safetensors('$FIX/dalotia-mnist/model-mnist.safetensors', 'mnist');
SELECT soup.merge('soup_avg', 'avg', ARRAY['g1', 'g2', 'g3']);
SELECT soup.merge('soup_wavg', 'avg', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5]);
SELECT soup.merge('m_ties', 'ties', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5], base => 'base',
				  params => '{"density": 0.5}');
SELECT soup.merge('m_slerp', 'slerp', ARRAY['g1', 'g2'], params => '{"t": 0.3}');
SELECT soup.merge('m_ema', 'ema', ARRAY['g1', 'g2', 'g3'], params => '{"decay": 0.9}');
SELECT soup.merge('m_task', 'task_arithmetic', ARRAY['g1', 'g2', 'g3'], ARRAY[0.5, 1, -0.3], base => 'base');
SELECT soup.merge('peft-avg', 'avg', ARRAY['peft-230', 'peft-2300'], ARRAY[1, 3]);
SELECT soup.merge('soup_of_soups', 'avg', ARRAY['soup_avg', 'm_ties']);
SELECT soup.import_safetensors('$GEN/g1.safetensors', 'live-100', 'live', 100);
CALL soup.refresh_ema('live', 'live-ema', 0.9);
SELECT cron.schedule('soup-ema-live', '* * * * *', \$\$CALL soup.refresh_ema('live', 'live-ema', 0.9)\$\$);
SQL

# ---- what must survive: exports and the catalog as 0.1.0 left them ----
# the tables' 0.1.0 columns, read before the update and used after it
cols() {
	q "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
	   FROM information_schema.columns WHERE table_schema = 'soup' AND table_name = '$1'"
}
MODEL_COLS=$(cols models)
TENSOR_COLS=$(cols tensors)
RUN_COLS=$(cols runs)
METRIC_COLS=$(cols metrics)
CKPT_COLS=$(cols checkpoints)
MODELS=$(q "SELECT string_agg(name, ' ' ORDER BY id) FROM soup.models")
n_models=$(echo "$MODELS" | wc -w)
# export_models DIR: the server exports 0.1.0's models (in $PGDATABASE) to DIR/<id>.safetensors
export_models() {
	mkdir -p "$1"
	[ "$(id -u)" = 0 ] && chown "$CLUSTER_USER" "$1"
	q "SELECT soup.export_safetensors(name, '$1/' || id || '.safetensors') FROM soup.models
	   WHERE name = ANY (string_to_array('$MODELS', ' '))" >/dev/null
}
# same_exports DIR: how many of DIR's files equal 0.1.0's exports
same_exports() {
	local same=0
	for f in "$WORK"/out/before/*.safetensors; do
		cmp -s "$f" "$1/$(basename "$f")" && same=$((same + 1))
	done
	echo "$same"
}
snapshot() {
	local dir="$WORK/out/$1"
	export_models "$dir"
	{
		q "COPY (SELECT $MODEL_COLS FROM soup.models ORDER BY id) TO STDOUT"
		q "COPY (SELECT $TENSOR_COLS FROM soup.tensors ORDER BY model_id, ordinal) TO STDOUT"
		q "COPY (SELECT model_id, tensor, chunk, md5(soup.tensor_send(data)) FROM soup.chunks
				 ORDER BY model_id, tensor, chunk) TO STDOUT"
		q "COPY (SELECT $RUN_COLS FROM soup.runs ORDER BY id) TO STDOUT"
		q "COPY (SELECT $METRIC_COLS FROM soup.metrics ORDER BY run, name, step) TO STDOUT"
		q "COPY (SELECT m.name, l.* FROM soup.models m, soup.lineage(m.name) l
				 ORDER BY m.id, l.depth, l.name, l.role) TO STDOUT"
		q "COPY (SELECT $CKPT_COLS FROM soup.checkpoints ORDER BY model_id) TO STDOUT"
		q "COPY (SELECT jobid, schedule, command, database, username, active FROM cron.job ORDER BY jobid) TO STDOUT"
	} >"$dir/catalog.tsv"
}
snapshot before
# a dump of the 0.1.0 database, restored under 0.2.0 below (the other way to upgrade)
pg_dump -Fc --extension=pg_soup -d postgres -f "$WORK/v0.1.0.dump"
check "0.1.0 wrote a file per model" "$(ls "$WORK/out/before" | grep -c '\.safetensors$')" "$n_models"

# ---- the update ----
echo "installing the current tree and updating"
make -s -C "$ROOT" install >/dev/null
q "ALTER EXTENSION pg_soup UPDATE"
update_time=$(q "SELECT now()")
check "the update reached the current version" \
	"$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_soup'")" \
	"$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$ROOT/pg_soup.control")"

snapshot after
check "every model exports byte-identical after the update" "$(same_exports "$WORK/out/after")" "$n_models"
if cmp -s "$WORK/out/before/catalog.tsv" "$WORK/out/after/catalog.tsv"; then
	check "models, tensors, chunks, runs, metrics, lineage and jobs read the same" same same
else
	diff "$WORK/out/before/catalog.tsv" "$WORK/out/after/catalog.tsv" | cut -c1-300 | head -20
	check "models, tensors, chunks, runs, metrics, lineage and jobs read the same" differ same
fi
check "soup.verify finds nothing wrong" "$(q "SELECT count(*) FROM soup.models m, soup.verify(m.name) v")" 0

# ---- a 0.1.0 dump restores into a new 0.2.0 database ----
q "CREATE DATABASE restored"
pg_restore -d restored --exit-on-error "$WORK/v0.1.0.dump"
PGDATABASE=restored export_models "$WORK/out/restored"
check "a 0.1.0 dump restored into 0.2.0: every model exports byte-identical" \
	"$(same_exports "$WORK/out/restored")" "$n_models"
check "the restored database is at the current version, soup.verify clean" \
	"$(PGDATABASE=restored q "SELECT extversion || ' ' || (SELECT count(*) FROM soup.models m, soup.verify(m.name))
							  FROM pg_extension WHERE extname = 'pg_soup'")" \
	"$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_soup'") 0"

# ---- 0.2.0's functions on 0.1.0's models ----
exported() {		# model -> the file 0.1.0's snapshot wrote for it
	echo "$WORK/out/before/$(q "SELECT id FROM soup.models WHERE name = '$1'").safetensors"
}
export_new() {		# model -> a fresh export of it
	q "SELECT soup.export_safetensors('$1', '$WORK/out/new-$1.safetensors')" >/dev/null
	echo "$WORK/out/new-$1.safetensors"
}
same_file() { cmp -s "$1" "$2" && echo same || echo differ; }
q "SELECT soup.merge('avg_020', 'avg', ARRAY['g1', 'g2', 'g3'])" >/dev/null
check "soup.merge averages the old models to 0.1.0's bits" \
	"$(same_file "$(export_new avg_020)" "$(exported soup_avg)")" same
q "SELECT soup.merge_config('bct_020', \$\${\"merge_method\": \"breadcrumbs_ties\", \"base_model\": \"base\",
	\"models\": [{\"model\": \"g1\", \"parameters\": {\"weight\": 1}}, {\"model\": \"g2\", \"parameters\": {\"weight\": 2}},
				{\"model\": \"g3\", \"parameters\": {\"weight\": 0.5}}],
	\"parameters\": {\"density\": 0.5, \"gamma\": 0}}\$\$)" >/dev/null
check "merge_config's breadcrumbs_ties (gamma 0) on the old models is 0.1.0's ties" \
	"$(same_file "$(export_new bct_020)" "$(exported m_ties)")" same
# the same merges over fresh 0.2.0 imports of the same files
q "SELECT soup.import_safetensors('$GEN/' || f || '.safetensors', 'new_' || f)
   FROM unnest(ARRAY['g1', 'g2', 'g3', 'base']) f" >/dev/null
for pair in "old:g1:g2:g3:base" "new:new_g1:new_g2:new_g3:new_base"; do
	IFS=: read -r tag a b c base <<<"$pair"
	q "SELECT soup.merge_config('karcher_$tag', \$\${\"merge_method\": \"karcher\",
		\"models\": [{\"model\": \"$a\"}, {\"model\": \"$b\"}, {\"model\": \"$c\"}],
		\"parameters\": {\"max_iter\": 20}}\$\$)" >/dev/null
	q "SELECT soup.merge('della_$tag', 'della', ARRAY['$a', '$b', '$c'], ARRAY[1, 2, 0.5], '$base',
						 '{\"density\": 0.6, \"epsilon\": 0.1, \"seed\": 7}')" >/dev/null
done
check "karcher: the old models merge as fresh imports do" \
	"$(same_file "$(export_new karcher_old)" "$(export_new karcher_new)")" same
check "della: the old models merge as fresh imports do" \
	"$(same_file "$(export_new della_old)" "$(export_new della_new)")" same
q "SELECT soup.rechunk('peft-2300', 4096)" >/dev/null
check "soup.rechunk keeps an old model's bits" \
	"$(same_file "$(export_new peft-2300)" "$(exported peft-2300)")" same
check "soup.verify after the new functions" "$(q "SELECT count(*) FROM soup.models m, soup.verify(m.name) v")" 0
"$ROOT/client/pg_soup" export flux-sharded "$WORK/client-flux-sharded.safetensors" >/dev/null
check "the client exports an old sharded import as 0.1.0 did" \
	"$(same_file "$WORK/client-flux-sharded.safetensors" "$(exported flux-sharded)")" same

# ---- the job scheduled under 0.1.0 keeps the EMA under 0.2.0 ----
q "SELECT soup.import_safetensors('$GEN/expected_ema_update.safetensors', 'ema_reference')" >/dev/null
q "SELECT soup.import_safetensors('$GEN/g' || i || '.safetensors', 'live-' || i * 100, 'live', i * 100)
   FROM generate_series(2, 3) i" >/dev/null
# pg_cron starts the job at each minute; the deadline only ends a test whose
# scheduler never runs
got=
for _ in $(seq 1 360); do
	got=$(q "SELECT recipe -> 'steps' FROM soup.models WHERE name = 'live-ema'")
	[ "$got" = "[100, 200, 300]" ] && break
	sleep 1
done
check "the job folded in the checkpoints added after the update" "$got" "[100, 200, 300]"
check "the EMA equals the reference" \
	"$(q "SELECT md5(soup.safetensors('live-ema')) = md5(soup.safetensors('ema_reference'))")" t
check "the job's runs since the update succeeded" \
	"$(q "SELECT count(*) > 0 AND bool_and(status = 'succeeded') FROM cron.job_run_details
		  WHERE start_time >= '$update_time'")" t
q "SELECT cron.unschedule('soup-ema-live')" >/dev/null

check_summary upgrade
