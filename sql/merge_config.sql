-- soup.merge_config: mergekit configurations.  Four small llama-shaped
-- models (embeddings, 4 layers of self_attn.q_proj and mlp.up_proj, norm,
-- head, an integer buffer) stored in 2 chunks a tensor.  The references are
-- the parameters each tensor must get, worked out by hand from mergekit's
-- rules (docs/merges.md), fed to the aggregates and soup.merge directly.
SET search_path = public, soup;
SET extra_float_digits = 0;

CREATE FUNCTION pg_temp.mkmodel(model text, seed float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE id bigint; n text; o int := 0;
BEGIN
	INSERT INTO soup.models (name) VALUES (model) RETURNING soup.models.id INTO id;
	FOR n IN SELECT unnest(ARRAY['model.embed_tokens.weight'] ||
			ARRAY(SELECT format('model.layers.%s.%s', l, k) FROM generate_series(0, 3) l,
				  unnest(ARRAY['mlp.up_proj.weight', 'self_attn.q_proj.weight']) k ORDER BY l, k) ||
			ARRAY['model.norm.weight', 'lm_head.weight']) LOOP
		INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
		VALUES (id, n, o, 'f32', '{2,3}', 6, 4);
		INSERT INTO soup.chunks VALUES
			(id, n, 0, format('f32:[%s,%s,%s,%s]', seed + o, -seed * o / 3.0, seed / 7.0 + o, 1.5 - seed)::soup.tensor),
			(id, n, 1, format('f32:[%s,%s]', seed * o * 0.1, -seed)::soup.tensor);
		o := o + 1;
	END LOOP;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	VALUES (id, 'model.position_ids', o, 'i64', '{3}', 3, 4);
	INSERT INTO soup.chunks VALUES (id, 'model.position_ids', 0, 'i64:[0,1,2]');
END $$;
SELECT pg_temp.mkmodel('mk_a', 1), pg_temp.mkmodel('mk_b', 2), pg_temp.mkmodel('mk_c', 3.5), pg_temp.mkmodel('mk_base', 0.25);

-- the layer of a tensor, as the default pattern finds it
CREATE FUNCTION pg_temp.layer(name text) RETURNS int LANGUAGE sql AS $$
	SELECT substring(name FROM 'layers\.([0-9]+)\.')::int $$;
-- do two models hold the same values in every chunk?  (Bytes, except that
-- an exact zero sum is +0: a weighted average of -0 with -0 is 0.)
CREATE FUNCTION pg_temp.eq(x soup.tensor, y soup.tensor) RETURNS boolean LANGUAGE sql AS $$
	SELECT soup.bytes(x) = soup.bytes(y) OR soup.norm(soup.tensor_sub(x, y)) = 0 $$;
CREATE FUNCTION pg_temp.same(x text, y text) RETURNS TABLE (tensors bigint, differ bigint) LANGUAGE sql AS $$
	SELECT count(DISTINCT a.tensor), count(*) FILTER (WHERE b.data IS NULL OR NOT pg_temp.eq(a.data, b.data))
	FROM soup.weights a LEFT JOIN soup.weights b ON b.model = y AND b.tensor = a.tensor AND b.chunk = a.chunk
	WHERE a.model = x $$;

-- 1. linear: a's weight a gradient over the layers, b's a filter then a gradient
SELECT soup.merge_config('mk_lin', $${"merge_method": "linear",
	"models": [{"model": "mk_a", "parameters": {"weight": [0, 3]}},
			   {"model": "mk_b", "parameters": {"weight": [{"filter": "mlp", "value": 0.5}, {"value": [2, 8]}]}}],
	"dtype": "float32"}$$) > 0 AS merged;
-- by hand: t = layer / 3 (4 layers), embeddings t = 0, norm and head t = 1;
-- a: [0, 3] at t is 3t; b: 0.5 on mlp tensors, else 2 + 6t
CREATE TEMP TABLE lin_w AS
SELECT t.name AS tensor, m.name AS model,
	   CASE m.name WHEN 'mk_a' THEN 3 * tt ELSE CASE WHEN t.name LIKE '%mlp%' THEN 0.5 ELSE 2 + 6 * tt END END AS w
FROM soup.tensors t JOIN soup.models m ON m.name IN ('mk_a', 'mk_b'),
	 LATERAL (SELECT CASE WHEN pg_temp.layer(t.name) IS NOT NULL THEN pg_temp.layer(t.name) / 3.0
						  WHEN t.name LIKE '%embed%' THEN 0 ELSE 1 END AS tt) x
WHERE t.model_id = (SELECT id FROM soup.models WHERE name = 'mk_a') AND t.dtype = 'f32';
SELECT tensor, w FROM lin_w WHERE model = 'mk_b' AND tensor LIKE '%layers.2.%' ORDER BY tensor;
SELECT count(*) AS tensors,
	   count(*) FILTER (WHERE soup.bytes(r.data) = soup.bytes(x.data)) AS equal
FROM (SELECT s.tensor, s.chunk, soup.avg_weights(s.data, l.w ORDER BY s.model) AS data
	  FROM soup.weights s JOIN lin_w l ON l.tensor = s.tensor AND l.model = s.model
	  GROUP BY s.tensor, s.chunk) r
JOIN soup.weights x ON x.model = 'mk_lin' AND x.tensor = r.tensor AND x.chunk = r.chunk;
-- the integer buffer is the first model's; the catalog keeps the file order
SELECT data FROM soup.weights WHERE model = 'mk_lin' AND tensor = 'model.position_ids';
SELECT bool_and(a.ordinal = b.ordinal AND a.shape = b.shape AND a.dtype = b.dtype) AS same_catalog
FROM soup.tensors a JOIN soup.tensors b ON b.name = a.name
WHERE a.model_id = (SELECT id FROM soup.models WHERE name = 'mk_a')
  AND b.model_id = (SELECT id FROM soup.models WHERE name = 'mk_lin');
SELECT recipe ->> 'method' AS method, recipe ->> 'merge_method' AS merge_method, recipe -> 'models' AS models,
	   recipe -> 'config' ->> 'dtype' AS dtype
FROM soup.models WHERE name = 'mk_lin';

-- 2. passthrough slices: a frankenmerge of a's layers 0-1 and b's 1-3,
-- renumbered 0-4; embeddings from the first slice's model, norm and head
-- from the last's
SELECT soup.merge_config('mk_frank', $${"merge_method": "passthrough", "slices": [
	{"sources": [{"model": "mk_a", "layer_range": [0, 2]}]},
	{"sources": [{"model": "mk_b", "layer_range": [1, 4]}]}]}$$) > 0 AS merged;
SELECT t.ordinal, t.name,
	   (SELECT bool_and(soup.bytes(c.data) = soup.bytes(d.data))
		FROM soup.chunks c JOIN soup.weights d ON d.chunk = c.chunk
		WHERE c.model_id = t.model_id AND c.tensor = t.name
		  AND d.model = CASE WHEN pg_temp.layer(t.name) < 2 OR t.name LIKE '%embed%' THEN 'mk_a' ELSE 'mk_b' END
		  AND d.tensor = CASE WHEN pg_temp.layer(t.name) >= 2
							  THEN replace(t.name, format('layers.%s.', pg_temp.layer(t.name)),
										   format('layers.%s.', pg_temp.layer(t.name) - 1))
							  ELSE t.name END) AS from_its_source
FROM soup.tensors t WHERE t.model_id = (SELECT id FROM soup.models WHERE name = 'mk_frank')
ORDER BY t.ordinal;

-- passthrough with a scale: zero one kind of tensor in the copied layers
SELECT soup.merge_config('mk_scaled', $${"merge_method": "passthrough", "slices": [
	{"sources": [{"model": "mk_a", "layer_range": [0, 4]}],
	 "parameters": {"scale": [{"filter": "mlp", "value": 0}, {"value": 1}]}}]}$$) > 0 AS merged;
SELECT count(*) FILTER (WHERE tensor LIKE '%mlp%' AND soup.norm(data) = 0) AS zeroed,
	   count(*) FILTER (WHERE tensor NOT LIKE '%mlp%' AND soup.bytes(data) =
					   (SELECT soup.bytes(d.data) FROM soup.weights d WHERE d.model = 'mk_a' AND d.tensor = w.tensor AND d.chunk = w.chunk)) AS kept
FROM soup.weights w WHERE model = 'mk_scaled' AND tensor <> 'model.position_ids';

-- 3. slerp with mergekit's favourite filters: t over the layers differs for
-- attention and MLP, 0.5 elsewhere (t = 0 is the base, 1 the other model)
SELECT soup.merge_config('mk_sl', $${"merge_method": "slerp", "base_model": "mk_a",
	"slices": [{"sources": [{"model": "mk_b", "layer_range": [0, 4]}, {"model": "mk_a", "layer_range": [0, 4]}]}],
	"parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
						 {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
						 {"value": 0.5}]},
	"dtype": "bfloat16"}$$) > 0 AS merged;
