-- Every merge method of soup.merge and its aggregate, against references
-- computed independently by test/gen_test_data.py (numpy and exact rationals,
-- following the arithmetic documented in docs/merges.md), bit for bit.
SET search_path = public, soup;
\set gen '/tmp/pg_soup_regress/gen'
DELETE FROM soup.models;   -- start from an empty catalog

SELECT count(soup.import_safetensors(:'gen' || '/' || f || '.safetensors', f, r, s)) AS imported
FROM (VALUES ('g1', 'gen-run', 100), ('g2', 'gen-run', 200), ('g3', 'gen-run', 300),
			 ('fisher1', NULL, NULL), ('fisher2', NULL, NULL), ('fisher3', NULL, NULL),
			 ('base', NULL, NULL), ('expected_avg', NULL, NULL), ('expected_fisher', NULL, NULL),
			 ('expected_fisher_norm', NULL, NULL), ('expected_task', NULL, NULL),
			 ('expected_ema', NULL, NULL), ('expected_ema_warmup', NULL, NULL),
			 ('expected_slerp', NULL, NULL), ('expected_model_stock', NULL, NULL),
			 ('expected_ema_update', NULL, NULL), ('expected_ties', NULL, NULL),
			 ('expected_dare_linear', NULL, NULL), ('expected_dare_ties', NULL, NULL)) v(f, r, s);

-- the same models in 7-element chunks, to show chunking never changes a result
SET soup.chunk_elems = 7;
SELECT count(soup.import_safetensors(:'gen' || '/' || f || '.safetensors', 'c7_' || f, r, s)) AS imported
FROM (VALUES ('g1', 'c7-run', 100), ('g2', 'c7-run', 200), ('g3', 'c7-run', 300),
			 ('fisher1', NULL, NULL), ('fisher2', NULL, NULL), ('fisher3', NULL, NULL),
			 ('base', NULL, NULL)) v(f, r, s);
RESET soup.chunk_elems;

-- A merged model equals its expected file when every chunk is identical.
CREATE FUNCTION pg_temp.same_model(a text, b text) RETURNS boolean LANGUAGE sql AS $$
	SELECT md5(soup.safetensors(a)) = md5(soup.safetensors(b))
$$;

-- fisher: sum(w F' x) / sum(w F'), F' = max(F, 1e-6)
SELECT soup.merge('m_fisher', 'fisher', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5],
				  params => '{"fishers": ["fisher1", "fisher2", "fisher3"]}') > 0 AS ok;
SELECT pg_temp.same_model('m_fisher', 'expected_fisher') AS fisher_exact;
-- normalize: each weight divided by the L2 norm of its model's whole Fisher; another floor
SELECT soup.merge('m_fisher_norm', 'fisher', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5],
				  params => '{"fishers": ["fisher1", "fisher2", "fisher3"], "normalize": true, "floor": 1e-4}') > 0 AS ok;
SELECT pg_temp.same_model('m_fisher_norm', 'expected_fisher_norm') AS fisher_norm_exact;
SELECT soup.merge('c7_fisher', 'fisher', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], ARRAY[1, 2, 0.5],
				  params => '{"fishers": ["c7_fisher1", "c7_fisher2", "c7_fisher3"]}') > 0 AS ok;
SELECT pg_temp.same_model('c7_fisher', 'expected_fisher') AS fisher_chunk_invariant;
-- the aggregate by hand
SELECT bool_and(m.merged OPERATOR(soup.=) e.data) AS fisher_by_hand
FROM (SELECT c.tensor, c.chunk, soup.fisher_merge(c.data, f.data, w) AS merged
	  FROM soup.weights c
	  JOIN (VALUES ('g1', 'fisher1', 1.0), ('g2', 'fisher2', 2.0), ('g3', 'fisher3', 0.5)) v(m, fm, w)
		ON c.model = v.m
	  JOIN soup.weights f ON f.model = v.fm AND f.tensor = c.tensor AND f.chunk = c.chunk
	  WHERE c.tensor NOT IN ('step', 'mask')
	  GROUP BY c.tensor, c.chunk) m
