-- Training runs and metrics: tables, logging, COPY, steps to target
SET search_path = public, soup;

INSERT INTO soup.runs (name, params, tokens, batch_size, seq_len, learning_rate, config)
VALUES ('r85m', 85000000, 1700000000, 256, 512, 3e-4, '{"optimizer": "adamw"}');

-- logging from a training loop: a run is created on first use; a step logged twice is overwritten
SELECT soup.log_metrics('r85m', 100, '{"loss": 4.5, "lr": 0.0003}', 51200);
SELECT soup.log_metrics('auto-run', 1, '{"loss": 9}');
SELECT soup.log_metrics('auto-run', 1, '{"loss": 8.5}');
SELECT run, step, tokens, name, value FROM soup.metrics ORDER BY run, step, name;

-- bulk loading: COPY in CSV (documented) and JSON lines through log_metrics
COPY soup.metrics (run, step, tokens, name, value) FROM stdin WITH (FORMAT csv);
r85m,200,102400,loss,4.1
r85m,300,153600,loss,3.9
r85m,400,204800,loss,3.75
r85m,500,256000,loss,3.8
r85m,600,307200,loss,3.6
\.
CREATE TEMP TABLE jsonl (line jsonb);
COPY jsonl FROM stdin;
{"run": "r85m", "step": 700, "metrics": {"loss": 3.55, "acc": 0.61}}
{"run": "r85m", "step": 800, "metrics": {"loss": 3.5, "acc": 0.64}}
\.
SELECT sum(soup.log_metrics(line ->> 'run', (line ->> 'step')::bigint, line -> 'metrics')) AS logged
FROM jsonl;

-- the first step at which the loss reaches a target, raw and smoothed
SELECT soup.steps_to_target('r85m', 'loss', 3.8) AS raw,
	   soup.steps_to_target('r85m', 'loss', 3.7) AS raw_37,
	   soup.steps_to_target('r85m', 'loss', 3.7, 0.5) AS smoothed,
	   soup.steps_to_target('r85m', 'acc', 0.62, higher_is_better => true) AS acc,
	   soup.steps_to_target('r85m', 'loss', 1.0) AS never;
-- the smoothed value by hand (bias-corrected EMA with beta 0.5)
WITH RECURSIVE l AS (SELECT step, value, row_number() OVER (ORDER BY step) AS k
					 FROM soup.metrics WHERE run = 'r85m' AND name = 'loss'),
e AS (SELECT k, step, 0.5 * value AS m FROM l WHERE k = 1
	  UNION ALL SELECT l.k, l.step, 0.5 * e.m + 0.5 * l.value FROM e JOIN l ON l.k = e.k + 1)
SELECT step, round((m / (1 - 0.5 ^ k))::numeric, 4) AS smoothed FROM e ORDER BY step;

-- checkpoints beside their runs
SELECT soup.import_safetensors('/tmp/pg_soup_regress/fixtures/dalotia-mnist/model-mnist.safetensors',
							   'r85m-600', 'r85m', 600) > 0 AS ok;
SELECT model, run, step, params, batch_size, config FROM soup.checkpoints WHERE run = 'r85m';

-- errors
\set VERBOSITY terse
SELECT soup.log_metrics('r85m', 1, '{"loss": "low"}');
SELECT soup.log_metrics('r85m', 1, '[1]');
SELECT soup.log_metrics('r85m', -1, '{"loss": 1}');
SELECT soup.log_metrics(NULL, 1, '{"loss": 1}');
SELECT soup.steps_to_target('nope', 'loss', 1);
SELECT soup.steps_to_target('r85m', 'loss', 'NaN');
SELECT soup.steps_to_target('r85m', 'loss', 1, 1);
INSERT INTO soup.runs (name, params) VALUES ('bad', 0);
INSERT INTO soup.metrics (run, step, name, value) VALUES ('no-such-run', 1, 'loss', 1);
\set VERBOSITY default

-- deleting a run deletes its metrics
DELETE FROM soup.runs WHERE name = 'auto-run';
SELECT count(*) AS auto_run_metrics FROM soup.metrics WHERE run = 'auto-run';