SELECT soup.merge('mk_sl_half', 'slerp', ARRAY['mk_a', 'mk_b'], params => '{"t": 0.5}') > 0 AS merged;
-- by hand: self_attn t = 0, 13/30, 17/30, 1; mlp t = 1, 17/30, 13/30, 0
SELECT soup.merge('mk_sl_13', 'slerp', ARRAY['mk_a', 'mk_b'], params => jsonb_build_object('t', 2 / 3.0 * 0.5 + 1 / 3.0 * 0.3)) > 0,
	   soup.merge('mk_sl_17', 'slerp', ARRAY['mk_a', 'mk_b'], params => jsonb_build_object('t', 1 / 3.0 * 0.3 + 2 / 3.0 * 0.7)) > 0;
SELECT w.tensor,
	   CASE WHEN bool_and(soup.bytes(w.data) = soup.bytes(a.data)) THEN 'mk_a'
			WHEN bool_and(soup.bytes(w.data) = soup.bytes(b.data)) THEN 'mk_b'
			WHEN bool_and(soup.bytes(w.data) = soup.bytes(h.data)) THEN 't = 0.5'
			WHEN bool_and(soup.bytes(w.data) = soup.bytes(x.data)) THEN 't = 13/30'
			WHEN bool_and(soup.bytes(w.data) = soup.bytes(y.data)) THEN 't = 17/30' END AS equals
