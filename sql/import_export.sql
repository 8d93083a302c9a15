-- Import and export of real safetensors files (fixtures written by the
-- reference Python library, dalotia and PEFT), hostile files, privileges.
SET search_path = public, soup;
\set fx '/tmp/pg_soup_regress/fixtures'
\set out '/tmp/pg_soup_regress/out'
\set gen '/tmp/pg_soup_regress/gen'

SELECT soup.import_safetensors(:'fx' || '/fluxml-safetensors-jl/non_sharded/model.safetensors', 'flux') > 0 AS ok;
SELECT soup.import_safetensors(:'fx' || '/fluxml-safetensors-jl/non_sharded/model.with_metadata.safetensors', 'flux_meta') > 0 AS ok;
SELECT soup.import_safetensors(:'fx' || '/fluxml-safetensors-jl/non_sharded/model.numpy.safetensors', 'flux_numpy') > 0 AS ok;
SELECT soup.import_safetensors(:'fx' || '/fluxml-safetensors-jl/sharded/model.safetensors.index.json', 'flux_sharded') > 0 AS ok;
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', 'mnist') > 0 AS ok;
SELECT soup.import_safetensors(:'fx' || '/peft-finegates-mrpc/checkpoint-230/adapter_model.safetensors', 'peft230', 'mrpc', 230) > 0 AS ok;
SET soup.chunk_elems = 1000;
SELECT soup.import_safetensors(:'fx' || '/peft-finegates-mrpc/checkpoint-2300/adapter_model.safetensors', 'peft2300', 'mrpc', 2300) > 0 AS ok;
RESET soup.chunk_elems;

SELECT name, kind, run, step, tensors, elements, data_bytes FROM soup.model_info ORDER BY id;
SELECT name, metadata, source - 'path' AS source FROM soup.models ORDER BY id;

-- names, dtypes and shapes as the fixture README describes them
SELECT dtype, count(*) FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
WHERE m.name = 'flux' GROUP BY dtype ORDER BY dtype;
SELECT t.name, t.dtype, t.shape, t.numel, t.n_chunks FROM soup.tensors t
JOIN soup.models m ON m.id = t.model_id WHERE m.name = 'mnist' ORDER BY ordinal;
SELECT t.name, t.shape, t.n_chunks FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
WHERE m.name = 'peft2300' AND t.name LIKE '%classifier%' ORDER BY ordinal;

-- values decoded as the fixture README gives them
SELECT tensor, data FROM soup.weights
WHERE model = 'flux' AND tensor IN ('bfloat16_3', 'float16_3', 'float8_e4m3fn_3', 'int64_3', 'bool_3')
ORDER BY tensor;

-- export: files written by the reference library come back bit for bit
SELECT m AS model, md5(soup.safetensors(m)) = md5(pg_read_binary_file(f)) AS identical
FROM (VALUES ('flux', :'fx' || '/fluxml-safetensors-jl/non_sharded/model.safetensors'),
			 ('flux_meta', :'fx' || '/fluxml-safetensors-jl/non_sharded/model.with_metadata.safetensors'),
			 ('flux_numpy', :'fx' || '/fluxml-safetensors-jl/non_sharded/model.numpy.safetensors'),
			 ('mnist', :'fx' || '/dalotia-mnist/model-mnist.safetensors'),
			 ('peft230', :'fx' || '/peft-finegates-mrpc/checkpoint-230/adapter_model.safetensors'),
			 ('peft2300', :'fx' || '/peft-finegates-mrpc/checkpoint-2300/adapter_model.safetensors')) v(m, f);

SELECT soup.export_safetensors('peft2300', :'out' || '/peft2300.safetensors');
SELECT md5(pg_read_binary_file(:'out' || '/peft2300.safetensors')) =
	   md5(pg_read_binary_file(:'fx' || '/peft-finegates-mrpc/checkpoint-2300/adapter_model.safetensors')) AS file_identical;

