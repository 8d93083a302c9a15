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
								  extra_ids bigint[], param float8, tensors text[] DEFAULT NULL)
RETURNS bigint
	AS 'MODULE_PATHNAME', 'soup_merge_fused' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The spherical methods of mergekit (nuslerp, multislerp, karcher) as
-- coefficients of one linear combination of the K inputs (task vectors
-- when there is a base), computed in float64 from their Gram matrix g
-- (K*K, row-major: the exact dot products, soup.gram summed with
-- soup.dd_sum).  Every vector these methods form (unit vectors, means,
-- tangents, the iterate on the sphere) is itself a combination of the
-- inputs, so norms and dot products follow from g alone; the result is then
-- merged in one pass and rounded once.  w: the models' weights.
-- G x, for a K*K row-major matrix G and a K-vector x.
CREATE FUNCTION soup._gx(g float8[], x float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT array_agg((SELECT sum(g[(i - 1) * cardinality(x) + j] * x[j]) FROM generate_subscripts(x, 1) j) ORDER BY i)
	FROM generate_subscripts(x, 1) i;
$$;

-- |x|_G = sqrt(x' G x): the norm of the vector whose coefficients are x.
CREATE FUNCTION soup._gnorm(g float8[], x float8[]) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT sqrt(greatest(sum(x[i] * q.gx[i]), 0))
	FROM (SELECT soup._gx(g, x) AS gx) q, generate_series(1, cardinality(x)) i;
$$;

CREATE FUNCTION soup._sphere_coefficients(method text, g float8[], w float8[], params jsonb)
RETURNS float8[] LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k int := cardinality(w);
	n float8[];
	c float8[];
	t float8[];
	gc float8[];
	a float8[];
	wn float8[];
	x float8;
	y float8;
	th float8;
	eps float8;
	tol float8;
	first int;
BEGIN
	n := ARRAY(SELECT sqrt(greatest(g[(i - 1) * k + i], 0)) FROM generate_series(1, k) i);
	IF method = 'nuslerp' THEN
		-- t from the weights; SLERP of the two vectors, LERP where sin(theta) ~ 0
		x := CASE WHEN abs(w[1] + w[2]) < 1e-6 THEN 0.5 ELSE w[2] / (w[1] + w[2]) END;
		y := least(greatest(g[2] / (greatest(n[1], 1e-7) * greatest(n[2], 1e-7)), -1), 1);
		th := acos(y);
		IF abs(sin(th)) < 1e-8 THEN
			RETURN ARRAY[1 - x, x];
		END IF;
		RETURN ARRAY[sin((1 - x) * th) / sin(th), sin(x * th) / sin(th)];
	ELSIF method = 'multislerp' THEN
		eps := coalesce((params ->> 'eps')::float8, 1e-8);
		IF k = 1 THEN
			RETURN ARRAY[1::float8];
		END IF;
		wn := w;
		IF coalesce((params ->> 'normalize_weights')::boolean, true) THEN
			wn := ARRAY(SELECT v / (SELECT sum(u) FROM unnest(w) u) FROM unnest(w) v);
		END IF;
		-- u_i = x_i / (|x_i| + eps); m = sum w_i u_i
		a := ARRAY(SELECT 1 / (n[i] + eps) FROM generate_series(1, k) i);
		c := ARRAY(SELECT wn[i] * a[i] FROM generate_series(1, k) i);
		x := soup._gnorm(g, c);
		IF x < eps THEN
			IF k = 2 THEN
				RETURN wn;
			END IF;
			RAISE EXCEPTION 'multislerp: the weighted mean direction vanishes' USING ERRCODE = 'data_exception';
		END IF;
		c := ARRAY(SELECT v / x FROM unnest(c) v);			-- the unit mean m
		gc := soup._gx(g, c);
		-- T = sum w_i (u_i - <u_i, m> m)
		y := (SELECT sum(wn[i] * a[i] * gc[i]) FROM generate_series(1, k) i);
		t := ARRAY(SELECT wn[i] * a[i] - y * c[i] FROM generate_series(1, k) i);
		th := soup._gnorm(g, t) + eps;
		x := (SELECT sum(wn[i] * n[i]) FROM generate_series(1, k) i);
		RETURN ARRAY(SELECT x * (cos(th) * c[i] + sin(th) / th * t[i]) FROM generate_series(1, k) i);
	ELSIF method = 'karcher' THEN
		tol := coalesce((params ->> 'tol')::float8, 1e-5);
		-- equal weights over the inputs with a norm above tol
		a := ARRAY(SELECT CASE WHEN n[i] > tol THEN 1.0 ELSE 0 END FROM generate_series(1, k) i);
		IF (SELECT sum(v) FROM unnest(a) v) = 0 THEN
			RETURN array_fill(0::float8, ARRAY[k]);
		END IF;
		a := ARRAY(SELECT v / (SELECT sum(u) FROM unnest(a) u) FROM unnest(a) v);
		c := ARRAY(SELECT CASE WHEN a[i] > 0 THEN a[i] / n[i] ELSE 0 END FROM generate_series(1, k) i);
		x := soup._gnorm(g, c);
		IF x < tol THEN
			first := (SELECT min(i) FROM generate_series(1, k) i WHERE a[i] > 0);
			c := ARRAY(SELECT CASE WHEN i = first THEN 1 / n[i] ELSE 0 END FROM generate_series(1, k) i);
		ELSE
			c := ARRAY(SELECT v / x FROM unnest(c) v);
		END IF;
		FOR iter IN 1 .. coalesce((params ->> 'max_iter')::numeric::int, 10) LOOP
			gc := soup._gx(g, c);
			t := array_fill(0::float8, ARRAY[k]);
			FOR i IN 1 .. k LOOP
				CONTINUE WHEN a[i] = 0;
				y := least(greatest(gc[i] / n[i], -1), 1);			-- cos of the angle to u_i
				th := acos(y);
				CONTINUE WHEN th < tol;
				x := a[i] * th / sin(th);
				t := ARRAY(SELECT t[j] - x * y * c[j] + CASE WHEN j = i THEN x / n[i] ELSE 0 END
						   FROM generate_series(1, k) j);
			END LOOP;
			x := soup._gnorm(g, t);
			EXIT WHEN x < tol;
			c := ARRAY(SELECT cos(x) * c[i] + sin(x) / x * t[i] FROM generate_series(1, k) i);
			y := soup._gnorm(g, c);
			IF y > tol THEN
				c := ARRAY(SELECT v / y FROM unnest(c) v);
			END IF;
		END LOOP;
		-- the magnitude: the mean of all the norms
		x := (SELECT avg(v) FROM unnest(n) v);
		RETURN ARRAY(SELECT x * v FROM unnest(c) v);
	END IF;
	RAISE EXCEPTION 'soup._sphere_coefficients: unknown method "%"', method;
END;
$$;

-- Breadcrumbs (Davari and Belilovsky 2023, as mergekit computes it): of a
-- task vector of n entries, keep = floor(density n) entries are kept after
-- the top = floor(gamma n) largest magnitudes are dropped (fewer when they
-- would not leave keep entries); the ranks to cut at.
CREATE FUNCTION soup._breadcrumbs_ranks(numel bigint, density float8, gamma float8,
										OUT top bigint, OUT keep bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT least(x.t, numel - x.k), x.k
	FROM (SELECT floor(density * numel)::bigint AS k, floor(gamma * numel)::bigint AS t) x;
$$;

-- The k-th largest |data - base| of a tensor, k given as a count.
CREATE FUNCTION soup._magnitude_rank(model_id bigint, base_id bigint, tensor text, k bigint) RETURNS float8
	AS 'MODULE_PATHNAME', 'soup_magnitude_rank_stream' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

-- The task vector (float64) where lo <= |tau| < hi (no upper cut when hi
-- is NULL), 0 elsewhere; a NaN counts as the largest magnitude.
CREATE FUNCTION soup._trim_band(data soup.tensor, base soup.tensor, lo float8, hi float8) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_trim_band_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- DELLA (della, della_linear): one model's keep mask of a tensor (a bit an
-- element, drawn with a probability that rises with the magnitude rank of
-- the entry along dimension 1) and its L1 rescale factor; then each chunk's
-- task vector with them applied.  src/della.c.
CREATE FUNCTION soup._della_mask(model_id bigint, base_id bigint, tensor text, density float8,
								 epsilon float8, seed bigint, model_key bigint, rescale boolean,
								 OUT mask bytea, OUT scale float8)
	AS 'MODULE_PATHNAME', 'soup_della_mask' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION soup._della_apply(data soup.tensor, base soup.tensor, mask bytea, "offset" bigint,
								  scale float8) RETURNS soup.tensor
	AS 'MODULE_PATHNAME', 'soup_della_apply_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The merge of one method, written as rows of soup.chunks for model new_id;
-- returns the number of chunks written.  Only float tensors take part, and
-- only chunks present in every model (the caller checks the count).
--
-- The elementwise methods run in soup._merge_fused, one pass per chunk over
-- every input (the same bits as their aggregates).  The others use sorted
-- (streaming) aggregation: one group's state at a time, so memory stays at a
-- few chunks whatever the model's size, and no hash table of every group's
-- state (16 bytes an element) has to be faulted in first.
--
-- tensors: merge only these (NULL: all), for soup.merge_config, which merges
-- a model in groups of tensors that share their parameters; params may carry
-- "densities", one per model (mergekit's per-model density), which win over
-- "density".
DROP FUNCTION soup._merge_chunks(bigint, text, bigint[], float8[], bigint, bigint[], jsonb);
CREATE FUNCTION soup._merge_chunks(new_id bigint, method text, ids bigint[], weights float8[],
								   base_id bigint, fisher_ids bigint[], params jsonb,
								   tensors text[] DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_hashagg = off AS $$
DECLARE
	n bigint;
	w float8[] := coalesce(weights, array_fill(1.0::float8, ARRAY[cardinality(ids)]));
	floats text[] := ARRAY['f32', 'f64', 'f16', 'bf16'];
	norms float8[];
	sph record;
	-- karcher averages the models themselves; the others use a base's task vectors
	sphere_base bigint := CASE WHEN method = 'karcher' THEN NULL ELSE base_id END;
	tname text;
	masks bytea[];
	scales float8[];
	merged bigint;
BEGIN
	IF method IN ('avg', 'lawa', 'sum') THEN
		-- sum: the weighted sum (mergekit's linear without normalize)
		n := soup._merge_fused(new_id, method, ids, w, '{}', 0, tensors);
	ELSIF method = 'ema' THEN
		n := soup._merge_fused(new_id, method, ids, w, '{}', (params ->> 'decay')::float8, tensors);
	ELSIF method = 'fisher' THEN
		IF coalesce((params ->> 'normalize')::boolean, false) THEN
			SELECT array_agg(soup._fisher_norm(f, m) ORDER BY ord) INTO norms
			FROM unnest(fisher_ids, ARRAY(SELECT jsonb_array_elements_text(params -> 'fishers')))
				WITH ORDINALITY AS x(f, m, ord);
			SELECT array_agg(a / b ORDER BY ord) INTO w
			FROM unnest(w, norms) WITH ORDINALITY AS x(a, b, ord);
		END IF;
		n := soup._merge_fused(new_id, method, ids, w, fisher_ids,
							   coalesce((params ->> 'floor')::float8, 1e-6), tensors);
	ELSIF method = 'task_arithmetic' THEN
		n := soup._merge_fused(new_id, method, ids, w, ARRAY[base_id],
							   coalesce((params ->> 'lambda')::float8, 1), tensors);
	ELSIF method = 'slerp' THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH stats AS (
			SELECT g.tensor, soup.dd_sum(g.gram) AS gram
			FROM (SELECT a.tensor, soup.gram(ARRAY[a.data, b.data]) AS gram
				  FROM soup.chunks a
				  JOIN soup.chunks b ON b.model_id = ids[2] AND b.tensor = a.tensor AND b.chunk = a.chunk
				  JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = a.tensor
				  WHERE a.model_id = ids[1] AND t.dtype = ANY (floats)
					AND (tensors IS NULL OR a.tensor = ANY (tensors))) g
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
			WHERE t.dtype = ANY (floats) AND (tensors IS NULL OR c.tensor = ANY (tensors))
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
											 coalesce((params -> 'densities' ->> (u.ord - 1)::int)::float8,
													  (params ->> 'density')::float8)) AS threshold
			FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
			CROSS JOIN soup.tensors t
			WHERE t.model_id = ids[1] AND t.dtype = ANY (floats)
			  AND (tensors IS NULL OR t.name = ANY (tensors)))
		SELECT new_id, c.tensor, c.chunk,
			   soup.ties_merge(soup.trim(c.data, b.data, thr.threshold), b.data, u.weight,
							   coalesce((params ->> 'lambda')::float8, 1))
		FROM unnest(ids, w) AS u(id, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
		JOIN thr ON thr.model_id = u.id AND thr.tensor = c.tensor
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method IN ('breadcrumbs', 'breadcrumbs_ties') THEN
		-- pass 1: each model's two magnitude cuts per tensor (radix selections,
		-- bounded memory); pass 2: the band of each task vector, summed (or
		-- TIES' sign election), added to the base
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH ranks AS MATERIALIZED (
			SELECT u.id AS model_id, t.name AS tensor, r.top, r.keep
			FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
			CROSS JOIN soup.tensors t
			CROSS JOIN LATERAL soup._breadcrumbs_ranks(t.numel,
				coalesce((params -> 'densities' ->> (u.ord - 1)::int)::float8, (params ->> 'density')::float8, 1),
				coalesce((params -> 'gammas' ->> (u.ord - 1)::int)::float8, (params ->> 'gamma')::float8, 0.01)) r
			WHERE t.model_id = ids[1] AND t.dtype = ANY (floats) AND (tensors IS NULL OR t.name = ANY (tensors))),
		band AS MATERIALIZED (
			SELECT model_id, tensor,
				   soup._magnitude_rank(model_id, base_id, tensor, top + keep) AS lo,
				   CASE WHEN top > 0 THEN soup._magnitude_rank(model_id, base_id, tensor, top) END AS hi
			FROM ranks)
		SELECT new_id, c.tensor, c.chunk,
			   -- FILTER, not CASE: under a generic plan (merge_config calls this
			   -- function many times in a session) method is a parameter, the
			   -- CASE is not folded, and both aggregates would trim and accumulate
			   coalesce(soup.ties_merge(soup._trim_band(c.data, b.data, band.lo, band.hi), b.data, u.weight,
										coalesce((params ->> 'lambda')::float8, 1))
							FILTER (WHERE method = 'breadcrumbs_ties'),
						soup.delta_sum(soup._trim_band(c.data, b.data, band.lo, band.hi), b.data, u.weight,
									   coalesce((params ->> 'lambda')::float8, 1))
							FILTER (WHERE method = 'breadcrumbs'))
		FROM unnest(ids, w) AS u(id, weight)
		JOIN soup.chunks c ON c.model_id = u.id
		JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
		JOIN band ON band.model_id = u.id AND band.tensor = c.tensor
		GROUP BY c.tensor, c.chunk
		HAVING count(*) = cardinality(ids);
	ELSIF method IN ('nuslerp', 'multislerp', 'karcher') THEN
		-- per tensor: the exact Gram matrix of the inputs (of the task vectors
		-- with a base), the method's coefficients from it, then one fused pass
		-- that writes sum c_i x_i (base + sum c_i (x_i - base)), rounded once
		n := 0;
		FOR sph IN
			SELECT g.tensor, soup.dd_sum(g.gram) AS gram
			FROM (SELECT c.tensor,
						 soup.gram(array_agg(c.data ORDER BY u.ord),
								   (SELECT b.data FROM soup.chunks b
									WHERE b.model_id = sphere_base AND b.tensor = c.tensor AND b.chunk = c.chunk)) AS gram
				  FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
				  JOIN soup.chunks c ON c.model_id = u.id
				  JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
				  WHERE t.dtype = ANY (floats) AND (tensors IS NULL OR c.tensor = ANY (tensors))
				  GROUP BY c.tensor, c.chunk) g
			GROUP BY g.tensor
		LOOP
			n := n + soup._merge_fused(new_id, CASE WHEN sphere_base IS NULL THEN 'sum' ELSE 'task_arithmetic' END,
									   ids, soup._sphere_coefficients(method, sph.gram, w, params),
									   CASE WHEN sphere_base IS NULL THEN '{}'::bigint[] ELSE ARRAY[sphere_base] END,
									   1, ARRAY[sph.tensor]);
		END LOOP;
	ELSIF method IN ('della', 'della_linear') THEN
		-- per tensor: each model's keep mask and L1 factor (one ordered read of
		-- its chunks), then the masked task vectors summed (or TIES' sign
		-- election), added to the base
		n := 0;
		FOR tname IN
			SELECT t.name FROM soup.tensors t
			WHERE t.model_id = ids[1] AND t.dtype = ANY (floats) AND (tensors IS NULL OR t.name = ANY (tensors))
			ORDER BY t.ordinal
		LOOP
			SELECT array_agg(m.mask ORDER BY u.ord), array_agg(m.scale ORDER BY u.ord) INTO masks, scales
			FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
			CROSS JOIN LATERAL soup._della_mask(u.id, base_id, tname,
				coalesce((params -> 'densities' ->> (u.ord - 1)::int)::float8, (params ->> 'density')::float8),
				coalesce((params -> 'epsilons' ->> (u.ord - 1)::int)::float8, (params ->> 'epsilon')::float8, 0.15),
				(params ->> 'seed')::numeric::bigint, u.ord, coalesce((params ->> 'rescale')::boolean, true)) m;
			INSERT INTO soup.chunks (model_id, tensor, chunk, data)
			SELECT new_id, c.tensor, c.chunk,
				   -- one aggregate runs: FILTER, as for breadcrumbs
				   coalesce(soup.ties_merge(soup._della_apply(c.data, b.data, masks[u.ord], c.chunk::bigint * t.chunk_elems,
															  scales[u.ord]),
											b.data, u.weight, coalesce((params ->> 'lambda')::float8, 1))
								FILTER (WHERE method = 'della'),
							soup.delta_sum(soup._della_apply(c.data, b.data, masks[u.ord], c.chunk::bigint * t.chunk_elems,
															 scales[u.ord]),
										   b.data, u.weight, coalesce((params ->> 'lambda')::float8, 1))
								FILTER (WHERE method = 'della_linear'))
			FROM unnest(ids, w) WITH ORDINALITY AS u(id, weight, ord)
			JOIN soup.chunks c ON c.model_id = u.id AND c.tensor = tname
			JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
			JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
			GROUP BY c.tensor, c.chunk
			HAVING count(*) = cardinality(ids);
			GET DIAGNOSTICS merged = ROW_COUNT;
			n := n + merged;
		END LOOP;
	ELSIF method IN ('dare_linear', 'dare_ties') THEN
		INSERT INTO soup.chunks (model_id, tensor, chunk, data)
		WITH parts AS (
			SELECT u.id, u.ord, u.weight, c.tensor, c.chunk, c.data, b.data AS base_data,
				   c.chunk::bigint * t.chunk_elems AS "offset",
				   coalesce((params -> 'densities' ->> (u.ord - 1)::int)::float8,
							(params ->> 'density')::float8) AS density
			FROM unnest(ids, w) WITH ORDINALITY AS u(id, weight, ord)
			JOIN soup.chunks c ON c.model_id = u.id
			JOIN soup.chunks b ON b.model_id = base_id AND b.tensor = c.tensor AND b.chunk = c.chunk
			JOIN soup.tensors t ON t.model_id = ids[1] AND t.name = c.tensor
			WHERE t.dtype = ANY (floats) AND (tensors IS NULL OR c.tensor = ANY (tensors))),
		scales AS (
			-- "l1": rescale so that each tensor keeps its L1 norm (exact sums);
			-- otherwise no rows, and soup.dare scales by 1 / density
			SELECT p.id, p.tensor, CASE WHEN s[2] = 0 THEN NULL ELSE s[1] / s[2] END AS scale
			FROM (SELECT id, tensor,
						 soup.dd_sum(soup.dare_l1(data, base_data, density,
												  (params ->> 'seed')::numeric::bigint, ord, tensor, "offset")) AS s
				  FROM parts WHERE params ? 'rescale' GROUP BY id, tensor) p)
		SELECT new_id, p.tensor, p.chunk,
			   -- one aggregate runs: FILTER, as for breadcrumbs
			   coalesce(soup.ties_merge(soup.dare(p.data, p.base_data, p.density,
												  (params ->> 'seed')::numeric::bigint, p.ord, p.tensor, p."offset", s.scale),
										p.base_data, p.weight, coalesce((params ->> 'lambda')::float8, 1))
							FILTER (WHERE method = 'dare_ties'),
						soup.delta_sum(soup.dare(p.data, p.base_data, p.density,
												 (params ->> 'seed')::numeric::bigint, p.ord, p.tensor, p."offset", s.scale),
									   p.base_data, p.weight, coalesce((params ->> 'lambda')::float8, 1))
							FILTER (WHERE method = 'dare_linear'))
		FROM parts p LEFT JOIN scales s ON s.id = p.id AND s.tensor = p.tensor
		GROUP BY p.tensor, p.chunk
		HAVING count(*) = cardinality(ids);
	END IF;
	IF method NOT IN ('avg', 'lawa', 'sum', 'ema', 'fisher', 'task_arithmetic', 'nuslerp', 'multislerp', 'karcher',
					  'della', 'della_linear') THEN
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

-------------------------------------------------------------------------------
-- The merge methods: one description
-------------------------------------------------------------------------------

-- Every merge method, as soup.merge and soup.merge_config know it.  The
-- driver's argument checks, merge_config's parameter resolution, the
-- client's `pg_soup methods` and the table in docs/merges.md all read these
-- two tables, so a new method is a row here, its parameters' rows and its
-- kernel in soup._merge_chunks.
CREATE TABLE soup.merge_methods (
	name text PRIMARY KEY,
	ord int NOT NULL UNIQUE,		-- the order they are listed in
	summary text NOT NULL,
	-- soup.merge(target, name, ...) runs it
	in_merge boolean NOT NULL,
	-- soup.merge's base argument
	base text NOT NULL CHECK (base IN ('required', 'optional', 'none')),
	-- soup.merge's weights: none, any numbers, or numbers whose sum is not 0
	weights text NOT NULL CHECK (weights IN ('none', 'any', 'nonzero_sum')),
	min_models int NOT NULL DEFAULT 1,
	max_models int,
	-- merge_method of soup.merge_config: the soup.merge method that computes
	-- it (NULL: not a mergekit method) and what it does with base_model
	config_driver text,
	config_base text CHECK (config_base IN ('required', 'optional', 'first', 'ignored')),
	CHECK ((config_driver IS NULL) = (config_base IS NULL))
);
COMMENT ON TABLE soup.merge_methods IS
	'The merge methods of soup.merge and soup.merge_config (read by both, by the client and the docs)';

-- Their parameters.  face 'merge': keys of soup.merge's params; face
-- 'config': mergekit's parameters in soup.merge_config, with scope
-- per_model (a model's own parameters, a number, gradient or conditions
-- per tensor), per_tensor (the same for every model, a number, gradient or
-- conditions) or global (one plain value); driver_param is the soup.merge
-- parameter a config parameter becomes (a list of one value per model for
-- per_model ones).  allowed: the only values pg_soup computes (others are
-- "not available yet", 0A000).
CREATE TABLE soup.merge_method_params (
	method text NOT NULL REFERENCES soup.merge_methods,
	face text NOT NULL CHECK (face IN ('merge', 'config')),
	name text NOT NULL,
	ord int NOT NULL,
	kind text NOT NULL CHECK (kind IN ('number', 'integer', 'boolean', 'text', 'models')),
	scope text NOT NULL DEFAULT 'global' CHECK (scope IN ('global', 'per_model', 'per_tensor')),
	required boolean NOT NULL DEFAULT false,
	default_value jsonb,
	min_value float8,
	max_value float8,
	min_exclusive boolean NOT NULL DEFAULT false,
	allowed jsonb,
	driver_param text,
	summary text NOT NULL,
	PRIMARY KEY (method, face, name),
	CHECK (NOT (required AND default_value IS NOT NULL))
);
COMMENT ON TABLE soup.merge_method_params IS
	'The parameters of each merge method: kind, scope, default, range (soup.merge and soup.merge_config)';

-- a description, readable by every role that may call soup.merge
GRANT SELECT ON soup.merge_methods, soup.merge_method_params TO PUBLIC;

INSERT INTO soup.merge_methods (name, ord, summary, in_merge, base, weights, min_models, max_models,
								config_driver, config_base) VALUES
	('avg', 1, 'uniform or weighted average (model soup, SWA)', true, 'none', 'nonzero_sum', 1, NULL, NULL, NULL),
	('lawa', 2, 'average of the latest k checkpoints of a run (models: NULL)', true, 'none', 'none', 1, NULL, NULL, NULL),
	('ema', 3, 'exponential moving average in the given order', true, 'none', 'none', 1, NULL, NULL, NULL),
	('fisher', 4, 'Fisher-weighted average, one diagonal Fisher model per model', true, 'none', 'nonzero_sum', 1, NULL, NULL, NULL),
	('linear', 5, 'weighted average (normalize: false: the weighted sum)', false, 'none', 'nonzero_sum', 1, NULL, 'avg', 'ignored'),
	('task_arithmetic', 6, 'base + lambda * sum of weighted task vectors', true, 'required', 'any', 1, NULL, 'task_arithmetic', 'required'),
	('ties', 7, 'TIES: trim each task vector to its top density, elect signs, average the agreeing', true, 'required', 'any', 1, NULL, 'ties', 'required'),
	('dare_linear', 8, 'DARE: keep each task vector entry with probability density, rescale, sum', true, 'required', 'any', 1, NULL, 'dare_linear', 'required'),
	('dare_ties', 9, 'DARE with TIES'' sign election', true, 'required', 'any', 1, NULL, 'dare_ties', 'required'),
	('breadcrumbs', 10, 'drop the largest gamma and smallest magnitudes of each task vector, sum', true, 'required', 'any', 1, NULL, 'breadcrumbs', 'required'),
	('breadcrumbs_ties', 11, 'breadcrumbs with TIES'' sign election', true, 'required', 'any', 1, NULL, 'breadcrumbs_ties', 'required'),
	('della', 12, 'DELLA: keep entries with probability rising with their magnitude rank per row, TIES'' sign election', true, 'required', 'any', 1, NULL, 'della', 'required'),
	('della_linear', 13, 'DELLA''s rank-dependent drop, summed without sign election', true, 'required', 'any', 1, NULL, 'della_linear', 'required'),
	('slerp', 14, 'spherical interpolation of two models, t from the first to the second', true, 'none', 'none', 2, 2, 'slerp', 'first'),
	('nuslerp', 15, 'spherical interpolation at t = w2 / (w1 + w2), of task vectors with a base', true, 'optional', 'any', 2, 2, 'nuslerp', 'optional'),
	('multislerp', 16, 'weighted spherical mean of several models (of task vectors with a base)', true, 'optional', 'nonzero_sum', 1, NULL, 'multislerp', 'optional'),
	('karcher', 17, 'Riemannian (Karcher) mean of the normalized models', true, 'none', 'none', 1, NULL, 'karcher', 'ignored'),
	('model_stock', 18, 'Model Stock: interpolate the average toward the base by the task vectors'' angle', true, 'required', 'none', 2, NULL, 'model_stock', 'required'),
	('passthrough', 19, 'one model''s tensors as they are (with slices: a frankenmerge), optionally scaled', false, 'none', 'none', 1, 1, 'passthrough', 'ignored');

INSERT INTO soup.merge_method_params (method, face, name, ord, kind, scope, required, default_value,
									  min_value, max_value, min_exclusive, allowed, driver_param, summary)
SELECT m, face, name, ord, kind, coalesce(scope, 'global'), coalesce(req, false), dflt,
	   lo, hi, coalesce(excl, false), allowed, driver, summary
FROM (VALUES
	-- soup.merge's params
	('lawa', 'merge', 'run', 1, 'text', NULL, true, NULL::jsonb, NULL::float8, NULL::float8, NULL::boolean, NULL::jsonb, NULL, 'the run whose checkpoints are averaged'),
	('lawa', 'merge', 'k', 2, 'integer', NULL, NULL, '6', 1, 100000, NULL, NULL, NULL, 'how many of its latest checkpoints (by step)'),
	('ema', 'merge', 'decay', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'ema = decay * ema + (1 - decay) * next'),
	('fisher', 'merge', 'fishers', 1, 'models', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the Fisher model of each model, in order'),
	('fisher', 'merge', 'floor', 2, 'number', NULL, NULL, '1e-6', 0, 'Infinity', NULL, NULL, NULL, 'Fisher values below it count as it'),
	('fisher', 'merge', 'normalize', 3, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'divide each weight by the L2 norm of its Fisher'),
	('task_arithmetic', 'merge', 'lambda', 1, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the summed task vectors'),
	('ties', 'merge', 'density', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'share of each task vector kept (largest magnitudes)'),
	('ties', 'merge', 'lambda', 2, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('dare_linear', 'merge', 'density', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'probability of keeping each entry'),
	('dare_linear', 'merge', 'seed', 2, 'integer', NULL, true, NULL, -9223372036854775808, 9223372036854775807, NULL, NULL, NULL, 'seed of the reproducible draw'),
	('dare_linear', 'merge', 'lambda', 3, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('dare_linear', 'merge', 'rescale', 4, 'text', NULL, NULL, NULL, NULL, NULL, NULL, '["l1"]', NULL, '"l1": keep each task vector''s L1 norm (absent: divide by density)'),
	('dare_ties', 'merge', 'density', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'probability of keeping each entry'),
	('dare_ties', 'merge', 'seed', 2, 'integer', NULL, true, NULL, -9223372036854775808, 9223372036854775807, NULL, NULL, NULL, 'seed of the reproducible draw'),
	('dare_ties', 'merge', 'lambda', 3, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('dare_ties', 'merge', 'rescale', 4, 'text', NULL, NULL, NULL, NULL, NULL, NULL, '["l1"]', NULL, '"l1": keep each task vector''s L1 norm (absent: divide by density)'),
	('breadcrumbs', 'merge', 'density', 1, 'number', NULL, NULL, '1', 0, 1, NULL, NULL, NULL, 'share of each task vector kept'),
	('breadcrumbs', 'merge', 'gamma', 2, 'number', NULL, NULL, '0.01', 0, 1, NULL, NULL, NULL, 'share of largest magnitudes dropped'),
	('breadcrumbs', 'merge', 'lambda', 3, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('breadcrumbs_ties', 'merge', 'density', 1, 'number', NULL, NULL, '1', 0, 1, NULL, NULL, NULL, 'share of each task vector kept'),
	('breadcrumbs_ties', 'merge', 'gamma', 2, 'number', NULL, NULL, '0.01', 0, 1, NULL, NULL, NULL, 'share of largest magnitudes dropped'),
	('breadcrumbs_ties', 'merge', 'lambda', 3, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('della', 'merge', 'density', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'mean probability of keeping an entry'),
	('della', 'merge', 'epsilon', 2, 'number', NULL, NULL, '0.15', 0, 0.5, NULL, NULL, NULL, 'keep probabilities run from density - epsilon to density + epsilon'),
	('della', 'merge', 'seed', 3, 'integer', NULL, true, NULL, -9223372036854775808, 9223372036854775807, NULL, NULL, NULL, 'seed of the reproducible draw'),
	('della', 'merge', 'lambda', 4, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('della', 'merge', 'rescale', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, NULL, 'keep each task vector''s L1 norm'),
	('della_linear', 'merge', 'density', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'mean probability of keeping an entry'),
	('della_linear', 'merge', 'epsilon', 2, 'number', NULL, NULL, '0.15', 0, 0.5, NULL, NULL, NULL, 'keep probabilities run from density - epsilon to density + epsilon'),
	('della_linear', 'merge', 'seed', 3, 'integer', NULL, true, NULL, -9223372036854775808, 9223372036854775807, NULL, NULL, NULL, 'seed of the reproducible draw'),
	('della_linear', 'merge', 'lambda', 4, 'number', NULL, NULL, '1', '-Infinity', 'Infinity', NULL, NULL, NULL, 'scale of the merged task vector'),
	('della_linear', 'merge', 'rescale', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, NULL, 'keep each task vector''s L1 norm'),
	('slerp', 'merge', 't', 1, 'number', NULL, true, NULL, 0, 1, NULL, NULL, NULL, 'interpolation parameter'),
	('multislerp', 'merge', 'normalize_weights', 1, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, NULL, 'divide the weights by their sum'),
	('multislerp', 'merge', 'eps', 2, 'number', NULL, NULL, '1e-8', 0, 'Infinity', true, NULL, NULL, 'added to each norm before dividing by it'),
	('karcher', 'merge', 'max_iter', 1, 'integer', NULL, NULL, '10', 1, 100000, NULL, NULL, NULL, 'iterations at most'),
	('karcher', 'merge', 'tol', 2, 'number', NULL, NULL, '1e-5', 0, 'Infinity', true, NULL, NULL, 'stop when the tangent''s norm is below it'),
	('model_stock', 'merge', 'clamp', 1, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'clamp the interpolation ratio to [0, 1]'),
	-- mergekit's parameters in soup.merge_config
	('linear', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the model''s weight'),
	('linear', 'config', 'normalize', 2, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, NULL, 'divide by the weights'' sum'),
	('task_arithmetic', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('task_arithmetic', 'config', 'lambda', 2, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the summed task vectors'),
	('task_arithmetic', 'config', 'normalize', 3, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'divide by the weights'' sum'),
	('ties', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('ties', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'share of the task vector kept'),
	('ties', 'config', 'lambda', 3, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('ties', 'config', 'normalize', 4, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'divide by the agreeing weights'),
	('ties', 'config', 'int8_mask', 5, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('dare_linear', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('dare_linear', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'probability of keeping each entry'),
	('dare_linear', 'config', 'lambda', 3, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('dare_linear', 'config', 'normalize', 4, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'divide by the weights'' sum'),
	('dare_linear', 'config', 'rescale', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'keep each task vector''s L1 norm'),
	('dare_linear', 'config', 'int8_mask', 6, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('dare_linear', 'config', 'seed', 7, 'integer', NULL, NULL, '0', -9223372036854775808, 9223372036854775807, NULL, NULL, 'seed', 'seed of the reproducible draw (pg_soup''s)'),
	('dare_ties', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('dare_ties', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'probability of keeping each entry'),
	('dare_ties', 'config', 'lambda', 3, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('dare_ties', 'config', 'normalize', 4, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'divide by the agreeing weights'),
	('dare_ties', 'config', 'rescale', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'keep each task vector''s L1 norm'),
	('dare_ties', 'config', 'int8_mask', 6, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('dare_ties', 'config', 'seed', 7, 'integer', NULL, NULL, '0', -9223372036854775808, 9223372036854775807, NULL, NULL, 'seed', 'seed of the reproducible draw (pg_soup''s)'),
	('breadcrumbs', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('breadcrumbs', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'share of the task vector kept'),
	('breadcrumbs', 'config', 'gamma', 3, 'number', 'per_model', NULL, '0.01', 0, 1, NULL, NULL, 'gammas', 'share of largest magnitudes dropped'),
	('breadcrumbs', 'config', 'lambda', 4, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('breadcrumbs', 'config', 'normalize', 5, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'divide by the weights'' sum'),
	('breadcrumbs', 'config', 'int8_mask', 6, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('breadcrumbs_ties', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('breadcrumbs_ties', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'share of the task vector kept'),
	('breadcrumbs_ties', 'config', 'gamma', 3, 'number', 'per_model', NULL, '0.01', 0, 1, NULL, NULL, 'gammas', 'share of largest magnitudes dropped'),
	('breadcrumbs_ties', 'config', 'lambda', 4, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('breadcrumbs_ties', 'config', 'normalize', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'divide by the agreeing weights'),
	('breadcrumbs_ties', 'config', 'int8_mask', 6, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('della', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('della', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'mean probability of keeping an entry'),
	('della', 'config', 'epsilon', 3, 'number', 'per_model', NULL, '0.15', 0, 0.5, NULL, NULL, 'epsilons', 'spread of the keep probabilities'),
	('della', 'config', 'lambda', 4, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('della', 'config', 'normalize', 5, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'divide by the agreeing weights'),
	('della', 'config', 'rescale', 6, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, 'rescale', 'keep each task vector''s L1 norm'),
	('della', 'config', 'int8_mask', 7, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('della', 'config', 'seed', 8, 'integer', NULL, NULL, '0', -9223372036854775808, 9223372036854775807, NULL, NULL, 'seed', 'seed of the reproducible draw (pg_soup''s)'),
	('della_linear', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the task vector''s weight'),
	('della_linear', 'config', 'density', 2, 'number', 'per_model', NULL, '1', 0, 1, NULL, NULL, 'densities', 'mean probability of keeping an entry'),
	('della_linear', 'config', 'epsilon', 3, 'number', 'per_model', NULL, '0.15', 0, 0.5, NULL, NULL, 'epsilons', 'spread of the keep probabilities'),
	('della_linear', 'config', 'lambda', 4, 'number', 'per_tensor', NULL, '1', NULL, NULL, NULL, NULL, 'lambda', 'scale of the merged task vector'),
	('della_linear', 'config', 'normalize', 5, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'divide by the weights'' sum'),
	('della_linear', 'config', 'rescale', 6, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, 'rescale', 'keep each task vector''s L1 norm'),
	('della_linear', 'config', 'int8_mask', 7, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, NULL, NULL, 'mergekit''s memory switch (no effect: pg_soup computes exactly)'),
	('della_linear', 'config', 'seed', 8, 'integer', NULL, NULL, '0', -9223372036854775808, 9223372036854775807, NULL, NULL, 'seed', 'seed of the reproducible draw (pg_soup''s)'),
	('slerp', 'config', 't', 1, 'number', 'per_tensor', true, NULL, 0, 1, NULL, NULL, 't', 'from the base (0) to the other model (1)'),
	('nuslerp', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the model''s weight'),
	('nuslerp', 'config', 'nuslerp_row_wise', 2, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'slerp rows instead of columns'),
	('nuslerp', 'config', 'nuslerp_flatten', 3, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, '[true]', NULL, 'slerp whole tensors'),
	('multislerp', 'config', 'weight', 1, 'number', 'per_model', true, NULL, NULL, NULL, NULL, NULL, NULL, 'the model''s weight'),
	('multislerp', 'config', 'normalize_weights', 2, 'boolean', NULL, NULL, 'true', NULL, NULL, NULL, NULL, 'normalize_weights', 'divide the weights by their sum'),
	('multislerp', 'config', 'eps', 3, 'number', NULL, NULL, '1e-8', 0, 'Infinity', true, NULL, 'eps', 'added to each norm before dividing by it'),
	('karcher', 'config', 'max_iter', 1, 'integer', NULL, NULL, '10', 1, 100000, NULL, NULL, 'max_iter', 'iterations at most'),
	('karcher', 'config', 'tol', 2, 'number', NULL, NULL, '1e-5', 0, 'Infinity', true, NULL, 'tol', 'stop when the tangent''s norm is below it'),
	('model_stock', 'config', 'filter_wise', 1, 'boolean', NULL, NULL, 'false', NULL, NULL, NULL, '[false]', NULL, 'a ratio per row'),
	('passthrough', 'config', 'scale', 1, 'number', 'per_model', NULL, '1', NULL, NULL, NULL, NULL, NULL, 'multiply the tensors by it')
) AS p(m, face, name, ord, kind, scope, req, dflt, lo, hi, excl, allowed, driver, summary);

-- One parameter in a line: name=default, (required), its range, and where
-- mergekit takes it per model or per tensor (gradients and filters).
CREATE FUNCTION soup._param_doc(p soup.merge_method_params) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT p.name
		   || CASE WHEN p.default_value IS NOT NULL THEN '=' || (p.default_value #>> '{}') ELSE '' END
		   || coalesce(' (' || NULLIF(concat_ws(', ',
				CASE WHEN p.required THEN 'required' END,
				CASE WHEN p.scope = 'per_model' THEN 'per model' WHEN p.scope = 'per_tensor' THEN 'per tensor' END,
				CASE WHEN p.kind = 'integer' AND p.min_value IS NOT NULL AND p.max_value > 1e15 THEN 'integer'
					 WHEN p.min_value IS NOT NULL AND p.max_value IS NOT NULL AND p.max_value < 'Infinity'
					 THEN CASE WHEN p.min_exclusive THEN '(' ELSE '[' END || p.min_value || ', ' || p.max_value || ']'
					 WHEN p.min_exclusive THEN '> ' || p.min_value
					 WHEN p.min_value > '-Infinity' THEN '>= ' || p.min_value END,
				CASE WHEN p.kind = 'models' THEN 'model names' END,
				CASE WHEN p.allowed IS NOT NULL THEN 'only ' || (SELECT string_agg(a #>> '{}', ' or ') FROM jsonb_array_elements(p.allowed) a) END),
				'') || ')', '');
$$;

-- The catalog in a row a method, as `pg_soup methods` and docs/merges.md
-- show it.
CREATE VIEW soup.merge_method_list AS
SELECT m.name AS method,
	   m.in_merge,
	   m.config_driver IS NOT NULL AS in_config,
	   CASE WHEN m.in_merge THEN m.base ELSE m.config_base END AS base,
	   CASE WHEN m.min_models = m.max_models THEN m.min_models::text
			WHEN m.max_models IS NULL THEN m.min_models || '+'
			ELSE m.min_models || '-' || m.max_models END AS models,
	   CASE WHEN m.in_merge THEN m.weights END AS weights,
	   coalesce((SELECT string_agg(soup._param_doc(p), ', ' ORDER BY p.ord) FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'merge'), '') AS merge_params,
	   coalesce((SELECT string_agg(soup._param_doc(p), ', ' ORDER BY p.ord) FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config'), '') AS config_params,
	   m.summary
FROM soup.merge_methods m
ORDER BY m.ord;
COMMENT ON VIEW soup.merge_method_list IS 'The merge methods and their parameters, a line each';
GRANT SELECT ON soup.merge_method_list TO PUBLIC;

-- soup.merge reports its progress and reads its methods from the catalog
-- above: which parameters each takes, their kinds, defaults and ranges, its
-- base, its weights and how many models it merges.
CREATE OR REPLACE FUNCTION soup._method_params(method text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT CASE WHEN m.name IS NOT NULL THEN
		ARRAY['replace'] || ARRAY(SELECT p.name FROM soup.merge_method_params p
								  WHERE p.method = m.name AND p.face = 'merge' ORDER BY p.ord) END
	FROM (SELECT 1) one
	LEFT JOIN soup.merge_methods m ON m.name = $1 AND m.in_merge;
$$;

-- One parameter of soup.merge's params checked against its description.
CREATE FUNCTION soup._check_param(params jsonb, p soup.merge_method_params, n_models int)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v float8;
BEGIN
	IF p.required AND NOT params ? p.name THEN
		PERFORM soup._param_error(format('parameter "%s" is required', p.name));
	END IF;
	IF NOT params ? p.name THEN
		RETURN;
	END IF;
	CASE p.kind
		WHEN 'number', 'integer' THEN
			v := soup._num_param(params, p.name, NULL, coalesce(p.min_value, '-Infinity'),
								 coalesce(p.max_value, 'Infinity'));
			IF p.min_exclusive AND v <= p.min_value THEN
				PERFORM soup._param_error(CASE WHEN p.min_value = 0 THEN format('parameter "%s" must be positive', p.name)
											   ELSE format('parameter "%s" must be above %s', p.name, p.min_value) END);
			END IF;
			IF p.kind = 'integer' AND (params ->> p.name)::numeric <> trunc((params ->> p.name)::numeric) THEN
				PERFORM soup._param_error(format('parameter "%s" must be a whole number', p.name));
			END IF;
			IF p.kind = 'integer' THEN
				-- the float8 bounds round at 2^63: the cast is the exact check
				BEGIN
					PERFORM (params ->> p.name)::numeric::bigint;
				EXCEPTION WHEN numeric_value_out_of_range THEN
					PERFORM soup._param_error(format('parameter "%s" is out of range for a bigint', p.name));
				END;
			END IF;
		WHEN 'boolean' THEN
			IF jsonb_typeof(params -> p.name) <> 'boolean' THEN
				PERFORM soup._param_error(format('parameter "%s" must be true or false', p.name));
			END IF;
		WHEN 'text' THEN
			IF jsonb_typeof(params -> p.name) <> 'string'
			   OR (p.allowed IS NOT NULL AND NOT p.allowed @> jsonb_build_array(params -> p.name)) THEN
				PERFORM soup._param_error(format('parameter "%s" must be %s', p.name,
					coalesce((SELECT string_agg(a::text, ' or ') FROM jsonb_array_elements(p.allowed) a), 'a string'))
					|| CASE WHEN NOT p.required AND p.default_value IS NULL THEN ' (or absent)' ELSE '' END);
			END IF;
		WHEN 'models' THEN
			IF jsonb_typeof(params -> p.name) <> 'array'
			   OR jsonb_array_length(params -> p.name) <> n_models
			   OR EXISTS (SELECT 1 FROM jsonb_array_elements(params -> p.name) f WHERE jsonb_typeof(f) <> 'string') THEN
				PERFORM soup._param_error(format('parameter "%s" must name one model per merged model', p.name));
			END IF;
	END CASE;
END;
$$;

CREATE OR REPLACE FUNCTION soup._check_merge_args(target text, method text, models text[],
									   weights float8[], base text, params jsonb)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	spec soup.merge_methods;
	p soup.merge_method_params;
	bad text;
	n int;
BEGIN
	IF target IS NULL OR method IS NULL OR models IS NULL OR params IS NULL THEN
		RAISE EXCEPTION 'soup.merge: target, method, models and params must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO spec FROM soup.merge_methods m WHERE m.name = method AND m.in_merge;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'soup.merge: unknown method "%"', method
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Methods: ' || (SELECT string_agg(m.name, ', ' ORDER BY m.ord) FROM soup.merge_methods m
								   WHERE m.in_merge) || ' (SELECT * FROM soup.merge_methods).';
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
		IF spec.weights = 'none' THEN
			PERFORM soup._param_error(format('method %s takes no weights', method));
		END IF;
		IF cardinality(weights) <> cardinality(models) OR array_ndims(weights) <> 1 THEN
			PERFORM soup._param_error(format('%s weights for %s models', cardinality(weights), cardinality(models)));
		END IF;
		IF array_position(weights, NULL) IS NOT NULL
			OR EXISTS (SELECT 1 FROM unnest(weights) w WHERE w IN ('NaN', 'Infinity', '-Infinity')) THEN
			PERFORM soup._param_error('weights must be finite numbers');
		END IF;
		IF spec.weights = 'nonzero_sum' AND (SELECT sum(w) FROM unnest(weights) w) = 0 THEN
			RAISE EXCEPTION 'soup.merge: the weights sum to zero'
				USING ERRCODE = 'division_by_zero';
		END IF;
	END IF;
	IF spec.base = 'required' AND base IS NULL THEN
		PERFORM soup._param_error(format('method %s needs a base model', method));
	ELSIF spec.base = 'none' AND base IS NOT NULL THEN
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
	n := cardinality(models);
	IF spec.min_models = spec.max_models AND n <> spec.min_models THEN
		PERFORM soup._param_error(format('method %s merges exactly %s models, not %s', method, spec.min_models, n));
	ELSIF n < spec.min_models OR n > coalesce(spec.max_models, n) THEN
		PERFORM soup._param_error(format('method %s needs %s models%s', method,
			CASE WHEN spec.max_models IS NULL THEN 'at least ' || spec.min_models
				 ELSE spec.min_models || ' to ' || spec.max_models END,
			CASE WHEN spec.base = 'required' THEN ' besides the base' ELSE '' END));
	END IF;
	IF params ? 'replace' AND jsonb_typeof(params -> 'replace') <> 'boolean' THEN
		PERFORM soup._param_error('parameter "replace" must be true or false');
	END IF;
	FOR p IN SELECT * FROM soup.merge_method_params x WHERE x.method = spec.name AND x.face = 'merge' ORDER BY x.ord LOOP
		PERFORM soup._check_param(params, p, n);
	END LOOP;
	IF method IN ('della', 'della_linear')
	   AND NOT soup._della_ok((params ->> 'density')::float8, coalesce((params ->> 'epsilon')::float8, 0.15)) THEN
		PERFORM soup._param_error(format('density %s +/- epsilon %s must lie inside (0, 1)',
										 params -> 'density', coalesce(params -> 'epsilon', '0.15')));
	END IF;
END;
$$;

-- DELLA's keep probabilities run from density - epsilon to density +
-- epsilon: both must lie strictly inside (0, 1) unless density is 0 (drop
-- everything) or 1 (keep everything), as in mergekit.
CREATE FUNCTION soup._della_ok(density float8, epsilon float8) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT density <= 0 OR density >= 1 OR (density - epsilon > 0 AND density + epsilon < 1);
$$;

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

-------------------------------------------------------------------------------
-- mergekit configurations: soup.merge_config
-------------------------------------------------------------------------------

-- What merge_config knows of a mergekit method, from the catalog
-- (soup.merge_methods, soup.merge_method_params): the driver method that
-- computes it, the names of the parameters it reads per model, per tensor (a
-- number, gradient or conditions, the same for every model) or once (a plain
-- value), their descriptions (the per-model ones; then the per-tensor and
-- the plain ones), how it treats the base and how many models it takes.
CREATE FUNCTION soup._mk_method(method text, OUT driver text, OUT per_model text[],
								OUT per_tensor text[], OUT scalars text[],
								OUT model_params soup.merge_method_params[],
								OUT tensor_params soup.merge_method_params[],
								OUT base text, OUT min_models int, OUT max_models int)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT m.config_driver,
		   ARRAY(SELECT p.name FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config' AND p.scope = 'per_model' ORDER BY p.ord),
		   ARRAY(SELECT p.name FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config' AND p.scope = 'per_tensor' ORDER BY p.ord),
		   ARRAY(SELECT p.name FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config' AND p.scope = 'global' ORDER BY p.ord),
		   ARRAY(SELECT p FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config' AND p.scope = 'per_model' ORDER BY p.ord),
		   ARRAY(SELECT p FROM soup.merge_method_params p
				 WHERE p.method = m.name AND p.face = 'config' AND p.scope <> 'per_model'
				 ORDER BY p.scope = 'global', p.ord),
		   m.config_base, m.min_models, m.max_models
	FROM soup.merge_methods m
	WHERE m.name = method AND m.config_driver IS NOT NULL;
$$;

-- A resolved config parameter checked against its description: its kind,
-- its range, and whether pg_soup computes that value (0A000 if not).
CREATE FUNCTION soup._mk_check_value(p soup.merge_method_params, v jsonb, place text, tensor text)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	x float8;
BEGIN
	IF p.kind = 'boolean' AND jsonb_typeof(v) <> 'boolean' THEN
		PERFORM soup._mk_error(place, 'must be true or false');
	ELSIF p.kind = 'integer' AND (jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric % 1 <> 0) THEN
		PERFORM soup._mk_error(place, 'must be an integer');
	ELSIF p.kind IN ('number', 'integer') THEN
		x := soup._mk_number(v, place, tensor);
		IF p.min_exclusive AND x <= p.min_value THEN
			PERFORM soup._mk_error(place, CASE WHEN p.min_value = 0 THEN 'must be a positive number'
											   ELSE format('must be above %s', p.min_value) END);
		ELSIF x < p.min_value OR x > p.max_value THEN
			PERFORM soup._mk_error(place, CASE WHEN p.max_value IS NULL OR p.max_value = 'Infinity'
											   THEN format('%s is below %s (tensor "%s")', x, p.min_value, tensor)
											   ELSE format('%s is not between %s and %s (tensor "%s")', x, p.min_value,
														   p.max_value, tensor) END);
		END IF;
	END IF;
	IF p.allowed IS NOT NULL AND NOT p.allowed @> jsonb_build_array(v) THEN
		PERFORM soup._mk_error(place, format('%s with %s: %s is not available yet (pg_soup computes %s)',
											 p.method, p.name, v, p.allowed), '0A000');
	END IF;
END;
$$;

-- "method takes N models", from the catalog's counts.
CREATE FUNCTION soup._mk_count_error(method text, lo int, hi int, base text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT format('%s takes %s %s%s', method,
				  CASE WHEN lo = hi THEN lo::text WHEN hi IS NULL THEN 'at least ' || lo ELSE lo || ' to ' || hi END,
				  CASE WHEN lo = 1 AND hi = 1 THEN 'model' ELSE 'models' END,
				  CASE WHEN base IN ('required', 'optional') THEN ' besides the base' ELSE '' END);
$$;

CREATE FUNCTION soup._mk_error(place text, msg text, code text DEFAULT '22023') RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'soup.merge_config: %: %', place, msg USING ERRCODE = code;
END;
$$;

-- A parameter setting evaluated for one tensor at position t: a plain value
-- is itself; a list of numbers is a gradient, interpolated linearly at t; a
-- list of {filter, value} is the value of the first condition whose filter
-- is a substring of the tensor name (or that has no filter), evaluated in
-- turn; NULL when no condition matches.
CREATE FUNCTION soup._mk_value(setting jsonb, tensor text, t float8, place text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kinds text[];
	m int;
	s float8;
	i int;
	frac float8;
	c jsonb;
	k int := 0;
BEGIN
	IF setting IS NULL OR jsonb_typeof(setting) <> 'array' THEN
		IF jsonb_typeof(setting) = 'object' THEN
			PERFORM soup._mk_error(place, 'a parameter is a number, a list of numbers (a gradient) '
										  'or a list of {filter, value} conditions, not an object');
		END IF;
		RETURN setting;
	END IF;
	kinds := ARRAY(SELECT DISTINCT jsonb_typeof(e) FROM jsonb_array_elements(setting) e);
	IF cardinality(kinds) = 0 THEN
		PERFORM soup._mk_error(place, 'an empty list is neither a gradient nor a list of conditions');
	ELSIF kinds = ARRAY['number'] THEN
		m := jsonb_array_length(setting) - 1;
		s := t * m;
		i := floor(s)::int;
		frac := s - i;
		RETURN to_jsonb((1 - frac) * (setting ->> i)::float8
						+ frac * (setting ->> least(i + 1, m))::float8);
	ELSIF kinds = ARRAY['object'] THEN
		FOR c IN SELECT e FROM jsonb_array_elements(setting) e LOOP
			IF EXISTS (SELECT 1 FROM jsonb_object_keys(c) key WHERE key NOT IN ('filter', 'value')) THEN
				PERFORM soup._mk_error(format('%s[%s]', place, k), 'a condition has only "filter" and "value"');
			ELSIF NOT c ? 'value' THEN
				PERFORM soup._mk_error(format('%s[%s]', place, k), 'a condition needs a "value"');
			ELSIF c ? 'filter' AND jsonb_typeof(c -> 'filter') NOT IN ('string', 'null') THEN
				PERFORM soup._mk_error(format('%s[%s].filter', place, k), 'a filter is a string');
			END IF;
			IF coalesce(c ->> 'filter', '') = '' OR strpos(tensor, c ->> 'filter') > 0 THEN
				RETURN soup._mk_value(c -> 'value', tensor, t, format('%s[%s].value', place, k));
			END IF;
			k := k + 1;
		END LOOP;
		RETURN NULL;
	END IF;
	PERFORM soup._mk_error(place, 'a list must hold only numbers (a gradient) or only {filter, value} conditions');
	RETURN NULL;
END;
$$;

-- The layer index of a tensor name (NULL outside the layers): the first
-- capture group of the pattern.
CREATE FUNCTION soup._mk_layer(name text, pattern text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT substring(name FROM pattern)::int;
$$;

-- The name with its layer index replaced by idx.
CREATE FUNCTION soup._mk_rename(name text, pattern text, idx int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
	SELECT overlay(name PLACING idx::text
				   FROM regexp_instr(name, pattern, 1, 1, 0, '', 1)
				   FOR length(substring(name FROM pattern)));
$$;

CREATE FUNCTION soup._mk_dtype(v text, place text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF v IS NULL THEN
		RETURN NULL;
	END IF;
	CASE lower(v)
		WHEN 'float32', 'f32', 'fp32' THEN RETURN 'f32';
		WHEN 'float16', 'f16', 'fp16', 'half' THEN RETURN 'f16';
		WHEN 'bfloat16', 'bf16' THEN RETURN 'bf16';
		WHEN 'float64', 'f64', 'double' THEN RETURN 'f64';
		ELSE PERFORM soup._mk_error(place, format('unknown dtype "%s" (float32, float16, bfloat16, float64)', v));
	END CASE;
	RETURN NULL;
END;
$$;

-- The model id of a config's model reference (a pg_soup model name).
CREATE FUNCTION soup._mk_model(ref jsonb, place text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id bigint;
BEGIN
	IF ref IS NULL OR jsonb_typeof(ref) <> 'string' THEN
		PERFORM soup._mk_error(place, 'a model is named by a string: the name of a pg_soup model');
	END IF;
	SELECT m.id INTO id FROM soup.models m WHERE m.name = ref #>> '{}';
	IF id IS NULL THEN
		PERFORM soup._mk_error(place, format('model "%s" does not exist', ref #>> '{}'), '42704');
	END IF;
	RETURN id;
END;
$$;

-- Check the keys of a config object against the ones allowed there.
CREATE FUNCTION soup._mk_keys(obj jsonb, allowed text[], place text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad text;
BEGIN
	IF obj IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(obj) <> 'object' THEN
		PERFORM soup._mk_error(place, format('expected an object, not a JSON %s', jsonb_typeof(obj)));
	END IF;
	SELECT k INTO bad FROM jsonb_object_keys(obj) k WHERE k <> ALL (allowed) ORDER BY k LIMIT 1;
	IF bad IS NOT NULL THEN
		PERFORM soup._mk_error(place, format('unknown key "%s" (allowed: %s)', bad, array_to_string(allowed, ', ')));
	END IF;
END;
$$;

-- Resolve one parameter for one tensor of one input: the input's own
-- parameters, then the slice's, then the global ones, then the default.
-- Returns the value and where it came from (for errors and strict mode).
CREATE FUNCTION soup._mk_param(name text, levels jsonb[], places text[], tensor text, t float8,
							   strict_mode boolean, OUT value jsonb, OUT place text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	FOR i IN 1 .. cardinality(levels) LOOP
		IF levels[i] ? name THEN
			value := soup._mk_value(levels[i] -> name, tensor, t, places[i] || '.' || name);
			place := places[i] || '.' || name;
			IF value IS NOT NULL AND value <> 'null'::jsonb THEN
				RETURN;
			ELSIF strict_mode THEN
				PERFORM soup._mk_error(place, format('no condition matches tensor "%s" (strict mode)', tensor));
			END IF;
		END IF;
	END LOOP;
	value := NULL;
	place := NULL;
END;
$$;

-- A resolved parameter as a finite number (booleans and integers by name).
CREATE FUNCTION soup._mk_number(v jsonb, place text, tensor text) RETURNS float8
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF jsonb_typeof(v) <> 'number' THEN
		PERFORM soup._mk_error(place, format('must be a number for tensor "%s", not %s', tensor, v));
	END IF;
	RETURN (v #>> '{}')::float8;
END;
$$;

-- Merge models as a mergekit configuration describes (JSON; the C client
-- reads it from YAML): per-model and per-tensor parameters, gradients over
-- the layers, filters on tensor names, layer slices stacked from several
-- models, an output dtype.  One transaction; returns the new model's id.
-- docs/merges.md, "mergekit configurations", has the rules.
CREATE FUNCTION soup.merge_config(target text, config jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	spec record;
	param_names text[];			-- every parameter the method reads
	method text;
	driver text;
	opts jsonb;
	pattern text;
	pre_pattern text;
	strict_mode boolean;
	out_dtype text;
	global_params jsonb;
	base_id bigint;
	base_name text;
	new_id bigint;
	src record;
	tens record;
	row_ record;
	grp record;
	slice jsonb;
	s int := 0;
	j int;
	offset_ int := 0;
	len int;
	first_len int;
	lo int;
	hi int;
	names text[];
	ids bigint[];
	places text[];
	settings jsonb[];
	all_ids bigint[] := '{}';
	all_names text[] := '{}';
	ref_id bigint;
	n_layers int;
	t float8;
	idx int;
	ord int := 0;
	v record;
	w float8[];
	gparams jsonb;
	dparams jsonb;				-- the driver's parameters of one tensor
	pspec soup.merge_method_params;
	vals jsonb;
	scale_v float8;
	scratch bigint;
	copies bigint[];
	relayouts bigint[] := '{}';
	old_id bigint;
	written bigint;
	expected bigint;
	bad text;
	tensor_names text[];
BEGIN
	IF target IS NULL OR config IS NULL THEN
		RAISE EXCEPTION 'soup.merge_config: target and config must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM soup._mk_keys(config, ARRAY['merge_method', 'base_model', 'models', 'slices', 'parameters',
										'dtype', 'out_dtype', 'tokenizer_source', 'name', 'pg_soup'], 'config');
	IF jsonb_typeof(config -> 'merge_method') IS DISTINCT FROM 'string' THEN
		PERFORM soup._mk_error('merge_method', 'required: the name of a method');
	END IF;
	method := config ->> 'merge_method';
	SELECT * INTO spec FROM soup._mk_method(method);
	driver := spec.driver;
	param_names := spec.per_model || spec.per_tensor || spec.scalars;
	IF spec.driver IS NULL THEN
		IF method IN ('sce', 'nearswap', 'arcee_fusion') THEN
			PERFORM soup._mk_error('merge_method', format('mergekit''s method "%s" is not available yet', method),
								   '0A000');
		END IF;
		PERFORM soup._mk_error('merge_method', format('unknown method "%s" (%s)', method,
			(SELECT string_agg(m.name, ', ' ORDER BY m.ord) FROM soup.merge_methods m WHERE m.config_driver IS NOT NULL)));
	END IF;
	opts := coalesce(config -> 'pg_soup', '{}');
	PERFORM soup._mk_keys(opts, ARRAY['layer_pattern', 'pre_pattern', 'strict', 'replace'], 'pg_soup');
	pattern := coalesce(opts ->> 'layer_pattern', '(?:^|\.)(?:layers|layer|h|blocks)\.([0-9]+)\.');
	pre_pattern := coalesce(opts ->> 'pre_pattern', 'embed|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|token_type_embeddings');
	strict_mode := coalesce((opts ->> 'strict')::boolean, false);
	IF config ? 'tokenizer_source' AND config ->> 'tokenizer_source' NOT IN ('base') THEN
		PERFORM soup._mk_error('tokenizer_source', 'only "base" is supported: a merge keeps the files '
												   '(tokenizer included) of its base or first model', '0A000');
	END IF;
	PERFORM soup._mk_dtype(config ->> 'dtype', 'dtype');
	out_dtype := soup._mk_dtype(config ->> 'out_dtype', 'out_dtype');
	global_params := coalesce(config -> 'parameters', '{}');
	PERFORM soup._mk_keys(global_params, param_names, 'parameters');
	IF (config ? 'models') = (config ? 'slices') THEN
		PERFORM soup._mk_error('config', 'give either "models" or "slices"');
	END IF;
	IF config ? 'base_model' THEN
		base_id := soup._mk_model(config -> 'base_model', 'base_model');
		base_name := config ->> 'base_model';
	ELSIF spec.base IN ('required', 'first') THEN
		PERFORM soup._mk_error('base_model', format('method %s needs a base_model', method));
	END IF;
	IF EXISTS (SELECT 1 FROM soup.models WHERE name = target) THEN
		IF coalesce((opts ->> 'replace')::boolean, false) THEN
			DELETE FROM soup.models WHERE name = target;
		ELSE
			RAISE EXCEPTION 'model "%" already exists', target USING ERRCODE = 'duplicate_object',
				HINT = 'Set pg_soup: {replace: true} in the config to overwrite it.';
		END IF;
	END IF;

	-- the plan: one row per output tensor with its inputs, in output order
	IF to_regclass('pg_temp.soup_mk_plan') IS NOT NULL THEN
		DROP TABLE pg_temp.soup_mk_plan;
	END IF;
	CREATE TEMP TABLE soup_mk_plan (
		out_name text, out_ord int, t float8, src_names text[], ids bigint[], model_names text[],
		places text[], settings jsonb[], slice_params jsonb, dtype text, shape bigint[], numel bigint,
		chunk_elems int, base_src text, weights float8[], params jsonb, scale float8
	) ON COMMIT DROP;

	IF config ? 'models' THEN
		IF jsonb_typeof(config -> 'models') <> 'array' OR jsonb_array_length(config -> 'models') = 0 THEN
			PERFORM soup._mk_error('models', 'a non-empty list of {model, parameters}');
		END IF;
		FOR src IN SELECT e, (o - 1)::int AS k FROM jsonb_array_elements(config -> 'models') WITH ORDINALITY x(e, o) LOOP
			PERFORM soup._mk_keys(src.e, ARRAY['model', 'parameters'], format('models[%s]', src.k));
			PERFORM soup._mk_keys(coalesce(src.e -> 'parameters', '{}'), param_names,
								  format('models[%s].parameters', src.k));
			idx := soup._mk_model(src.e -> 'model', format('models[%s].model', src.k));
			-- task vectors of the base are zero: the task-arithmetic family skips it
			CONTINUE WHEN spec.base IN ('required', 'optional') AND idx = base_id;
			IF idx = ANY (ids) THEN
				PERFORM soup._mk_error(format('models[%s].model', src.k), format('model "%s" is listed twice', src.e ->> 'model'));
			END IF;
			ids := ids || idx;
			names := names || (src.e ->> 'model');
			places := places || format('models[%s].parameters', src.k);
			settings := settings || coalesce(src.e -> 'parameters', '{}');
		END LOOP;
		IF spec.base = 'first' THEN
			-- slerp: from the base (t = 0) to the other model (t = 1)
			IF cardinality(ids) <> 2 OR base_id <> ALL (ids) THEN
				PERFORM soup._mk_error('models', 'slerp takes two models, one of them the base_model');
			END IF;
			IF ids[1] <> base_id THEN
				ids := ARRAY[ids[2], ids[1]];
				names := ARRAY[names[2], names[1]];
				places := ARRAY[places[2], places[1]];
				settings := ARRAY[settings[2], settings[1]];
			END IF;
		END IF;
		IF coalesce(cardinality(ids), 0) = 0 THEN
			PERFORM soup._mk_error('models', 'no model to merge besides the base');
		ELSIF NOT cardinality(ids) BETWEEN spec.min_models AND coalesce(spec.max_models, cardinality(ids)) THEN
			PERFORM soup._mk_error('models', soup._mk_count_error(method, spec.min_models, spec.max_models, spec.base)
											 || CASE WHEN method = 'passthrough' THEN ' (use slices to stack several)' ELSE '' END);
		END IF;
		ref_id := ids[1];
		FOR i IN 2 .. cardinality(ids) LOOP
			PERFORM soup._check_same_tensors(names[1], ids[1], names[i], ids[i], same_layout => false);
		END LOOP;
		IF base_id IS NOT NULL AND spec.base <> 'ignored' THEN
			PERFORM soup._check_same_tensors(names[1], ids[1], base_name, base_id, same_layout => false);
		END IF;
		SELECT coalesce(max(soup._mk_layer(name, pattern)) + 1, 0) INTO n_layers
		FROM soup.tensors WHERE model_id = ref_id;
		INSERT INTO soup_mk_plan (out_name, out_ord, t, src_names, ids, model_names, places, settings,
								  slice_params, dtype, shape, numel, chunk_elems, base_src)
		SELECT x.name, x.ordinal,
			   CASE WHEN soup._mk_layer(x.name, pattern) IS NOT NULL
					THEN CASE WHEN n_layers > 1 THEN soup._mk_layer(x.name, pattern)::float8 / (n_layers - 1) ELSE 1 END
					WHEN x.name ~ pre_pattern THEN 0 ELSE 1 END,
			   array_fill(x.name, ARRAY[cardinality(ids)]), ids, names, places, settings, '{}',
			   x.dtype, x.shape, x.numel, x.chunk_elems, x.name
		FROM soup.tensors x WHERE x.model_id = ref_id;
	ELSE
		IF jsonb_typeof(config -> 'slices') <> 'array' OR jsonb_array_length(config -> 'slices') = 0 THEN
			PERFORM soup._mk_error('slices', 'a non-empty list of {sources}');
		END IF;
		FOR slice IN SELECT e FROM jsonb_array_elements(config -> 'slices') e LOOP
			PERFORM soup._mk_keys(slice, ARRAY['sources', 'parameters'], format('slices[%s]', s));
			PERFORM soup._mk_keys(coalesce(slice -> 'parameters', '{}'), param_names,
								  format('slices[%s].parameters', s));
			IF jsonb_typeof(slice -> 'sources') IS DISTINCT FROM 'array' OR jsonb_array_length(slice -> 'sources') = 0 THEN
				PERFORM soup._mk_error(format('slices[%s].sources', s), 'a non-empty list of {model, layer_range}');
			END IF;
			ids := '{}'; names := '{}'; places := '{}'; settings := '{}';
			DECLARE
				starts int[] := '{}';
			BEGIN
				j := 0;
				FOR src IN SELECT e FROM jsonb_array_elements(slice -> 'sources') e LOOP
					PERFORM soup._mk_keys(src.e, ARRAY['model', 'layer_range', 'parameters'],
										  format('slices[%s].sources[%s]', s, j));
					PERFORM soup._mk_keys(coalesce(src.e -> 'parameters', '{}'), param_names,
										  format('slices[%s].sources[%s].parameters', s, j));
					idx := soup._mk_model(src.e -> 'model', format('slices[%s].sources[%s].model', s, j));
					IF jsonb_typeof(src.e -> 'layer_range') IS DISTINCT FROM 'array'
					   OR jsonb_array_length(src.e -> 'layer_range') <> 2
					   OR jsonb_typeof(src.e -> 'layer_range' -> 0) <> 'number'
					   OR jsonb_typeof(src.e -> 'layer_range' -> 1) <> 'number' THEN
						PERFORM soup._mk_error(format('slices[%s].sources[%s].layer_range', s, j),
											   'required: [first, end) as two integers');
					END IF;
					lo := (src.e -> 'layer_range' ->> 0)::int;
					hi := (src.e -> 'layer_range' ->> 1)::int;
					len := hi - lo;
					IF lo < 0 OR len < 1 THEN
						PERFORM soup._mk_error(format('slices[%s].sources[%s].layer_range', s, j),
											   format('[%s, %s) holds no layer', lo, hi));
					END IF;
					IF NOT EXISTS (SELECT 1 FROM soup.tensors WHERE model_id = idx AND soup._mk_layer(name, pattern) = hi - 1) THEN
						PERFORM soup._mk_error(format('slices[%s].sources[%s].layer_range', s, j),
											   format('model "%s" has no layer %s', src.e ->> 'model', hi - 1));
					END IF;
					IF j = 0 THEN
						first_len := len;
					ELSIF len <> first_len THEN
						PERFORM soup._mk_error(format('slices[%s].sources[%s].layer_range', s, j),
											   format('spans %s layers, slices[%s].sources[0] spans %s', len, s, first_len));
					END IF;
					CONTINUE WHEN spec.base IN ('required', 'optional') AND idx = base_id;
					ids := ids || idx;
					names := names || (src.e ->> 'model');
					places := places || format('slices[%s].sources[%s].parameters', s, j);
					settings := settings || coalesce(src.e -> 'parameters', '{}');
					starts := starts || lo;
					j := j + 1;
				END LOOP;
				IF method = 'passthrough' AND cardinality(ids) <> 1 THEN
					PERFORM soup._mk_error(format('slices[%s].sources', s), 'passthrough takes one source a slice');
				ELSIF spec.base = 'first' THEN
					IF cardinality(ids) <> 2 OR base_id <> ALL (ids) THEN
						PERFORM soup._mk_error(format('slices[%s].sources', s), 'slerp takes two sources, one of them the base_model');
					END IF;
					IF ids[1] <> base_id THEN
						ids := ARRAY[ids[2], ids[1]]; names := ARRAY[names[2], names[1]];
						places := ARRAY[places[2], places[1]]; settings := ARRAY[settings[2], settings[1]];
						starts := ARRAY[starts[2], starts[1]];
					END IF;
				ELSIF cardinality(ids) = 0 THEN
					PERFORM soup._mk_error(format('slices[%s].sources', s), 'no source to merge besides the base');
				ELSIF method <> 'passthrough'
					  AND NOT cardinality(ids) BETWEEN spec.min_models AND coalesce(spec.max_models, cardinality(ids)) THEN
					PERFORM soup._mk_error(format('slices[%s].sources', s),
										   soup._mk_count_error(method, spec.min_models, spec.max_models, spec.base));
				END IF;
				IF s = 0 THEN
					ref_id := ids[1];
				END IF;
				-- the layers of this slice, renumbered from the output's offset
				FOR i IN 0 .. first_len - 1 LOOP
					t := CASE WHEN first_len > 1 THEN i::float8 / (first_len - 1) ELSE 1 END;
					INSERT INTO soup_mk_plan (out_name, out_ord, t, src_names, ids, model_names, places, settings,
											  slice_params, dtype, shape, numel, chunk_elems, base_src)
					SELECT soup._mk_rename(x.name, pattern, offset_ + i), 100000000 + (offset_ + i) * 100000 + x.ordinal, t,
						   ARRAY(SELECT soup._mk_rename(x.name, pattern, st + i) FROM unnest(starts) st),
						   ids, names, places, settings, coalesce(slice -> 'parameters', '{}'),
						   x.dtype, x.shape, x.numel, x.chunk_elems,
						   CASE WHEN base_id IS NOT NULL THEN soup._mk_rename(x.name, pattern, starts[1] + i) END
					FROM soup.tensors x
					WHERE x.model_id = ids[1] AND soup._mk_layer(x.name, pattern) = starts[1] + i;
				END LOOP;
				all_ids := all_ids || ARRAY(SELECT x FROM unnest(ids) x WHERE x <> ALL (all_ids));
				all_names := all_names || ARRAY(SELECT n FROM unnest(names) n WHERE n <> ALL (all_names));
				offset_ := offset_ + first_len;
			END;
			s := s + 1;
		END LOOP;
		-- tensors outside the layers: embeddings (t = 0) and the final norm and
		-- head (t = 1); passthrough takes them from the first slice's model and
		-- the last slice's, the other methods merge them across every model
		INSERT INTO soup_mk_plan (out_name, out_ord, t, src_names, ids, model_names, places, settings,
								  slice_params, dtype, shape, numel, chunk_elems, base_src)
		SELECT x.name, CASE WHEN x.name ~ pre_pattern THEN x.ordinal ELSE 200000000 + x.ordinal END,
			   CASE WHEN x.name ~ pre_pattern THEN 0 ELSE 1 END,
			   CASE WHEN method = 'passthrough' THEN ARRAY[x.name]
					ELSE array_fill(x.name, ARRAY[cardinality(all_ids)]) END,
			   CASE WHEN method = 'passthrough' THEN ARRAY[x.model_id] ELSE all_ids END,
			   CASE WHEN method = 'passthrough' THEN ARRAY[(SELECT name FROM soup.models WHERE id = x.model_id)]
					ELSE all_names END,
			   CASE WHEN method = 'passthrough' THEN '{parameters}'::text[]
					ELSE ARRAY(SELECT 'parameters' FROM unnest(all_ids)) END,
			   CASE WHEN method = 'passthrough' THEN ARRAY['{}'::jsonb]
					ELSE ARRAY(SELECT '{}'::jsonb FROM unnest(all_ids)) END,
			   '{}', x.dtype, x.shape, x.numel, x.chunk_elems, x.name
		FROM soup.tensors x
		WHERE soup._mk_layer(x.name, pattern) IS NULL
		  AND x.model_id = CASE WHEN method <> 'passthrough' THEN all_ids[1]
								WHEN x.name ~ pre_pattern THEN ref_id ELSE ids[1] END;
		IF spec.base = 'first' AND all_ids[1] <> base_id THEN
			PERFORM soup._mk_error('slices', 'slerp needs the base_model in every slice');
		END IF;
		-- every input must hold the tensors the plan reads, in the same shape
		SELECT format('model "%s" has no tensor "%s" of the shape and dtype of "%s" in "%s"',
					  p.model_names[k], p.src_names[k], p.src_names[1], p.model_names[1])
		INTO bad
		FROM soup_mk_plan p, generate_subscripts(p.ids, 1) k
		WHERE NOT EXISTS (SELECT 1 FROM soup.tensors y WHERE y.model_id = p.ids[k] AND y.name = p.src_names[k]
						  AND y.shape = p.shape AND y.dtype = p.dtype)
		LIMIT 1;
		IF bad IS NOT NULL THEN
			PERFORM soup._mk_error('slices', bad, '22000');
		END IF;
		IF base_id IS NOT NULL AND spec.base IN ('required', 'optional') THEN
			SELECT format('base_model "%s" has no tensor "%s" of its shape and dtype', base_name, p.base_src) INTO bad
			FROM soup_mk_plan p
			WHERE NOT EXISTS (SELECT 1 FROM soup.tensors y WHERE y.model_id = base_id AND y.name = p.base_src
							  AND y.shape = p.shape AND y.dtype = p.dtype)
			LIMIT 1;
			IF bad IS NOT NULL THEN
				PERFORM soup._mk_error('base_model', bad, '22000');
			END IF;
		END IF;
		IF strict_mode THEN
			-- every layer of every source model must be in some slice
			SELECT format('layer %s of model "%s" is in no slice (strict mode)', soup._mk_layer(y.name, pattern), m.name)
			INTO bad
			FROM soup.tensors y JOIN soup.models m ON m.id = y.model_id
			WHERE y.model_id = ANY (all_ids) AND soup._mk_layer(y.name, pattern) IS NOT NULL
			  AND NOT EXISTS (SELECT 1 FROM soup_mk_plan p, generate_subscripts(p.ids, 1) k
							  WHERE p.ids[k] = y.model_id AND p.src_names[k] = y.name)
			LIMIT 1;
			IF bad IS NOT NULL THEN
				PERFORM soup._mk_error('slices', bad);
			END IF;
		END IF;
	END IF;

	-- resolve every parameter for every tensor, check it against the
	-- method's description (soup.merge_method_params) and turn it into the
	-- driver's parameters (per-model ones as lists, one value per model)
	FOR row_ IN SELECT * FROM soup_mk_plan ORDER BY out_ord LOOP
		w := '{}'; scale_v := 1;
		gparams := '{}';
		dparams := '{}';
		IF row_.dtype NOT IN ('f32', 'f64', 'f16', 'bf16') THEN
			CONTINUE;
		END IF;
		FOREACH pspec IN ARRAY spec.model_params LOOP
			bad := pspec.name;
			vals := '[]';
			FOR k IN 1 .. cardinality(row_.ids) LOOP
				SELECT * INTO v FROM soup._mk_param(bad, ARRAY[row_.settings[k], row_.slice_params, global_params],
												   ARRAY[row_.places[k], 'slice parameters', 'parameters'],
												   row_.out_name, row_.t, strict_mode);
				IF v.value IS NULL AND pspec.required THEN
					PERFORM soup._mk_error(row_.places[k], format('parameter "%s" has no value for tensor "%s" (model "%s")',
																  bad, row_.out_name, row_.model_names[k]));
				END IF;
				v.value := coalesce(v.value, pspec.default_value);
				PERFORM soup._mk_check_value(pspec, v.value, coalesce(v.place, bad), row_.out_name);
				vals := vals || jsonb_build_array(v.value);
			END LOOP;
			IF bad = 'weight' THEN
				w := ARRAY(SELECT (x #>> '{}')::float8 FROM jsonb_array_elements(vals) WITH ORDINALITY a(x, o) ORDER BY o);
			ELSIF bad = 'scale' THEN
				scale_v := (vals ->> 0)::float8;
			END IF;
			IF pspec.driver_param IS NOT NULL THEN
				dparams := dparams || jsonb_build_object(pspec.driver_param, vals);
			END IF;
		END LOOP;
		FOREACH pspec IN ARRAY spec.tensor_params LOOP
			bad := pspec.name;
			IF EXISTS (SELECT 1 FROM unnest(row_.settings) x WHERE x ? bad) THEN
				PERFORM soup._mk_error(row_.places[1], format('parameter "%s" applies to the whole merge: '
															   'put it in the global parameters', bad));
			END IF;
			SELECT * INTO v FROM soup._mk_param(bad, ARRAY[row_.slice_params, global_params],
											   ARRAY['slice parameters', 'parameters'], row_.out_name, row_.t, strict_mode);
			IF v.value IS NULL AND pspec.required THEN
				PERFORM soup._mk_error('parameters', format('parameter "%s" has no value for tensor "%s"', bad, row_.out_name));
			END IF;
			IF pspec.scope = 'global' AND (global_params -> bad) IS NOT NULL
			   AND jsonb_typeof(global_params -> bad) IN ('array', 'object') THEN
				PERFORM soup._mk_error('parameters.' || bad, 'takes one value, not a gradient or a list of conditions');
			END IF;
			v.value := coalesce(v.value, pspec.default_value);
			PERFORM soup._mk_check_value(pspec, v.value, coalesce(v.place, 'parameters.' || bad), row_.out_name);
			gparams := gparams || jsonb_build_object(bad, v.value);
			IF pspec.driver_param IS NOT NULL THEN
				dparams := dparams || jsonb_build_object(pspec.driver_param, v.value);
			END IF;
		END LOOP;
		IF method = 'linear' AND NOT (gparams ->> 'normalize')::boolean THEN
			driver := 'sum';		-- the weighted sum, not divided by the weights' sum
		END IF;
		IF method IN ('della', 'della_linear') THEN
			FOR k IN 1 .. cardinality(row_.ids) LOOP
				IF NOT soup._della_ok((dparams -> 'densities' ->> (k - 1))::float8,
									  (dparams -> 'epsilons' ->> (k - 1))::float8) THEN
					PERFORM soup._mk_error(row_.places[k], format('density %s +/- epsilon %s must lie inside (0, 1) (tensor "%s")',
																  dparams -> 'densities' -> (k - 1), dparams -> 'epsilons' -> (k - 1),
																  row_.out_name));
				END IF;
			END LOOP;
		END IF;
		IF EXISTS (SELECT 1 FROM unnest(w) x WHERE x IN ('NaN', 'Infinity', '-Infinity')) THEN
			PERFORM soup._mk_error('weight', format('weights must be finite (tensor "%s")', row_.out_name));
		END IF;
		UPDATE soup_mk_plan SET weights = CASE WHEN 'weight' = ANY (spec.per_model) THEN w END,
			   params = dparams, scale = scale_v
		WHERE out_name = row_.out_name;
	END LOOP;

	-- the new model and its catalog
	INSERT INTO soup.models (name, kind, base_model, metadata, recipe)
	SELECT target, 'merge', base_name, m.metadata,
		   jsonb_build_object('method', 'merge_config', 'merge_method', method,
							  'models', to_jsonb(coalesce(NULLIF(all_names, '{}'), names)),
							  'model_ids', to_jsonb(coalesce(NULLIF(all_ids, '{}'), ids)),
							  'base', base_name, 'config', config)
	FROM soup.models m WHERE m.id = ref_id
	RETURNING id INTO new_id;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	SELECT new_id, out_name, (row_number() OVER (ORDER BY out_ord) - 1)::int,
		   CASE WHEN out_dtype IS NOT NULL AND dtype IN ('f32', 'f64', 'f16', 'bf16') THEN out_dtype ELSE dtype END,
		   shape, numel, chunk_elems
	FROM soup_mk_plan;
	INSERT INTO soup.model_files (model_id, name, bytes)
	SELECT new_id, f.name, f.bytes FROM soup.model_files f WHERE f.model_id = coalesce(base_id, ref_id);
	IF FOUND THEN
		UPDATE soup.models m SET recipe = m.recipe || jsonb_build_object('files_from',
				(SELECT name FROM soup.models WHERE id = coalesce(base_id, ref_id)))
		WHERE m.id = new_id;
	END IF;

	-- inputs stored in another chunk layout than the first model are merged
	-- from copies in its layout, as soup.merge does (passthrough copies each
	-- tensor in its own layout and needs none)
	IF method <> 'passthrough' THEN
		FOR old_id IN
			SELECT DISTINCT x FROM soup_mk_plan p, unnest(p.ids || base_id) x
			WHERE x IS NOT NULL AND x <> ref_id AND soup._layout_differs(ref_id, x)
		LOOP
			scratch := soup._relayout_copy(old_id, ref_id, new_id);
			relayouts := relayouts || scratch;
			UPDATE soup_mk_plan p SET ids = array_replace(p.ids, old_id, scratch);
			base_id := CASE WHEN base_id = old_id THEN scratch ELSE base_id END;
		END LOOP;
	END IF;

	-- raw (integer, bool, f8) tensors come from the first input as they are
	INSERT INTO soup.chunks (model_id, tensor, chunk, data)
	SELECT new_id, p.out_name, c.chunk, c.data
	FROM soup_mk_plan p JOIN soup.chunks c ON c.model_id = p.ids[1] AND c.tensor = p.src_names[1]
	WHERE p.dtype NOT IN ('f32', 'f64', 'f16', 'bf16');

	-- the float tensors, a group of tensors with the same inputs and
	-- parameters at a time
	FOR grp IN
		SELECT p.ids, p.weights, p.params, p.scale,
			   bool_and(p.src_names = array_fill(p.out_name, ARRAY[cardinality(p.ids)])
						AND (p.base_src IS NULL OR p.base_src = p.out_name)) AS same_names,
			   bool_or(out_dtype IS NOT NULL AND p.dtype <> out_dtype) AS convert,
			   array_agg(p.out_name ORDER BY p.out_ord) AS outs
		FROM soup_mk_plan p
		WHERE p.dtype IN ('f32', 'f64', 'f16', 'bf16')
		GROUP BY p.ids, p.weights, p.params, p.scale
		ORDER BY min(p.out_ord)
	LOOP
		IF method = 'passthrough' THEN
			-- one input: its chunks, scaled (in float64, rounded once) and converted
			INSERT INTO soup.chunks (model_id, tensor, chunk, data)
			SELECT new_id, p.out_name, c.chunk,
				   CASE WHEN grp.scale = 1 AND out_dtype IS NULL THEN c.data
						WHEN grp.scale = 1 THEN soup.astype(c.data, out_dtype)
						WHEN out_dtype IS NULL THEN soup.tensor_mul(c.data, grp.scale)
						ELSE soup.astype(soup.tensor_mul(soup.astype(c.data, 'f64'), grp.scale), out_dtype) END
			FROM soup_mk_plan p JOIN soup.chunks c ON c.model_id = p.ids[1] AND c.tensor = p.src_names[1]
			WHERE p.out_name = ANY (grp.outs);
			CONTINUE;
		END IF;
		IF grp.same_names AND NOT grp.convert THEN
			-- the inputs are read under the output's names: merge straight in
			PERFORM soup._merge_chunks(new_id, driver, grp.ids, grp.weights, base_id, NULL, grp.params, grp.outs);
			CONTINUE;
		END IF;
		-- otherwise: copies of the inputs under the output's names (in
		-- float64 for another output dtype: the merge rounds once, to float64,
		-- and the conversion rounds that to the output dtype)
		copies := '{}';
		FOR k IN 1 .. cardinality(grp.ids) + CASE WHEN base_id IS NOT NULL AND spec.base IN ('required', 'optional') THEN 1 ELSE 0 END LOOP
			INSERT INTO soup.models (name) VALUES (format('soup.merge_config %s: input %s', new_id, k))
			RETURNING id INTO scratch;
			copies := copies || scratch;
			INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
			SELECT scratch, p.out_name, p.out_ord, CASE WHEN grp.convert THEN 'f64' ELSE p.dtype END,
				   p.shape, p.numel, p.chunk_elems
			FROM soup_mk_plan p WHERE p.out_name = ANY (grp.outs);
			INSERT INTO soup.chunks (model_id, tensor, chunk, data)
			SELECT scratch, p.out_name, c.chunk, CASE WHEN grp.convert THEN soup.astype(c.data, 'f64') ELSE c.data END
			FROM soup_mk_plan p
			JOIN soup.chunks c ON c.model_id = CASE WHEN k <= cardinality(grp.ids) THEN grp.ids[k] ELSE base_id END
							  AND c.tensor = CASE WHEN k <= cardinality(grp.ids) THEN p.src_names[k] ELSE p.base_src END
			WHERE p.out_name = ANY (grp.outs);
		END LOOP;
		IF grp.convert THEN
			INSERT INTO soup.models (name) VALUES (format('soup.merge_config %s: float64 output', new_id))
			RETURNING id INTO scratch;
			INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
			SELECT scratch, name, ordinal, 'f64', shape, numel, chunk_elems
			FROM soup.tensors WHERE model_id = copies[1];
			PERFORM soup._merge_chunks(scratch, driver, copies[1:cardinality(grp.ids)], grp.weights,
									   CASE WHEN cardinality(copies) > cardinality(grp.ids) THEN copies[cardinality(copies)] END,
									   NULL, grp.params, grp.outs);
			INSERT INTO soup.chunks (model_id, tensor, chunk, data)
			SELECT new_id, c.tensor, c.chunk, soup.astype(c.data, t.dtype)
			FROM soup.chunks c JOIN soup.tensors t ON t.model_id = new_id AND t.name = c.tensor
			WHERE c.model_id = scratch;
			copies := copies || scratch;
		ELSE
			PERFORM soup._merge_chunks(new_id, driver, copies[1:cardinality(grp.ids)], grp.weights,
									   CASE WHEN cardinality(copies) > cardinality(grp.ids) THEN copies[cardinality(copies)] END,
									   NULL, grp.params, grp.outs);
		END IF;
		DELETE FROM soup.models WHERE id = ANY (copies);
	END LOOP;

	DELETE FROM soup.models WHERE id = ANY (relayouts);

	-- every chunk of every tensor must have been written
	SELECT coalesce(sum(n_chunks), 0) INTO expected FROM soup.tensors WHERE model_id = new_id;
	SELECT count(*) INTO written FROM soup.chunks WHERE model_id = new_id;
	IF written <> expected THEN
		RAISE EXCEPTION 'soup.merge_config: % of % chunks written', written, expected
			USING ERRCODE = 'data_corrupted',
			HINT = 'A source model has chunks missing; check it with soup.verify.';
	END IF;
	DROP TABLE soup_mk_plan;
	RETURN new_id;
END;
$$;

COMMENT ON FUNCTION soup.merge_config(text, jsonb) IS
	'Merge as a mergekit configuration (as JSON) describes: per-layer parameters, filters, slices, out_dtype';

-------------------------------------------------------------------------------
-- Greedy soup (Wortsman et al. 2022, "Model soups", recipe 1)
-------------------------------------------------------------------------------

-- The candidates of a greedy soup, best first: each model's score is the
-- named metric at the model's run and step in soup.metrics, or the score
-- given for it.  Ties keep the order given.
CREATE FUNCTION soup.greedy_soup_order(models text[], metric text,
									   higher_is_better boolean DEFAULT true,
									   scores float8[] DEFAULT NULL)
RETURNS TABLE (rank int, model text, score float8)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	bad text;
BEGIN
	IF models IS NULL OR cardinality(models) = 0 THEN
		PERFORM soup._param_error('a greedy soup needs candidate models', 'soup.greedy_soup_order');
	END IF;
	IF scores IS NOT NULL AND cardinality(scores) <> cardinality(models) THEN
		PERFORM soup._param_error(format('%s scores for %s models', cardinality(scores), cardinality(models)),
								  'soup.greedy_soup_order');
	END IF;
	IF scores IS NULL AND metric IS NULL THEN
		PERFORM soup._param_error('give a metric or the scores', 'soup.greedy_soup_order');
	END IF;
	PERFORM soup._model_ids(models);
	IF scores IS NULL THEN
		SELECT u.m INTO bad FROM unnest(models) u(m) JOIN soup.models x ON x.name = u.m
		WHERE NOT EXISTS (SELECT 1 FROM soup.metrics v WHERE v.run = x.run AND v.step = x.step AND v.name = metric)
		LIMIT 1;
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION 'model "%" has no value of metric "%" at its run and step', bad, metric
				USING ERRCODE = 'no_data_found',
				HINT = 'Log it with soup.log_metrics, or pass the scores.';
		END IF;
	END IF;
	RETURN QUERY
	SELECT (row_number() OVER (ORDER BY CASE WHEN higher_is_better THEN -s.score ELSE s.score END, s.ord))::int,
		   s.m, s.score
	FROM (SELECT u.m, u.ord,
				 coalesce(scores[u.ord], (SELECT v.value FROM soup.models x JOIN soup.metrics v
										  ON v.run = x.run AND v.step = x.step AND v.name = metric
										  WHERE x.name = u.m)) AS score
		  FROM unnest(models) WITH ORDINALITY u(m, ord)) s
	ORDER BY 1;
END;
$$;

-- The final soup of a greedy search: the uniform average of the chosen
-- ingredients, written by soup.merge, with the search in its recipe
-- (metric, every candidate's score, every trial's ingredients, score and
-- whether it was kept).
CREATE FUNCTION soup.greedy_soup(target text, chosen text[], search jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	new_id bigint;
BEGIN
	IF search IS NULL OR jsonb_typeof(search) <> 'object' THEN
		PERFORM soup._param_error('search must be a JSON object (metric, candidates, trials)', 'soup.greedy_soup');
	END IF;
	new_id := soup.merge(target, 'avg', chosen);
	UPDATE soup.models m SET recipe = m.recipe || jsonb_build_object('greedy_soup', search) WHERE m.id = new_id;
	RETURN new_id;
END;
$$;