FROM soup.weights w
JOIN soup.weights a ON a.model = 'mk_a' AND a.tensor = w.tensor AND a.chunk = w.chunk
JOIN soup.weights b ON b.model = 'mk_b' AND b.tensor = w.tensor AND b.chunk = w.chunk
JOIN soup.weights h ON h.model = 'mk_sl_half' AND h.tensor = w.tensor AND h.chunk = w.chunk
JOIN soup.weights x ON x.model = 'mk_sl_13' AND x.tensor = w.tensor AND x.chunk = w.chunk
JOIN soup.weights y ON y.model = 'mk_sl_17' AND y.tensor = w.tensor AND y.chunk = w.chunk
WHERE w.model = 'mk_sl' AND w.tensor <> 'model.position_ids'
GROUP BY w.tensor ORDER BY min((SELECT ordinal FROM soup.tensors t WHERE t.name = w.tensor LIMIT 1));

-- 4. ties with per-model densities: a keeps half of its task vector, b and
-- c keep nothing, so the result is TIES of a alone at density 0.5
SELECT soup.merge_config('mk_ti', $${"merge_method": "ties", "base_model": "mk_base",
	"models": [{"model": "mk_base"},
			   {"model": "mk_a", "parameters": {"density": 0.5, "weight": 1}},
			   {"model": "mk_b", "parameters": {"density": 0, "weight": [1, 2]}},
			   {"model": "mk_c", "parameters": {"density": [{"filter": "mlp", "value": 0}, {"value": 0}], "weight": 0.5}}],
	"parameters": {"normalize": true, "int8_mask": true, "lambda": 1}, "dtype": "float16"}$$) > 0 AS merged;
