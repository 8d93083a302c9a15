-- Determinism: every merge gives the same bits for any soup.threads, any
-- chunk length and any plan (serial, or partial aggregates in parallel
-- workers combined by the leader).  The models are large enough (450k
-- elements) that each kernel splits its chunks across OpenMP threads.
SET search_path = public, soup;
\set gen '/tmp/pg_soup_regress/gen'

-- the inputs, stored with three chunk lengths: not a multiple of the kernels'
-- 2048-element block, 64K, and the default 256K (one chunk per tensor here)
DO $$
DECLARE
	c int;
	f text;
BEGIN
	FOREACH c IN ARRAY ARRAY[4099, 65536, 262144] LOOP
		PERFORM set_config('soup.chunk_elems', c::text, true);
		FOREACH f IN ARRAY ARRAY['det1', 'det2', 'det3', 'det4', 'det_base',
								 'det_f1', 'det_f2', 'det_f3', 'det_f4'] LOOP
			PERFORM soup.import_safetensors('/tmp/pg_soup_regress/gen/' || f || '.safetensors',
											f || '_' || c);
		END LOOP;
	END LOOP;
END $$;
SELECT chunk_elems, count(*) AS tensors, sum(n_chunks) AS chunks
FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id WHERE m.name LIKE 'det1_%'
GROUP BY chunk_elems ORDER BY chunk_elems;

-- every driver method on models m, base b and Fishers f: each result's md5
CREATE FUNCTION pg_temp.merge_each(m text[], b text, f text[])
RETURNS TABLE (method text, result_md5 text) LANGUAGE plpgsql AS $$
DECLARE
	fishers jsonb := jsonb_build_object('fishers', f);
	r record;
BEGIN
	FOR r IN SELECT * FROM (VALUES
			('avg', NULL, '{}'::jsonb, false, 4),
			('avg_weighted', NULL, '{}', true, 4),
			('fisher', NULL, fishers || '{"normalize": true}', true, 4),
			('task_arithmetic', b, '{"lambda": 0.7}', true, 4),
			('ema', NULL, '{"decay": 0.9}', false, 4),
			('ties', b, '{"density": 0.5}', true, 4),
			('dare_linear', b, '{"density": 0.7, "seed": 42}', true, 4),
			('dare_ties', b, '{"density": 0.6, "seed": -7, "rescale": "l1"}', false, 4),
			('model_stock', b, '{}', false, 3),
			('slerp', NULL, '{"t": 0.3}', false, 2),
			('breadcrumbs', b, '{"density": 0.6, "gamma": 0.05}', true, 4),
			('breadcrumbs_ties', b, '{"density": 0.5, "gamma": 0.02}', false, 3),
			('della', b, '{"density": 0.5, "seed": 3}', true, 4),
			('della_linear', b, '{"density": 0.6, "epsilon": 0.1, "seed": -2, "rescale": false}', true, 3),
			('nuslerp', b, '{}', true, 2),
			('multislerp', NULL, '{}', true, 3),
			('karcher', NULL, '{}', false, 3)) v(method, base, params, weighted, k)
	LOOP
		PERFORM soup.merge('det_out', split_part(r.method, '_weighted', 1), m[1:r.k],
						   CASE WHEN r.weighted THEN (ARRAY[1, 2, 0.5, 3]::float8[])[1:r.k] END,
						   r.base, r.params);
		method := r.method;
		result_md5 := md5(soup.safetensors('det_out'));
		RETURN NEXT;
		DELETE FROM soup.models WHERE name = 'det_out';
	END LOOP;
END $$;

