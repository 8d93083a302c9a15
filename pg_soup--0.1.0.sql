-- pg_soup 0.1.0: checkpoints as data, merged with SQL aggregates.
--
-- Every object lives in schema soup and every reference in this script is
-- schema-qualified, so a caller's search_path cannot redirect it.

\echo Use "CREATE EXTENSION pg_soup" to load this file. \quit

-------------------------------------------------------------------------------
-- The tensor type
-------------------------------------------------------------------------------

CREATE TYPE soup.tensor;

CREATE FUNCTION soup.tensor_in(cstring) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_out(soup.tensor) RETURNS cstring
	AS 'MODULE_PATHNAME', 'soup_tensor_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_recv(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_send(soup.tensor) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_tensor_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Float data does not compress: EXTERNAL keeps it out of line, uncompressed.
CREATE TYPE soup.tensor (
	INPUT = soup.tensor_in,
	OUTPUT = soup.tensor_out,
	RECEIVE = soup.tensor_recv,
	SEND = soup.tensor_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = external
);

COMMENT ON TYPE soup.tensor IS
	'A tensor (or one chunk of a stored tensor): dtype, shape and packed little-endian data';

-- Accessors

CREATE FUNCTION soup.dtype(soup.tensor) RETURNS text
	AS 'MODULE_PATHNAME', 'soup_tensor_dtype' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.numel(soup.tensor) RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_tensor_numel' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.shape(soup.tensor) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'soup_tensor_shape' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.bytes(soup.tensor) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_tensor_bytes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_from_bytes(data bytea, dtype text, shape bigint[] DEFAULT NULL)
	RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_from_bytes' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION soup.tensor(float8[], dtype text) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_from_array_dtype' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.astype(soup.tensor, dtype text) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_astype' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.norm(soup.tensor) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_tensor_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.dot(soup.tensor, soup.tensor) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_tensor_dot' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Casts to and from float arrays (the array's shape becomes the tensor's)

CREATE FUNCTION soup.tensor(float4[]) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_from_float4_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor(float8[]) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_from_float8_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.float4_array(soup.tensor) RETURNS float4[]
	AS 'MODULE_PATHNAME', 'soup_tensor_to_float4_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.float8_array(soup.tensor) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'soup_tensor_to_float8_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (float4[] AS soup.tensor) WITH FUNCTION soup.tensor(float4[]) AS ASSIGNMENT;
CREATE CAST (float8[] AS soup.tensor) WITH FUNCTION soup.tensor(float8[]) AS ASSIGNMENT;
CREATE CAST (soup.tensor AS float4[]) WITH FUNCTION soup.float4_array(soup.tensor);
CREATE CAST (soup.tensor AS float8[]) WITH FUNCTION soup.float8_array(soup.tensor);

-- Operators: elementwise arithmetic in float64, rounded into the dtype

CREATE FUNCTION soup.tensor_add(soup.tensor, soup.tensor) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_sub(soup.tensor, soup.tensor) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_mul(soup.tensor, float8) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_mul_scalar' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_mul(float8, soup.tensor) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_scalar_mul_tensor' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_eq(soup.tensor, soup.tensor) RETURNS boolean
	AS 'MODULE_PATHNAME', 'soup_tensor_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.tensor_ne(soup.tensor, soup.tensor) RETURNS boolean
	AS 'MODULE_PATHNAME', 'soup_tensor_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR soup.+ (LEFTARG = soup.tensor, RIGHTARG = soup.tensor,
	FUNCTION = soup.tensor_add, COMMUTATOR = OPERATOR(soup.+));
CREATE OPERATOR soup.- (LEFTARG = soup.tensor, RIGHTARG = soup.tensor,
	FUNCTION = soup.tensor_sub);
CREATE OPERATOR soup.* (LEFTARG = soup.tensor, RIGHTARG = float8,
	FUNCTION = soup.tensor_mul, COMMUTATOR = OPERATOR(soup.*));
CREATE OPERATOR soup.* (LEFTARG = float8, RIGHTARG = soup.tensor,
	FUNCTION = soup.tensor_mul, COMMUTATOR = OPERATOR(soup.*));
-- "identical": same dtype, shape and bytes
CREATE OPERATOR soup.= (LEFTARG = soup.tensor, RIGHTARG = soup.tensor,
	FUNCTION = soup.tensor_eq, COMMUTATOR = OPERATOR(soup.=),
	NEGATOR = OPERATOR(soup.<>));
CREATE OPERATOR soup.<> (LEFTARG = soup.tensor, RIGHTARG = soup.tensor,
	FUNCTION = soup.tensor_ne, COMMUTATOR = OPERATOR(soup.<>),
	NEGATOR = OPERATOR(soup.=));