SELECT soup.merge('mk_ti_ref', 'ties', ARRAY['mk_a'], base => 'mk_base', params => '{"density": 0.5}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_ti', 'mk_ti_ref');
-- the same densities for all: soup.merge's TIES, with a's weight a gradient
-- that is 1 everywhere
SELECT soup.merge_config('mk_ti2', $${"merge_method": "ties", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": [1, 1]}}, {"model": "mk_b", "parameters": {"weight": 2}},
			   {"model": "mk_c", "parameters": {"weight": 0.5}}],
	"parameters": {"density": 0.5}}$$) > 0 AS merged;
SELECT soup.merge('mk_ti2_ref', 'ties', ARRAY['mk_a', 'mk_b', 'mk_c'], ARRAY[1, 2, 0.5], 'mk_base', '{"density": 0.5}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_ti2', 'mk_ti2_ref');
-- breadcrumbs_ties without top outliers to drop (gamma 0) is TIES
SELECT soup.merge_config('mk_bct', $${"merge_method": "breadcrumbs_ties", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": 2}},
			   {"model": "mk_c", "parameters": {"weight": 0.5}}],
	"parameters": {"density": 0.5, "gamma": 0}}$$) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_bct', 'mk_ti2_ref');
-- with gamma the largest magnitudes go, so the result moves (the band
-- itself is checked against numpy in python/tests on tie-free data; ties at
-- a cut are all dropped or all kept: docs/merges.md)
SELECT soup.merge_config('mk_bc', $${"merge_method": "breadcrumbs", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1, "density": 0.5, "gamma": 0.2}}]}$$) > 0 AS merged;
SELECT soup.merge_config('mk_bc0', $${"merge_method": "breadcrumbs", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1, "density": 0.5, "gamma": 0}}]}$$) > 0 AS merged;
SELECT (SELECT differ FROM pg_temp.same('mk_bc', 'mk_bc0')) > 0 AS top_dropped;
-- the methods new in 0.2.0 through soup.merge: the same bits as merge_config
SELECT soup.merge('mk_m_bc', 'breadcrumbs_ties', ARRAY['mk_a', 'mk_b', 'mk_c'], ARRAY[1, 2, 0.5], 'mk_base',
				  '{"density": 0.5, "gamma": 0}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_m_bc', 'mk_bct');
SELECT soup.merge_config('mk_nu', $${"merge_method": "nuslerp", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": 3}}]}$$) > 0 AS merged;
SELECT soup.merge('mk_m_nu', 'nuslerp', ARRAY['mk_a', 'mk_b'], ARRAY[1, 3], 'mk_base') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_m_nu', 'mk_nu');
SELECT soup.merge_config('mk_msl', $${"merge_method": "multislerp",
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": 2}},
			   {"model": "mk_c", "parameters": {"weight": 1}}]}$$) > 0 AS merged;
SELECT soup.merge('mk_m_msl', 'multislerp', ARRAY['mk_a', 'mk_b', 'mk_c'], ARRAY[1, 2, 1]) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_m_msl', 'mk_msl');
SELECT soup.merge_config('mk_ka', $${"merge_method": "karcher",
	"models": [{"model": "mk_a"}, {"model": "mk_b"}, {"model": "mk_c"}], "parameters": {"max_iter": 20}}$$) > 0 AS merged;
SELECT soup.merge('mk_m_ka', 'karcher', ARRAY['mk_a', 'mk_b', 'mk_c'], params => '{"max_iter": 20}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_m_ka', 'mk_ka');
-- karcher of one model (three times the same direction) is that model
SELECT soup.merge('mk_m_ka1', 'karcher', ARRAY['mk_a']) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_m_ka1', 'mk_a');
\set VERBOSITY terse
SELECT soup.merge('mk_bad', 'karcher', ARRAY['mk_a', 'mk_b'], ARRAY[1, 2]);
SELECT soup.merge('mk_bad', 'breadcrumbs', ARRAY['mk_a', 'mk_b']);
SELECT soup.merge('mk_bad', 'nuslerp', ARRAY['mk_a', 'mk_b', 'mk_c']);
SELECT soup.merge('mk_bad', 'multislerp', ARRAY['mk_a', 'mk_b'], params => '{"eps": 0}');
SELECT soup.merge('mk_bad', 'karcher', ARRAY['mk_a', 'mk_b'], params => '{"max_iter": 2.5}');
\set VERBOSITY default
-- DARE and task arithmetic, one parameter set: soup.merge's bits
SELECT soup.merge_config('mk_dt', $${"merge_method": "dare_ties", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1, "density": 0.6}}, {"model": "mk_b", "parameters": {"weight": 0.5, "density": 0.6}}],
	"parameters": {"seed": 11}}$$) > 0 AS merged;
