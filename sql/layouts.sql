-- soup.rechunk: a model stored in another chunk layout, in place, with the
-- same bytes; and the errors of a hand-written GROUP BY over mixed layouts.
SET search_path = public, soup;
\set gen '/tmp/pg_soup_regress/gen'

SELECT soup.import_safetensors(:'gen' || '/g1.safetensors', 'lay') > 0 AS imported;
SELECT md5(soup.safetensors('lay')) AS before \gset
SELECT soup.rechunk('lay', 7) AS chunks;
-- the catalog, the chunks and the exported file after the change
SELECT t.name, t.numel, t.chunk_elems, t.n_chunks FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
WHERE m.name = 'lay' ORDER BY ordinal;
SELECT count(*) AS problems FROM soup.verify('lay');
SELECT md5(soup.safetensors('lay')) = :'before' AS same_file;
SELECT max(soup.numel(data)) AS longest_chunk FROM soup.weights WHERE model = 'lay';
-- back to one chunk a tensor, and to a length that is not a divisor
SELECT soup.rechunk('lay', 262144) AS chunks;
SELECT soup.rechunk('lay', 1000) AS chunks;
SELECT md5(soup.safetensors('lay')) = :'before' AS same_file, (SELECT count(*) FROM soup.verify('lay')) AS problems;
-- no scratch model is left behind
SELECT count(*) AS scratch_models FROM soup.models WHERE name LIKE 'soup.rechunk%';

-- a merge by hand over models in different layouts says what to do
SET soup.chunk_elems = 7;
SELECT soup.import_safetensors(:'gen' || '/g2.safetensors', 'lay7') > 0 AS imported;
RESET soup.chunk_elems;
SELECT soup.import_safetensors(:'gen' || '/g3.safetensors', 'lay_default') > 0 AS imported;
SELECT sum(soup.numel(r)) FROM (
	SELECT w.tensor, w.chunk, soup.avg_weights(w.data) AS r
	FROM soup.weights w JOIN soup.models m ON m.name = w.model
	JOIN soup.tensors t ON t.model_id = m.id AND t.name = w.tensor
	WHERE w.model IN ('lay7', 'lay_default') AND t.dtype = 'f32'
	GROUP BY w.tensor, w.chunk) s;
-- and after soup.rechunk the same query runs, and equals soup.merge
SELECT soup.rechunk('lay7', 262144) AS chunks;
SELECT soup.merge('lay_avg', 'avg', ARRAY['lay7', 'lay_default']) > 0 AS merged;
SELECT count(*) AS chunks, count(*) FILTER (WHERE s.r = o.data) AS same
FROM (SELECT w.tensor, w.chunk, soup.avg_weights(w.data) AS r
	  FROM soup.weights w JOIN soup.models m ON m.name = w.model
	  JOIN soup.tensors t ON t.model_id = m.id AND t.name = w.tensor
	  WHERE w.model IN ('lay7', 'lay_default') AND t.dtype IN ('f32', 'f64', 'f16', 'bf16')
	  GROUP BY w.tensor, w.chunk) s
JOIN soup.weights o ON o.model = 'lay_avg' AND o.tensor = s.tensor AND o.chunk = s.chunk;

-- errors
SELECT soup.rechunk('lay', 0);
SELECT soup.rechunk('lay', 33554433);
SELECT soup.rechunk('no such model', 7);
SELECT soup.rechunk(NULL, 7);
-- a damaged model is refused, and nothing changes
BEGIN;
DELETE FROM soup.chunks c USING soup.models m
WHERE m.id = c.model_id AND m.name = 'lay' AND c.chunk = 1 AND c.tensor = (
	SELECT name FROM soup.tensors t WHERE t.model_id = m.id AND n_chunks > 1 ORDER BY ordinal LIMIT 1);
SELECT soup.rechunk('lay', 7);
ROLLBACK;
SELECT count(*) AS problems FROM soup.verify('lay');

DELETE FROM soup.models WHERE name LIKE 'lay%';
