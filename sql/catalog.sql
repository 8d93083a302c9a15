-- The catalog: tables, cascades, storage, the weights view, the chunk GUC
SET search_path = public, soup;

-- chunk data is stored out of line and uncompressed
SELECT attname, attstorage FROM pg_attribute
WHERE attrelid = 'soup.chunks'::regclass AND attname = 'data';

-- the catalog's rows are dumped by pg_dump
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pg_soup';

-- the settings exist once the library is loaded
LOAD 'pg_soup';
SHOW soup.chunk_elems;
SHOW soup.threads;
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
\set VERBOSITY terse
INSERT INTO soup.models (name, kind) VALUES ('k', 'bogus');
\set VERBOSITY default

-- the files of a model folder: bytes as given, JSON parsed where it parses
INSERT INTO soup.model_files (model_id, name, bytes)
SELECT id, n, convert_to(b, 'UTF8') FROM soup.models,
	(VALUES ('config.json', '{"model_type": "gpt2", "n_layer": 12}'),
			('tokenizer_config.json', '{"bos_token": "<s>"'),
			('README.md', '# a model')) v(n, b)
WHERE name = 'hand';
SELECT name, size, json FROM soup.files WHERE model = 'hand' ORDER BY name;
SELECT model, config ->> 'model_type' AS model_type, (config ->> 'n_layer')::int AS n_layer FROM soup.configs;
-- only plain names, not the weights' own, not over 64 MiB
\set VERBOSITY terse
INSERT INTO soup.model_files (model_id, name, bytes) SELECT id, '../x', '' FROM soup.models WHERE name = 'hand';
INSERT INTO soup.model_files (model_id, name, bytes) SELECT id, '.', '' FROM soup.models WHERE name = 'hand';
INSERT INTO soup.model_files (model_id, name, bytes) SELECT id, 'model.safetensors', '' FROM soup.models WHERE name = 'hand';
INSERT INTO soup.model_files (model_id, name, bytes)
SELECT id, 'big.bin', convert_to(repeat('x', 64 * 1024 * 1024 + 1), 'UTF8') FROM soup.models WHERE name = 'hand';
\set VERBOSITY default

-- deleting a model deletes its tensors, chunks and files
DELETE FROM soup.models WHERE name = 'hand';
SELECT (SELECT count(*) FROM soup.tensors) AS tensors, (SELECT count(*) FROM soup.chunks) AS chunks,
	   (SELECT count(*) FROM soup.model_files) AS files;
-- the planner counts (tensor, chunk) groups from joint statistics
SELECT stxname, stxkind FROM pg_statistic_ext WHERE stxnamespace = 'soup'::regnamespace;