-------------------------------------------------------------------------------
-- Aggregates
-------------------------------------------------------------------------------

CREATE FUNCTION soup.avg_weights_transfn(internal, soup.tensor) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_transfn(internal, soup.tensor, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_w_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_avg_serialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_deserialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_avg_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- SSPACE tells the planner a state is large (a chunk of float64), so it
-- sorts rather than hashes when many groups would be open at once.
CREATE AGGREGATE soup.avg_weights(soup.tensor) (
	SFUNC = soup.avg_weights_transfn,
	STYPE = internal,
	SSPACE = 8388608,
	FINALFUNC = soup.avg_weights_finalfn,
	COMBINEFUNC = soup.avg_weights_combinefn,
	SERIALFUNC = soup.avg_weights_serialfn,
	DESERIALFUNC = soup.avg_weights_deserialfn,
	PARALLEL = SAFE
);

CREATE AGGREGATE soup.avg_weights(soup.tensor, weight float8) (
	SFUNC = soup.avg_weights_transfn,
	STYPE = internal,
	SSPACE = 8388608,
	FINALFUNC = soup.avg_weights_finalfn,
	COMBINEFUNC = soup.avg_weights_combinefn,
	SERIALFUNC = soup.avg_weights_serialfn,
	DESERIALFUNC = soup.avg_weights_deserialfn,
	PARALLEL = SAFE
);

COMMENT ON AGGREGATE soup.avg_weights(soup.tensor) IS
	'Uniform average of tensors (model soup, SWA, LAWA), accumulated in float64';
COMMENT ON AGGREGATE soup.avg_weights(soup.tensor, float8) IS
	'Weighted average sum(w x) / sum(w) of tensors, accumulated in float64';

-------------------------------------------------------------------------------
-- Catalog
-------------------------------------------------------------------------------

CREATE TABLE soup.models (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	kind		text NOT NULL DEFAULT 'checkpoint'
				CHECK (kind IN ('checkpoint', 'merge', 'fisher')),
	run			text,
	step		bigint,
	base_model	text,
	recipe		jsonb,
	metadata	jsonb,
	source		jsonb,
	header		bytea,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX models_run_step_idx ON soup.models (run, step);

COMMENT ON TABLE soup.models IS 'One row per stored model: checkpoints, merges and Fisher diagonals';
COMMENT ON COLUMN soup.models.recipe IS 'How a merged model was made: method, sources, weights, parameters';
COMMENT ON COLUMN soup.models.metadata IS 'The safetensors __metadata__ object';
COMMENT ON COLUMN soup.models.header IS 'The imported header bytes, written back when still exact';

CREATE TABLE soup.tensors (
	model_id	bigint NOT NULL REFERENCES soup.models (id) ON DELETE CASCADE,
	name		text NOT NULL,
	ordinal		int NOT NULL,
	dtype		text NOT NULL,
	shape		bigint[] NOT NULL,
	numel		bigint NOT NULL CHECK (numel >= 0),
	chunk_elems	int NOT NULL CHECK (chunk_elems > 0),
	n_chunks	int GENERATED ALWAYS AS (((numel + chunk_elems - 1) / chunk_elems)::int) STORED,
	PRIMARY KEY (model_id, name),
	UNIQUE (model_id, ordinal)
);

COMMENT ON TABLE soup.tensors IS 'The tensors of each model, in file order';

CREATE TABLE soup.chunks (
	model_id	bigint NOT NULL,
	tensor		text NOT NULL,
	chunk		int NOT NULL CHECK (chunk >= 0),
	data		soup.tensor NOT NULL,
	PRIMARY KEY (model_id, tensor, chunk),
	FOREIGN KEY (model_id, tensor) REFERENCES soup.tensors (model_id, name) ON DELETE CASCADE
);
ALTER TABLE soup.chunks ALTER COLUMN data SET STORAGE EXTERNAL;

COMMENT ON TABLE soup.chunks IS 'Tensor data: chunk k of a tensor holds elements [k*chunk_elems, (k+1)*chunk_elems)';

-- pg_dump must dump the catalog's rows: they are the users' data
SELECT pg_catalog.pg_extension_config_dump('soup.models', '');
SELECT pg_catalog.pg_extension_config_dump('soup.models_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('soup.tensors', '');
SELECT pg_catalog.pg_extension_config_dump('soup.chunks', '');

CREATE VIEW soup.weights AS
	SELECT m.name AS model, c.tensor, c.chunk, c.data
	FROM soup.chunks c JOIN soup.models m ON m.id = c.model_id;

COMMENT ON VIEW soup.weights IS
	'Chunks by model name: merge with SELECT tensor, chunk, agg(data) ... GROUP BY tensor, chunk';

CREATE VIEW soup.model_info AS
	SELECT m.id, m.name, m.kind, m.run, m.step,
		   pg_catalog.count(t.name) AS tensors,
		   coalesce(pg_catalog.sum(t.numel), 0)::bigint AS elements,
		   coalesce(pg_catalog.sum(t.numel * CASE
				WHEN t.dtype IN ('f64', 'i64', 'u64', 'c64') THEN 8
				WHEN t.dtype IN ('f32', 'i32', 'u32') THEN 4
				WHEN t.dtype IN ('f16', 'bf16', 'i16', 'u16') THEN 2
				ELSE 1 END), 0)::bigint AS data_bytes,
		   m.created_at
	FROM soup.models m LEFT JOIN soup.tensors t ON t.model_id = m.id
	GROUP BY m.id;

-------------------------------------------------------------------------------
-- Import and export (server files: as COPY, superuser or pg_read/write_server_files)
-------------------------------------------------------------------------------

CREATE FUNCTION soup.import_safetensors(path text, model text, run text DEFAULT NULL,
										step bigint DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_import_safetensors' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION soup.export_safetensors(model text, path text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_export_safetensors' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION soup.safetensors(model text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_safetensors_bytea' LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- The C functions check the roles themselves; PUBLIC may call them so that
-- members of pg_read_server_files need no extra grant, as with COPY.

-------------------------------------------------------------------------------
-- The merge driver
-------------------------------------------------------------------------------

-- Raise the error for the first tensor where model b differs from the
-- reference model a (names, dtypes, shapes, chunk layout).
CREATE FUNCTION soup._check_same_tensors(a_name text, a bigint, b_name text, b bigint)
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
	WHERE x.name IS NULL OR y.name IS NULL OR x.dtype <> y.dtype
		OR x.shape <> y.shape OR x.chunk_elems <> y.chunk_elems
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
	ELSIF r.a_dtype <> r.b_dtype THEN
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
			HINT = 'Import the models with the same soup.chunk_elems.';
	END IF;
END;
$$;

-- Resolve model names to ids in the order given, locking them against a
-- concurrent delete; the first unknown name is an error.
CREATE FUNCTION soup._model_ids(models text[]) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ids bigint[];
	missing text;
BEGIN
	SELECT u.name INTO missing
	FROM unnest(models) WITH ORDINALITY u(name, ord)
	WHERE NOT EXISTS (SELECT 1 FROM soup.models m WHERE m.name = u.name)
	ORDER BY u.ord LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', missing USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM 1 FROM soup.models m WHERE m.name = ANY (models) ORDER BY m.id FOR SHARE;
	SELECT array_agg(m.id ORDER BY u.ord) INTO ids
	FROM unnest(models) WITH ORDINALITY u(name, ord) JOIN soup.models m ON m.name = u.name;
	RETURN ids;
END;
$$;

CREATE FUNCTION soup._check_merge_args(target text, method text, models text[],
									   weights float8[], base text, params jsonb)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad text;
BEGIN
	IF target IS NULL OR method IS NULL OR models IS NULL OR params IS NULL THEN
		RAISE EXCEPTION 'soup.merge: target, method, models and params must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF method NOT IN ('avg') THEN
		RAISE EXCEPTION 'soup.merge: unknown method "%"', method
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Methods: avg.';
	END IF;
	IF cardinality(models) = 0 OR array_ndims(models) <> 1 THEN
		RAISE EXCEPTION 'soup.merge: models must list at least one model'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_position(models, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'soup.merge: models must not contain null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT m INTO bad FROM unnest(models) m GROUP BY m HAVING count(*) > 1 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'soup.merge: model "%" is listed twice', bad
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give it a larger weight instead.';
	END IF;
	IF target = ANY (models) THEN
		RAISE EXCEPTION 'soup.merge: target "%" is also a source', target
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF weights IS NOT NULL THEN
		IF cardinality(weights) <> cardinality(models) OR array_ndims(weights) <> 1 THEN
			RAISE EXCEPTION 'soup.merge: % weights for % models', cardinality(weights), cardinality(models)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF array_position(weights, NULL) IS NOT NULL
			OR EXISTS (SELECT 1 FROM unnest(weights) w WHERE w IN ('NaN', 'Infinity', '-Infinity')) THEN
			RAISE EXCEPTION 'soup.merge: weights must be finite numbers'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF (SELECT sum(w) FROM unnest(weights) w) = 0 THEN
			RAISE EXCEPTION 'soup.merge: the weights sum to zero'
				USING ERRCODE = 'division_by_zero';
		END IF;
	END IF;
	IF base IS NOT NULL THEN
		RAISE EXCEPTION 'soup.merge: method % takes no base model', method
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_typeof(params) <> 'object' THEN
		RAISE EXCEPTION 'soup.merge: params must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT k INTO bad FROM jsonb_object_keys(params) k WHERE k NOT IN ('replace') LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'soup.merge: unknown parameter "%" for method %', bad, method
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF params ? 'replace' AND jsonb_typeof(params -> 'replace') <> 'boolean' THEN
		RAISE EXCEPTION 'soup.merge: parameter "replace" must be true or false'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END;
$$;

-- Tensors that are not floats (step counters, masks, ...) are copied when
-- every model holds the same bytes, and are an error otherwise.
CREATE FUNCTION soup._copy_raw_tensors(new_id bigint, ids bigint[], models text[])
RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad record;
BEGIN
	SELECT c.tensor, t.dtype INTO bad
	FROM soup.chunks c
	JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor
	WHERE c.model_id = ANY (ids) AND t.dtype NOT IN ('f32', 'f64', 'f16', 'bf16')
	GROUP BY c.tensor, t.dtype, c.chunk
	HAVING count(DISTINCT soup.bytes(c.data)) > 1
	LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'tensor "%" (dtype %) differs between the models', bad.tensor, bad.dtype
			USING ERRCODE = 'data_exception',
			DETAIL = 'Only f32, f64, f16 and bf16 tensors are merged; others must be identical.';
	END IF;
	INSERT INTO soup.chunks (model_id, tensor, chunk, data)
	SELECT new_id, c.tensor, c.chunk, c.data
	FROM soup.chunks c JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor
	WHERE c.model_id = ids[1] AND t.dtype NOT IN ('f32', 'f64', 'f16', 'bf16');
END;
$$;

CREATE FUNCTION soup._merge_avg(new_id bigint, ids bigint[], weights float8[])
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	INSERT INTO soup.chunks (model_id, tensor, chunk, data)
	SELECT new_id, c.tensor, c.chunk, soup.avg_weights(c.data, w.weight)
	FROM unnest(ids, coalesce(weights, array_fill(1.0::float8, ARRAY[cardinality(ids)])))
		AS w(id, weight)
	JOIN soup.chunks c ON c.model_id = w.id
	JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
	WHERE t.dtype IN ('f32', 'f64', 'f16', 'bf16')
	GROUP BY c.tensor, c.chunk
	HAVING count(*) = cardinality(ids);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;

CREATE FUNCTION soup.merge(target text, method text, models text[],
						   weights float8[] DEFAULT NULL, base text DEFAULT NULL,
						   params jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ids bigint[];
	new_id bigint;
	merged bigint;
	expected bigint;
BEGIN
	PERFORM soup._check_merge_args(target, method, models, weights, base, params);
	ids := soup._model_ids(models);
	FOR i IN 2 .. cardinality(ids) LOOP
		PERFORM soup._check_same_tensors(models[1], ids[1], models[i], ids[i]);
	END LOOP;

	IF EXISTS (SELECT 1 FROM soup.models WHERE name = target) THEN
		IF coalesce((params ->> 'replace')::boolean, false) THEN
			DELETE FROM soup.models WHERE name = target;
		ELSE
			RAISE EXCEPTION 'model "%" already exists', target
				USING ERRCODE = 'duplicate_object',
				HINT = 'Pass params => ''{"replace": true}'' to overwrite it.';
		END IF;
	END IF;

	INSERT INTO soup.models (name, kind, metadata, recipe)
	SELECT target, 'merge', m.metadata,
		   jsonb_build_object('method', method, 'models', to_jsonb(models),
							  'weights', to_jsonb(weights), 'base', base,
							  'params', params - 'replace')
	FROM soup.models m WHERE m.id = ids[1]
	RETURNING id INTO new_id;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT new_id, name, ordinal, dtype, shape, numel, chunk_elems
	FROM soup.tensors WHERE model_id = ids[1];

	PERFORM soup._copy_raw_tensors(new_id, ids, models);
	merged := soup._merge_avg(new_id, ids, weights);

	-- every float chunk of every model must have taken part
	SELECT coalesce(sum(n_chunks), 0) INTO expected
	FROM soup.tensors WHERE model_id = new_id AND dtype IN ('f32', 'f64', 'f16', 'bf16');
	IF merged <> expected THEN
		RAISE EXCEPTION 'soup.merge: % of % chunks found in every model', merged, expected
			USING ERRCODE = 'data_corrupted',
			HINT = 'A source model has chunks missing; check it with soup.model_info.';
	END IF;
	RETURN new_id;
END;
$$;

COMMENT ON FUNCTION soup.merge(text, text, text[], float8[], text, jsonb) IS
	'Merge models into a new model in one transaction and record its recipe';
