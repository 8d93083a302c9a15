#!/bin/bash
# test/shard_test.sh - sharded merges over postgres_fdw (docs/scale-out.md).
#
# Three throwaway clusters on loopback: a coordinator with the catalog and
# two shards.  The coordinator's shard.chunks is partitioned by hash of
# (tensor, chunk) into one postgres_fdw foreign table per shard, whose server
# lists pg_soup in its extensions option.  The chunks of a base, three
# fine-tunes and their Fishers (f32, bf16, f16, f64; 16-element chunks) are
# distributed through it.  Each one-pass merge grouped by (tensor, chunk)
# (avg, weighted avg, task_arithmetic, fisher, ema, dare_linear, and the
# second passes of model_stock and ties) must show in EXPLAIN VERBOSE one
# Foreign Scan per shard that runs the pg_soup aggregate remotely, and must
# give the same bits, group for group, as soup.merge on one server.  Without
# the extensions option the aggregate must run on the coordinator.  One
# sharded merge is written as a model: soup.verify is clean and its export
# equals the single-server merge's export byte for byte.
# Prints "ok N - ..." / "not ok N - ..."; exits non-zero on a failure.
# SHARD_SHOW_PLANS=1 prints every plan.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/cluster.sh
WORK="$(mktemp -d /tmp/pg_soup_shard.XXXXXX)"
NODE_DIRS=()
stop_all() {
	for d in "${NODE_DIRS[@]}"; do
		CLUSTER_DIR="$d"
		cluster_stop
	done
	rm -rf "$WORK"
}
trap stop_all EXIT

# start_node NAME: a cluster on a free random port (retried if taken);
# sets NAME_HOST (its socket directory) and NAME_PORT
start_node() {
	local tries=0
	while :; do
		CLUSTER_DIR=
		CLUSTER_PORT=$((20000 + RANDOM % 20000))
		if cluster_start "shared_buffers = 64MB" "max_connections = 20" >"$WORK/start.log" 2>&1; then
			break
		fi
		cluster_stop
		tries=$((tries + 1))
		if [ "$tries" -ge 5 ]; then
			cat "$WORK/start.log"
			return 1
		fi
	done
	NODE_DIRS+=("$CLUSTER_DIR")
	printf -v "${1}_HOST" '%s' "$CLUSTER_DIR"
	printf -v "${1}_PORT" '%s' "$CLUSTER_PORT"
}

start_node COORD
start_node SHARD1
start_node SHARD2
unset PGHOST PGPORT
export PGUSER=postgres PGDATABASE=postgres

# psql on a node: on NODE [psql args...]; q SQL: one statement on the coordinator
on() {
	local host="${1}_HOST" port="${1}_PORT"
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -h "${!host}" -p "${!port}" "$@"
}
q() { on COORD -c "$1"; }

n=0
failed=0
report() {	# report DESCRIPTION OK [DIAGNOSTIC FILE]
	n=$((n + 1))
	if [ "$2" = 1 ]; then
		echo "ok $n - $1"
	else
		failed=$((failed + 1))
		echo "not ok $n - $1"
		if [ -n "${3:-}" ] && [ -f "$3" ]; then sed 's/^/#   /' "$3"; fi
	fi
}
check() {	# check DESCRIPTION GOT WANT
	if [ "$2" = "$3" ]; then
		report "$1" 1
	else
		report "$1" 0
		echo "#   got '$2', want '$3'"
	fi
}

# ---------------------------------------------------------------- setup
on SHARD1 -f test/shard/shard.sql
on SHARD2 -f test/shard/shard.sql
on COORD -v shard1_port="$SHARD1_PORT" -v shard2_port="$SHARD2_PORT" -f test/shard/coordinator.sql
on COORD -f test/shard/models.sql
model_id() { q "SELECT id FROM soup.models WHERE name = '$1'"; }
BASE=$(model_id base)
FT1=$(model_id ft-1) FT2=$(model_id ft-2) FT3=$(model_id ft-3)
FI1=$(model_id fisher-1) FI2=$(model_id fisher-2) FI3=$(model_id fisher-3)
FTS="$FT1, $FT2, $FT3"
CHUNKS_PER_MODEL=$(q "SELECT sum(n_chunks) FROM soup.tensors WHERE model_id = $FT1")

