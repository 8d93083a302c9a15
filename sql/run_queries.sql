-- The worked queries of docs/runs.md, on runs generated here from known laws.
SET search_path = public, soup;
SET extra_float_digits = 0;

-- A Chinchilla-style sweep: 36 runs whose final loss follows
-- L = 1.8 + 400 / N^0.34 + 2000 / D^0.28, logged every 100 steps.
INSERT INTO soup.runs (name, params, tokens, batch_size, seq_len, config)
SELECT format('sweep-%s-%s', i, j), (1e7 * 2 ^ i)::bigint, (2e9 * 2 ^ j)::bigint, 256, 2048,
	   '{"sweep": "chinchilla"}'
FROM generate_series(0, 5) i, generate_series(0, 5) j;
INSERT INTO soup.metrics (run, step, tokens, name, value)
SELECT r.name, s * 100, s * 100 * 256 * 2048, 'loss',
	   (1.8 + 400 / r.params::float8 ^ 0.34 + 2000 / r.tokens::float8 ^ 0.28) * (1 + 1.0 / s)
FROM soup.runs r, generate_series(1, 10) s WHERE r.config ->> 'sweep' = 'chinchilla';

-- 1. final loss per run -> scaling-law fit -> compute-optimal size for a budget
WITH final AS (
	SELECT DISTINCT ON (r.name) r.params, r.tokens, m.value AS loss
	FROM soup.runs r JOIN soup.metrics m ON m.run = r.name AND m.name = 'loss'
	WHERE r.config ->> 'sweep' = 'chinchilla'
	ORDER BY r.name, m.step DESC),
fit AS (SELECT soup.fit_chinchilla(params, tokens, loss / 1.1) AS f FROM final)
SELECT round((f).e::numeric, 3) AS e, round((f).alpha::numeric, 3) AS alpha, round((f).beta::numeric, 3) AS beta,
	   round(log(o.n_opt)::numeric, 2) AS log10_n_opt, round(log(o.d_opt)::numeric, 2) AS log10_d_opt
FROM fit, LATERAL soup.compute_optimal(f, 1e21) o;

-- A batch-size sweep: for each model size, runs at 6 batch sizes whose
-- validation loss crosses 3.0 at S(B) = S_min + E_min / B steps, with
-- E_min / S_min = 0.05 D (so B_crit grows linearly in D) and S_min = 1000.
INSERT INTO soup.runs (name, params, tokens, batch_size, config)
SELECT format('cbs-%s-%s', i, b), (5e7 * 2 ^ i)::bigint, (1e9 * 2 ^ i)::bigint, b, '{"sweep": "cbs"}'
FROM generate_series(0, 3) i, unnest(ARRAY[32, 64, 128, 256, 512, 1024]) b;
INSERT INTO soup.metrics (run, step, name, value)
SELECT r.name, s, 'val_loss', 3.0 * (crossing / s::float8) ^ 0.05
FROM soup.runs r,
	 LATERAL (SELECT 1000 + 0.05 * r.tokens / 1e6 * 1000 / r.batch_size AS crossing) c,
	 LATERAL generate_series(10, 40000, 10) s
WHERE r.config ->> 'sweep' = 'cbs';

-- 2. steps to target per batch size -> B_crit per model size -> its power law in D
WITH steps AS (
	SELECT r.params, r.tokens, r.batch_size, soup.steps_to_target(r.name, 'val_loss', 3.0) AS steps
	FROM soup.runs r WHERE r.config ->> 'sweep' = 'cbs'),
per_model AS (
	SELECT params, min(tokens) AS tokens, soup.critical_batch_size(batch_size, steps) AS f
	FROM steps WHERE steps IS NOT NULL GROUP BY params)
SELECT params, round((f).s_min) AS s_min, round((f).b_crit) AS b_crit,
	   round(soup.cbs((f).s_min, (f).e_min, 256)) AS cbs
FROM per_model ORDER BY params;
WITH steps AS (
	SELECT r.params, r.tokens, r.batch_size, soup.steps_to_target(r.name, 'val_loss', 3.0) AS steps
	FROM soup.runs r WHERE r.config ->> 'sweep' = 'cbs'),
per_model AS (
	SELECT min(tokens) AS tokens, soup.critical_batch_size(batch_size, steps) AS f
	FROM steps GROUP BY params)
SELECT round((p).b::numeric, 2) AS exponent_in_d, round((p).r2::numeric, 3) AS r2
FROM (SELECT soup.fit_power_law(tokens / 1e6, (f).b_crit) AS p FROM per_model) s;

-- 3. choosing the LAWA window of a run by validation loss: average the
-- latest checkpoints whose validation loss is within 1 % of the best
SELECT count(soup.import_safetensors('/tmp/pg_soup_regress/gen/g' || g || '.safetensors',
									 'lawa-run-' || s, 'lawa-run', s)) AS checkpoints
FROM (VALUES (1, 1000), (2, 2000), (3, 3000)) v(g, s);
SELECT soup.log_metrics('lawa-run', s, jsonb_build_object('val_loss', v))
FROM (VALUES (1000, 3.30), (2000, 3.02), (3000, 3.00)) v(s, v);
WITH ckpt AS (
	SELECT c.model, c.step, m.value AS val_loss
	FROM soup.checkpoints c JOIN soup.metrics m ON m.run = c.run AND m.step = c.step AND m.name = 'val_loss'
	WHERE c.run = 'lawa-run'),
window_k AS (SELECT count(*) AS k FROM ckpt WHERE val_loss <= 1.01 * (SELECT min(val_loss) FROM ckpt))
SELECT k, soup.merge('lawa-run-avg', 'lawa', NULL,
					 params => jsonb_build_object('run', 'lawa-run', 'k', k)) > 0 AS merged
FROM window_k;
SELECT recipe -> 'models' AS averaged FROM soup.models WHERE name = 'lawa-run-avg';