-- the sharded set holds the same tensors as the single file
SELECT count(*) AS tensors, bool_and(a.data OPERATOR(soup.=) b.data) AS identical
FROM soup.weights a JOIN soup.weights b USING (tensor, chunk)
WHERE a.model = 'flux' AND b.model = 'flux_sharded';

-- a sharded model exports as one file, with the shards' metadata, and reads back the same
SELECT soup.export_safetensors('flux_sharded', :'out' || '/flux_sharded.safetensors');
SELECT soup.import_safetensors(:'out' || '/flux_sharded.safetensors', 'flux_sharded_rt') > 0 AS ok;
SELECT (SELECT metadata FROM soup.models WHERE name = 'flux_sharded_rt') AS metadata,
	   (SELECT count(*) FROM soup.weights a JOIN soup.weights b USING (tensor, chunk)
		WHERE a.model = 'flux_sharded' AND b.model = 'flux_sharded_rt'
		  AND a.data OPERATOR(soup.=) b.data) AS identical_chunks,
	   (SELECT count(*) FROM soup.tensors a JOIN soup.tensors b USING (name, dtype, shape)
		WHERE a.model_id = (SELECT id FROM soup.models WHERE name = 'flux')
		  AND b.model_id = (SELECT id FROM soup.models WHERE name = 'flux_sharded_rt')) AS same_layout;

-- a model whose rows were changed by hand gets a freshly written header
UPDATE soup.models SET metadata = '{"note": "edited"}' WHERE name = 'mnist';
SELECT md5(soup.safetensors('mnist')) = md5(pg_read_binary_file(:'fx' || '/dalotia-mnist/model-mnist.safetensors')) AS identical,
	   convert_from(substr(soup.safetensors('mnist'), 9, 60), 'UTF8') AS header_start;

-- chunk length does not change what is stored: 1000-element chunks vs one chunk
SELECT t.name, t.n_chunks FROM soup.tensors t JOIN soup.models m ON m.id = t.model_id
WHERE m.name = 'peft2300' AND t.name LIKE '%dense.weight';