# distribute every chunk through the partitioned table
q "INSERT INTO shard.chunks SELECT model_id, tensor, chunk, data FROM soup.chunks" >/dev/null
q "ANALYZE shard.chunks"

check "each shard holds a part of the chunks, together all of them" \
	"$(on SHARD1 -c "SELECT count(*) > 0 FROM shard.chunks"),$(on SHARD2 -c "SELECT count(*) > 0 FROM shard.chunks"),$(q "SELECT ($(on SHARD1 -c "SELECT count(*) FROM shard.chunks") + $(on SHARD2 -c "SELECT count(*) FROM shard.chunks")) = count(*) FROM soup.chunks")" \
	"t,t,t"
check "every (tensor, chunk) lives on one shard, and every tensor spans both" \
	"$(q "SELECT (SELECT count(*) FROM (SELECT tensor, chunk FROM shard.chunks GROUP BY 1, 2
	                                    HAVING count(DISTINCT tableoid) > 1) x),
	             (SELECT bool_and(n = 2) FROM (SELECT tensor, count(DISTINCT tableoid) n
	                                          FROM shard.chunks GROUP BY tensor) y)")" \
	"0|t"
check "the shards hold the chunks bit for bit" \
	"$(q "SELECT count(*) FROM soup.chunks c FULL JOIN shard.chunks s USING (model_id, tensor, chunk)
	      WHERE c.data IS NULL OR s.data IS NULL OR soup.tensor_send(c.data) <> soup.tensor_send(s.data)")" 0

# the single-server merges on the coordinator's own soup.chunks
q "SELECT soup.merge('ref-avg', 'avg', ARRAY['ft-1', 'ft-2', 'ft-3'])" >/dev/null
q "SELECT soup.merge('ref-wavg', 'avg', ARRAY['ft-1', 'ft-2', 'ft-3'], ARRAY[1, 3, 2])" >/dev/null
q "SELECT soup.merge('ref-ta', 'task_arithmetic', ARRAY['ft-1', 'ft-2', 'ft-3'], ARRAY[1, 0.5, -0.25],
                     base => 'base', params => '{\"lambda\": 0.8}')" >/dev/null
q "SELECT soup.merge('ref-fisher', 'fisher', ARRAY['ft-1', 'ft-2', 'ft-3'], ARRAY[1, 2, 1],
                     params => '{\"fishers\": [\"fisher-1\", \"fisher-2\", \"fisher-3\"], \"floor\": 1e-6}')" >/dev/null
q "SELECT soup.merge('ref-ema', 'ema', ARRAY['ft-1', 'ft-2', 'ft-3'], params => '{\"decay\": 0.9}')" >/dev/null
q "SELECT soup.merge('ref-stock', 'model_stock', ARRAY['ft-1', 'ft-2', 'ft-3'], base => 'base')" >/dev/null
q "SELECT soup.merge('ref-dare', 'dare_linear', ARRAY['ft-1', 'ft-2', 'ft-3'], base => 'base',
                     params => '{\"density\": 0.5, \"seed\": 42}')" >/dev/null
q "SELECT soup.merge('ref-ties', 'ties', ARRAY['ft-1', 'ft-2', 'ft-3'], base => 'base',
                     params => '{\"density\": 0.3}')" >/dev/null

# ---------------------------------------------------------------- helpers
# plan NAME SQL: EXPLAIN VERBOSE of SQL into $WORK/NAME.plan
plan() { q "EXPLAIN (VERBOSE, COSTS OFF) $2" >"$WORK/$1.plan"; }
# pushed NAME AGG: one Foreign Scan per shard runs AGG remotely, no aggregate on the coordinator
pushed() {
	local f="$WORK/$1.plan"
	[ "$(grep -c 'Relations: Aggregate on' "$f")" = 2 ] &&
		[ "$(grep -cE "Remote SQL: SELECT .*soup\.$2\(.* GROUP BY " "$f")" = 2 ] &&
		[ "$(grep -cE 'Aggregate *$|Aggregate  \(' "$f")" = 0 ] && echo 1 || echo 0
}
# same RESULT_TABLE REF_MODEL: "groups|differing" of a sharded result against a model's chunks
same() {
	q "SELECT count(*), count(*) FILTER (WHERE s.data IS NULL OR r.data IS NULL
	                                     OR soup.tensor_send(s.data) <> soup.tensor_send(r.data))
	   FROM $1 s FULL JOIN (SELECT c.tensor, c.chunk, c.data FROM soup.chunks c
	                        JOIN soup.models m ON m.id = c.model_id WHERE m.name = '$2') r
	   USING (tensor, chunk)"
}
# merge NAME AGG REF SQL: the sharded merge SQL is pushed down, and its result
# (kept in table res_NAME) equals the single-server merge REF bit for bit
merge() {
	plan "$1" "CREATE TABLE res_$1 AS $4"
	report "$1: the $2 aggregate runs on the shards (EXPLAIN VERBOSE)" "$(pushed "$1" "$2")" "$WORK/$1.plan"
	q "CREATE TABLE res_$1 AS $4" >/dev/null
	check "$1: sharded result equals soup.merge on one server, bit for bit" \
		"$(same "res_$1" "$3")" "$CHUNKS_PER_MODEL|0"
}