SELECT soup.merge('mk_dt_ref', 'dare_ties', ARRAY['mk_a', 'mk_b'], ARRAY[1, 0.5], 'mk_base', '{"density": 0.6, "seed": 11}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_dt', 'mk_dt_ref');
SELECT soup.merge_config('mk_ta', $${"merge_method": "task_arithmetic", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_c", "parameters": {"weight": 0.3}}],
	"parameters": {"lambda": 0.5}}$$) > 0 AS merged;
SELECT soup.merge('mk_ta_ref', 'task_arithmetic', ARRAY['mk_a', 'mk_c'], ARRAY[1, 0.3], 'mk_base', '{"lambda": 0.5}') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_ta', 'mk_ta_ref');
SELECT soup.merge_config('mk_ms', $${"merge_method": "model_stock", "base_model": "mk_base",
	"models": [{"model": "mk_a"}, {"model": "mk_b"}, {"model": "mk_c"}]}$$) > 0 AS merged;
SELECT soup.merge('mk_ms_ref', 'model_stock', ARRAY['mk_a', 'mk_b', 'mk_c'], base => 'mk_base') > 0 AS merged;
SELECT * FROM pg_temp.same('mk_ms', 'mk_ms_ref');

-- 5. out_dtype: computed exactly, rounded once to float64 and then to bf16,
-- i.e. the float64 merge of the float64 inputs, converted
SELECT soup.merge_config('mk_o16', $${"merge_method": "linear", "out_dtype": "bfloat16",
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": 2}}]}$$) > 0 AS merged;
CREATE FUNCTION pg_temp.as_f64(src text, dst text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO soup.models (name) VALUES (dst);
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT (SELECT id FROM soup.models WHERE name = dst), name, ordinal, CASE WHEN dtype = 'f32' THEN 'f64' ELSE dtype END,
		   shape, numel, chunk_elems FROM soup.tensors WHERE model_id = (SELECT id FROM soup.models WHERE name = src);
	INSERT INTO soup.chunks SELECT (SELECT id FROM soup.models WHERE name = dst), tensor, chunk,
		CASE WHEN soup.dtype(data) = 'f32' THEN soup.astype(data, 'f64') ELSE data END
	FROM soup.weights WHERE model = src $$;
SELECT pg_temp.as_f64('mk_a', 'mk_a64'), pg_temp.as_f64('mk_b', 'mk_b64');
SELECT soup.merge('mk_o64', 'avg', ARRAY['mk_a64', 'mk_b64'], ARRAY[1, 2]) > 0 AS merged;
SELECT count(*) AS chunks, count(*) FILTER (WHERE soup.dtype(x.data) = 'bf16') AS bf16,
	   count(*) FILTER (WHERE soup.bytes(x.data) = soup.bytes(soup.astype(r.data, 'bf16'))) AS equal
FROM soup.weights x JOIN soup.weights r ON r.model = 'mk_o64' AND r.tensor = x.tensor AND r.chunk = x.chunk
WHERE x.model = 'mk_o16' AND x.tensor <> 'model.position_ids';
SELECT count(*) AS scratch_models_left FROM soup.models WHERE name LIKE 'soup.merge_config%';

-- linear without normalize: the weighted sum, rounded once (by hand: the
-- same as the average with weights scaled to sum to 1 when they do)
SELECT soup.merge_config('mk_sum', $${"merge_method": "linear", "parameters": {"normalize": false},
	"models": [{"model": "mk_a", "parameters": {"weight": 0.75}}, {"model": "mk_b", "parameters": {"weight": 0.25}}]}$$) > 0 AS merged;
SELECT soup.merge('mk_avg31', 'avg', ARRAY['mk_a', 'mk_b'], ARRAY[3, 1]) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_sum', 'mk_avg31');
SELECT soup.merge_config('mk_sum2', $${"merge_method": "linear", "parameters": {"normalize": false},
	"models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": -1}}]}$$) > 0 AS merged;
