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
-- The array type soup.tensor[] is made implicitly and so is not a member of
-- the extension; make it one, so that postgres_fdw ships expressions such as
-- soup.gram(array_agg(data)) to servers that list pg_soup in 'extensions'.
ALTER EXTENSION pg_soup ADD TYPE soup.tensor[];


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

-- One state type for every elementwise merge: shared combine/serial/deserial.
CREATE FUNCTION soup.mstate_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_mstate_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.mstate_serial(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_mstate_serial' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.mstate_deserial(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_mstate_deserial' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION soup.avg_weights_transfn(internal, soup.tensor) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_transfn(internal, soup.tensor, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_avg_w_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.avg_weights_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_avg_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- SSPACE tells the planner a state is large (chunks of float64 pairs), so it
-- sorts rather than hashes when many groups would be open at once.
CREATE AGGREGATE soup.avg_weights(soup.tensor) (
	SFUNC = soup.avg_weights_transfn,
	STYPE = internal,
	SSPACE = 4194304,
	FINALFUNC = soup.avg_weights_finalfn,
	COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial,
	DESERIALFUNC = soup.mstate_deserial,
	PARALLEL = SAFE
);

CREATE AGGREGATE soup.avg_weights(soup.tensor, weight float8) (
	SFUNC = soup.avg_weights_transfn,
	STYPE = internal,
	SSPACE = 4194304,
	FINALFUNC = soup.avg_weights_finalfn,
	COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial,
	DESERIALFUNC = soup.mstate_deserial,
	PARALLEL = SAFE
);

COMMENT ON AGGREGATE soup.avg_weights(soup.tensor) IS
	'Uniform average of tensors (model soup, SWA, LAWA), accumulated in float64';
COMMENT ON AGGREGATE soup.avg_weights(soup.tensor, float8) IS
	'Weighted average sum(w x) / sum(w) of tensors, accumulated in float64';

-- Fisher merging: sum(w F' x) / sum(w F'), F' = max(F, floor), elementwise
CREATE FUNCTION soup.fisher_merge_transfn(internal, soup.tensor, soup.tensor) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_fisher_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.fisher_merge_transfn(internal, soup.tensor, soup.tensor, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_fisher_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.fisher_merge_transfn(internal, soup.tensor, soup.tensor, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_fisher_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.fisher_merge_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_fisher_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE soup.fisher_merge(data soup.tensor, fisher soup.tensor) (
	SFUNC = soup.fisher_merge_transfn, STYPE = internal, SSPACE = 8388608,
	FINALFUNC = soup.fisher_merge_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);
CREATE AGGREGATE soup.fisher_merge(data soup.tensor, fisher soup.tensor, weight float8) (
	SFUNC = soup.fisher_merge_transfn, STYPE = internal, SSPACE = 8388608,
	FINALFUNC = soup.fisher_merge_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);
CREATE AGGREGATE soup.fisher_merge(data soup.tensor, fisher soup.tensor, weight float8, floor float8) (
	SFUNC = soup.fisher_merge_transfn, STYPE = internal, SSPACE = 8388608,
	FINALFUNC = soup.fisher_merge_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);

-- Task arithmetic: base + lambda * sum(w (x - base)); each row carries the base chunk
CREATE FUNCTION soup.task_arithmetic_transfn(internal, soup.tensor, soup.tensor, float8, float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_task_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.task_arithmetic_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_task_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.task_arithmetic(data soup.tensor, base soup.tensor, weight float8, lambda float8) (
	SFUNC = soup.task_arithmetic_transfn, STYPE = internal, SSPACE = 5242880,
	FINALFUNC = soup.task_arithmetic_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);

-- EMA in the order of the call's ORDER BY; no combine: order is the point
CREATE FUNCTION soup.ema_transfn(internal, soup.tensor, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_ema_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.ema_transfn(internal, soup.tensor, float8, float8, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_ema_warmup_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.ema_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_ema_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.ema(data soup.tensor, decay float8) (
	SFUNC = soup.ema_transfn, STYPE = internal, SSPACE = 4194304,
	FINALFUNC = soup.ema_finalfn, PARALLEL = SAFE);
CREATE AGGREGATE soup.ema(data soup.tensor, decay float8, step float8, gamma float8, power float8) (
	SFUNC = soup.ema_transfn, STYPE = internal, SSPACE = 4194304,
	FINALFUNC = soup.ema_finalfn, PARALLEL = SAFE);
CREATE FUNCTION soup.ema_decay(decay float8, k float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_ema_decay' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Whole-tensor statistics for the angle-based merges (SLERP, Model Stock)
CREATE FUNCTION soup.gram(tensors soup.tensor[], base soup.tensor DEFAULT NULL) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'soup_gram' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION soup.gram(soup.tensor[], soup.tensor) IS
	'Dot products of (tensors[i] - base) as n*n double-double pairs; sum them over chunks with soup.dd_sum';
CREATE FUNCTION soup.dd_sum_transfn(internal, float8[]) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_dd_sum_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.dd_sum_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_dd_sum_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.dd_sum_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_dd_sum_serialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.dd_sum_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_dd_sum_deserialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.dd_sum_finalfn(internal) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'soup_dd_sum_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.dd_sum(float8[]) (
	SFUNC = soup.dd_sum_transfn, STYPE = internal, FINALFUNC = soup.dd_sum_finalfn,
	COMBINEFUNC = soup.dd_sum_combinefn, SERIALFUNC = soup.dd_sum_serialfn,
	DESERIALFUNC = soup.dd_sum_deserialfn, PARALLEL = SAFE);
COMMENT ON AGGREGATE soup.dd_sum(float8[]) IS
	'Exact sum of arrays of double-double (hi, lo) pairs, each rounded once to float8';
CREATE FUNCTION soup.lincomb(a soup.tensor, wa float8, b soup.tensor, wb float8) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_tensor_lincomb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- SLERP coefficients (s0, s1) for two tensors with squared norms aa, bb and
-- dot product ab: linear interpolation when |cos| > 0.9995 or a norm is 0.
CREATE FUNCTION soup.slerp_coefficients(aa float8, ab float8, bb float8, t float8)
RETURNS float8[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c float8;
	theta float8;
BEGIN
	IF aa = 0 OR bb = 0 THEN
		RETURN ARRAY[1 - t, t];
	END IF;
	c := greatest(-1.0, least(1.0, ab / sqrt(aa * bb)));
	IF abs(c) > 0.9995 THEN
		RETURN ARRAY[1 - t, t];
	END IF;
	theta := acos(c);
	RETURN ARRAY[sin((1 - t) * theta) / sin(theta), sin(t * theta) / sin(theta)];
END;
$$;

-- Model Stock's interpolation ratio from the Gram matrix g (n x n, row-major)
-- of task vectors: cos = mean over pairs i < j of g_ij / sqrt(g_ii g_jj)
-- (a pair with a zero vector counts as cos 0), t = n cos / (1 + (n - 1) cos).
-- As in the reference t is not clamped unless clamp is true (to [0, 1]).
CREATE FUNCTION soup.model_stock_ratio(g float8[], n int, clamp boolean DEFAULT false)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c float8 := 0;
	t float8;
BEGIN
	IF n < 2 OR cardinality(g) <> n * n THEN
		RAISE EXCEPTION 'soup.model_stock_ratio: need n >= 2 and an n x n matrix'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR i IN 0 .. n - 2 LOOP
		FOR j IN i + 1 .. n - 1 LOOP
			IF g[i * n + i + 1] > 0 AND g[j * n + j + 1] > 0 THEN
				c := c + g[i * n + j + 1] / sqrt(g[i * n + i + 1] * g[j * n + j + 1]);
			END IF;
		END LOOP;
	END LOOP;
	c := c / (n * (n - 1) / 2);
	IF 1 + (n - 1) * c = 0 THEN
		RAISE EXCEPTION 'soup.model_stock_ratio: mean cosine % makes the ratio infinite', c
			USING ERRCODE = 'division_by_zero';
	END IF;
	t := n * c / (1 + (n - 1) * c);
	IF clamp THEN
		t := greatest(0.0, least(1.0, t));
	END IF;
	RETURN t;
END;
$$;

-- Sparsifying merges: TIES and DARE
CREATE FUNCTION soup.magnitude_threshold_transfn(internal, soup.tensor, soup.tensor, float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_threshold_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.magnitude_threshold_finalfn(internal) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_threshold_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.magnitude_threshold(data soup.tensor, base soup.tensor, density float8) (
	SFUNC = soup.magnitude_threshold_transfn, STYPE = internal,
	FINALFUNC = soup.magnitude_threshold_finalfn, PARALLEL = SAFE);
COMMENT ON AGGREGATE soup.magnitude_threshold(soup.tensor, soup.tensor, float8) IS
	'The k-th largest |data - base| over all chunks of a tensor, k = floor(density * numel); +Infinity when k = 0';
CREATE FUNCTION soup.trim(data soup.tensor, base soup.tensor, threshold float8) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_trim_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.dare(data soup.tensor, base soup.tensor, density float8, seed bigint,
						  model_key bigint, tensor text, "offset" bigint, scale float8 DEFAULT NULL)
	RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_dare_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.dare_l1(data soup.tensor, base soup.tensor, density float8, seed bigint,
							 model_key bigint, tensor text, "offset" bigint)
	RETURNS float8[]
	AS 'MODULE_PATHNAME', 'soup_dare_l1' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.ties_merge_transfn(internal, soup.tensor, soup.tensor, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_ties_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.ties_merge_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_ties_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.ties_merge(tau soup.tensor, base soup.tensor, weight float8, lambda float8) (
	SFUNC = soup.ties_merge_transfn, STYPE = internal, SSPACE = 17825792,
	FINALFUNC = soup.ties_merge_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);
CREATE FUNCTION soup.delta_sum_transfn(internal, soup.tensor, soup.tensor, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_delta_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.delta_sum_finalfn(internal) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_task_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.delta_sum(tau soup.tensor, base soup.tensor, weight float8, lambda float8) (
	SFUNC = soup.delta_sum_transfn, STYPE = internal, SSPACE = 5242880,
	FINALFUNC = soup.delta_sum_finalfn, COMBINEFUNC = soup.mstate_combine,
	SERIALFUNC = soup.mstate_serial, DESERIALFUNC = soup.mstate_deserial, PARALLEL = SAFE);

COMMENT ON AGGREGATE soup.ema(soup.tensor, float8) IS
	'Exponential moving average e = d e + (1 - d) x in the ORDER BY order, the first row copied';
COMMENT ON AGGREGATE soup.ema(soup.tensor, float8, float8, float8, float8) IS
	'EMA with timm-style warmup: d_t = min(d, 1 - (1 + step / gamma)^(-power))';

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
-- Merges group by (tensor, chunk): with the joint number of distinct pairs
-- the planner counts the groups right, and with the aggregates' SSPACE it
-- then streams one group at a time (sort) instead of keeping every group's
-- state in a hash table.
CREATE STATISTICS soup.chunks_groups (ndistinct) ON tensor, chunk FROM soup.chunks;

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
-- The length prefix and header soup.export_safetensors would write: clients
-- that stream the chunks over COPY write the same file with it.
CREATE FUNCTION soup.safetensors_header(model text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_safetensors_header' LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- The C functions check the roles themselves; PUBLIC may call them so that
-- members of pg_read_server_files need no extra grant, as with COPY.

-------------------------------------------------------------------------------
-- The merge driver
-------------------------------------------------------------------------------


-- Raise the error for the first tensor where model b differs from the
-- reference model a (names, shapes, chunk layout, and dtypes unless
-- same_dtype is false: a Fisher may be stored in another float dtype).
CREATE FUNCTION soup._check_same_tensors(a_name text, a bigint, b_name text, b bigint,
										 same_dtype boolean DEFAULT true)
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

-- The parameters each method takes (besides "replace").
CREATE FUNCTION soup._method_params(method text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT CASE method
		WHEN 'avg' THEN ARRAY['replace']
		WHEN 'lawa' THEN ARRAY['replace', 'run', 'k']
		WHEN 'ema' THEN ARRAY['replace', 'decay']
		WHEN 'fisher' THEN ARRAY['replace', 'fishers', 'floor', 'normalize']
		WHEN 'task_arithmetic' THEN ARRAY['replace', 'lambda']
		WHEN 'slerp' THEN ARRAY['replace', 't']
		WHEN 'model_stock' THEN ARRAY['replace', 'clamp']
		WHEN 'ties' THEN ARRAY['replace', 'density', 'lambda']
		WHEN 'dare_linear' THEN ARRAY['replace', 'density', 'seed', 'lambda', 'rescale']
		WHEN 'dare_ties' THEN ARRAY['replace', 'density', 'seed', 'lambda', 'rescale']
	END;
$$;

CREATE FUNCTION soup._param_error(msg text, fname text DEFAULT 'soup.merge') RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION '%: %', fname, msg USING ERRCODE = 'invalid_parameter_value';
END;
$$;

-- A numeric parameter: its value, or dflt when absent; an error unless a
-- finite number within [lo, hi].
CREATE FUNCTION soup._num_param(params jsonb, key text, dflt float8, lo float8, hi float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v float8;
BEGIN
	IF NOT params ? key THEN
		IF dflt IS NULL THEN
			PERFORM soup._param_error(format('parameter "%s" is required', key));
		END IF;
		RETURN dflt;
	END IF;
	IF jsonb_typeof(params -> key) <> 'number' THEN
		PERFORM soup._param_error(format('parameter "%s" must be a number', key));
	END IF;
	v := (params ->> key)::float8;
	IF v < lo OR v > hi THEN
		PERFORM soup._param_error(format('parameter "%s" must be between %s and %s, not %s', key, lo, hi, v));
	END IF;
	RETURN v;
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
	IF soup._method_params(method) IS NULL THEN
		RAISE EXCEPTION 'soup.merge: unknown method "%"', method
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Methods: avg, lawa, ema, fisher, task_arithmetic, ties, dare_linear, dare_ties, slerp, model_stock.';
	END IF;
	IF cardinality(models) = 0 OR array_ndims(models) <> 1 THEN
		PERFORM soup._param_error('models must list at least one model');
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
	IF target = ANY (models) OR target = base THEN
		PERFORM soup._param_error(format('target "%s" is also a source', target));
	END IF;
	IF weights IS NOT NULL THEN
		IF method IN ('ema', 'lawa', 'slerp', 'model_stock') THEN
			PERFORM soup._param_error(format('method %s takes no weights', method));
		END IF;
		IF cardinality(weights) <> cardinality(models) OR array_ndims(weights) <> 1 THEN
			PERFORM soup._param_error(format('%s weights for %s models', cardinality(weights), cardinality(models)));
		END IF;
		IF array_position(weights, NULL) IS NOT NULL
			OR EXISTS (SELECT 1 FROM unnest(weights) w WHERE w IN ('NaN', 'Infinity', '-Infinity')) THEN
			PERFORM soup._param_error('weights must be finite numbers');
		END IF;
		IF method NOT IN ('task_arithmetic', 'ties', 'dare_linear', 'dare_ties')
			AND (SELECT sum(w) FROM unnest(weights) w) = 0 THEN
			RAISE EXCEPTION 'soup.merge: the weights sum to zero'
				USING ERRCODE = 'division_by_zero';
		END IF;
	END IF;
	IF method IN ('task_arithmetic', 'model_stock', 'ties', 'dare_linear', 'dare_ties') AND base IS NULL THEN
		PERFORM soup._param_error(format('method %s needs a base model', method));
	ELSIF method NOT IN ('task_arithmetic', 'model_stock', 'ties', 'dare_linear', 'dare_ties')
		AND base IS NOT NULL THEN
		PERFORM soup._param_error(format('method %s takes no base model', method));
	END IF;
	IF jsonb_typeof(params) <> 'object' THEN
		PERFORM soup._param_error('params must be a JSON object');
	END IF;
	SELECT k INTO bad FROM jsonb_object_keys(params) k
	WHERE k <> ALL (soup._method_params(method)) LIMIT 1;
	IF FOUND THEN
		PERFORM soup._param_error(format('unknown parameter "%s" for method %s', bad, method));
	END IF;
	IF method = 'slerp' AND cardinality(models) <> 2 THEN
		PERFORM soup._param_error(format('method slerp merges exactly 2 models, not %s', cardinality(models)));
	ELSIF method = 'model_stock' AND cardinality(models) < 2 THEN
		PERFORM soup._param_error('method model_stock needs at least 2 models besides the base');
	END IF;
	FOREACH bad IN ARRAY ARRAY['replace', 'normalize', 'clamp'] LOOP
		IF params ? bad AND jsonb_typeof(params -> bad) <> 'boolean' THEN
			PERFORM soup._param_error(format('parameter "%s" must be true or false', bad));
		END IF;
	END LOOP;
	IF method = 'ema' THEN
		PERFORM soup._num_param(params, 'decay', NULL, 0, 1);
	ELSIF method = 'fisher' THEN
		PERFORM soup._num_param(params, 'floor', 1e-6, 0, 'Infinity');
		IF jsonb_typeof(params -> 'fishers') IS DISTINCT FROM 'array'
			OR jsonb_array_length(params -> 'fishers') <> cardinality(models)
			OR EXISTS (SELECT 1 FROM jsonb_array_elements(params -> 'fishers') f
					   WHERE jsonb_typeof(f) <> 'string') THEN
			PERFORM soup._param_error('parameter "fishers" must name one Fisher model per model');
		END IF;
	ELSIF method = 'task_arithmetic' THEN
		PERFORM soup._num_param(params, 'lambda', 1, '-Infinity', 'Infinity');
	ELSIF method = 'slerp' THEN
		PERFORM soup._num_param(params, 't', NULL, 0, 1);
	ELSIF method IN ('ties', 'dare_linear', 'dare_ties') THEN
		PERFORM soup._num_param(params, 'density', NULL, 0, 1);
		PERFORM soup._num_param(params, 'lambda', 1, '-Infinity', 'Infinity');
		IF method <> 'ties' THEN
			IF soup._num_param(params, 'seed', NULL, -9223372036854775808, 9223372036854775807)
				<> trunc((params ->> 'seed')::numeric) THEN
				PERFORM soup._param_error('parameter "seed" must be a whole number');
			END IF;
			IF params ? 'rescale' AND params -> 'rescale' <> '"l1"'::jsonb THEN
				PERFORM soup._param_error('parameter "rescale" must be "l1" (or absent, for 1 / density)');
			END IF;
		END IF;
	END IF;
END;
$$;

-- LAWA: the latest k checkpoints of a run, by step, oldest first.
CREATE FUNCTION soup._lawa_models(params jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k int;
	found text[];
BEGIN
	IF jsonb_typeof(params -> 'run') IS DISTINCT FROM 'string' THEN
		PERFORM soup._param_error('method lawa needs parameter "run" (a run name)');
	END IF;
	k := soup._num_param(params, 'k', 6, 1, 100000)::int;
	IF (params ->> 'k') IS NOT NULL AND (params ->> 'k')::numeric <> k THEN
		PERFORM soup._param_error('parameter "k" must be a whole number');
	END IF;
	SELECT array_agg(name ORDER BY step) INTO found
	FROM (SELECT name, step FROM soup.models
		  WHERE run = params ->> 'run' AND kind = 'checkpoint' AND step IS NOT NULL
		  ORDER BY step DESC LIMIT k) latest;
	IF coalesce(cardinality(found), 0) < k THEN
		PERFORM soup._param_error(format('run "%s" has %s checkpoints with a step, LAWA needs k = %s',
										 params ->> 'run', coalesce(cardinality(found), 0), k));
	END IF;
	RETURN found;
END;
$$;

-- Tensors that are not floats (step counters, position ids, masks) are
-- copied when every model holds the same bytes, and are an error otherwise.
CREATE FUNCTION soup._copy_raw_tensors(new_id bigint, ids bigint[])
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

-- The merge of one method, written as rows of soup.chunks for model new_id;
-- returns the number of chunks written.  Only float tensors take part, and
-- only chunks present in every model (the caller checks the count).
--
-- Sorted (streaming) aggregation: one group's state at a time, so memory stays
-- at a few chunks whatever the model's size, and no hash table of every
-- group's state (16 bytes an element) has to be faulted in first.
CREATE FUNCTION soup._merge_chunks(new_id bigint, method text, ids bigint[], weights float8[],
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
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		SELECT new_id, c.tensor, c.chunk, soup.avg_weights(c.data, u.weight)
		FROM unnest(ids, w) AS u(id, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
		WHERE t.dtype = ANY (floats)
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method = 'ema' THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		SELECT new_id, c.tensor, c.chunk,
			   soup.ema(c.data, (params ->> 'decay')::float8 ORDER BY u.ord)
		FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
		WHERE t.dtype = ANY (floats)
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method = 'fisher' THEN
		IF coalesce((params ->> 'normalize')::boolean, false) THEN
			SELECT array_agg(soup._fisher_norm(f, m) ORDER BY ord) INTO norms
			FROM unnest(fisher_ids, ARRAY(SELECT jsonb_array_elements_text(params -> 'fishers')))
				WITH ORDINALITY AS x(f, m, ord);
			SELECT array_agg(a / b ORDER BY ord) INTO w
			FROM unnest(w, norms) WITH ORDINALITY AS x(a, b, ord);
		END IF;
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		SELECT new_id, c.tensor, c.chunk,
			   soup.fisher_merge(c.data, f.data, u.weight, coalesce((params ->> 'floor')::float8, 1e-6))
		FROM unnest(ids, fisher_ids, w) AS u(id, fid, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks f ON f.model_id = u.fid AND f.tensor = c.tensor AND f.chunk = c.chunk
		JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
		WHERE t.dtype = ANY (floats)
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method = 'task_arithmetic' THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		SELECT new_id, c.tensor, c.chunk,
			   soup.task_arithmetic(c.data, b.data, u.weight, coalesce((params ->> 'lambda')::float8, 1))
		FROM unnest(ids, w) AS u(id, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
		JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
		WHERE t.dtype = ANY (floats)
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
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
		WITH thr AS (
			SELECT c.model_id, c.tensor,
				   soup.magnitude_threshold(c.data, b.data, (params ->> 'density')::float8) AS threshold
			FROM soup.chunks c
			JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
			JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
			WHERE c.model_id = ANY (ids) AND t.dtype = ANY (floats)
			GROUP BY c.model_id, c.tensor)
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
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;

-- The L2 norm of a Fisher model over all its float tensors.
CREATE FUNCTION soup._fisher_norm(fisher_id bigint, fisher_name text) RETURNS float8
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	norm float8;
BEGIN
	-- the squares summed exactly (double-double parts from soup.gram), rounded
	-- once: the same bits for any chunk length and any order of the rows
	SELECT sqrt((soup.dd_sum(soup.gram(ARRAY[c.data])))[1]) INTO norm
	FROM soup.chunks c JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor
	WHERE c.model_id = fisher_id AND t.dtype IN ('f32', 'f64', 'f16', 'bf16');
	IF coalesce(norm, 0) = 0 OR norm = 'Infinity' OR norm = 'NaN' THEN
		RAISE EXCEPTION 'soup.merge: the Fisher "%" has norm %, it cannot normalise a weight',
			fisher_name, coalesce(norm, 0)
			USING ERRCODE = 'division_by_zero';
	END IF;
	RETURN norm;
END;
$$;

CREATE FUNCTION soup.merge(target text, method text, models text[],
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
		PERFORM soup._check_same_tensors(models[1], ids[1], models[i], ids[i]);
	END LOOP;
	IF base IS NOT NULL THEN
		base_id := (soup._model_ids(ARRAY[base]))[1];
		PERFORM soup._check_same_tensors(models[1], ids[1], base, base_id);
	END IF;
	IF method = 'fisher' THEN
		fishers := ARRAY(SELECT jsonb_array_elements_text(params -> 'fishers'));
		fisher_ids := soup._model_ids(fishers);
		FOR i IN 1 .. cardinality(ids) LOOP
			PERFORM soup._check_same_tensors(models[1], ids[1], fishers[i], fisher_ids[i], false);
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
	RETURN new_id;
END;
$$;

COMMENT ON FUNCTION soup.merge(text, text, text[], float8[], text, jsonb) IS
	'Merge models into a new model in one transaction and record its recipe';

-------------------------------------------------------------------------------
-- Incremental EMA and lineage
-------------------------------------------------------------------------------

-- Fold one checkpoint into a stored EMA model: e <- d e + (1 - d) x for every
-- float tensor (rounded into the dtype at each update, unlike soup.ema which
-- keeps float64 between checkpoints); other tensors are taken from the new
-- checkpoint.  The EMA model is created as a copy of the checkpoint on first
-- use.  Folding a checkpoint the EMA already covers does nothing, so a job
-- may safely run twice.  Returns the EMA model's id.
CREATE FUNCTION soup.ema_update(ema_model text, new_model text, decay float8)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ema_id bigint;
	new_id bigint;
	rec jsonb;
	new_step bigint;
BEGIN
	IF ema_model IS NULL OR new_model IS NULL OR decay IS NULL THEN
		RAISE EXCEPTION 'soup.ema_update: arguments must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT (decay >= 0 AND decay <= 1) THEN
		PERFORM soup._param_error(format('decay must be between 0 and 1, not %s', decay), 'soup.ema_update');
	END IF;
	IF ema_model = new_model THEN
		PERFORM soup._param_error('the EMA model and the checkpoint must differ', 'soup.ema_update');
	END IF;
	new_id := (soup._model_ids(ARRAY[new_model]))[1];
	SELECT step INTO new_step FROM soup.models WHERE id = new_id;
	SELECT id, recipe INTO ema_id, rec FROM soup.models WHERE name = ema_model FOR UPDATE;

	IF ema_id IS NULL THEN
		INSERT INTO soup.models (name, kind, run, step, metadata, recipe)
		SELECT ema_model, 'merge', m.run, m.step, m.metadata,
			   jsonb_build_object('method', 'ema_update', 'decay', decay,
								  'models', jsonb_build_array(new_model),
								  'model_ids', jsonb_build_array(new_id),
								  'steps', jsonb_build_array(m.step))
		FROM soup.models m WHERE m.id = new_id
		RETURNING id INTO ema_id;
		INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
		SELECT ema_id, name, ordinal, dtype, shape, numel, chunk_elems
		FROM soup.tensors WHERE model_id = new_id;
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		SELECT ema_id, tensor, chunk, data FROM soup.chunks WHERE model_id = new_id;
		RETURN ema_id;
	END IF;

	IF rec ->> 'method' IS DISTINCT FROM 'ema_update' THEN
		PERFORM soup._param_error(format('model "%s" was not made by soup.ema_update', ema_model), 'soup.ema_update');
	END IF;
	IF (rec -> 'model_ids') @> to_jsonb(new_id) THEN
		RETURN ema_id;			-- already folded in
	END IF;
	IF (rec ->> 'decay')::float8 <> decay THEN
		PERFORM soup._param_error(format('EMA model "%s" uses decay %s, not %s', ema_model, rec ->> 'decay', decay), 'soup.ema_update');
	END IF;
	PERFORM soup._check_same_tensors(ema_model, ema_id, new_model, new_id);

	UPDATE soup.chunks e
	SET data = CASE WHEN t.dtype IN ('f32', 'f64', 'f16', 'bf16')
					THEN soup.lincomb(e.data, decay, n.data, 1 - decay) ELSE n.data END
	FROM soup.chunks n, soup.tensors t
	WHERE e.model_id = ema_id AND n.model_id = new_id
	  AND n.tensor = e.tensor AND n.chunk = e.chunk
	  AND t.model_id = ema_id AND t.name = e.tensor;
	UPDATE soup.models m
	SET step = greatest(m.step, new_step),
		recipe = rec || jsonb_build_object(
			'models', (rec -> 'models') || to_jsonb(new_model),
			'model_ids', (rec -> 'model_ids') || to_jsonb(new_id),
			'steps', (rec -> 'steps') || coalesce(to_jsonb(new_step), 'null'::jsonb))
	WHERE m.id = ema_id;
	RETURN ema_id;
END;
$$;

-- The tree of a model's sources down to imported checkpoints.
CREATE FUNCTION soup.lineage(model text)
RETURNS TABLE (depth int, name text, kind text, method text, parent text, role text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
	WITH RECURSIVE tree AS (
		SELECT 0 AS depth, m.id, m.name, m.kind, m.recipe, NULL::text AS parent,
			   NULL::text AS role, ARRAY[m.id] AS path
		FROM soup.models m WHERE m.name = model
		UNION ALL
		SELECT t.depth + 1, s.id, coalesce(s.name, src.name || ' (deleted)'),
			   coalesce(s.kind, 'missing'), s.recipe, t.name, src.role, t.path || s.id
		FROM tree t
		CROSS JOIN LATERAL (
			SELECT m.value AS name, coalesce((t.recipe -> 'model_ids' ->> (m.ord - 1)::int)::bigint,
											 (SELECT id FROM soup.models WHERE name = m.value)) AS id,
				   'source' AS role, m.ord
			FROM jsonb_array_elements_text(t.recipe -> 'models') WITH ORDINALITY m(value, ord)
			UNION ALL
			SELECT t.recipe ->> 'base', (SELECT id FROM soup.models WHERE name = t.recipe ->> 'base'),
				   'base', 0
			WHERE t.recipe ->> 'base' IS NOT NULL
			UNION ALL
			SELECT f.value, (SELECT id FROM soup.models WHERE name = f.value), 'fisher', f.ord
			FROM jsonb_array_elements_text(t.recipe -> 'params' -> 'fishers') WITH ORDINALITY f(value, ord)
		) src
		LEFT JOIN soup.models s ON s.id = src.id
		WHERE t.recipe IS NOT NULL AND NOT coalesce(src.id = ANY (t.path), false)
	)
	SELECT depth, name, kind, recipe ->> 'method', parent, role FROM tree ORDER BY path;
$$;

-------------------------------------------------------------------------------
-- Training runs and their metrics
-------------------------------------------------------------------------------

CREATE TABLE soup.runs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	params			bigint CHECK (params > 0),			-- N, model parameters
	tokens			bigint CHECK (tokens > 0),			-- D, training tokens
	batch_size		bigint CHECK (batch_size > 0),		-- sequences per optimizer step
	seq_len			int CHECK (seq_len > 0),
	learning_rate	float8 CHECK (learning_rate > 0),
	flops			float8 CHECK (flops > 0),			-- C, training compute
	config			jsonb NOT NULL DEFAULT '{}',
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE soup.runs IS 'Training runs: typed columns for what the analyses need, the rest in config';

CREATE TABLE soup.metrics (
	run			text NOT NULL REFERENCES soup.runs (name) ON UPDATE CASCADE ON DELETE CASCADE,
	step		bigint NOT NULL CHECK (step >= 0),
	tokens		bigint,
	name		text NOT NULL,
	value		float8 NOT NULL,
	time		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (run, name, step)
);
COMMENT ON TABLE soup.metrics IS
	'One value per (run, metric, step); load with COPY soup.metrics (run, step, tokens, name, value) FROM ... CSV';

SELECT pg_catalog.pg_extension_config_dump('soup.runs', '');
SELECT pg_catalog.pg_extension_config_dump('soup.runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('soup.metrics', '');

-- Checkpoints beside their runs: models link to runs by (run, step).
CREATE VIEW soup.checkpoints AS
	SELECT m.id AS model_id, m.name AS model, m.run, m.step, r.params, r.tokens,
		   r.batch_size, r.learning_rate, r.config
	FROM soup.models m LEFT JOIN soup.runs r ON r.name = m.run
	WHERE m.kind = 'checkpoint';

-- Log the metrics of one step from a training loop: numbers only, a run row
-- is created on first use, and logging a step again overwrites its values.
CREATE FUNCTION soup.log_metrics(run text, step bigint, metrics jsonb, tokens bigint DEFAULT NULL)
RETURNS int LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad text;
	n int;
BEGIN
	IF run IS NULL OR step IS NULL OR metrics IS NULL THEN
		RAISE EXCEPTION 'soup.log_metrics: run, step and metrics must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF jsonb_typeof(metrics) <> 'object' THEN
		PERFORM soup._param_error('metrics must be a JSON object of name: number', 'soup.log_metrics');
	END IF;
	SELECT key INTO bad FROM jsonb_each(metrics) WHERE jsonb_typeof(value) <> 'number' LIMIT 1;
	IF FOUND THEN
		PERFORM soup._param_error(format('metric "%s" is not a number', bad), 'soup.log_metrics');
	END IF;
	INSERT INTO soup.runs (name) VALUES (run) ON CONFLICT (name) DO NOTHING;
	INSERT INTO soup.metrics (run, step, tokens, name, value)
	SELECT log_metrics.run, log_metrics.step, log_metrics.tokens, key, value::text::float8
	FROM jsonb_each(metrics)
	ON CONFLICT ON CONSTRAINT metrics_pkey
	DO UPDATE SET value = excluded.value, tokens = excluded.tokens, time = excluded.time;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;

-- The first step at which a metric reaches a target: at or below it (loss)
-- or, with higher_is_better, at or above it (accuracy).  With smoothing
-- beta in (0, 1) the metric is first smoothed by a bias-corrected EMA,
-- s_t = (beta m + (1 - beta) v_t) / (1 - beta^t), in step order.  NULL when
-- never reached.
CREATE FUNCTION soup.steps_to_target(run text, metric text, target float8,
									 smoothing float8 DEFAULT 0,
									 higher_is_better boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	m float8 := 0;
	k int := 0;
	s float8;
BEGIN
	IF target IS NULL OR target IN ('NaN', 'Infinity', '-Infinity') THEN
		PERFORM soup._param_error('target must be a finite number', 'soup.steps_to_target');
	END IF;
	IF smoothing IS NULL OR NOT (smoothing >= 0 AND smoothing < 1) THEN
		PERFORM soup._param_error('smoothing must be in [0, 1)', 'soup.steps_to_target');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM soup.runs WHERE name = run) THEN
		RAISE EXCEPTION 'run "%" does not exist', run USING ERRCODE = 'undefined_object';
	END IF;
	FOR r IN SELECT x.step, x.value FROM soup.metrics x
			 WHERE x.run = steps_to_target.run AND x.name = metric ORDER BY x.step LOOP
		k := k + 1;
		m := smoothing * m + (1 - smoothing) * r.value;
		s := m / (1 - smoothing ^ k);
		IF (NOT higher_is_better AND s <= target) OR (higher_is_better AND s >= target) THEN
			RETURN r.step;
		END IF;
	END LOOP;
	RETURN NULL;
END;
$$;

-------------------------------------------------------------------------------
-- Critical batch size and scaling laws
-------------------------------------------------------------------------------

CREATE TYPE soup.power_law AS (a float8, b float8, c float8, r2 float8, rmse float8, n int);
COMMENT ON TYPE soup.power_law IS 'y = a x^b + c; r2 and rmse of log y (the fit is made in log space)';
CREATE TYPE soup.cbs_fit AS (s_min float8, e_min float8, b_crit float8, objective float8, n int);
COMMENT ON TYPE soup.cbs_fit IS 'S(B) = s_min + e_min / B fitted in log space; b_crit = e_min / s_min';
CREATE TYPE soup.chinchilla_fit AS (e float8, a float8, b float8, alpha float8, beta float8,
									objective float8, n int, starts int, converged int);
COMMENT ON TYPE soup.chinchilla_fit IS
	'L(N, D) = e + a / N^alpha + b / D^beta (e, a, b are E, A, B); objective = summed Huber loss';

CREATE FUNCTION soup.points_transfn(internal, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_points_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.points_transfn(internal, float8, float8, float8) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_points_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.points_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_points_combinefn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.points_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'soup_points_serialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.points_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_points_deserialfn' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION soup.fit_power_law_finalfn(internal) RETURNS soup.power_law
	AS 'MODULE_PATHNAME', 'soup_fit_power_law_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.fit_power_law_offset_finalfn(internal) RETURNS soup.power_law
	AS 'MODULE_PATHNAME', 'soup_fit_power_law_offset_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.critical_batch_size_finalfn(internal) RETURNS soup.cbs_fit
	AS 'MODULE_PATHNAME', 'soup_critical_batch_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.fit_chinchilla_finalfn(internal) RETURNS soup.chinchilla_fit
	AS 'MODULE_PATHNAME', 'soup_fit_chinchilla_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE soup.fit_power_law(x float8, y float8) (
	SFUNC = soup.points_transfn, STYPE = internal, FINALFUNC = soup.fit_power_law_finalfn,
	COMBINEFUNC = soup.points_combinefn, SERIALFUNC = soup.points_serialfn,
	DESERIALFUNC = soup.points_deserialfn, PARALLEL = SAFE);
CREATE AGGREGATE soup.fit_power_law_offset(x float8, y float8) (
	SFUNC = soup.points_transfn, STYPE = internal, FINALFUNC = soup.fit_power_law_offset_finalfn,
	COMBINEFUNC = soup.points_combinefn, SERIALFUNC = soup.points_serialfn,
	DESERIALFUNC = soup.points_deserialfn, PARALLEL = SAFE);
CREATE AGGREGATE soup.critical_batch_size(batch_size float8, steps float8) (
	SFUNC = soup.points_transfn, STYPE = internal, FINALFUNC = soup.critical_batch_size_finalfn,
	COMBINEFUNC = soup.points_combinefn, SERIALFUNC = soup.points_serialfn,
	DESERIALFUNC = soup.points_deserialfn, PARALLEL = SAFE);
CREATE AGGREGATE soup.fit_chinchilla(n float8, d float8, loss float8) (
	SFUNC = soup.points_transfn, STYPE = internal, FINALFUNC = soup.fit_chinchilla_finalfn,
	COMBINEFUNC = soup.points_combinefn, SERIALFUNC = soup.points_serialfn,
	DESERIALFUNC = soup.points_deserialfn, PARALLEL = SAFE);

CREATE FUNCTION soup.cbs(s_min float8, e_min float8, b0 float8, overhead float8 DEFAULT 0.2)
	RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_cbs_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION soup.cbs(float8, float8, float8, float8) IS
	'Zhang et al. 2024: the batch where steps exceed linear scaling from b0 by overhead: (1 + o) b0 + o e_min / s_min';
CREATE FUNCTION soup.chinchilla_loss(fit soup.chinchilla_fit, n float8, d float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_chinchilla_loss_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION soup.compute_optimal(fit soup.chinchilla_fit, flops float8,
									 OUT n_opt float8, OUT d_opt float8)
	AS 'MODULE_PATHNAME', 'soup_compute_optimal_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION soup.gradient_noise_scale_transfn(internal, float8, float8, float8, float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_gns_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.gradient_noise_scale_transfn(internal, float8, float8, float8, float8, float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'soup_gns_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION soup.gradient_noise_scale_finalfn(internal) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_gns_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE soup.gradient_noise_scale(g_small_sq float8, g_big_sq float8,
										   b_small float8, b_big float8) (
	SFUNC = soup.gradient_noise_scale_transfn, STYPE = internal,
	FINALFUNC = soup.gradient_noise_scale_finalfn, PARALLEL = SAFE);
CREATE AGGREGATE soup.gradient_noise_scale(g_small_sq float8, g_big_sq float8,
										   b_small float8, b_big float8, beta float8) (
	SFUNC = soup.gradient_noise_scale_transfn, STYPE = internal,
	FINALFUNC = soup.gradient_noise_scale_finalfn, PARALLEL = SAFE);
COMMENT ON AGGREGATE soup.gradient_noise_scale(float8, float8, float8, float8) IS
	'B_simple = tr(Sigma) / |G|^2 from two batch sizes, separately bias-corrected EMAs (beta 0.99); use ORDER BY step';

-------------------------------------------------------------------------------
-- Jobs for a scheduler (pg_cron): keep EMA and LAWA models of a live run
-------------------------------------------------------------------------------

-- Fold every checkpoint of the run newer than those the EMA model covers
-- into it, in step order (creating it from the first on first use).  An
-- advisory lock per EMA model makes concurrent runs wait for each other;
-- running again with nothing new does nothing.
CREATE PROCEDURE soup.refresh_ema(run text, ema_model text, decay float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	last_step bigint;
	ckpt record;
BEGIN
	IF run IS NULL OR ema_model IS NULL OR decay IS NULL THEN
		RAISE EXCEPTION 'soup.refresh_ema: arguments must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('soup.refresh_ema'), hashtext(ema_model));
	SELECT max(s::bigint) INTO last_step
	FROM soup.models m, jsonb_array_elements_text(m.recipe -> 'steps') s
	WHERE m.name = ema_model;
	FOR ckpt IN SELECT m.name FROM soup.models m
				WHERE m.run = refresh_ema.run AND m.kind = 'checkpoint' AND m.step IS NOT NULL
				  AND m.step > coalesce(last_step, -1)
				ORDER BY m.step LOOP
		PERFORM soup.ema_update(ema_model, ckpt.name, decay);
	END LOOP;
END;
$$;

-- Rebuild the LAWA average of the latest k checkpoints of a run when a newer
-- checkpoint has arrived; otherwise do nothing.  Advisory-locked per model.
CREATE PROCEDURE soup.refresh_lawa(run text, model text, k int DEFAULT 6)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	latest text[];
	current jsonb;
BEGIN
	IF run IS NULL OR model IS NULL OR k IS NULL THEN
		RAISE EXCEPTION 'soup.refresh_lawa: arguments must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('soup.refresh_lawa'), hashtext(model));
	latest := soup._lawa_models(jsonb_build_object('run', run, 'k', k));
	SELECT recipe -> 'models' INTO current FROM soup.models WHERE name = model;
	IF current IS NOT DISTINCT FROM to_jsonb(latest) THEN
		RETURN;
	END IF;
	PERFORM soup.merge(model, 'lawa', NULL,
					   params => jsonb_build_object('run', run, 'k', k, 'replace', true));
END;
$$;

-------------------------------------------------------------------------------
-- Checking a model against its catalog
-------------------------------------------------------------------------------

-- Every problem of a model's stored chunks: missing or unexpected chunks,
-- wrong dtype, length or shape.  No rows means the model is whole.  Reads
-- only each chunk's header (one TOAST chunk per value), not its data.
CREATE FUNCTION soup.verify(model text)
RETURNS TABLE (tensor text, chunk int, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	mid bigint;
BEGIN
	SELECT m.id INTO mid FROM soup.models m WHERE m.name = verify.model;
	IF mid IS NULL THEN
		RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = 'undefined_object';
	END IF;
	RETURN QUERY
	WITH expected AS (
		SELECT t.name, t.ordinal, g AS chunk, t.dtype,
			   least(t.chunk_elems::bigint, t.numel - g::bigint * t.chunk_elems) AS len
		FROM soup.tensors t, generate_series(0, t.n_chunks - 1) g
		WHERE t.model_id = mid),
	actual AS (
		SELECT c.tensor, c.chunk, soup.dtype(c.data) AS dtype, soup.numel(c.data) AS len,
			   cardinality(soup.shape(c.data)) AS ndim
		FROM soup.chunks c WHERE c.model_id = mid),
	shapes AS (
		SELECT t.name, t.ordinal, NULL::int AS chunk,
			   format('shape %s holds %s elements, the catalog says %s',
					  t.shape, (SELECT coalesce(round(exp(sum(ln(greatest(d, 1))))), 1)
								FROM unnest(t.shape) d), t.numel) AS problem
		FROM soup.tensors t
		WHERE t.model_id = mid
		  AND (SELECT CASE WHEN bool_or(d = 0) THEN 0 ELSE coalesce(round(exp(sum(ln(greatest(d, 1))))), 1) END
			   FROM unnest(t.shape) d) <> t.numel)
	SELECT x.tensor, x.chunk, x.problem FROM (
		SELECT coalesce(e.name, a.tensor) AS tensor, coalesce(e.ordinal, 2147483647) AS ordinal,
			   coalesce(e.chunk, a.chunk) AS chunk,
			   CASE WHEN a.tensor IS NULL THEN 'missing chunk'
					WHEN e.name IS NULL THEN 'chunk not in the catalog'
					WHEN a.dtype <> e.dtype THEN format('dtype %s, the catalog says %s', a.dtype, e.dtype)
					WHEN a.len <> e.len THEN format('%s elements, the catalog says %s', a.len, e.len)
					WHEN a.ndim <> 1 THEN 'not one-dimensional'
			   END AS problem
		FROM expected e FULL JOIN actual a ON a.tensor = e.name AND a.chunk = e.chunk
		UNION ALL SELECT name, ordinal, chunk, problem FROM shapes) x
	WHERE x.problem IS NOT NULL
	ORDER BY x.ordinal, x.tensor, x.chunk;
END;
$$;
