-- pg_soup 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION pg_soup UPDATE TO '0.2.0'" to load this file. \quit

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

	SELECT soup._progress_begin(3, new_id, coalesce(sum(n_chunks), 0)::bigint,
								coalesce(sum(numel * soup._dtype_bytes(dtype)), 0)::bigint)
	INTO reporting FROM soup.tensors WHERE model_id = new_id;
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
	IF reporting THEN
		PERFORM soup._progress_end();
	END IF;
	RETURN new_id;
END;
$$;