SELECT count(*) AS chunks, count(*) FILTER (WHERE pg_temp.eq(s.data, soup.tensor_sub(a.data, b.data))) AS a_minus_b
FROM soup.weights s JOIN soup.weights a ON a.model = 'mk_a' AND a.tensor = s.tensor AND a.chunk = s.chunk
JOIN soup.weights b ON b.model = 'mk_b' AND b.tensor = s.tensor AND b.chunk = s.chunk
WHERE s.model = 'mk_sum2' AND s.tensor <> 'model.position_ids';

-- inputs in another chunk layout are merged from copies in the first model's
-- layout: the same bits (mk_b3 is mk_b stored in 3-element chunks)
SELECT soup.merge_config('mk_b3_src', $${"merge_method": "passthrough", "slices": [
	{"sources": [{"model": "mk_b", "layer_range": [0, 4]}]}]}$$) > 0 AS copied;
SELECT soup.rechunk('mk_b3_src', 3) > 0 AS rechunked;
SELECT soup.merge_config('mk_lin3', $${"merge_method": "linear",
	"models": [{"model": "mk_a", "parameters": {"weight": [0, 3]}},
			   {"model": "mk_b3_src", "parameters": {"weight": [{"filter": "mlp", "value": 0.5}, {"value": [2, 8]}]}}],
	"dtype": "float32"}$$) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_lin3', 'mk_lin');
SELECT soup.merge_config('mk_ti3', $${"merge_method": "ties", "base_model": "mk_base",
	"models": [{"model": "mk_a", "parameters": {"weight": [1, 1]}}, {"model": "mk_b3_src", "parameters": {"weight": 2}},
			   {"model": "mk_c", "parameters": {"weight": 0.5}}],
	"parameters": {"density": 0.5}}$$) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_ti3', 'mk_ti2');
SELECT count(*) AS scratch_models_left FROM soup.models WHERE name LIKE 'soup.merge %';

-- strict mode: every layer of every source must be in a slice
SELECT soup.merge_config('mk_half', $${"merge_method": "passthrough", "slices": [{"sources": [{"model": "mk_a", "layer_range": [0, 2]}]}]}$$) > 0 AS merged;
SELECT count(*) AS tensors FROM soup.tensors WHERE model_id = (SELECT id FROM soup.models WHERE name = 'mk_half');
-- the layer pattern can be given: here nothing is a layer, so the
-- embeddings take t = 0 (b's alone) and every other tensor t = 1 (a's alone)
SELECT soup.merge_config('mk_nolayers', $${"merge_method": "linear", "pg_soup": {"layer_pattern": "blocks\\.([0-9]+)\\."},
	"models": [{"model": "mk_a", "parameters": {"weight": [0, 1]}}, {"model": "mk_b", "parameters": {"weight": [1, 0]}}]}$$) > 0 AS merged;
SELECT * FROM pg_temp.same('mk_nolayers', 'mk_a');
SELECT tensor, bool_and(pg_temp.eq(w.data, (SELECT d.data FROM soup.weights d WHERE d.model = 'mk_b'
											  AND d.tensor = w.tensor AND d.chunk = w.chunk))) AS from_b
FROM soup.weights w WHERE model = 'mk_nolayers' AND tensor LIKE '%embed%' GROUP BY tensor;
SELECT * FROM soup.lineage('mk_ti') ORDER BY depth, name;