# ---------------------------------------------------------------- negative
# without extensions 'pg_soup' postgres_fdw ships no pg_soup function: the
# shards send their rows and the coordinator aggregates
AVG_SQL="SELECT tensor, chunk, soup.avg_weights(data) AS data FROM shard.chunks
         WHERE model_id IN ($FTS) GROUP BY tensor, chunk"
q "ALTER SERVER shard1 OPTIONS (DROP extensions); ALTER SERVER shard2 OPTIONS (DROP extensions)"
plan noext "$AVG_SQL"
report "without extensions 'pg_soup' the aggregate runs on the coordinator" \
	"$([ "$(grep -c 'Remote SQL: .*soup\.' "$WORK/noext.plan")" = 0 ] &&
	   [ "$(grep -cE 'Aggregate  \(|Aggregate$' "$WORK/noext.plan")" -ge 1 ] &&
	   [ "$(grep -c 'Output: .*soup\.avg_weights(' "$WORK/noext.plan")" -ge 1 ] && echo 1 || echo 0)" \
	"$WORK/noext.plan"
q "CREATE TABLE res_noext AS $AVG_SQL" >/dev/null
check "without extensions 'pg_soup' the coordinator's merge gives the same bits" \
	"$(same res_noext ref-avg)" "$CHUNKS_PER_MODEL|0"
q "ALTER SERVER shard1 OPTIONS (ADD extensions 'pg_soup'); ALTER SERVER shard2 OPTIONS (ADD extensions 'pg_soup')"

# ---------------------------------------------------------------- merges
merge avg avg_weights ref-avg "$AVG_SQL"
check "avg: both shards run at once (Async Foreign Scan)" \
	"$(grep -c 'Async Foreign Scan' "$WORK/avg.plan")" 2
# the comparison can fail: the uniform soup is not the weighted one
check "the comparison tells two different merges apart" \
	"$(same res_avg ref-wavg | cut -d'|' -f2 | awk '{print ($1 > 0)}')" 1

merge wavg avg_weights ref-wavg \
	"SELECT tensor, chunk,
	        soup.avg_weights(data, (CASE model_id WHEN $FT1 THEN 1 WHEN $FT2 THEN 3 WHEN $FT3 THEN 2 END)::float8) AS data
	 FROM shard.chunks WHERE model_id IN ($FTS) GROUP BY tensor, chunk"

merge task task_arithmetic ref-ta \
	"SELECT c.tensor, c.chunk,
	        soup.task_arithmetic(c.data, b.data,
	                             (CASE c.model_id WHEN $FT1 THEN 1 WHEN $FT2 THEN 0.5 WHEN $FT3 THEN -0.25 END)::float8,
	                             0.8) AS data
	 FROM shard.chunks c
	 JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	 WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk"

merge fisher fisher_merge ref-fisher \
	"SELECT c.tensor, c.chunk,
	        soup.fisher_merge(c.data, f.data,
	                          (CASE c.model_id WHEN $FT1 THEN 1 WHEN $FT2 THEN 2 WHEN $FT3 THEN 1 END)::float8,
	                          1e-6) AS data
	 FROM shard.chunks c
	 JOIN shard.chunks f ON f.tensor = c.tensor AND f.chunk = c.chunk
	  AND f.model_id = CASE c.model_id WHEN $FT1 THEN $FI1 WHEN $FT2 THEN $FI2 WHEN $FT3 THEN $FI3 END
	 WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk"

