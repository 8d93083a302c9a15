-- soup.avg_weights against an independent float64 reference
SET search_path = public, soup;
SET extra_float_digits = 0;

-- 5 random f32 tensors of 1000 elements, averaged three ways
SELECT setseed(0.42);
CREATE TEMP TABLE src AS
SELECT i AS model, w, soup.tensor(array_agg(((random() - 0.5) * 100)::float8 ORDER BY j), 'f32') AS t
FROM generate_series(1, 5) i, generate_series(1, 1000) j,
	 LATERAL (SELECT (i * 0.7)::float8 AS w) ww
GROUP BY i, w;

-- reference: SQL's own float8 arithmetic over the array elements, rounded to float4
CREATE TEMP TABLE ref AS
SELECT j, (avg(v))::float4 AS uniform, (sum(w * v) / sum(w))::float4 AS weighted
FROM src, LATERAL unnest(t::float8[]) WITH ORDINALITY u(v, j)
GROUP BY j;

SELECT count(*) AS elements,
	   count(*) FILTER (WHERE r.uniform = a.v) AS uniform_equal,
	   count(*) FILTER (WHERE r.weighted = b.v) AS weighted_equal
FROM ref r
JOIN (SELECT u.* FROM (SELECT soup.avg_weights(t) x FROM src) s,
	  LATERAL unnest(x::float4[]) WITH ORDINALITY u(v, j)) a USING (j)
JOIN (SELECT u.* FROM (SELECT soup.avg_weights(t, w) x FROM src) s,
	  LATERAL unnest(x::float4[]) WITH ORDINALITY u(v, j)) b USING (j);

-- the result keeps the input dtype and shape
SELECT soup.avg_weights(t) FROM (VALUES ('bf16:[[1,2],[3,4]]'::soup.tensor),
	('bf16:[[2,3],[4,5.5]]')) v(t);
SELECT soup.avg_weights(t) FROM (VALUES ('f16:[1,2]'::soup.tensor), ('f16:[2,3.5]')) v(t);
SELECT soup.avg_weights(t, w) FROM (VALUES ('f64:[1,1]'::soup.tensor, 3), ('f64:[5,-1]', 1)) v(t, w);
-- f16 output rounds once, to even: (2048 + 2050) / 2 = 2049 lies halfway, 2048 is even
SELECT soup.avg_weights(t) FROM (VALUES ('f16:[2048]'::soup.tensor), ('f16:[2050]')) v(t);
-- NULL tensors are skipped; no rows give NULL
SELECT soup.avg_weights(t) FROM (VALUES ('f32:[2]'::soup.tensor), (NULL)) v(t);
SELECT soup.avg_weights(t) IS NULL AS empty FROM (SELECT 'f32:[1]'::soup.tensor t WHERE false) s;
-- IEEE: infinities propagate, +inf and -inf make NaN (documented policy)
SELECT soup.avg_weights(t) FROM (VALUES ('f32:[Infinity, 1]'::soup.tensor), ('f32:[-Infinity, NaN]')) v(t);
-- negative weights extrapolate
SELECT soup.avg_weights(t, w) FROM (VALUES ('f32:[1]'::soup.tensor, 2), ('f32:[3]', -1)) v(t, w);

-- errors
\set VERBOSITY sqlstate
SELECT soup.avg_weights(t) FROM (VALUES ('f32:[1,2]'::soup.tensor), ('f32:[1,2,3]')) v(t);
SELECT soup.avg_weights(t) FROM (VALUES ('f32:[1,2]'::soup.tensor), ('f32:[[1,2]]')) v(t);
SELECT soup.avg_weights(t) FROM (VALUES ('f32:[1,2]'::soup.tensor), ('f64:[1,2]')) v(t);
SELECT soup.avg_weights(t) FROM (VALUES ('i64:[1,2]'::soup.tensor)) v(t);
SELECT soup.avg_weights(t, w) FROM (VALUES ('f32:[1]'::soup.tensor, 1), ('f32:[2]', -1)) v(t, w);
SELECT soup.avg_weights(t, w) FROM (VALUES ('f32:[1]'::soup.tensor, NULL::float8)) v(t, w);
SELECT soup.avg_weights(t, w) FROM (VALUES ('f32:[1]'::soup.tensor, 'NaN'::float8)) v(t, w);
SELECT soup.avg_weights(t, w) FROM (VALUES ('f32:[1]'::soup.tensor, 'Infinity'::float8)) v(t, w);
\set VERBOSITY default

-- parallel aggregation: a Partial Aggregate plan, and the same bits as a serial plan
CREATE TABLE par (g int, t soup.tensor);
INSERT INTO par SELECT i % 4, soup.tensor(ARRAY[i, i * 0.5, -i]::float8[], 'f32')
FROM generate_series(1, 20000) i;
ANALYZE par;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT g, soup.avg_weights(t) FROM par GROUP BY g;
SELECT md5(string_agg(a::text || b::text, ',' ORDER BY g)) AS parallel_md5
FROM (SELECT g, soup.avg_weights(t) AS a, soup.avg_weights(t, g + 1) AS b FROM par GROUP BY g) s \gset
-- zero rows through a parallel plan (the planner expects a third of the table)
EXPLAIN (COSTS OFF) SELECT soup.avg_weights(t) FROM par WHERE soup.numel(t) > 3;
SELECT soup.avg_weights(t) IS NULL AS empty FROM par WHERE soup.numel(t) > 3;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF) SELECT g, soup.avg_weights(t) FROM par GROUP BY g;
SELECT md5(string_agg(a::text || b::text, ',' ORDER BY g)) = :'parallel_md5' AS same_as_parallel,
	   string_agg(a::text, ' ' ORDER BY g) AS averages
FROM (SELECT g, soup.avg_weights(t) AS a, soup.avg_weights(t, g + 1) AS b FROM par GROUP BY g) s;
RESET max_parallel_workers_per_gather;
DROP TABLE par;