-- every driver method, for one chunk length and thread count
CREATE TEMP TABLE results (method text, chunk_elems int, threads int, md5 text);
CREATE FUNCTION pg_temp.merge_all(c int, t int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('soup.threads', t::text, true);
	INSERT INTO results
	SELECT e.method, c, t, e.result_md5
	FROM pg_temp.merge_each(ARRAY['det1_' || c, 'det2_' || c, 'det3_' || c, 'det4_' || c],
							'det_base_' || c,
							ARRAY['det_f1_' || c, 'det_f2_' || c, 'det_f3_' || c, 'det_f4_' || c]) e;
END $$;
SELECT count(pg_temp.merge_all(c, t))
FROM unnest(ARRAY[4099, 65536, 262144]) c, unnest(ARRAY[1, 2, 5]) t;

-- one result per method across 3 chunk lengths x 3 thread counts
SELECT method, count(*) AS configurations, count(DISTINCT md5) AS distinct_results
FROM results GROUP BY method ORDER BY method;
-- every method merges models stored in different chunk layouts (each model,
-- the base and the Fishers in another one) to the bits of one layout
SELECT e.method, e.result_md5 = x.md5 AS same_bits
FROM pg_temp.merge_each(ARRAY['det1_4099', 'det2_65536', 'det3_262144', 'det4_65536'],
						'det_base_262144',
						ARRAY['det_f1_65536', 'det_f2_4099', 'det_f3_262144', 'det_f4_4099']) e
JOIN results x ON x.method = e.method AND x.chunk_elems = 4099 AND x.threads = 1
ORDER BY e.method;
-- no scratch copy outlives its merge
SELECT count(*) AS scratch_models FROM soup.models WHERE name LIKE 'soup.merge %';

-- and the uniform average is the exact one (Python: correctly rounded sum / 4)
SELECT bool_and(md5 = md5(pg_read_binary_file(:'gen' || '/expected_det_avg.safetensors'))) AS avg_exact
FROM results WHERE method = 'avg';

-- aggregates by hand under a forced parallel plan: workers build partial
-- states over parts of each group and the leader combines them
CREATE FUNCTION pg_temp.plan_has(q text, node text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		IF line LIKE '%' || node || '%' THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END $$;
CREATE FUNCTION pg_temp.digest(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d text;
BEGIN
	EXECUTE 'SELECT md5(string_agg(tensor || '':'' || chunk || '':'' || md5(soup.bytes(r)), '','' '
			'ORDER BY tensor, chunk)) FROM (' || q || ') s' INTO d;
	RETURN d;
END $$;
-- the inputs in one plain table (parallel workers cannot read temporary
-- tables), rows interleaved so every worker sees every group
CREATE TABLE det_rows AS
SELECT w.model, w.tensor, w.chunk, w.data, m.k, f.data AS fisher, b.data AS base
FROM soup.weights w
JOIN unnest(ARRAY['det1_4099', 'det2_4099', 'det3_4099', 'det4_4099']) WITH ORDINALITY m(name, k)
  ON m.name = w.model
JOIN soup.weights f ON f.model = 'det_f' || m.k || '_4099' AND f.tensor = w.tensor AND f.chunk = w.chunk
JOIN soup.weights b ON b.model = 'det_base_4099' AND b.tensor = w.tensor AND b.chunk = w.chunk
ORDER BY m.k, w.tensor, w.chunk;
ANALYZE det_rows;
CREATE TEMP TABLE queries (name text, q text);
INSERT INTO queries VALUES
	('avg_weights', 'SELECT tensor, chunk, soup.avg_weights(data, k) AS r FROM det_rows GROUP BY tensor, chunk'),
	('fisher_merge', 'SELECT tensor, chunk, soup.fisher_merge(data, fisher, k) AS r FROM det_rows GROUP BY tensor, chunk'),
	('task_arithmetic', 'SELECT tensor, chunk, soup.task_arithmetic(data, base, k, 0.5) AS r FROM det_rows GROUP BY tensor, chunk'),
	('ties_merge', 'SELECT tensor, chunk, soup.ties_merge(soup.trim(data, base, 0.01), base, k, 1) AS r FROM det_rows GROUP BY tensor, chunk'),
	('delta_sum', 'SELECT tensor, chunk, soup.delta_sum(soup.trim(data, base, 0.01), base, k, 1) AS r FROM det_rows GROUP BY tensor, chunk');
CREATE TEMP TABLE serial AS SELECT name, pg_temp.digest(q) AS d FROM queries;
SET soup.threads = 3;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_hashagg = off;
SELECT q.name, pg_temp.plan_has(q.q, 'Partial GroupAggregate') AS partial_plan,
	   pg_temp.digest(q.q) = s.d AS same_bits_as_serial
FROM queries q JOIN serial s USING (name) ORDER BY q.name;
RESET ALL;

DROP TABLE det_rows;
DELETE FROM soup.models WHERE name LIKE 'det%';