-- hostile files: each a specific error, no rows left behind
CREATE FUNCTION pg_temp.try_import(path text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM soup.import_safetensors(path, 'hostile');
	RETURN 'imported';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
SELECT f AS file, replace(pg_temp.try_import('/tmp/pg_soup_regress/bad/' || f), '/tmp/pg_soup_regress/bad/', '') AS result
FROM pg_ls_dir('/tmp/pg_soup_regress/bad') f
WHERE f NOT LIKE 'recv_%' AND f <> 'shard-1.safetensors' ORDER BY f;
SELECT pg_temp.try_import('/tmp/pg_soup_regress/bad/no_such_file.safetensors');
SELECT pg_temp.try_import('/tmp/pg_soup_regress/bad');
SELECT pg_temp.try_import('relative/path.safetensors');
SELECT count(*) AS hostile_rows FROM soup.models WHERE name = 'hostile';

\set VERBOSITY sqlstate
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', 'mnist');
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', '');
SELECT soup.import_safetensors(NULL, 'x');
SELECT soup.export_safetensors('nope', :'out' || '/nope.safetensors');
SELECT soup.export_safetensors('mnist', 'relative.safetensors');
SELECT soup.export_safetensors('mnist', '/nonexistent_dir/x.safetensors');
SELECT soup.safetensors('nope');
\set VERBOSITY default

-- soup.verify finds nothing wrong with a whole model
SELECT count(*) AS problems FROM soup.verify('peft2300');
-- nor with one whose tensors have a zero dimension; those round-trip too
SELECT soup.import_safetensors(:'gen' || '/g_empty.safetensors', 'g_empty') > 0 AS ok;
SELECT count(*) AS problems FROM soup.verify('g_empty');
SELECT md5(soup.safetensors('g_empty')) = md5(pg_read_binary_file(:'gen' || '/g_empty.safetensors')) AS identical;
-- soup.safetensors_header is the head of the exported file (imported header or canonical)
SELECT m, soup.safetensors_header(m) = substr(soup.safetensors(m), 1, length(soup.safetensors_header(m))) AS head,
	   length(soup.safetensors_header(m)) - 8 = get_byte(soup.safetensors_header(m), 0)
		   + 256 * get_byte(soup.safetensors_header(m), 1) + 65536 * get_byte(soup.safetensors_header(m), 2) AS prefix
FROM unnest(ARRAY['mnist', 'flux_sharded', 'g_empty']) m;
-- a damaged model is refused on export, not written short, and verify names the damage
DELETE FROM soup.chunks WHERE model_id = (SELECT id FROM soup.models WHERE name = 'peft2300')
	AND tensor LIKE '%dense.weight' AND chunk = 5;
UPDATE soup.chunks SET data = 'f32:[1,2,3]' WHERE model_id = (SELECT id FROM soup.models WHERE name = 'peft2300')
	AND tensor LIKE '%dense.bias' AND tensor LIKE '%classifier%' AND chunk = 0;
UPDATE soup.chunks SET data = soup.astype(data, 'f16') WHERE model_id = (SELECT id FROM soup.models WHERE name = 'peft2300')
	AND tensor LIKE '%out_proj.bias';
UPDATE soup.tensors SET shape = '{3,3}' WHERE model_id = (SELECT id FROM soup.models WHERE name = 'peft2300')
	AND name LIKE '%out_proj.weight';
SELECT * FROM soup.verify('peft2300');
SELECT soup.safetensors('peft2300');
\set VERBOSITY terse
SELECT * FROM soup.verify('nope');
\set VERBOSITY default

-- privileges follow COPY: pg_read_server_files to import, pg_write_server_files to export
CREATE ROLE soup_reader;
CREATE ROLE soup_nobody;
GRANT pg_read_server_files TO soup_reader;
GRANT USAGE ON SCHEMA soup TO soup_reader, soup_nobody;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA soup TO soup_reader, soup_nobody;
SET ROLE soup_nobody;
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', 'mnist_nobody');
SELECT soup.export_safetensors('mnist', :'out' || '/mnist_nobody.safetensors');
RESET ROLE;
SET ROLE soup_reader;
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', 'mnist_reader') > 0 AS ok;
SELECT soup.export_safetensors('mnist', :'out' || '/mnist_reader.safetensors');
RESET ROLE;
DELETE FROM soup.models WHERE name = 'mnist_reader';
REVOKE ALL ON ALL TABLES IN SCHEMA soup FROM soup_reader, soup_nobody;
REVOKE ALL ON SCHEMA soup FROM soup_reader, soup_nobody;
DROP ROLE soup_reader;
DROP ROLE soup_nobody;

-- a caller's search_path cannot slip objects into the catalog queries
CREATE SCHEMA evil;
CREATE FUNCTION evil.jsonb_each_text(jsonb, OUT key text, OUT value text) RETURNS SETOF record
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'evil.jsonb_each_text was called'; END $$;
CREATE FUNCTION evil.textne(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'evil text = was called'; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
SET search_path = evil, pg_catalog;
SELECT pg_catalog.md5(soup.safetensors('flux_meta')) AS evil_path_md5 \gset
SELECT soup.import_safetensors(:'fx' || '/dalotia-mnist/model-mnist.safetensors', 'mnist_evil_path') AS evil_id \gset
RESET search_path;
SELECT :'evil_path_md5' = md5(pg_read_binary_file(:'fx' || '/fluxml-safetensors-jl/non_sharded/model.with_metadata.safetensors')) AS export_unaffected,
	   (SELECT name FROM soup.models WHERE id = :evil_id) AS imported;
DROP SCHEMA evil CASCADE;
