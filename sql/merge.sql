-- soup.merge: the driver writes a new model in one transaction.
-- Generated checkpoints and their expected merges come from test/gen_test_data.py
-- (written by numpy, accumulated in float64, rounded to nearest even).
SET search_path = public, soup;
\set gen '/tmp/pg_soup_regress/gen'

SELECT soup.import_safetensors(:'gen' || '/g' || i || '.safetensors', 'g' || i, 'gen-run', i * 100) > 0 AS ok
FROM generate_series(1, 3) i;
SELECT soup.import_safetensors(:'gen' || '/expected_avg.safetensors', 'expected_avg') > 0 AS ok;
SELECT soup.import_safetensors(:'gen' || '/expected_wavg.safetensors', 'expected_wavg') > 0 AS ok;

-- a merge by hand over the weights view equals numpy's, bit for bit, for f32, f16, bf16 and f64
SELECT m.tensor, m.avg OPERATOR(soup.=) e.data AS equals_numpy
FROM (SELECT tensor, chunk, soup.avg_weights(data) AS avg FROM soup.weights
	  WHERE model IN ('g1', 'g2', 'g3') AND tensor NOT IN ('step', 'mask')
	  GROUP BY tensor, chunk) m
JOIN soup.weights e ON e.model = 'expected_avg' AND e.tensor = m.tensor AND e.chunk = m.chunk
ORDER BY m.tensor;

-- the driver: uniform and weighted
SELECT soup.merge('soup_avg', 'avg', ARRAY['g1', 'g2', 'g3']) > 0 AS ok;
SELECT soup.merge('soup_wavg', 'avg', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5]) > 0 AS ok;
SELECT a.model, count(*) AS chunks, bool_and(a.data OPERATOR(soup.=) e.data) AS equals_numpy
FROM soup.weights a
JOIN soup.weights e ON e.model = 'expected_' || substr(a.model, 6) AND e.tensor = a.tensor AND e.chunk = a.chunk
WHERE a.model IN ('soup_avg', 'soup_wavg') GROUP BY a.model ORDER BY a.model;
-- the exported merge is numpy's file, byte for byte (same header, same data)
SELECT md5(soup.safetensors('soup_avg')) = md5(pg_read_binary_file(:'gen' || '/expected_avg.safetensors')) AS avg_file,
	   md5(soup.safetensors('soup_wavg')) = md5(pg_read_binary_file(:'gen' || '/expected_wavg.safetensors')) AS wavg_file;

-- the recipe, and the catalog of the new model
SELECT name, kind, recipe - 'model_ids' AS recipe, metadata FROM soup.models WHERE kind = 'merge' ORDER BY name;
SELECT t.name, t.dtype, t.shape FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
WHERE m.name = 'soup_avg' ORDER BY ordinal;

-- chunking never changes the result: g1..g3 stored in 7-element chunks
SET soup.chunk_elems = 7;
SELECT soup.import_safetensors(:'gen' || '/g' || i || '.safetensors', 'c' || i) > 0 AS ok
FROM generate_series(1, 3) i;
RESET soup.chunk_elems;
SELECT soup.merge('chunked_avg', 'avg', ARRAY['c1', 'c2', 'c3'], ARRAY[1, 2, 0.5]) > 0 AS ok;
SELECT md5(soup.safetensors('chunked_avg')) = md5(soup.safetensors('soup_wavg')) AS same_bytes,
	   (SELECT sum(n_chunks) FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
		WHERE m.name = 'chunked_avg') AS chunks;

-- replace
SELECT soup.merge('soup_avg', 'avg', ARRAY['g1', 'g2'], params => '{"replace": true}') > 0 AS ok;
SELECT recipe -> 'models' AS models FROM soup.models WHERE name = 'soup_avg';

-- the same real fine-tuning run at two steps (PEFT FineGates on roberta-base):
-- the average checked element by element against float8 arithmetic in SQL
SELECT soup.import_safetensors('/tmp/pg_soup_regress/fixtures/peft-finegates-mrpc/checkpoint-' || s
	|| '/adapter_model.safetensors', 'peft-' || s, 'mrpc', s) > 0 AS ok
FROM (VALUES (230), (2300)) v(s);
SELECT soup.merge('peft-avg', 'avg', ARRAY['peft-230', 'peft-2300'], ARRAY[1, 3]) > 0 AS ok;
SELECT count(*) AS elements,
	   count(*) FILTER (WHERE mv = ((av::float8 + 3 * bv::float8) / 4)::float4) AS equal
FROM soup.weights m
JOIN soup.weights a USING (tensor, chunk)
JOIN soup.weights b USING (tensor, chunk),
	 LATERAL unnest(m.data::float4[], a.data::float4[], b.data::float4[]) u(mv, av, bv)
WHERE m.model = 'peft-avg' AND a.model = 'peft-230' AND b.model = 'peft-2300';

-- the view can be read through the indexes, one model at a time (this small
-- catalog is cheaper to scan whole, so seq scans are switched off to show it)
ANALYZE soup.models, soup.tensors, soup.chunks;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT tensor, chunk, soup.avg_weights(data)
FROM soup.weights WHERE model IN ('g1', 'g2') GROUP BY tensor, chunk;
RESET enable_seqscan;

-- errors: each names the offender, and leaves nothing behind
SELECT soup.import_safetensors(:'gen' || '/g_' || k || '.safetensors', 'bad_' || k) > 0 AS ok
FROM unnest(ARRAY['shape', 'dtype', 'fewer', 'step']) k;
-- models stored in different chunk layouts merge as they are, to the same
-- bits (the one in 7-element chunks is copied into g1's layout first)
SELECT soup.merge('mixed_avg', 'avg', ARRAY['g1', 'c2', 'g3'], ARRAY[1, 2, 0.5]) > 0 AS ok;
SELECT md5(soup.safetensors('mixed_avg')) = md5(pg_read_binary_file(:'gen' || '/expected_wavg.safetensors'))
	AS mixed_layouts_exact,
	   (SELECT DISTINCT chunk_elems FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
		WHERE m.name = 'mixed_avg') AS written_in_the_first_models_layout;
DELETE FROM soup.models WHERE name = 'mixed_avg';

SELECT count(*) AS models_before FROM soup.models \gset
\set VERBOSITY terse
SELECT soup.merge('x', 'avg', ARRAY['g1', 'bad_shape']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'bad_dtype']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'bad_fewer']);
SELECT soup.merge('x', 'avg', ARRAY['bad_fewer', 'g1']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'bad_step']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'nope']);
SELECT soup.merge('soup_avg', 'avg', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g1']);
SELECT soup.merge('g1', 'avg', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'avg', ARRAY[]::text[]);
SELECT soup.merge('x', 'avg', ARRAY['g1', NULL]);
SELECT soup.merge('x', 'avg', NULL);
SELECT soup.merge('x', 'mean', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], ARRAY[1]);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], ARRAY[1, -1]);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], ARRAY[1, 'NaN']::float8[]);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], ARRAY[1, NULL]);
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], base => 'g3');
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], params => '{"replcae": true}');
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], params => '{"replace": "yes"}');
SELECT soup.merge('x', 'avg', ARRAY['g1', 'g2'], params => '[]');
\set VERBOSITY default
SELECT count(*) = :models_before AS nothing_written FROM soup.models;

-- hostile model names are data, never SQL
SELECT soup.merge('x''); DROP TABLE soup.chunks; --', 'avg', ARRAY['g1', 'g2']) > 0 AS ok;
SELECT name FROM soup.models WHERE name LIKE 'x%';
SELECT count(*) > 0 AS chunks_still_there FROM soup.chunks;
