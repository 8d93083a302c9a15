-- The catalog: tables, cascades, storage, the weights view, the chunk GUC
SET search_path = public, soup;

-- chunk data is stored out of line and uncompressed
SELECT attname, attstorage FROM pg_attribute
WHERE attrelid = 'soup.chunks'::regclass AND attname = 'data';

-- the catalog's rows are dumped by pg_dump
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pg_soup';

SHOW soup.chunk_elems;
SET soup.chunk_elems = 3;
SHOW soup.chunk_elems;
SET soup.chunk_elems = 0;
SET soup.chunk_elems = 33554433;
RESET soup.chunk_elems;

-- a model with one tensor in chunks, written by hand
INSERT INTO soup.models (name, run, step) VALUES ('hand', 'r1', 10);
INSERT INTO soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems)
SELECT id, 'w', 0, 'f32', '{5}', 5, 2 FROM soup.models WHERE name = 'hand';
INSERT INTO soup.chunks (model_id, tensor, chunk, data)
SELECT id, 'w', c, d::soup.tensor FROM soup.models,
	(VALUES (0, 'f32:[1,2]'), (1, 'f32:[3,4]'), (2, 'f32:[5]')) v(c, d)
WHERE name = 'hand';
SELECT name, n_chunks FROM soup.tensors;
SELECT model, tensor, chunk, data FROM soup.weights ORDER BY chunk;
SELECT name, kind, tensors, elements, data_bytes FROM soup.model_info;

-- a chunk must belong to a tensor of its model
INSERT INTO soup.chunks (model_id, tensor, chunk, data)
SELECT id, 'nope', 0, 'f32:[1]' FROM soup.models WHERE name = 'hand';
INSERT INTO soup.models (name) VALUES ('hand');
INSERT INTO soup.models (name, kind) VALUES ('k', 'bogus');

-- the view is read through the indexes when a few models are chosen
EXPLAIN (COSTS OFF) SELECT tensor, chunk, soup.avg_weights(data)
FROM soup.weights WHERE model IN ('a', 'b') GROUP BY tensor, chunk;

-- deleting a model deletes its tensors and chunks
DELETE FROM soup.models WHERE name = 'hand';
SELECT (SELECT count(*) FROM soup.tensors) AS tensors, (SELECT count(*) FROM soup.chunks) AS chunks;
