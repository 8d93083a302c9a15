-- pg_soup 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION pg_soup UPDATE TO '0.2.0'" to load this file. \quit

-------------------------------------------------------------------------------
-- Storage
-------------------------------------------------------------------------------

-- Space freed by deleting a model stays in soup.chunks (and its TOAST table)
-- for the next import or merge instead of being cut off the end of the file
-- by VACUUM: writing into pages that exist skips PostgreSQL 15's one-page
-- extension writes (measured: an import 1.3-1.5 s -> 1.0 s for 498 MB, see
-- docs/performance.md), and VACUUM no longer takes the ACCESS EXCLUSIVE lock
-- that truncation needs while merges read the table.  VACUUM (TRUNCATE)
-- soup.chunks still gives the space back on demand.
ALTER TABLE soup.chunks SET (vacuum_truncate = false, toast.vacuum_truncate = false);

-------------------------------------------------------------------------------
-- Progress of imports, exports and merges
-------------------------------------------------------------------------------

-- Bytes an element of a dtype takes.
CREATE FUNCTION soup._dtype_bytes(dtype text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT CASE WHEN dtype IN ('f64', 'i64', 'u64', 'c64') THEN 8
				WHEN dtype IN ('f32', 'i32', 'u32') THEN 4
				WHEN dtype IN ('f16', 'bf16', 'i16', 'u16') THEN 2
				ELSE 1 END;
$$;

-- Start and end a progress report from SQL (op: 1 import, 2 export, 3 merge).
-- _progress_begin returns false when the backend already reports a command.
CREATE FUNCTION soup._progress_begin(op int, model_id bigint, chunks_total bigint,
									 bytes_total bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'soup_progress_begin_sql' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION soup._progress_end() RETURNS void
	AS 'MODULE_PATHNAME', 'soup_progress_end_sql' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Every chunk written counts towards the operation that writes it.
CREATE FUNCTION soup._chunk_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'soup_chunk_written' LANGUAGE C;
CREATE TRIGGER chunks_progress BEFORE INSERT ON soup.chunks
	FOR EACH ROW EXECUTE FUNCTION soup._chunk_written();

-- Imports, exports and merges running now, as pg_stat_progress_copy shows a
-- COPY (they show there too, as COPY FROM / TO soup.chunks).  Like every
-- progress view, it shows other roles' operations only to members of
-- pg_read_all_stats.
CREATE VIEW soup.progress AS
	SELECT p.pid, d.datname,
		   (ARRAY['import', 'export', 'merge'])[p.param19] AS operation,
		   p.param18 AS model_id,
		   p.param3 AS chunks_done, p.param17 AS chunks_total,
		   p.param1 AS bytes_done, p.param2 AS bytes_total
	FROM pg_catalog.pg_stat_get_progress_info('COPY') p
	LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid
	WHERE p.param20 = 1936684400;

COMMENT ON VIEW soup.progress IS
	'Imports, exports and merges in progress: chunks and bytes done of their totals';

-------------------------------------------------------------------------------
-- The fused merge driver
-------------------------------------------------------------------------------

-- The elementwise merges in one pass per chunk: the N chunks of each
-- (tensor, chunk), the models' then the base's or the Fishers', read
-- together and merged by one kernel, with the same bits as the aggregates.
-- Returns the chunks written.
-- TIES' threshold of one model's tensor, the k-th largest |data - base|
-- (k = floor(density n)), as soup.magnitude_threshold computes it but in
-- bounded memory: a radix selection over several reads of the chunks.
CREATE FUNCTION soup._magnitude_threshold(model_id bigint, base_id bigint, tensor text,
										  density float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_magnitude_threshold_stream' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION soup._merge_fused(new_id bigint, method text, ids bigint[], weights float8[],
								  extra_ids bigint[], param float8) RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_merge_fused' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- The merge of one method, written as rows of soup.chunks for model new_id;
-- returns the number of chunks written.  Only float tensors take part, and
-- only chunks present in every model (the caller checks the count).
--
-- The elementwise methods run in soup._merge_fused, one pass per chunk over
-- every input (the same bits as their aggregates).  The others use sorted
-- (streaming) aggregation: one group's state at a time, so memory stays at a
-- few chunks whatever the model's size, and no hash table of every group's
-- state (16 bytes an element) has to be faulted in first.
CREATE OR REPLACE FUNCTION soup._merge_chunks(new_id bigint, method text, ids bigint[], weights float8[],
								   base_id bigint, fisher_ids bigint[], params jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_hashagg = off AS $$
DECLARE
	n bigint;
	w float8[] := coalesce(weights, array_fill(1.0::float8, ARRAY[cardinality(ids)]));
	floats text[] := ARRAY['f32', 'f64', 'f16', 'bf16'];
	norms float8[];
BEGIN
	IF method IN ('avg', 'lawa') THEN
		n := soup._merge_fused(new_id, method, ids, w, '{}', 0);
	ELSIF method = 'ema' THEN
		n := soup._merge_fused(new_id, method, ids, w, '{}', (params ->> 'decay')::float8);
	ELSIF method = 'fisher' THEN
		IF coalesce((params ->> 'normalize')::boolean, false) THEN
			SELECT array_agg(soup._fisher_norm(f, m) ORDER BY ord) INTO norms
			FROM unnest(fisher_ids, ARRAY(SELECT jsonb_array_elements_text(params -> 'fishers')))
				WITH ORDINALITY AS x(f, m, ord);
			SELECT array_agg(a / b ORDER BY ord) INTO w
			FROM unnest(w, norms) WITH ORDINALITY AS x(a, b, ord);
		END IF;
		n := soup._merge_fused(new_id, method, ids, w, fisher_ids,
							   coalesce((params ->> 'floor')::float8, 1e-6));
	ELSIF method = 'task_arithmetic' THEN
		n := soup._merge_fused(new_id, method, ids, w, ARRAY[base_id],
							   coalesce((params ->> 'lambda')::float8, 1));
	ELSIF method = 'slerp' THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH stats AS (
			SELECT g.tensor, soup.dd_sum(g.gram) AS gram
			FROM (SELECT a.tensor, soup.gram(ARRAY[a.data, b.data]) AS gram
				  FROM soup.chunks a
				  JOIN soup.chunks b ON b.model_id = ids[2] AND b.tensor = a.tensor AND b.chunk = a.chunk
				  JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = a.tensor
				  WHERE a.model_id = ids[1] AND t.dtype = ANY (floats)) g
			GROUP BY g.tensor)
		SELECT new_id, a.tensor, a.chunk, soup.lincomb(a.data, s.c[1], b.data, s.c[2])
		FROM soup.chunks a
		JOIN soup.chunks b ON b.model_id = ids[2] AND b.tensor = a.tensor AND b.chunk = a.chunk
		JOIN (SELECT tensor, soup.slerp_coefficients(gram[1], gram[2], gram[4],
													 (params ->> 't')::float8) AS c
			  FROM stats) s ON s.tensor = a.tensor
		WHERE a.model_id = ids[1];
	ELSIF method = 'model_stock' THEN
		-- pass 1: the Gram matrix of the task vectors of each whole tensor;
		-- pass 2: base + (t / n) * sum(x_i - base), i.e. t * mean + (1 - t) * base
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH per_chunk AS (
			SELECT c.tensor, c.chunk,
				   soup.gram(array_agg(c.data ORDER BY u.ord),
							 (SELECT b.data FROM soup.chunks b
							  WHERE b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk)) AS gram
			FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
			JOIN soup.chunks c ON c.model_id = u.id
			JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
			WHERE t.dtype = ANY (floats)
			GROUP BY c.tensor, c.chunk),
		ratio AS (
			SELECT tensor,
				   soup.model_stock_ratio(soup.dd_sum(gram), cardinality(ids),
										  coalesce((params ->> 'clamp')::boolean, false))
				   / cardinality(ids) AS lambda
			FROM per_chunk GROUP BY tensor)
		SELECT new_id, c.tensor, c.chunk, soup.task_arithmetic(c.data, b.data, 1.0, r.lambda)
		FROM unnest(ids) AS u(id)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
		JOIN ratio r ON r.tensor = c.tensor
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method = 'ties' THEN
		-- pass 1: each model's magnitude threshold per tensor; pass 2: trim,
		-- elect the sign, average the agreeing entries, add to the base
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH thr AS MATERIALIZED (
			-- a radix selection over the tensor's chunks, read a few times:
			-- bounded memory, the aggregate soup.magnitude_threshold's value
			SELECT u.id AS model_id, t.name AS tensor,
				   soup._magnitude_threshold(u.id, base_id, t.name,
											 (params ->> 'density')::float8) AS threshold
			FROM unnest(ids) AS u(id)
			CROSS JOIN soup.tensors t
			WHERE t.model_id = ids[1] AND t.dtype = ANY (floats))
		SELECT new_id, c.tensor, c.chunk,
			   soup.ties_merge(soup.trim(c.data, b.data, thr.threshold), b.data, u.weight,
							   coalesce((params ->> 'lambda')::float8, 1))
		FROM unnest(ids, w) AS u(id, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
		JOIN thr ON thr.model_id = u.id AND thr.tensor = c.tensor
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method IN ('dare_linear', 'dare_ties') THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH parts AS (
			SELECT u.id, u.ord, u.weight, c.tensor, c.chunk, c.data, b.data AS base_data,
				   c.chunk::bigint * t.chunk_elems AS "offset"
			FROM unnest(ids, w) WITH ORDINALITY AS u(id, weight, ord)
			JOIN soup.chunks c ON c.model_id = u.id
			JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
			JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
			WHERE t.dtype = ANY (floats)),
		scales AS (
			-- "l1": rescale so that each tensor keeps its L1 norm (exact sums);
			-- otherwise no rows, and soup.dare scales by 1 / density
			SELECT p.id, p.tensor, CASE WHEN s[2] = 0 THEN NULL ELSE s[1] / s[2] END AS scale
			FROM (SELECT id, tensor,
						 soup.dd_sum(soup.dare_l1(data, base_data, (params ->> 'density')::float8,
												  (params ->> 'seed')::bigint, ord, tensor, "offset")) AS s
				  FROM parts WHERE params ? 'rescale' GROUP BY id, tensor) p)
		SELECT new_id, p.tensor, p.chunk,
			   CASE WHEN method = 'dare_ties' THEN
					soup.ties_merge(soup.dare(p.data, p.base_data, (params ->> 'density')::float8,
											  (params ->> 'seed')::bigint, p.ord, p.tensor, p."offset", s.scale),
									p.base_data, p.weight, coalesce((params ->> 'lambda')::float8, 1))
			   ELSE
					soup.delta_sum(soup.dare(p.data, p.base_data, (params ->> 'density')::float8,
											 (params ->> 'seed')::bigint, p.ord, p.tensor, p."offset", s.scale),
								   p.base_data, p.weight, coalesce((params ->> 'lambda')::float8, 1))
			   END
		FROM parts p LEFT JOIN scales s ON s.id = p.id AND s.tensor = p.tensor
		GROUP BY p.tensor, p.chunk
		HAVING count(*) = cardinality(ids);
	END IF;
	IF method NOT IN ('avg', 'lawa', 'ema', 'fisher', 'task_arithmetic') THEN
		GET DIAGNOSTICS n = ROW_COUNT;
	END IF;
	RETURN n;
END;
$$;

-------------------------------------------------------------------------------
-- Chunk layouts
-------------------------------------------------------------------------------

-- Write the chunks of every tensor in dst's catalog, cut as dst's catalog
-- says, from src's chunks of that tensor; returns the chunks written.
CREATE FUNCTION soup._rechunk_into(src bigint, dst bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_rechunk_into' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Store a model in chunks of chunk_elems elements, in place; returns the
-- number of chunks it now has.  Its data, header and everything else stay.
CREATE FUNCTION soup.rechunk(model text, chunk_elems int) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src bigint;
	tmp bigint;
	n bigint;
BEGIN
	IF model IS NULL OR chunk_elems IS NULL THEN
		RAISE EXCEPTION 'soup.rechunk: model and chunk_elems must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF chunk_elems < 1 OR chunk_elems > 33554432 THEN
		PERFORM soup._param_error(format('chunk_elems must be between 1 and 33554432, not %s',
										 chunk_elems), 'soup.rechunk');
	END IF;
	SELECT m.id INTO src FROM soup.models m WHERE m.name = model FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = 'undefined_object';
	END IF;
	-- the new layout goes into a scratch model, then replaces the old chunks
	INSERT INTO soup.models (name) VALUES (format('soup.rechunk %s', src)) RETURNING id INTO tmp;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT tmp, t.name, t.ordinal, t.dtype, t.shape, t.numel, rechunk.chunk_elems
	FROM soup.tensors t WHERE t.model_id = src;
	n := soup._rechunk_into(src, tmp);
	DELETE FROM soup.chunks WHERE model_id = src;
	UPDATE soup.tensors t SET chunk_elems = rechunk.chunk_elems WHERE t.model_id = src;
	UPDATE soup.chunks SET model_id = src WHERE model_id = tmp;
	DELETE FROM soup.models WHERE id = tmp;
	RETURN n;
END;
$$;

COMMENT ON FUNCTION soup.rechunk(text, int) IS
	'Store a model in chunks of another length (in place), e.g. to merge it by hand with GROUP BY';

-- Does model b store any tensor in another chunk length than model a?
CREATE FUNCTION soup._layout_differs(a bigint, b bigint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT EXISTS (SELECT 1 FROM soup.tensors x JOIN soup.tensors y ON y.name = x.name
				   WHERE x.model_id = a AND y.model_id = b AND x.chunk_elems <> y.chunk_elems);
$$;

-- A scratch copy of model src in the chunk layout of model ref, for the
-- merge that writes model new_id; the merge drops it before it commits.
CREATE FUNCTION soup._relayout_copy(src bigint, ref bigint, new_id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tmp bigint;
BEGIN
	INSERT INTO soup.models (name) VALUES (format('soup.merge %s: layout of %s', new_id, src))
	RETURNING id INTO tmp;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT tmp, s.name, s.ordinal, s.dtype, s.shape, s.numel, r.chunk_elems
	FROM soup.tensors s JOIN soup.tensors r ON r.model_id = ref AND r.name = s.name
	WHERE s.model_id = src;
	PERFORM soup._rechunk_into(src, tmp);
	RETURN tmp;
END;
$$;

-- Merges accept models stored in different chunk layouts
DROP FUNCTION soup._check_same_tensors(text, bigint, text, bigint, boolean);
-- Raise the error for the first tensor where model b differs from the
-- reference model a (names, shapes, dtypes unless same_dtype is false: a
-- Fisher may be stored in another float dtype, and the chunk layout unless
-- same_layout is false: soup.merge copies such models into one layout).
CREATE FUNCTION soup._check_same_tensors(a_name text, a bigint, b_name text, b bigint,
										 same_dtype boolean DEFAULT true,
										 same_layout boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	SELECT x.name AS a_tensor, y.name AS b_tensor, x.dtype AS a_dtype, y.dtype AS b_dtype,
		   x.shape AS a_shape, y.shape AS b_shape,
		   x.chunk_elems AS a_chunk, y.chunk_elems AS b_chunk
	INTO r
	FROM (SELECT * FROM soup.tensors WHERE model_id = a) x
	FULL JOIN (SELECT * FROM soup.tensors WHERE model_id = b) y ON x.name = y.name
	WHERE x.name IS NULL OR y.name IS NULL OR (same_dtype AND x.dtype <> y.dtype)
		OR x.shape <> y.shape OR (same_layout AND x.chunk_elems <> y.chunk_elems)
	ORDER BY coalesce(x.ordinal, 2147483647), y.ordinal
	LIMIT 1;
	IF NOT FOUND THEN
		RETURN;
	ELSIF r.b_tensor IS NULL THEN
		RAISE EXCEPTION 'model "%" has no tensor "%", which model "%" has', b_name, r.a_tensor, a_name
			USING ERRCODE = 'data_exception';
	ELSIF r.a_tensor IS NULL THEN
		RAISE EXCEPTION 'model "%" has a tensor "%" that model "%" lacks', b_name, r.b_tensor, a_name
			USING ERRCODE = 'data_exception';
	ELSIF same_dtype AND r.a_dtype <> r.b_dtype THEN
		RAISE EXCEPTION 'tensor "%" is % in model "%" but % in model "%"',
			r.a_tensor, r.a_dtype, a_name, r.b_dtype, b_name
			USING ERRCODE = 'datatype_mismatch';
	ELSIF r.a_shape <> r.b_shape THEN
		RAISE EXCEPTION 'tensor "%" has shape % in model "%" but % in model "%"',
			r.a_tensor, r.a_shape, a_name, r.b_shape, b_name
			USING ERRCODE = 'data_exception';
	ELSE
		RAISE EXCEPTION 'tensor "%" is stored in chunks of % elements in model "%" but % in model "%"',
			r.a_tensor, r.a_chunk, a_name, r.b_chunk, b_name
			USING ERRCODE = 'data_exception',
			HINT = 'soup.rechunk(model, chunk_elems) stores a model in another chunk layout.';
	END IF;
END;
$$;

-- soup.merge reports its progress
CREATE OR REPLACE FUNCTION soup.merge(target text, method text, models text[],
						   weights float8[] DEFAULT NULL, base text DEFAULT NULL,
						   params jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ids bigint[];
	base_id bigint;
	fishers text[];
	fisher_ids bigint[];
	new_id bigint;
	merged bigint;
	expected bigint;
	reporting boolean;
	relayout bigint[];
	copies bigint[] := '{}';
	old_id bigint;
	copy_id bigint;
BEGIN
	IF method = 'lawa' THEN
		IF models IS NOT NULL THEN
			PERFORM soup._param_error('method lawa picks its models from parameters "run" and "k"; pass NULL models');
		END IF;
		models := soup._lawa_models(coalesce(params, '{}'));
	END IF;
	PERFORM soup._check_merge_args(target, method, models, weights, base, params);
	ids := soup._model_ids(models);
	FOR i IN 2 .. cardinality(ids) LOOP
		PERFORM soup._check_same_tensors(models[1], ids[1], models[i], ids[i], same_layout => false);
	END LOOP;
	IF base IS NOT NULL THEN
		base_id := (soup._model_ids(ARRAY[base]))[1];
		PERFORM soup._check_same_tensors(models[1], ids[1], base, base_id, same_layout => false);
	END IF;
	IF method = 'fisher' THEN
		fishers := ARRAY(SELECT jsonb_array_elements_text(params -> 'fishers'));
		fisher_ids := soup._model_ids(fishers);
		FOR i IN 1 .. cardinality(ids) LOOP
			PERFORM soup._check_same_tensors(models[1], ids[1], fishers[i], fisher_ids[i], false,
											 same_layout => false);
		END LOOP;
	END IF;

	IF EXISTS (SELECT 1 FROM soup.models WHERE name = target) THEN
		IF coalesce((params ->> 'replace')::boolean, false) THEN
			DELETE FROM soup.models WHERE name = target;
		ELSE
			RAISE EXCEPTION 'model "%" already exists', target
				USING ERRCODE = 'duplicate_object',
				HINT = 'Pass params => ''{"replace": true}'' to overwrite it.';
		END IF;
	END IF;

	INSERT INTO soup.models (name, kind, base_model, metadata, recipe)
	SELECT target, 'merge', base, m.metadata,
		   jsonb_build_object('method', method, 'models', to_jsonb(models),
							  'model_ids', to_jsonb(ids),
							  'weights', to_jsonb(weights), 'base', base,
							  'params', params - 'replace')
	FROM soup.models m WHERE m.id = ids[1]
	RETURNING id INTO new_id;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT new_id, name, ordinal, dtype, shape, numel, chunk_elems
	FROM soup.tensors WHERE model_id = ids[1];
	-- the folder's other files (config, tokenizer, ...) come from the base
	-- model, or the first model without one, so the merge loads where they do
	INSERT INTO soup.model_files (model_id, name, bytes)
	SELECT new_id, f.name, f.bytes FROM soup.model_files f
	WHERE f.model_id = coalesce(base_id, ids[1]);
	IF FOUND THEN
		UPDATE soup.models m
		SET recipe = m.recipe || jsonb_build_object('files_from', coalesce(merge.base, merge.models[1]))
		WHERE m.id = new_id;
	END IF;

	-- inputs stored in another chunk layout than the first model are merged
	-- from copies in its layout, made in this transaction and dropped at the
	-- end (chunking never changes a result, so the bits are the same)
	relayout := ARRAY(SELECT DISTINCT x.id FROM unnest(ids || base_id || fisher_ids) x(id)
					  WHERE x.id IS NOT NULL AND soup._layout_differs(ids[1], x.id));
	SELECT soup._progress_begin(3, new_id,
								((1 + cardinality(relayout)) * coalesce(sum(n_chunks), 0))::bigint,
								((1 + cardinality(relayout))
								 * coalesce(sum(numel * soup._dtype_bytes(dtype)), 0))::bigint)
	INTO reporting FROM soup.tensors WHERE model_id = new_id;
	FOREACH old_id IN ARRAY relayout LOOP
		copy_id := soup._relayout_copy(old_id, ids[1], new_id);
		copies := copies || copy_id;
		ids := array_replace(ids, old_id, copy_id);
		base_id := CASE WHEN base_id = old_id THEN copy_id ELSE base_id END;
		fisher_ids := array_replace(fisher_ids, old_id, copy_id);
	END LOOP;
	PERFORM soup._copy_raw_tensors(new_id, ids || base_id);
	merged := soup._merge_chunks(new_id, method, ids, weights, base_id, fisher_ids, params);

	-- every float chunk of every model must have taken part
	SELECT coalesce(sum(n_chunks), 0) INTO expected
	FROM soup.tensors WHERE model_id = new_id AND dtype IN ('f32', 'f64', 'f16', 'bf16');
	IF merged <> expected THEN
		RAISE EXCEPTION 'soup.merge: % of % chunks found in every model', merged, expected
			USING ERRCODE = 'data_corrupted',
			HINT = 'A source model has chunks missing; check it with soup.model_info.';
	END IF;
	DELETE FROM soup.models WHERE id = ANY (copies);
	IF reporting THEN
		PERFORM soup._progress_end();
	END IF;
	RETURN new_id;
END;
$$;

-------------------------------------------------------------------------------
-- Model folders: the files beside the weights
-------------------------------------------------------------------------------

-- A Hugging Face model folder holds config.json, tokenizer files, a README
-- and so on beside its weights.  They are kept with the model, bytes as they
-- were, so that an exported folder loads where the imported one did.  Files
-- are small (the limit is 64 MiB each); weights belong in soup.chunks.
CREATE FUNCTION soup._file_json(name text, bytes bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF name !~ '[.]json$' THEN
		RETURN NULL;
	END IF;
	RETURN convert_from(bytes, 'UTF8')::jsonb;
EXCEPTION WHEN data_exception OR character_not_in_repertoire OR untranslatable_character THEN
	RETURN NULL;				-- not JSON (or not UTF-8): the bytes stay, json is NULL
END;
$$;

CREATE TABLE soup.model_files (
	model_id	bigint NOT NULL REFERENCES soup.models (id) ON DELETE CASCADE,
	name		text NOT NULL,
	bytes		bytea NOT NULL,
	json		jsonb GENERATED ALWAYS AS (soup._file_json(name, bytes)) STORED,
	PRIMARY KEY (model_id, name),
	-- a plain file name: exports write it inside the target folder
	CONSTRAINT model_files_name_check CHECK (
		name <> '' AND name NOT IN ('.', '..') AND strpos(name, '/') = 0
		AND octet_length(name) <= 255),
	-- the weights are the model itself, written by the export
	CONSTRAINT model_files_not_weights CHECK (
		name NOT IN ('model.safetensors', 'model.safetensors.index.json')),
	CONSTRAINT model_files_size_check CHECK (octet_length(bytes) <= 64 * 1024 * 1024)
);
COMMENT ON TABLE soup.model_files IS
	'The files of a model folder beside its weights (config.json, tokenizer files, ...), as they were';
SELECT pg_catalog.pg_extension_config_dump('soup.model_files', '');

-- By model name; config is config.json as jsonb, what people query first.
CREATE VIEW soup.files AS
	SELECT m.name AS model, f.name, octet_length(f.bytes) AS size, f.json, f.bytes
	FROM soup.model_files f JOIN soup.models m ON m.id = f.model_id;
COMMENT ON VIEW soup.files IS 'The files of each model folder; json is set for files that parse as JSON';

CREATE VIEW soup.configs AS
	SELECT m.name AS model, f.json AS config
	FROM soup.model_files f JOIN soup.models m ON m.id = f.model_id
	WHERE f.name = 'config.json';
COMMENT ON VIEW soup.configs IS 'config.json of each model folder, as jsonb';
