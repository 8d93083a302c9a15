-- pg_soup demo: three checkpoints of one run in, a merged model out.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_soup;
SET search_path = public, soup;

\echo '== 1. import three checkpoints of run "demo" (server-side safetensors reader)'
SELECT soup.import_safetensors(:'dir' || '/ckpt-' || s || '.safetensors', 'demo-step-' || s, 'demo', s) AS model_id
FROM unnest(ARRAY[100, 200, 300]) s;
SELECT name, run, step, tensors, elements, pg_size_pretty(data_bytes) AS size FROM soup.model_info ORDER BY step;

\echo '== 2. a merge is a GROUP BY: the uniform soup of fc1.bias, by hand'
SELECT tensor, chunk, soup.numel(avg) AS elements,
	   (avg::float4[])[1:4] AS first_values
FROM (SELECT tensor, chunk, soup.avg_weights(data) AS avg
	  FROM soup.weights WHERE model LIKE 'demo-step-%' AND tensor = 'mlp.fc1.bias'
	  GROUP BY tensor, chunk) s;

\echo '== 3. the driver writes a new model in one transaction and records its recipe'
SELECT soup.merge('demo-soup', 'avg', ARRAY['demo-step-100', 'demo-step-200', 'demo-step-300']) AS soup_id;
SELECT soup.merge('demo-late', 'avg', ARRAY['demo-step-200', 'demo-step-300'], ARRAY[1, 3]) AS weighted_id;
SELECT name, kind, recipe FROM soup.models WHERE kind = 'merge' ORDER BY id;

\echo '== 4. export the soup as a safetensors file'
SELECT soup.export_safetensors('demo-soup', :'dir' || '/demo-soup.safetensors') AS bytes_written;