merge ema ema ref-ema \
	"SELECT tensor, chunk, soup.ema(data, 0.9 ORDER BY model_id) AS data
	 FROM shard.chunks WHERE model_id IN ($FTS) GROUP BY tensor, chunk"

# dare_linear without "rescale" is one pass: soup.dare draws per element
# from (seed, model number, tensor, position), all shippable constants/columns
merge dare delta_sum ref-dare \
	"SELECT c.tensor, c.chunk,
	        soup.delta_sum(soup.dare(c.data, b.data, 0.5, 42,
	                                 (CASE c.model_id WHEN $FT1 THEN 1 WHEN $FT2 THEN 2 WHEN $FT3 THEN 3 END)::bigint,
	                                 c.tensor, c.chunk * 16::bigint),
	                       b.data, 1.0, 1.0) AS data
	 FROM shard.chunks c
	 JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	 WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk"

# ---------------------------------------------------------------- model_stock
# Pass 1: the Gram matrix of the task vectors per chunk (on the shards),
# summed exactly per tensor on the coordinator (a tensor spans both shards).
# Pass 2: task_arithmetic with each tensor's lambda as a constant.
PASS1_SQL="SELECT tensor, soup.model_stock_ratio(soup.dd_sum(g), 3) / 3 AS lambda
	FROM (SELECT c.tensor, c.chunk,
	             soup.gram(array_agg(c.data ORDER BY c.model_id), (array_agg(b.data))[1]) AS g
	      FROM shard.chunks c
	      JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	      WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk) per_chunk
	GROUP BY tensor"
member=$(q "SELECT count(*) FROM pg_depend WHERE classid = 'pg_type'::regclass
            AND objid = 'soup.tensor[]'::regtype AND deptype = 'e'")
if [ "$member" = 0 ]; then
	# postgres_fdw ships an expression only if its type is built in or
	# belongs to a listed extension; the array type soup.tensor[] is not an
	# extension member, so array_agg(data) stays on the coordinator
	plan stock1_nomember "$PASS1_SQL"
	report "model_stock pass 1: soup.tensor[] is no extension member, so only the join is shipped" \
		"$([ "$(grep -c 'Relations: Aggregate on' "$WORK/stock1_nomember.plan")" = 0 ] &&
		   [ "$(grep -c 'Relations: (shard.chunks_' "$WORK/stock1_nomember.plan")" = 2 ] && echo 1 || echo 0)" \
		"$WORK/stock1_nomember.plan"
	q "ALTER EXTENSION pg_soup ADD TYPE soup.tensor[]"
else
	echo "# soup.tensor[] is already a member of pg_soup"
fi
plan stock1 "$PASS1_SQL"
report "model_stock pass 1: soup.gram per chunk runs on the shards, dd_sum per tensor on the coordinator" \
	"$([ "$(grep -c 'Relations: Aggregate on' "$WORK/stock1.plan")" = 2 ] &&
	   [ "$(grep -cE 'Remote SQL: SELECT .*soup\.gram\(array_agg\(.* GROUP BY ' "$WORK/stock1.plan")" = 2 ] &&
	   [ "$(grep -cE 'Output: .*soup\.dd_sum\(' "$WORK/stock1.plan")" -ge 1 ] && echo 1 || echo 0)" \
	"$WORK/stock1.plan"
