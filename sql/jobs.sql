-- Scheduled jobs, called by hand (test/cron_test.sh has pg_cron call them)
SET search_path = public, soup;
\set gen '/tmp/pg_soup_regress/gen'
DELETE FROM soup.models;

SELECT soup.import_safetensors(:'gen' || '/g1.safetensors', 'live-100', 'live', 100) > 0 AS ok;
SELECT soup.import_safetensors(:'gen' || '/expected_ema_update.safetensors', 'expected_ema_update') > 0 AS ok;
CALL soup.refresh_ema('live', 'live-ema', 0.9);
SELECT recipe -> 'steps' AS steps FROM soup.models WHERE name = 'live-ema';
SELECT soup.import_safetensors(:'gen' || '/g' || i || '.safetensors', 'live-' || i * 100, 'live', i * 100) > 0 AS ok
FROM generate_series(2, 3) i;
CALL soup.refresh_ema('live', 'live-ema', 0.9);
CALL soup.refresh_ema('live', 'live-ema', 0.9);     -- nothing new: no change
SELECT recipe -> 'steps' AS steps, md5(soup.safetensors('live-ema')) = md5(soup.safetensors('expected_ema_update'))
	   AS equals_reference
FROM soup.models WHERE name = 'live-ema';

CALL soup.refresh_lawa('live', 'live-lawa', 2);
SELECT recipe -> 'models' AS models, created_at AS first_build FROM soup.models WHERE name = 'live-lawa' \gset
SELECT :'models' AS models;
CALL soup.refresh_lawa('live', 'live-lawa', 2);     -- nothing new: the model is not rebuilt
SELECT created_at = :'first_build' AS not_rebuilt FROM soup.models WHERE name = 'live-lawa';
SELECT soup.import_safetensors(:'gen' || '/g1.safetensors', 'live-400', 'live', 400) > 0 AS ok;
CALL soup.refresh_lawa('live', 'live-lawa', 2);
SELECT recipe -> 'models' AS models FROM soup.models WHERE name = 'live-lawa';

\set VERBOSITY terse
CALL soup.refresh_lawa('live', 'x', 10);
CALL soup.refresh_ema(NULL, 'x', 0.9);
CALL soup.refresh_ema('live', 'live-ema', 0.5);
\set VERBOSITY default