JOIN soup.weights e ON e.model = 'expected_fisher' AND e.tensor = m.tensor AND e.chunk = m.chunk;

-- task arithmetic: base + lambda * sum(w (x - base))
SELECT soup.merge('m_task', 'task_arithmetic', ARRAY['g1', 'g2', 'g3'], ARRAY[0.5, 1, -0.3],
				  base => 'base', params => '{"lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('m_task', 'expected_task') AS task_exact;
SELECT soup.merge('c7_task', 'task_arithmetic', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], ARRAY[0.5, 1, -0.3],
				  base => 'c7_base', params => '{"lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('c7_task', 'expected_task') AS task_chunk_invariant;
SELECT name, base_model, recipe - 'model_ids' AS recipe FROM soup.models WHERE name = 'm_task';

-- ema: in the order given, the first copied
SELECT soup.merge('m_ema', 'ema', ARRAY['g1', 'g2', 'g3'], params => '{"decay": 0.9}') > 0 AS ok;
SELECT pg_temp.same_model('m_ema', 'expected_ema') AS ema_exact;
SELECT soup.merge('c7_ema', 'ema', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], params => '{"decay": 0.9}') > 0 AS ok;
SELECT pg_temp.same_model('c7_ema', 'expected_ema') AS ema_chunk_invariant;
-- the order matters: reversed is another model
SELECT soup.merge('m_ema_rev', 'ema', ARRAY['g3', 'g2', 'g1'], params => '{"decay": 0.9}') > 0 AS ok;
SELECT pg_temp.same_model('m_ema_rev', 'expected_ema') AS reversed_is_same;
-- the aggregate with timm-style warmup, ordered by step
SELECT bool_and(m.merged OPERATOR(soup.=) e.data) AS ema_warmup_by_hand
FROM (SELECT w.tensor, w.chunk, soup.ema(w.data, 0.999, m.step, 50, 0.75 ORDER BY m.step) AS merged
	  FROM soup.weights w JOIN soup.models m ON m.name = w.model
	  WHERE m.run = 'gen-run' AND w.tensor NOT IN ('step', 'mask')
	  GROUP BY w.tensor, w.chunk) m
JOIN soup.weights e ON e.model = 'expected_ema_warmup' AND e.tensor = m.tensor AND e.chunk = m.chunk;
-- the EMA scaling rule: batch x 4 => decay^4
SELECT soup.ema_decay(0.999, 4) = 0.999::float8 ^ 4 AS scaling_rule, soup.ema_decay(0.9, 0.5);

-- lawa: the average of the latest k checkpoints of a run
SELECT soup.merge('m_lawa', 'lawa', NULL, params => '{"run": "gen-run", "k": 2}') > 0 AS ok;
SELECT recipe -> 'models' AS lawa_models FROM soup.models WHERE name = 'm_lawa';
SELECT soup.merge('m_avg23', 'avg', ARRAY['g2', 'g3']) > 0 AS ok;
SELECT pg_temp.same_model('m_lawa', 'm_avg23') AS lawa_is_avg_of_latest;
SELECT soup.merge('m_lawa3', 'lawa', NULL, params => '{"run": "gen-run", "k": 3}') > 0 AS ok;
SELECT pg_temp.same_model('m_lawa3', 'expected_avg') AS lawa3_exact;

