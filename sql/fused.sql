-- The merge driver's fused path (soup._merge_fused, used by soup.merge for
-- avg, lawa, ema, fisher and task_arithmetic) gives the same bits as the
-- aggregates run by hand with GROUP BY, on data built to be hard:
-- cancellation, ties at rounding midpoints, exponents 2^+-100 apart,
-- subnormals, infinities and NaN, in every float dtype, stored in chunks of
-- 7 elements (the kernels' blocks are 2048: every chunk is a partial block).
SET search_path = public, soup;

-- Element i of input m (1..4 models, 5 the base, 6..9 the Fishers).
CREATE FUNCTION pg_temp.val(m int, i int) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
		WHEN m >= 6 THEN			-- Fishers: >= 0, some below the 1e-6 floor
			CASE WHEN i % 5 = 0 THEN 0 ELSE ((i * 7 + m) % 13) * power(2::float8, -(i % 30)) END
		WHEN i % 6 = 0 THEN sin(i * 1.7 + m) * 3		-- ordinary values
		WHEN i % 6 = 1 THEN								-- cancellation
			(CASE WHEN m % 2 = 0 THEN 1 ELSE -1 END) * power(2::float8, 40) * (1 + i % 7)
			+ CASE WHEN m > 2 THEN (i % 5) * power(2::float8, -10) ELSE 0 END
		WHEN i % 6 = 2 THEN 1 + ((i + m) % 4) * power(2::float8, -23)	-- ties
		WHEN i % 6 = 3 THEN								-- exponent spread
			power(2::float8, CASE WHEN m % 2 = 0 THEN 100 ELSE -100 END) * (1.25 + i % 3)
		WHEN i % 6 = 4 THEN ((i + m) % 8) * power(2::float8, -149)	-- subnormals
		ELSE CASE (i + m) % 7 WHEN 0 THEN 'Infinity'::float8 WHEN 1 THEN '-Infinity'
							  WHEN 2 THEN 'NaN' WHEN 3 THEN '-0' ELSE i END
	END;
$$;

-- A model of one tensor 'w' of n elements in dtype dt, chunks of 7.
CREATE FUNCTION pg_temp.add_model(name text, dt text, m int, n int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	id bigint;
BEGIN
	INSERT INTO soup.models (name) VALUES (name) RETURNING soup.models.id INTO id;
	INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
	VALUES (id, 'w', 0, dt, ARRAY[n], n, 7);
	INSERT INTO soup.chunks (model_id, tensor, chunk, data)
	SELECT id, 'w', k, soup.tensor(ARRAY(SELECT pg_temp.val(m, i)
										 FROM generate_series(7 * k, least(7 * k + 6, n - 1)) i
										 ORDER BY i), dt)
	FROM generate_series(0, (n - 1) / 7) k;
END $$;

SELECT count(pg_temp.add_model('fz' || m || '_' || dt, dt, m, 600))
FROM unnest(ARRAY['f32', 'f64', 'f16', 'bf16']) dt, generate_series(1, 9) m;

-- the data is hard: per dtype, how the float32 average's elements are spread
SELECT dt,
	   count(*) FILTER (WHERE x = 'NaN') AS nan,
	   count(*) FILTER (WHERE x IN ('Infinity', '-Infinity')) AS inf,
	   count(*) FILTER (WHERE x <> 0 AND abs(x) < 1.2e-38) AS subnormal
FROM (SELECT dt, unnest(soup.float8_array(data)) AS x
	  FROM unnest(ARRAY['f32', 'f16']) dt
	  JOIN soup.weights ON model = 'fz1_' || dt) s
GROUP BY dt ORDER BY dt;

-- One method: the driver's chunks against the aggregate's, byte for byte
-- (NaN by class: its sign and payload follow the order of the rows, which
-- GROUP BY leaves open).
CREATE FUNCTION pg_temp.compare(dt text, method text, weights float8[], base text,
								params jsonb, hand text)
RETURNS TABLE (chunks bigint, identical bigint) LANGUAGE plpgsql AS $$
DECLARE
	models text[] := ARRAY['fz1_' || dt, 'fz2_' || dt, 'fz3_' || dt, 'fz4_' || dt];
BEGIN
	PERFORM soup.merge('fz_out', method, models, weights, base, params);
	RETURN QUERY EXECUTE format(
		'SELECT count(*), count(*) FILTER (WHERE soup.bytes(h.r) = soup.bytes(o.data)
			OR soup.float8_array(h.r)::text = soup.float8_array(o.data)::text)
		 FROM (%s) h JOIN soup.weights o ON o.model = ''fz_out'' AND o.tensor = h.tensor
		   AND o.chunk = h.chunk', hand) USING models, weights, dt;
	DELETE FROM soup.models WHERE name = 'fz_out';
END $$;

-- $1 the models, $2 the weights, $3 the dtype; u.ord is the model's position
CREATE TEMP TABLE cases (method text, weights float8[], base boolean, params jsonb, hand text);
INSERT INTO cases VALUES
	('avg', NULL, false, '{}',
	 'SELECT c.tensor, c.chunk, soup.avg_weights(c.data) AS r FROM unnest($1) u(name)
	  JOIN soup.weights c ON c.model = u.name GROUP BY c.tensor, c.chunk'),
	('avg', '{1, 2, 0.5, 3}', false, '{}',
	 'SELECT c.tensor, c.chunk, soup.avg_weights(c.data, u.w) AS r FROM unnest($1, $2) u(name, w)
	  JOIN soup.weights c ON c.model = u.name GROUP BY c.tensor, c.chunk'),
	('avg', '{0.1, -0.3, 0.7, 1e-5}', false, '{}',
	 'SELECT c.tensor, c.chunk, soup.avg_weights(c.data, u.w) AS r FROM unnest($1, $2) u(name, w)
	  JOIN soup.weights c ON c.model = u.name GROUP BY c.tensor, c.chunk'),
	('ema', NULL, false, '{"decay": 0.9}',
	 'SELECT c.tensor, c.chunk, soup.ema(c.data, 0.9 ORDER BY u.ord) AS r
	  FROM unnest($1) WITH ORDINALITY u(name, ord)
	  JOIN soup.weights c ON c.model = u.name GROUP BY c.tensor, c.chunk'),
	('fisher', '{1, 2, 0.5, 3}', false, NULL,
	 'SELECT c.tensor, c.chunk, soup.fisher_merge(c.data, f.data, u.w, 1e-6) AS r
	  FROM unnest($1, $2) WITH ORDINALITY u(name, w, ord)
	  JOIN soup.weights c ON c.model = u.name
	  JOIN soup.weights f ON f.model = ''fz'' || (5 + u.ord) || ''_'' || $3
	   AND f.tensor = c.tensor AND f.chunk = c.chunk GROUP BY c.tensor, c.chunk'),
	('fisher', NULL, false, '{"floor": 0}',
	 'SELECT c.tensor, c.chunk, soup.fisher_merge(c.data, f.data, 1, 0) AS r
	  FROM unnest($1) WITH ORDINALITY u(name, ord)
	  JOIN soup.weights c ON c.model = u.name
	  JOIN soup.weights f ON f.model = ''fz'' || (5 + u.ord) || ''_'' || $3
	   AND f.tensor = c.tensor AND f.chunk = c.chunk GROUP BY c.tensor, c.chunk'),
	('task_arithmetic', '{1, 2, 0.5, 3}', true, '{"lambda": 0.7}',
	 'SELECT c.tensor, c.chunk, soup.task_arithmetic(c.data, b.data, u.w, 0.7) AS r
	  FROM unnest($1, $2) u(name, w)
	  JOIN soup.weights c ON c.model = u.name
	  JOIN soup.weights b ON b.model = ''fz5_'' || $3 AND b.tensor = c.tensor AND b.chunk = c.chunk
	  GROUP BY c.tensor, c.chunk');

SELECT dt, c.method, c.weights, r.chunks, r.identical
FROM unnest(ARRAY['f32', 'f64', 'f16', 'bf16']) dt, cases c,
	 LATERAL pg_temp.compare(dt, c.method, c.weights, CASE WHEN c.base THEN 'fz5_' || dt END,
							 CASE WHEN c.method = 'fisher'
								  THEN coalesce(c.params, '{}') || jsonb_build_object('fishers',
									   ARRAY['fz6_' || dt, 'fz7_' || dt, 'fz8_' || dt, 'fz9_' || dt])
								  ELSE c.params END, c.hand) r
ORDER BY dt, c.method, c.weights;

-- the same inputs under 2 threads (chunks this small stay on one thread;
-- the unit test test_fused covers threads on long inputs)
SET soup.threads = 2;
SELECT r.chunks = r.identical AS avg_identical_with_2_threads
FROM pg_temp.compare('f32', 'avg', NULL, NULL, '{}',
	 (SELECT hand FROM cases WHERE method = 'avg' AND weights IS NULL)) r;
RESET soup.threads;

-- TIES' threshold as soup.merge computes it (a radix selection streamed
-- over the chunks, bounded memory) against the aggregate's full selection,
-- on the same hard data (many equal magnitudes, zeros, subnormals,
-- infinities; NaN counts as the largest), at densities from keep-nothing
-- to keep-all
SELECT dt, count(*) AS thresholds,
	   count(*) FILTER (WHERE s = a OR (s = 'NaN' AND a = 'NaN')) AS same,
	   count(*) FILTER (WHERE s = 'NaN') AS nan, count(*) FILTER (WHERE s = 'Infinity') AS inf,
	   count(*) FILTER (WHERE s = 0) AS zero
FROM unnest(ARRAY['f32', 'f64', 'f16', 'bf16']) dt,
	 unnest(ARRAY[0, 0.001, 0.01, 0.05, 0.3, 0.5, 0.9, 0.99, 1]::float8[]) d,
	 generate_series(1, 4) m,
	 LATERAL (SELECT soup._magnitude_threshold(x.id, b.id, 'w', d) AS s
			  FROM soup.models x, soup.models b
			  WHERE x.name = 'fz' || m || '_' || dt AND b.name = 'fz5_' || dt) st,
	 LATERAL (SELECT soup.magnitude_threshold(c.data, bc.data, d) AS a
			  FROM soup.weights c
			  JOIN soup.weights bc ON bc.model = 'fz5_' || dt AND bc.chunk = c.chunk
			  WHERE c.model = 'fz' || m || '_' || dt) ag
GROUP BY dt ORDER BY dt;

-- huge finite values average to finite values (0.1.0 gave NaN: the exact
-- quotient's error term overflowed), by hand and through the driver
SELECT soup.float8_array(soup.avg_weights(x)) AS huge_average
FROM (VALUES (soup.tensor(ARRAY[2e307, -6e307, 1, 1e300]::float8[])),
			 (soup.tensor(ARRAY[2e307, -6e307, 3, 1e300]::float8[]))) v(x);
SELECT soup.float8_array(soup.avg_weights(x, w)) AS huge_weights
FROM (VALUES (soup.tensor(ARRAY[1, 2]::float8[]), 1e300::float8),
			 (soup.tensor(ARRAY[1, 4]::float8[]), 3e300)) v(x, w);
SELECT count(pg_temp.add_model('fz_huge' || m, 'f64', 0, 14)) FROM generate_series(1, 2) m;
UPDATE soup.chunks c SET data = soup.tensor(ARRAY[2e307, -6e307, 1e300, 1, 2, 3, 4]::float8[])
FROM soup.models m WHERE m.id = c.model_id AND m.name LIKE 'fz_huge%' AND c.chunk = 0;
SELECT soup.merge('fz_huge_avg', 'avg', ARRAY['fz_huge1', 'fz_huge2']) > 0 AS merged;
SELECT soup.float8_array(data) AS driver_average FROM soup.weights WHERE model = 'fz_huge_avg' AND chunk = 0;

DELETE FROM soup.models WHERE name LIKE 'fz%';