-- every mistake names its place, with a SQLSTATE, and leaves nothing
\set VERBOSITY terse
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"wieght": 1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "frobnicate", "models": [{"model": "mk_a"}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "sce", "models": [{"model": "mk_a"}]}');
SELECT soup.merge_config('mk_bad', '{"models": [{"model": "mk_a"}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "nope", "parameters": {"weight": 1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": 1}}], "slices": []}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": {"x": 1}}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": []}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": [1, {"value": 2}]}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": [{"filter": "mlp", "value": 1}]}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "pg_soup": {"strict": true}, "parameters": {"weight": 1}, "models": [{"model": "mk_a", "parameters": {"weight": [{"filter": "mlp", "value": 1}]}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "parameters": {"normalize": [1, 0]}, "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "slerp", "base_model": "mk_a", "models": [{"model": "mk_a"}, {"model": "mk_b"}], "parameters": {"t": 1.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "slerp", "models": [{"model": "mk_a"}, {"model": "mk_b"}], "parameters": {"t": 0.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "slerp", "base_model": "mk_a", "models": [{"model": "mk_a"}, {"model": "mk_b"}, {"model": "mk_c"}], "parameters": {"t": 0.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "ties", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1, "density": 1.5}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "ties", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1, "lambda": 2}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "dare_ties", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1}}], "parameters": {"seed": 1.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "passthrough", "slices": [{"sources": [{"model": "mk_a", "layer_range": [0, 2]}, {"model": "mk_b", "layer_range": [0, 2]}]}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "slerp", "base_model": "mk_a", "slices": [{"sources": [{"model": "mk_a", "layer_range": [0, 4]}, {"model": "mk_b", "layer_range": [0, 3]}]}], "parameters": {"t": 0.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "passthrough", "slices": [{"sources": [{"model": "mk_a", "layer_range": [2, 9]}]}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "passthrough", "slices": [{"sources": [{"model": "mk_a", "layer_range": [2]}]}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "passthrough", "pg_soup": {"strict": true}, "slices": [{"sources": [{"model": "mk_a", "layer_range": [0, 2]}]}]}');
-- the method catalog's checks: kinds, ranges, counts, values pg_soup does not compute (0A000)
SELECT soup.merge_config('mk_bad', '{"merge_method": "della", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1, "density": 0.1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "della_linear", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1, "epsilon": 0.7}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "della", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1}}], "parameters": {"rescale": "l1"}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "ties", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1}}], "parameters": {"normalize": false}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "dare_linear", "base_model": "mk_base", "models": [{"model": "mk_a", "parameters": {"weight": 1}}], "parameters": {"rescale": false}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "nuslerp", "models": [{"model": "mk_a", "parameters": {"weight": 1}}, {"model": "mk_b", "parameters": {"weight": 1}}], "parameters": {"nuslerp_row_wise": true}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "nuslerp", "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "model_stock", "base_model": "mk_base", "models": [{"model": "mk_a"}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "karcher", "models": [{"model": "mk_a"}, {"model": "mk_b"}], "parameters": {"tol": 0}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "karcher", "models": [{"model": "mk_a"}, {"model": "mk_b"}], "parameters": {"max_iter": 2.5}}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "out_dtype": "float8", "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}');
SELECT soup.merge_config('mk_bad', '{"merge_method": "linear", "tokenizer_source": "union", "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}');
SELECT soup.merge_config('mk_lin', '{"merge_method": "linear", "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}');
\set VERBOSITY default
SELECT count(*) AS bad_models FROM soup.models WHERE name = 'mk_bad' OR name LIKE 'soup.merge_config%';
-- replace: true in the pg_soup section overwrites
SELECT soup.merge_config('mk_lin', '{"merge_method": "linear", "pg_soup": {"replace": true}, "models": [{"model": "mk_a", "parameters": {"weight": 1}}]}') > 0 AS replaced;
SELECT * FROM pg_temp.same('mk_lin', 'mk_a');