-- slerp: spherical interpolation of two whole tensors (angles summed exactly over chunks)
SELECT soup.merge('m_slerp', 'slerp', ARRAY['g1', 'g2'], params => '{"t": 0.3}') > 0 AS ok;
SELECT pg_temp.same_model('m_slerp', 'expected_slerp') AS slerp_exact;
SELECT soup.merge('c7_slerp', 'slerp', ARRAY['c7_g1', 'c7_g2'], params => '{"t": 0.3}') > 0 AS ok;
SELECT pg_temp.same_model('c7_slerp', 'expected_slerp') AS slerp_chunk_invariant;
-- t = 0 and t = 1 give the endpoints; parallel tensors fall back to lerp
SELECT soup.merge('m_slerp0', 'slerp', ARRAY['g1', 'g2'], params => '{"t": 0}') > 0 AS ok;
SELECT pg_temp.same_model('m_slerp0', 'g1') AS slerp_t0_is_first;
SELECT soup.slerp_coefficients(1, 0, 1, 0.5) AS orthogonal, soup.slerp_coefficients(1, 1, 1, 0.25) AS parallel,
	   soup.slerp_coefficients(0, 0, 1, 0.25) AS zero_norm;

-- model_stock: t = n cos / (1 + (n - 1) cos) per tensor, then t * mean + (1 - t) * base
SELECT soup.merge('m_stock', 'model_stock', ARRAY['g1', 'g2', 'g3'], base => 'base') > 0 AS ok;
SELECT pg_temp.same_model('m_stock', 'expected_model_stock') AS model_stock_exact;
SELECT soup.merge('c7_stock', 'model_stock', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], base => 'c7_base') > 0 AS ok;
SELECT pg_temp.same_model('c7_stock', 'expected_model_stock') AS model_stock_chunk_invariant;
-- the documented two-pass SQL over soup.weights gives the driver's result
SELECT bool_and(h.merged OPERATOR(soup.=) e.data) AS model_stock_by_hand
FROM (WITH per_chunk AS (
		  SELECT w.tensor, w.chunk,
				 soup.gram(array_agg(w.data ORDER BY w.model),
						   (SELECT b.data FROM soup.weights b WHERE b.model = 'base'
							  AND b.tensor = w.tensor AND b.chunk = w.chunk)) AS g
		  FROM soup.weights w
		  WHERE w.model IN ('g1', 'g2', 'g3') AND w.tensor NOT IN ('step', 'mask')
		  GROUP BY w.tensor, w.chunk),
	  ratio AS (
		  SELECT tensor, soup.model_stock_ratio(soup.dd_sum(g), 3) / 3 AS lambda
		  FROM per_chunk GROUP BY tensor)
	  SELECT w.tensor, w.chunk, soup.task_arithmetic(w.data, b.data, 1.0, r.lambda) AS merged
	  FROM soup.weights w
	  JOIN soup.weights b ON b.model = 'base' AND b.tensor = w.tensor AND b.chunk = w.chunk
	  JOIN ratio r ON r.tensor = w.tensor
	  WHERE w.model IN ('g1', 'g2', 'g3')
	  GROUP BY w.tensor, w.chunk) h
JOIN soup.weights e ON e.model = 'expected_model_stock' AND e.tensor = h.tensor AND e.chunk = h.chunk;
-- the ratio by hand: orthogonal task vectors give t = 0, identical ones t = 1;
-- negative mean cosines give t < 0 as in the reference, or 0 with clamp
SELECT soup.model_stock_ratio(ARRAY[1, 0, 0, 1], 2) AS orthogonal,
	   soup.model_stock_ratio(ARRAY[4, 4, 4, 4], 2) AS identical,
	   soup.model_stock_ratio(ARRAY[1, -0.5, -0.5, 1], 2) AS opposed,
	   soup.model_stock_ratio(ARRAY[1, -0.5, -0.5, 1], 2, true) AS opposed_clamped,
	   soup.model_stock_ratio(ARRAY[0, 0, 0, 1], 2) AS zero_vector;
