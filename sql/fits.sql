-- Critical batch size, gradient noise scale and scaling laws, on published
-- data (../shared/data, copied to /tmp/pg_soup_regress/data) and on data
-- generated from known parameters.
SET search_path = public, soup;
SET extra_float_digits = 0;

-- Zhang et al. 2024: steps to the target loss at 9 batch sizes for 5 model sizes
CREATE TEMP TABLE cbs_data (model text, params_m float8, target float8, chin_steps float8,
							seq_len int, batch_seqs float8, batch_tokens float8, steps float8);
COPY cbs_data FROM '/tmp/pg_soup_regress/data/zhang2024_cbs_steps_to_target.csv' WITH (FORMAT csv, HEADER);

-- expected per model, from ../shared/data/README.md (scipy's fit in log space)
CREATE TEMP TABLE cbs_expected (model text, s_min float8, e_min float8, cbs float8);
INSERT INTO cbs_expected VALUES ('85M', 1293.83, 2.83426e6, 745.32), ('151M', 1752.42, 5.67748e6, 955.16),
	('302M', 2095.35, 1.13833e7, 1393.73), ('604M', 2459.93, 1.94497e7, 1888.52),
	('1.2B', 3897.31, 4.33811e7, 2533.41);

CREATE TEMP TABLE cbs_fits AS
SELECT model, min(params_m) AS params_m, soup.critical_batch_size(batch_seqs, steps) AS f
FROM cbs_data GROUP BY model;
SELECT c.model, (f).n,
	   abs((f).s_min / e.s_min - 1) < 0.005 AS s_min_ok,
	   abs((f).e_min / e.e_min - 1) < 0.005 AS e_min_ok,
	   abs((f).b_crit - (f).e_min / (f).s_min) < 1e-9 * (f).b_crit AS b_crit_is_ratio,
	   abs(soup.cbs((f).s_min, (f).e_min, 256) / e.cbs - 1) < 0.005 AS cbs_ok
FROM cbs_fits c JOIN cbs_expected e USING (model) ORDER BY params_m;

-- the published law across model sizes: CBS = 93.20 N^0.468 (N in millions)
SELECT abs((p).a / 93.20 - 1) < 0.005 AS a_ok, abs((p).b / 0.468 - 1) < 0.005 AS b_ok,
	   (p).r2 > 0.95 AS tight, (p).n
FROM (SELECT soup.fit_power_law(params_m, soup.cbs((f).s_min, (f).e_min, 256)) AS p FROM cbs_fits) s;

-- the threshold rule itself: (1 + o) b0 + o e_min / s_min
SELECT soup.cbs(1000, 2e6, 256) AS cbs_default, soup.cbs(1000, 2e6, 256, 0.5) AS cbs_half;

-- power laws from known parameters: y = 3 x^0.5, and y = 2 x^-0.3 + 1.5
SELECT round((p).a::numeric, 9) AS a, round((p).b::numeric, 9) AS b, (p).c, round((p).r2::numeric, 9) AS r2
FROM (SELECT soup.fit_power_law(x, 3 * x ^ 0.5) AS p FROM generate_series(1, 50) x) s;
SELECT round((p).a::numeric, 3) AS a, round((p).b::numeric, 3) AS b, round((p).c::numeric, 3) AS c
FROM (SELECT soup.fit_power_law_offset(x, 2 * x ^ -0.3 + 1.5) AS p
	  FROM generate_series(1, 1000, 7) x) s;

-- gradient noise scale: |G|^2 = 1, tr(Sigma) = 100 measured at batch 8 and 64
-- gives |G_8|^2 = 13.5 and |G_64|^2 = 2.5625, and B_simple = 100 (DESIGN section 3)
SELECT round(soup.gradient_noise_scale(13.5, 2.5625, 8, 64 ORDER BY step)::numeric, 9) AS b_simple
FROM generate_series(1, 30) step;
-- a drifting run: the bias-corrected EMAs of numerator and denominator,
-- recomputed here step by step in SQL (beta 0.9)
WITH RECURSIVE obs AS (
	SELECT step, 1.0 / step AS g2, 100.0 + step AS tr FROM generate_series(1, 20) step),
est AS (SELECT step, (64 * (g2 + tr / 64) - 8 * (g2 + tr / 8)) / (64 - 8) AS g2_hat,
			   ((g2 + tr / 8) - (g2 + tr / 64)) / (1.0 / 8 - 1.0 / 64) AS tr_hat,
			   g2 + tr / 8 AS small, g2 + tr / 64 AS big FROM obs),
ema AS (SELECT step, 0.1 * g2_hat AS mg, 0.1 * tr_hat AS mt FROM est WHERE step = 1
		UNION ALL SELECT e.step, 0.9 * m.mg + 0.1 * e.g2_hat, 0.9 * m.mt + 0.1 * e.tr_hat
		FROM ema m JOIN est e ON e.step = m.step + 1)
SELECT round(((SELECT mt / (1 - 0.9 ^ 20) FROM ema WHERE step = 20)
			 / (SELECT mg / (1 - 0.9 ^ 20) FROM ema WHERE step = 20))::numeric, 6) AS reference,
	   round(soup.gradient_noise_scale(small::float8, big::float8, 8, 64, 0.9 ORDER BY step)::numeric, 6) AS b_simple
FROM est;
-- noise-dominated steps (|G|^2 estimate <= 0) give NULL, not a silent NaN
SELECT soup.gradient_noise_scale(13.5, 0.1, 8, 64 ORDER BY s) IS NULL AS undefined FROM generate_series(1, 3) s;

-- Chinchilla approach 3 on Epoch AI's reconstruction of Hoffmann et al.'s points:
-- D = C / (6 N), the 5 highest losses dropped (240 rows); Besiroglu et al. 2024
-- report E 1.8169, A 482.0, B 2085, alpha 0.3478, beta 0.3659
CREATE TEMP TABLE chin_raw (x float8, y float8, color text, n float8, flops float8, hex text, loss float8);
COPY chin_raw FROM '/tmp/pg_soup_regress/data/chinchilla_svg_extracted_data.csv' WITH (FORMAT csv, HEADER);
CREATE TEMP TABLE chin AS
SELECT n, flops / (6 * n) AS d, loss FROM chin_raw
WHERE loss < (SELECT loss FROM chin_raw ORDER BY loss DESC OFFSET 4 LIMIT 1);
SELECT count(*) AS rows FROM chin;
CREATE TEMP TABLE chin_fit AS SELECT soup.fit_chinchilla(n, d, loss) AS f FROM chin;
SELECT abs((f).e / 1.8169 - 1) < 0.005 AS e_ok, abs((f).alpha / 0.3478 - 1) < 0.005 AS alpha_ok,
	   abs((f).beta / 0.3659 - 1) < 0.005 AS beta_ok, (f).n, (f).starts
FROM chin_fit;
-- the objective, recomputed in SQL: summed Huber (delta 1e-3) of log-space residuals;
-- ours is no larger than at Besiroglu et al.'s published parameters
CREATE FUNCTION pg_temp.huber_objective(e float8, a float8, b float8, alpha float8, beta float8)
RETURNS float8 LANGUAGE sql AS $$
	SELECT sum(CASE WHEN abs(r) <= 1e-3 THEN 0.5 * r * r ELSE 1e-3 * (abs(r) - 0.5e-3) END)
	FROM (SELECT ln(exp(ln(a) - alpha * ln(n)) + exp(ln(b) - beta * ln(d)) + e) - ln(loss) AS r
		  FROM chin) s
$$;
SELECT (f).objective <= pg_temp.huber_objective(1.8169, 482.0, 2085, 0.3478, 0.3659) AS objective_no_larger,
	   abs((f).objective / pg_temp.huber_objective((f).e, (f).a, (f).b, (f).alpha, (f).beta) - 1) < 1e-9
		   AS objective_matches_sql
FROM chin_fit;
-- predictions and the compute-optimal split of a budget
SELECT abs(soup.chinchilla_loss(f, 1e9, 2e10)
		   - ((f).e + (f).a / 1e9 ^ (f).alpha + (f).b / 2e10 ^ (f).beta)) < 1e-12 AS loss_formula
FROM chin_fit;
SELECT abs(6 * o.n_opt * o.d_opt / 1e23 - 1) < 1e-9 AS uses_budget,
	   soup.chinchilla_loss(f, o.n_opt, o.d_opt) < soup.chinchilla_loss(f, o.n_opt * 1.1, o.d_opt / 1.1)
	   AND soup.chinchilla_loss(f, o.n_opt, o.d_opt) < soup.chinchilla_loss(f, o.n_opt / 1.1, o.d_opt * 1.1)
		   AS is_minimum,
	   o.n_opt BETWEEN 1e10 AND 1e11 AS tens_of_billions
FROM chin_fit, LATERAL soup.compute_optimal(f, 1e23) o;

-- synthetic Chinchilla data from known parameters is recovered
SELECT round((f).e::numeric, 4) AS e, round((f).alpha::numeric, 4) AS alpha, round((f).beta::numeric, 4) AS beta
FROM (SELECT soup.fit_chinchilla(n, d, 1.7 + 400 / n ^ 0.34 + 1500 / d ^ 0.28) AS f
	  FROM (SELECT 10 ^ (7 + i / 4.0) AS n, 10 ^ (9 + j / 4.0) AS d
			FROM generate_series(0, 12) i, generate_series(0, 12) j) g) s;

-- degenerate inputs are errors with a reason
\set VERBOSITY terse
SELECT soup.fit_power_law(x, y) FROM (VALUES (1.0, 2.0)) v(x, y);
SELECT soup.fit_power_law(x, y) FROM (VALUES (1.0, 2.0), (2.0, -1.0)) v(x, y);
SELECT soup.fit_power_law(x, y) FROM (VALUES (1.0, 2.0), (2.0, 'NaN')) v(x, y);
SELECT soup.fit_power_law(x, y) FROM (VALUES (2.0, 2.0), (2.0, 3.0)) v(x, y);
SELECT soup.critical_batch_size(b, s) FROM (VALUES (64.0, 100.0)) v(b, s);
SELECT soup.critical_batch_size(b, s) FROM (VALUES (64.0, 100.0), (0, 50.0)) v(b, s);
SELECT soup.fit_chinchilla(n, d, l) FROM (VALUES (1e9, 1e10, 2.0), (1e9, 1e11, 1.9)) v(n, d, l);
SELECT soup.cbs(0, 1, 256);
SELECT soup.compute_optimal(f, -1) FROM chin_fit;
SELECT soup.gradient_noise_scale(1, 2, 8, 8 ORDER BY s) FROM generate_series(1, 2) s;
SELECT soup.gradient_noise_scale(1, 2, 8, 64, 1.5 ORDER BY s) FROM generate_series(1, 2) s;
\set VERBOSITY default
-- no rows give NULL; rows with a NULL are skipped
SELECT soup.fit_power_law(x, y) IS NULL AS empty FROM (SELECT 1.0 AS x, 1.0 AS y WHERE false) s;
SELECT (soup.fit_power_law(x, y)).n FROM (VALUES (1.0, 2.0), (2.0, 4.0), (3.0, NULL)) v(x, y);