LAMBDAS="SELECT string_agg(format('WHEN %L THEN %s::float8', tensor, lambda), ' ' ORDER BY tensor)"
lambdas=$(q "$LAMBDAS FROM ($PASS1_SQL) r")
check "model_stock pass 1: the same lambdas as on one server" "$lambdas" \
	"$(q "$LAMBDAS FROM (${PASS1_SQL//shard.chunks/soup.chunks}) r")"
merge stock task_arithmetic ref-stock \
	"SELECT c.tensor, c.chunk,
	        soup.task_arithmetic(c.data, b.data, 1.0, CASE c.tensor $lambdas END) AS data
	 FROM shard.chunks c
	 JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	 WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk"

# ---------------------------------------------------------------- ties
# Pass 1: each model's magnitude threshold over a whole tensor.  GROUP BY
# (model, tensor) does not hold the partition key and the aggregate has no
# combine function, so the shards only run the join and the coordinator
# aggregates.  Pass 2: trim, elect, merge with the thresholds as constants.
TIES1_SQL="SELECT c.model_id, c.tensor, soup.magnitude_threshold(c.data, b.data, 0.3) AS threshold
	FROM shard.chunks c
	JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	WHERE c.model_id IN ($FTS) GROUP BY c.model_id, c.tensor"
plan ties1 "$TIES1_SQL"
report "ties pass 1: the shards run the join, the coordinator the per-tensor threshold" \
	"$([ "$(grep -c 'Relations: Aggregate on' "$WORK/ties1.plan")" = 0 ] &&
	   [ "$(grep -c 'Relations: (shard.chunks_' "$WORK/ties1.plan")" = 2 ] &&
	   [ "$(grep -cE 'Output: .*soup\.magnitude_threshold\(' "$WORK/ties1.plan")" -ge 1 ] && echo 1 || echo 0)" \
	"$WORK/ties1.plan"
thresholds=$(q "SELECT string_agg(format('WHEN c.model_id = %s AND c.tensor = %L THEN %s::float8',
                                          model_id, tensor, threshold), ' ' ORDER BY model_id, tensor)
                FROM ($TIES1_SQL) t")
merge ties ties_merge ref-ties \
	"SELECT c.tensor, c.chunk,
	        soup.ties_merge(soup.trim(c.data, b.data, CASE $thresholds END), b.data, 1.0, 1.0) AS data
	 FROM shard.chunks c
	 JOIN shard.chunks b ON b.model_id = $BASE AND b.tensor = c.tensor AND b.chunk = c.chunk
	 WHERE c.model_id IN ($FTS) GROUP BY c.tensor, c.chunk"

# ---------------------------------------------------------------- a model
# the sharded soup written as a model in one transaction, as soup.merge does
on COORD >"$WORK/insert.plan" <<EOF
BEGIN;
INSERT INTO soup.models (name, kind, metadata, recipe)
SELECT 'sharded-avg', 'merge', metadata,
       jsonb_build_object('method', 'avg', 'models', '["ft-1", "ft-2", "ft-3"]'::jsonb,
                          'model_ids', '[$FTS]'::jsonb, 'sharded', true)
FROM soup.models WHERE id = $FT1
RETURNING id AS new_id \gset
INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
SELECT :new_id, name, ordinal, dtype, shape, numel, chunk_elems FROM soup.tensors WHERE model_id = $FT1;
EXPLAIN (VERBOSE, COSTS OFF)
INSERT INTO soup.chunks (model_id, tensor, chunk, data)
SELECT :new_id, tensor, chunk, soup.avg_weights(data) FROM shard.chunks
WHERE model_id IN ($FTS) GROUP BY tensor, chunk;
INSERT INTO soup.chunks (model_id, tensor, chunk, data)
SELECT :new_id, tensor, chunk, soup.avg_weights(data) FROM shard.chunks
WHERE model_id IN ($FTS) GROUP BY tensor, chunk;
COMMIT;
EOF
report "sharded-avg: the INSERT into soup.chunks runs the aggregate on the shards" \
	"$(pushed insert avg_weights)" "$WORK/insert.plan"
check "sharded-avg: soup.verify finds no problem" \
	"$(q "SELECT count(*) FROM soup.verify('sharded-avg')"),$(q "SELECT count(*) FROM soup.chunks c JOIN soup.models m ON m.id = c.model_id WHERE m.name = 'sharded-avg'")" \
	"0,$CHUNKS_PER_MODEL"
q "SELECT soup.export_safetensors('sharded-avg', '$COORD_HOST/sharded-avg.safetensors'),
          soup.export_safetensors('ref-avg', '$COORD_HOST/ref-avg.safetensors')" >/dev/null
report "sharded-avg: its export equals the single-server merge's export byte for byte" \
	"$(cmp "$COORD_HOST/sharded-avg.safetensors" "$COORD_HOST/ref-avg.safetensors" >/dev/null && echo 1 || echo 0)"

if [ -n "${SHARD_SHOW_PLANS:-}" ]; then
	for f in "$WORK"/*.plan; do echo "# ---- $(basename "$f")"; sed 's/^/# /' "$f"; done
fi
echo "shard: $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