-- the per-tensor statistics by hand: Gram matrices of chunks, summed exactly,
-- are the same for 7-element chunks and for whole tensors
SELECT t.tensor,
	   (SELECT soup.dd_sum(soup.gram(ARRAY[a.data, b.data], c.data))
		FROM soup.weights a JOIN soup.weights b USING (tensor, chunk) JOIN soup.weights c USING (tensor, chunk)
		WHERE a.model = 'g1' AND b.model = 'g2' AND c.model = 'base' AND a.tensor = t.tensor)
	 = (SELECT soup.dd_sum(soup.gram(ARRAY[a.data, b.data], c.data))
		FROM soup.weights a JOIN soup.weights b USING (tensor, chunk) JOIN soup.weights c USING (tensor, chunk)
		WHERE a.model = 'c7_g1' AND b.model = 'c7_g2' AND c.model = 'c7_base' AND a.tensor = t.tensor) AS same_gram
FROM (VALUES ('w32'), ('w16'), ('wb16'), ('w64')) t(tensor);
SELECT soup.gram(ARRAY['f32:[1,2]'::soup.tensor, 'f32:[3,4]']) AS gram_pairs,
	   soup.gram(ARRAY['f32:[1,2]'::soup.tensor, 'f32:[3,4]'], 'f32:[1,1]') AS with_base;

-- ties: trim each task vector to its top density fraction by magnitude (per
-- tensor), elect the sign of the weighted sum, average the agreeing entries
SELECT soup.merge('m_ties', 'ties', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5], base => 'base',
				  params => '{"density": 0.5}') > 0 AS ok;
SELECT pg_temp.same_model('m_ties', 'expected_ties') AS ties_exact;
SELECT soup.merge('c7_ties', 'ties', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], ARRAY[1, 2, 0.5], base => 'c7_base',
				  params => '{"density": 0.5}') > 0 AS ok;
SELECT pg_temp.same_model('c7_ties', 'expected_ties') AS ties_chunk_invariant;
-- density 1 keeps everything; density 0 keeps nothing (the base comes back)
SELECT soup.merge('m_ties0', 'ties', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0}') > 0 AS ok;
SELECT pg_temp.same_model('m_ties0', 'base') AS ties_density0_is_base;
SELECT soup.magnitude_threshold(d, 'f32:[0,0,0,0]', 0.5) AS top2_of_4,
	   soup.magnitude_threshold(d, 'f32:[0,0,0,0]', 0.1) AS none_kept
FROM (VALUES ('f32:[3,-4,1,-2]'::soup.tensor)) v(d);
SELECT soup.trim('f32:[3,-4,1,-2]', 'f32:[0,0,0,0]', 3) AS trimmed;
SELECT soup.ties_merge(t, 'f32:[10,10,10]', w, 1) FROM (VALUES
	('f64:[1,-1,2]'::soup.tensor, 1.0), ('f64:[3,2,-2]', 1.0), ('f64:[0,2,-1]', 1.0)) v(t, w);

-- dare_linear and dare_ties: a reproducible random subset of each task vector,
-- rescaled by 1 / density (or to keep its L1 norm), merged linearly or by TIES
SELECT soup.merge('m_dare_linear', 'dare_linear', ARRAY['g1', 'g2', 'g3'], ARRAY[0.5, 1, -0.3],
				  base => 'base', params => '{"density": 0.7, "seed": 42, "lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('m_dare_linear', 'expected_dare_linear') AS dare_linear_exact;
SELECT soup.merge('c7_dare_linear', 'dare_linear', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], ARRAY[0.5, 1, -0.3],
				  base => 'c7_base', params => '{"density": 0.7, "seed": 42, "lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('c7_dare_linear', 'expected_dare_linear') AS dare_linear_chunk_invariant;
SELECT soup.merge('m_dare_ties', 'dare_ties', ARRAY['g1', 'g2', 'g3'], base => 'base',
				  params => '{"density": 0.6, "seed": -7, "rescale": "l1"}') > 0 AS ok;
SELECT pg_temp.same_model('m_dare_ties', 'expected_dare_ties') AS dare_ties_exact;
SELECT soup.merge('c7_dare_ties', 'dare_ties', ARRAY['c7_g1', 'c7_g2', 'c7_g3'], base => 'c7_base',
				  params => '{"density": 0.6, "seed": -7, "rescale": "l1"}') > 0 AS ok;
SELECT pg_temp.same_model('c7_dare_ties', 'expected_dare_ties') AS dare_ties_chunk_invariant;
-- another seed drops other entries
SELECT soup.merge('m_dare_seed2', 'dare_linear', ARRAY['g1', 'g2', 'g3'], ARRAY[0.5, 1, -0.3],
				  base => 'base', params => '{"density": 0.7, "seed": 43, "lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('m_dare_seed2', 'expected_dare_linear') AS other_seed_same;
-- della: a seed written 5.0 is the seed 5 (the same draws)
SELECT soup.merge('m_della_s5', 'della', ARRAY['g1', 'g2', 'g3'], base => 'base', params => '{"density": 0.5, "seed": 5}') > 0 AS ok;
SELECT soup.merge('m_della_s5f', 'della', ARRAY['g1', 'g2', 'g3'], base => 'base', params => '{"density": 0.5, "seed": 5.0}') > 0 AS ok;
SELECT pg_temp.same_model('m_della_s5', 'm_della_s5f') AS seed_5_and_5_0_same;
-- the draw by hand: about density of 10000 entries kept, each scaled by 1 / density
SELECT count(*) FILTER (WHERE v <> 0) AS kept, min(v) FILTER (WHERE v <> 0) AS min_kept, max(v) AS max_kept
FROM unnest(soup.dare(soup.tensor(array_fill(1.0::float8, ARRAY[10000]), 'f32'),
					  soup.tensor(array_fill(0.0::float8, ARRAY[10000]), 'f32'),
					  0.25, 1, 1, 'w', 0)::float8[]) v;

-- ema_update: fold checkpoints one at a time into a stored EMA model
SELECT soup.ema_update('m_ema_inc', 'g1', 0.9) > 0 AS created;
SELECT soup.ema_update('m_ema_inc', 'g2', 0.9) > 0 AS folded;
SELECT soup.ema_update('m_ema_inc', 'g2', 0.9) > 0 AS folded_again_is_a_no_op;
SELECT soup.ema_update('m_ema_inc', 'g3', 0.9) > 0 AS folded;
SELECT pg_temp.same_model('m_ema_inc', 'expected_ema_update') AS ema_update_exact;
SELECT step, recipe - 'model_ids' AS recipe FROM soup.models WHERE name = 'm_ema_inc';
\set VERBOSITY terse
SELECT soup.ema_update('m_ema_inc', 'base', 0.5);
SELECT soup.ema_update('m_ema_inc', 'bad_none', 0.9);
SELECT soup.ema_update('m_task', 'g1', 0.9);
SELECT soup.ema_update('m_ema_inc', 'g1', 1.5);
SELECT soup.ema_update('m_ema_inc', 'c7_base', 0.9);
\set VERBOSITY default

-- a Fisher or a base stored in another chunk layout than the models
SELECT soup.merge('mixed_fisher', 'fisher', ARRAY['g1', 'g2', 'g3'], ARRAY[1, 2, 0.5],
				  params => '{"fishers": ["fisher1", "c7_fisher2", "fisher3"]}') > 0 AS ok;
SELECT pg_temp.same_model('mixed_fisher', 'expected_fisher') AS fisher_mixed_layouts;
SELECT soup.merge('mixed_task', 'task_arithmetic', ARRAY['g1', 'c7_g2', 'g3'], ARRAY[0.5, 1, -0.3],
				  base => 'c7_base', params => '{"lambda": 0.7}') > 0 AS ok;
SELECT pg_temp.same_model('mixed_task', 'expected_task') AS task_mixed_layouts;
DELETE FROM soup.models WHERE name LIKE 'mixed%';

-- errors, each naming what is wrong; nothing is written
SELECT count(*) AS models_before FROM soup.models \gset
\set VERBOSITY terse
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{}');
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{"fishers": ["fisher1"]}');
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{"fishers": ["fisher1", 3]}');
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{"fishers": ["fisher1", "nope"]}');
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{"fishers": ["fisher1", "fisher2"], "floor": -1}');
SELECT soup.merge('x', 'fisher', ARRAY['g1', 'g2'], params => '{"fishers": ["fisher1", "fisher2"], "normalize": 1}');
SELECT soup.merge('x', 'task_arithmetic', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'task_arithmetic', ARRAY['g1', 'g2'], base => 'nope');
SELECT soup.merge('x', 'task_arithmetic', ARRAY['g1', 'g2'], base => 'base', params => '{"lambda": "big"}');
SELECT soup.merge('x', 'ema', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'ema', ARRAY['g1', 'g2'], params => '{"decay": 1.5}');
SELECT soup.merge('x', 'ema', ARRAY['g1', 'g2'], ARRAY[1, 2], params => '{"decay": 0.5}');
SELECT soup.merge('x', 'ema', ARRAY['g1', 'g2'], base => 'base', params => '{"decay": 0.5}');
SELECT soup.merge('x', 'lawa', ARRAY['g1'], params => '{"run": "gen-run"}');
SELECT soup.merge('x', 'lawa', NULL, params => '{"run": "gen-run"}');
SELECT soup.merge('x', 'lawa', NULL, params => '{"run": "nope", "k": 1}');
SELECT soup.merge('x', 'lawa', NULL, params => '{"k": 2}');
SELECT soup.merge('x', 'lawa', NULL, params => '{"run": "gen-run", "k": 1.5}');
SELECT soup.merge('x', 'lawa', NULL, params => '{"run": "gen-run", "k": 2, "decay": 1}');
SELECT soup.merge('x', 'slerp', ARRAY['g1', 'g2', 'g3'], params => '{"t": 0.5}');
SELECT soup.merge('x', 'slerp', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'slerp', ARRAY['g1', 'g2'], params => '{"t": 2}');
SELECT soup.merge('x', 'slerp', ARRAY['g1', 'g2'], ARRAY[1, 1], params => '{"t": 0.5}');
SELECT soup.merge('x', 'model_stock', ARRAY['g1', 'g2']);
SELECT soup.merge('x', 'model_stock', ARRAY['g1'], base => 'base');
SELECT soup.merge('x', 'model_stock', ARRAY['g1', 'g2'], base => 'base', params => '{"clamp": "yes"}');
SELECT soup.merge('x', 'ties', ARRAY['g1', 'g2'], base => 'base');
SELECT soup.merge('x', 'ties', ARRAY['g1', 'g2'], params => '{"density": 0.5}');
SELECT soup.merge('x', 'ties', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 1.5}');
SELECT soup.merge('x', 'ties', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "seed": 1}');
SELECT soup.merge('x', 'dare_linear', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5}');
SELECT soup.merge('x', 'dare_linear', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "seed": 1.5}');
SELECT soup.merge('x', 'dare_ties', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "seed": 1, "rescale": "l2"}');
SELECT soup.merge('x', 'della', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5}');
SELECT soup.merge('x', 'della', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.9, "seed": 1}');
SELECT soup.merge('x', 'della_linear', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "epsilon": 0.6, "seed": 1}');
SELECT soup.merge('x', 'della_linear', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "seed": 1, "rescale": "l1"}');
SELECT soup.merge('x', 'karcher', ARRAY['g1', 'g2'], params => '{"tol": 0}');
SELECT soup.merge('x', 'della', ARRAY['g1', 'g2'], base => 'base', params => '{"density": 0.5, "seed": 9223372036854775808}');
SELECT soup.merge('x', 'frobnicate', ARRAY['g1', 'g2']);
\set VERBOSITY default
SELECT count(*) = :models_before AS nothing_written FROM soup.models;

-- aggregate errors
\set VERBOSITY sqlstate
SELECT soup.fisher_merge(x, f) FROM (VALUES ('f32:[1,2]'::soup.tensor, 'f32:[1]'::soup.tensor)) v(x, f);
SELECT soup.fisher_merge(x, f, 1, -1) FROM (VALUES ('f32:[1]'::soup.tensor, 'f32:[1]'::soup.tensor)) v(x, f);
SELECT soup.fisher_merge(x, f, 0) FROM (VALUES ('f32:[1]'::soup.tensor, 'f32:[1]'::soup.tensor)) v(x, f);
SELECT soup.fisher_merge(x, f) FROM (VALUES ('f32:[1]'::soup.tensor, NULL::soup.tensor)) v(x, f);
SELECT soup.task_arithmetic(x, b, 1, l) FROM (VALUES ('f32:[1]'::soup.tensor, 'f32:[0]'::soup.tensor, 1.0),
	('f32:[2]', 'f32:[0]', 2.0)) v(x, b, l);
SELECT soup.task_arithmetic(x, b, 1, 1) FROM (VALUES ('f32:[1]'::soup.tensor, 'f32:[0]'::soup.tensor),
	('f32:[2]', 'f32:[5]')) v(x, b);
SELECT soup.task_arithmetic(x, b, 1, 1) FROM (VALUES ('f32:[1]'::soup.tensor, 'f64:[0]'::soup.tensor)) v(x, b);
SELECT soup.ema(x, 2) FROM (VALUES ('f32:[1]'::soup.tensor)) v(x);
SELECT soup.ema(x, 0.9, -1, 10, 1) FROM (VALUES ('f32:[1]'::soup.tensor)) v(x);
SELECT soup.ema_decay(0.9, 0);
SELECT soup.trim('f32:[1]', 'f64:[1]', 0);
SELECT soup.trim('f32:[1]', 'f32:[1]', 'NaN');
SELECT soup.dare('f32:[1]', 'f32:[1]', 2, 1, 1, 'w', 0);
SELECT soup.dare('f32:[1]', 'f32:[1]', 0.5, 1, 1, 'w', -1);
SELECT soup.ties_merge(t, 'f32:[1]', 1, 1) FROM (VALUES ('f32:[1]'::soup.tensor)) v(t);
SELECT soup.delta_sum(t, 'f32:[1,2]', 1, 1) FROM (VALUES ('f64:[1]'::soup.tensor)) v(t);
\set VERBOSITY default
-- NaN and infinity follow IEEE arithmetic in every method (docs/merges.md)
SELECT soup.fisher_merge(x, f) AS fisher_nan
FROM (VALUES ('f32:[NaN,1,Infinity]'::soup.tensor, 'f32:[1,1,1]'::soup.tensor), ('f32:[1,2,1]', 'f32:[1,NaN,1]')) v(x, f);
SELECT soup.task_arithmetic(x, 'f32:[0,0]', 1, 1) AS task_inf
FROM (VALUES ('f32:[Infinity,1]'::soup.tensor), ('f32:[-Infinity,NaN]')) v(x);
SELECT soup.ema(x, 0.5 ORDER BY s) AS ema_nan FROM (VALUES (1, 'f32:[NaN,1]'::soup.tensor), (2, 'f32:[1,1]')) v(s, x);
SELECT soup.ties_merge(t, 'f32:[0,0]', 1, 1) AS ties_nan
FROM (VALUES ('f64:[NaN,1]'::soup.tensor), ('f64:[1,1]')) v(t);
SELECT soup.magnitude_threshold(x, 'f32:[0,0,0]', 0.34) AS threshold_sees_nan_first
FROM (VALUES ('f32:[NaN,5,1]'::soup.tensor)) v(x);
-- values of the aggregates on small inputs
SELECT soup.fisher_merge(x, f) FROM (VALUES ('f32:[1,1]'::soup.tensor, 'f32:[3,0]'::soup.tensor),
	('f32:[5,3]', 'f32:[1,0]')) v(x, f);
SELECT soup.task_arithmetic(x, b, w, 2) FROM (VALUES ('f64:[1,1]'::soup.tensor, 'f64:[0.5,0]'::soup.tensor, 1.0),
	('f64:[2,-1]', 'f64:[0.5,0]', 0.5)) v(x, b, w);
SELECT soup.ema(x, 0.5 ORDER BY s) FROM (VALUES (2, 'bf16:[4]'::soup.tensor), (1, 'bf16:[0]'), (3, 'bf16:[8]')) v(s, x);

-- lineage: the tree of a merge's sources, down to imported checkpoints
SELECT soup.merge('m_soup_of_merges', 'avg', ARRAY['m_task', 'm_lawa']) > 0 AS ok;
SELECT * FROM soup.lineage('m_soup_of_merges');
SELECT * FROM soup.lineage('m_fisher') WHERE depth = 1;
DELETE FROM soup.models WHERE name = 'm_avg23';
SELECT soup.merge('m_after_delete', 'avg', ARRAY['g1']) > 0 AS ok;
DELETE FROM soup.models WHERE name = 'g1';
SELECT * FROM soup.lineage('m_after_delete');
SELECT count(*) AS no_such_model FROM soup.lineage('nope');

-- the two real PEFT checkpoints of one fine-tuning run
SELECT soup.import_safetensors('/tmp/pg_soup_regress/fixtures/peft-finegates-mrpc/checkpoint-' || s
	|| '/adapter_model.safetensors', 'peft-' || s, 'mrpc', s) > 0 AS ok
FROM (VALUES (230), (2300)) v(s);
SELECT count(soup.import_safetensors(:'gen' || '/' || f || '.safetensors', f)) AS imported
FROM (VALUES ('expected_peft_slerp'), ('expected_peft_dare')) v(f);
-- slerp against numpy with math.fsum for the angles
SELECT soup.merge('peft-slerp', 'slerp', ARRAY['peft-230', 'peft-2300'], params => '{"t": 0.25}') > 0 AS ok;
SELECT pg_temp.same_model('peft-slerp', 'expected_peft_slerp') AS peft_slerp_exact;
-- dare_linear of the later checkpoint on the earlier one as base, against numpy
SELECT soup.merge('peft-dare', 'dare_linear', ARRAY['peft-2300'], ARRAY[0.8], base => 'peft-230',
				  params => '{"density": 0.5, "seed": 99, "lambda": 1.5}') > 0 AS ok;
SELECT pg_temp.same_model('peft-dare', 'expected_peft_dare') AS peft_dare_exact;
-- task arithmetic and ema against SQL's own float8 arithmetic, element by element
SELECT soup.merge('peft-task', 'task_arithmetic', ARRAY['peft-2300'], ARRAY[0.8], base => 'peft-230',
				  params => '{"lambda": 1.5}') > 0 AS ok;
SELECT soup.merge('peft-ema', 'ema', ARRAY['peft-230', 'peft-2300'], params => '{"decay": 0.9}') > 0 AS ok;
SELECT count(*) AS elements,
	   count(*) FILTER (WHERE tv = (bv::float8 + 1.5 * (0.8 * (xv::float8 - bv::float8)))::float4) AS task_equal,
	   count(*) FILTER (WHERE ev = (0.9::float8 * bv::float8 + (1 - 0.9::float8) * xv::float8)::float4) AS ema_equal
FROM soup.weights b
JOIN soup.weights x USING (tensor, chunk)
JOIN soup.weights t USING (tensor, chunk)
JOIN soup.weights e USING (tensor, chunk),
	 LATERAL unnest(b.data::float4[], x.data::float4[], t.data::float4[], e.data::float4[]) u(bv, xv, tv, ev)
WHERE b.model = 'peft-230' AND x.model = 'peft-2300' AND t.model = 'peft-task' AND e.model = 'peft-ema';
