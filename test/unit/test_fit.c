/*
 * test_fit.c - unit tests of the scaling-law and critical-batch-size
 * kernels (src/kernels/fit.c), no server needed.
 *
 * Usage: test_fit.bin [data dir]   (default ../shared/data)
 *
 * Published references checked (see the data dir's README.md):
 *	- Zhang et al. 2024: per-model S_min, E_min and CBS (20% rule, B0 = 256)
 *	  within 0.5%, and CBS = 93.20 N^0.468 (N in millions) over the models;
 *	- DESIGN section 3's exact gradient-noise-scale example;
 *	- Besiroglu et al. 2024's Chinchilla approach-3 replication on the
 *	  standard 240-row subset: E, alpha, beta within 0.5%, and an objective
 *	  no larger than theirs evaluated at their published parameters.
 * Plus recovery of known parameters from synthetic data (fixed-seed RNG)
 * and the error codes of degenerate inputs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/fit.h"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { if (cond) passed++; else { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

/* |got - want| <= tol * |want| */
static int
near_rel(double got, double want, double tol)
{
	return fabs(got - want) <= tol * fabs(want);
}

static double
pct(double got, double want)
{
	return 100.0 * (got - want) / want;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- fixed-seed RNG: splitmix64 and Box-Muller ---- */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
rng_uniform(void)
{
	return ((rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
rng_normal(void)
{
	return sqrt(-2.0 * log(rng_uniform())) * cos(2.0 * M_PI * rng_uniform());
}

/* ---- CSV reading ---- */

#define MAX_FIELDS 16

/* Split line in place at commas; returns the field count. */
static int
split_csv(char *line, char **fields)
{
	int			nf = 0;
	char	   *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (nf < MAX_FIELDS)
	{
		fields[nf++] = p;
		p = strchr(p, ',');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return nf;
}

static FILE *
open_data(const char *dir, const char *name)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (f == NULL)
		printf("cannot open %s\n", path);
	return f;
}

/* Zhang et al. 2024 steps to target: rows in file order (grouped by model). */
#define CBS_MAX_ROWS 64
typedef struct CbsRows
{
	char		model[CBS_MAX_ROWS][32];
	double		params_m[CBS_MAX_ROWS];
	double		batch[CBS_MAX_ROWS];
	double		steps[CBS_MAX_ROWS];
	int			n;
} CbsRows;

static int
load_cbs(const char *dir, CbsRows *r)
{
	FILE	   *f = open_data(dir, "zhang2024_cbs_steps_to_target.csv");
	char		line[1024];
	char	   *fl[MAX_FIELDS];

	r->n = 0;
	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';			/* header */
	while (fgets(line, sizeof(line), f) && r->n < CBS_MAX_ROWS)
	{
		if (split_csv(line, fl) < 8)
			continue;
		snprintf(r->model[r->n], sizeof(r->model[0]), "%s", fl[0]);
		r->params_m[r->n] = atof(fl[1]);
		r->batch[r->n] = atof(fl[5]);
		r->steps[r->n] = atof(fl[7]);
		r->n++;
	}
	fclose(f);
	return r->n;
}

/* Chinchilla SVG data: N, D = C / (6 N), loss. */
#define CHIN_MAX_ROWS 512
typedef struct ChinRows
{
	double		N[CHIN_MAX_ROWS];
	double		D[CHIN_MAX_ROWS];
	double		L[CHIN_MAX_ROWS];
	int			n;
} ChinRows;

static int
load_chinchilla(const char *dir, ChinRows *r)
{
	FILE	   *f = open_data(dir, "chinchilla_svg_extracted_data.csv");
	char		line[1024];
	char	   *fl[MAX_FIELDS];

	r->n = 0;
	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';			/* header */
	while (fgets(line, sizeof(line), f) && r->n < CHIN_MAX_ROWS)
	{
		double		N,
					C;

		if (split_csv(line, fl) < 7)
			continue;
		N = atof(fl[3]);
		C = atof(fl[4]);
		r->N[r->n] = N;
		r->D[r->n] = C / (6.0 * N);
		r->L[r->n] = atof(fl[6]);
		r->n++;
	}
	fclose(f);
	return r->n;
}

static int
cmp_desc(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x > y ? -1 : x < y ? 1 : 0;
}

/* The replication's subset: keep rows with loss < the 5th-largest loss. */
static void
drop_highest_losses(ChinRows *r, int k)
{
	double	   *s = malloc(sizeof(double) * r->n);
	double		thr;
	int			i,
				m = 0;

	memcpy(s, r->L, sizeof(double) * r->n);
	qsort(s, r->n, sizeof(double), cmp_desc);
	thr = s[k - 1];
	free(s);
	for (i = 0; i < r->n; i++)
		if (r->L[i] < thr)
		{
			r->N[m] = r->N[i];
			r->D[m] = r->D[i];
			r->L[m] = r->L[i];
			m++;
		}
	r->n = m;
}

/* ---- critical batch size on Zhang et al. 2024 ---- */

static const struct
{
	const char *model;
	double		s_min;
	double		e_min;
	double		cbs;
}			zhang_expected[5] =
{
	{"85M", 1293.83, 2.83426e6, 745.32},
	{"151M-ablation", 1752.42, 5.67748e6, 955.16},
	{"302M", 2095.35, 1.13833e7, 1393.73},
	{"604M", 2459.93, 1.94497e7, 1888.52},
	{"1.2B", 3897.31, 4.33811e7, 2533.41},
};

static void
test_cbs_zhang(const char *dir)
{
	CbsRows		r;
	double		Nm[5],
				cbs[5];
	int			m;
	SoupPowerLawFit pl;

	CHECK(load_cbs(dir, &r) == 45, "zhang csv: %d rows, want 45", r.n);
	printf("critical batch size (Zhang et al. 2024), B in sequences:\n");
	for (m = 0; m < 5; m++)
	{
		double		b[CBS_MAX_ROWS],
					s[CBS_MAX_ROWS];
		int			i,
					k = 0,
					rc;
		SoupCbsFit	fit;

		for (i = 0; i < r.n; i++)
			if (strcmp(r.model[i], zhang_expected[m].model) == 0)
			{
				b[k] = r.batch[i];
				s[k] = r.steps[i];
				Nm[m] = r.params_m[i];
				k++;
			}
		CHECK(k == 9, "%s: %d rows", zhang_expected[m].model, k);
		rc = soup_fit_critical_batch(b, s, k, &fit);
		CHECK(rc == FIT_OK, "%s: status %d", zhang_expected[m].model, rc);
		rc = soup_cbs(fit.s_min, fit.e_min, 256, 0.2, &cbs[m]);
		CHECK(rc == FIT_OK, "cbs status %d", rc);
		printf("  %-14s S_min %9.2f (%+.4f%%)  E_min %.5e (%+.4f%%)  "
			   "B_crit %8.1f  CBS %8.2f (%+.4f%%)  obj %.5g\n",
			   zhang_expected[m].model,
			   fit.s_min, pct(fit.s_min, zhang_expected[m].s_min),
			   fit.e_min, pct(fit.e_min, zhang_expected[m].e_min),
			   fit.b_crit, cbs[m], pct(cbs[m], zhang_expected[m].cbs),
			   fit.objective);
		CHECK(near_rel(fit.s_min, zhang_expected[m].s_min, 0.005),
			  "%s S_min %g", zhang_expected[m].model, fit.s_min);
		CHECK(near_rel(fit.e_min, zhang_expected[m].e_min, 0.005),
			  "%s E_min %g", zhang_expected[m].model, fit.e_min);
		CHECK(near_rel(cbs[m], zhang_expected[m].cbs, 0.005),
			  "%s CBS %g", zhang_expected[m].model, cbs[m]);
		CHECK(near_rel(fit.b_crit, fit.e_min / fit.s_min, 1e-12) && fit.n == 9,
			  "%s b_crit/n", zhang_expected[m].model);
	}
	CHECK(soup_fit_power_law(Nm, cbs, 5, &pl) == FIT_OK, "cbs power law");
	printf("  CBS = %.4f * N_M^%.5f (published 93.20 N^0.468; a %+.3f%%, b %+.3f%%), "
		   "r2 %.5f\n", pl.a, pl.b, pct(pl.a, 93.20), pct(pl.b, 0.468), pl.r2);
	CHECK(near_rel(pl.a, 93.20, 0.005), "CBS law a %g", pl.a);
	CHECK(near_rel(pl.b, 0.468, 0.005), "CBS law b %g", pl.b);
}

/* The documented algebra: steps at CBS exceed linear scaling by overhead. */
static void
test_cbs_rule(void)
{
	double		smin = 1000,
				emin = 3e6,
				b0 = 256,
				o = 0.2,
				bstar;
	double		s0,
				sstar;

	CHECK(soup_cbs(smin, emin, b0, o, &bstar) == FIT_OK, "cbs ok");
	s0 = smin + emin / b0;
	sstar = smin + emin / bstar;
	CHECK(near_rel(sstar, (1 + o) * s0 * b0 / bstar, 1e-12),
		  "steps at CBS %g, want %g", sstar, (1 + o) * s0 * b0 / bstar);
	CHECK(near_rel(bstar, 1.2 * 256 + 0.2 * 3000, 1e-15), "cbs value %g", bstar);
	CHECK(soup_cbs(0, emin, b0, o, &bstar) == FIT_ERR_NONPOSITIVE, "cbs s_min 0");
	CHECK(soup_cbs(smin, emin, -1, o, &bstar) == FIT_ERR_NONPOSITIVE, "cbs b0 < 0");
	CHECK(soup_cbs(smin, -1, b0, o, &bstar) == FIT_ERR_BAD_ARGUMENT, "cbs e_min < 0");
	CHECK(soup_cbs(smin, emin, b0, -0.1, &bstar) == FIT_ERR_BAD_ARGUMENT, "cbs overhead < 0");
	CHECK(soup_cbs(NAN, emin, b0, o, &bstar) == FIT_ERR_NONFINITE && isnan(bstar),
		  "cbs NaN");
}

/* Exact and noisy synthetic S = S_min + E_min / B. */
static void
test_cbs_synthetic(void)
{
	double		b[12],
				s[12],
				sn[12];
	SoupCbsFit	fit;
	int			i;

	rng_state = 7;
	for (i = 0; i < 12; i++)
	{
		b[i] = 16.0 * pow(2.0, i);
		s[i] = 800.0 + 4e6 / b[i];
		sn[i] = s[i] * exp(0.02 * rng_normal());
	}
	CHECK(soup_fit_critical_batch(b, s, 12, &fit) == FIT_OK, "cbs exact ok");
	CHECK(near_rel(fit.s_min, 800, 1e-8) && near_rel(fit.e_min, 4e6, 1e-8) &&
		  fit.objective < 1e-20,
		  "cbs exact: %.10g %.10g obj %g", fit.s_min, fit.e_min, fit.objective);
	CHECK(soup_fit_critical_batch(b, sn, 12, &fit) == FIT_OK, "cbs noisy ok");
	CHECK(near_rel(fit.s_min, 800, 0.05) && near_rel(fit.e_min, 4e6, 0.05),
		  "cbs noisy: %g %g", fit.s_min, fit.e_min);
	/* steps that do not fall with B: the boundary E_min -> 0, B_crit -> 0 */
	for (i = 0; i < 12; i++)
		sn[i] = 1000.0 + 10.0 * i;
	CHECK(soup_fit_critical_batch(b, sn, 12, &fit) == FIT_OK &&
		  fit.e_min < 1e-6 * fit.s_min && fit.b_crit < 1e-6 &&
		  fit.s_min > 1000 && fit.s_min < 1110,
		  "cbs no trade-off: %g %g", fit.s_min, fit.e_min);
	/* two points determine the curve exactly */
	CHECK(soup_fit_critical_batch(b + 3, s + 3, 2, &fit) == FIT_OK &&
		  near_rel(fit.s_min, 800, 1e-6) && near_rel(fit.e_min, 4e6, 1e-6),
		  "cbs two points: %g %g", fit.s_min, fit.e_min);
}

/* ---- gradient noise scale (DESIGN section 3) ---- */

static void
test_gns(void)
{
	SoupGnsState st,
				a,
				b;
	SoupGnsResult r;
	double		g2 = 1.0,
				tr = 100.0;
	int			i;

	memset(&st, 0, sizeof(st));	/* a zeroed state is a valid empty one */
	CHECK(soup_gns_result(&st, &r) == FIT_ERR_TOO_FEW, "gns empty");
	/* the DESIGN check: inputs 13.5 and 2.5625 at B 8 and 64 */
	CHECK(g2 + tr / 8 == 13.5 && g2 + tr / 64 == 2.5625, "gns inputs");
	CHECK(soup_gns_update(&st, 13.5, 2.5625, 8, 64, 0.99) == FIT_OK, "gns update");
	CHECK(soup_gns_result(&st, &r) == FIT_OK && fabs(r.b_simple - 100) < 1e-12 &&
		  fabs(r.g2 - 1) < 1e-14 && fabs(r.trsigma - 100) < 1e-12 && r.count == 1,
		  "gns exact: B_simple %.17g g2 %.17g tr %.17g", r.b_simple, r.g2, r.trsigma);
	for (i = 0; i < 500; i++)
		soup_gns_update(&st, 13.5, 2.5625, 8, 64, 0.99);
	CHECK(soup_gns_result(&st, &r) == FIT_OK && fabs(r.b_simple - 100) < 1e-9 &&
		  fabs(r.g2 - 1) < 1e-11, "gns constant: %.17g", r.b_simple);

	/* noisy measurements: the ratio of smoothed estimates converges */
	rng_state = 11;
	soup_gns_init(&st);
	soup_gns_init(&a);
	soup_gns_init(&b);
	for (i = 0; i < 4000; i++)
	{
		double		gs = (g2 + tr / 8) * (1 + 0.3 * rng_normal());
		double		gb = (g2 + tr / 64) * (1 + 0.3 * rng_normal());
		double		beta = i % 3 ? 0.999 : 0.995;	/* varying beta */

		soup_gns_update(&st, gs, gb, 8, 64, beta);
		soup_gns_update(i < 1700 ? &a : &b, gs, gb, 8, 64, beta);
	}
	CHECK(soup_gns_result(&st, &r) == FIT_OK && near_rel(r.b_simple, 100, 0.15),
		  "gns noisy: %g", r.b_simple);
	printf("gradient noise scale: exact check B_simple 100; noisy (30%% noise) %.3f\n",
		   r.b_simple);
	soup_gns_combine(&a, &b);
	CHECK(near_rel(a.g2_ema, st.g2_ema, 1e-12) &&
		  near_rel(a.trsigma_ema, st.trsigma_ema, 1e-12) &&
		  near_rel(a.decay_prod, st.decay_prod, 1e-12) && a.count == st.count,
		  "gns combine equals sequential");

	/* errors leave the state unchanged */
	a = st;
	CHECK(soup_gns_update(&st, NAN, 1, 8, 64, 0.99) == FIT_ERR_NONFINITE, "gns NaN");
	CHECK(soup_gns_update(&st, 1, INFINITY, 8, 64, 0.99) == FIT_ERR_NONFINITE, "gns inf");
	CHECK(soup_gns_update(&st, 1, 1, 0, 64, 0.99) == FIT_ERR_NONPOSITIVE, "gns b_small 0");
	CHECK(soup_gns_update(&st, 1, 1, 8, -64, 0.99) == FIT_ERR_NONPOSITIVE, "gns b_big < 0");
	CHECK(soup_gns_update(&st, 1, 1, 8, 8, 0.99) == FIT_ERR_BAD_ARGUMENT, "gns equal B");
	CHECK(soup_gns_update(&st, 1, 1, 8, 64, 1.0) == FIT_ERR_BAD_ARGUMENT, "gns beta 1");
	CHECK(soup_gns_update(&st, 1, 1, 8, 64, -0.1) == FIT_ERR_BAD_ARGUMENT, "gns beta < 0");
	CHECK(memcmp(&a, &st, sizeof(st)) == 0, "gns state unchanged by errors");
	/* |G|^2 estimate (64 * 2 - 8 * 20) / 56 < 0: no B_simple */
	soup_gns_init(&st);
	soup_gns_update(&st, 20.0, 2.0, 8, 64, 0.9);
	CHECK(soup_gns_result(&st, &r) == FIT_ERR_NONPOSITIVE && isnan(r.b_simple),
		  "gns g2 <= 0");
}

/* ---- power laws ---- */

static void
test_power_law_synthetic(void)
{
	double		x[40],
				y[40],
				yn[40],
				yo[40],
				yon[40];
	SoupPowerLawFit f;
	int			i;

	rng_state = 3;
	for (i = 0; i < 40; i++)
	{
		x[i] = pow(10.0, 0.1 * i);	/* 1 .. ~8000 */
		y[i] = 3.0 * pow(x[i], -0.7);
		yn[i] = y[i] * exp(0.01 * rng_normal());
		yo[i] = 2.0 * pow(x[i], -0.5) + 1.5;
		yon[i] = yo[i] * exp(0.002 * rng_normal());
	}
	CHECK(soup_fit_power_law(x, y, 40, &f) == FIT_OK && near_rel(f.a, 3, 1e-12) &&
		  near_rel(f.b, -0.7, 1e-12) && fabs(f.r2 - 1) < 1e-12 && f.rmse < 1e-12 &&
		  f.c == 0 && f.n == 40,
		  "power law exact: %.15g %.15g r2 %g", f.a, f.b, f.r2);
	CHECK(soup_fit_power_law(x, yn, 40, &f) == FIT_OK && near_rel(f.a, 3, 0.02) &&
		  near_rel(f.b, -0.7, 0.01) && f.r2 > 0.999 && near_rel(f.rmse, 0.01, 0.3),
		  "power law noisy: %g %g r2 %g rmse %g", f.a, f.b, f.r2, f.rmse);
	CHECK(soup_fit_power_law_offset(x, yo, 40, &f) == FIT_OK &&
		  near_rel(f.a, 2, 1e-6) && near_rel(f.b, -0.5, 1e-6) &&
		  near_rel(f.c, 1.5, 1e-6) && f.rmse < 1e-8,
		  "offset exact: %.12g %.12g %.12g rmse %g", f.a, f.b, f.c, f.rmse);
	printf("offset power law, exact data 2 x^-0.5 + 1.5: a %.10g b %.10g c %.10g\n",
		   f.a, f.b, f.c);
	CHECK(soup_fit_power_law_offset(x, yon, 40, &f) == FIT_OK &&
		  near_rel(f.a, 2, 0.05) && near_rel(f.b, -0.5, 0.05) &&
		  near_rel(f.c, 1.5, 0.03) && f.r2 > 0.99,
		  "offset noisy: %g %g %g r2 %g", f.a, f.b, f.c, f.r2);
	printf("offset power law, 0.2%% noise: a %.5g b %.5g c %.5g r2 %.6f\n",
		   f.a, f.b, f.c, f.r2);
	/* no offset in the data: c ~ 0 and the same fit as the plain law */
	CHECK(soup_fit_power_law_offset(x, y, 40, &f) == FIT_OK &&
		  f.c < 1e-6 * y[39] && near_rel(f.a, 3, 1e-5) && near_rel(f.b, -0.7, 1e-5),
		  "offset on plain data: %g %g %g", f.a, f.b, f.c);
	/* increasing law */
	for (i = 0; i < 40; i++)
		yo[i] = 0.5 * pow(x[i], 0.3) + 0.2;
	CHECK(soup_fit_power_law_offset(x, yo, 40, &f) == FIT_OK &&
		  near_rel(f.a, 0.5, 1e-5) && near_rel(f.b, 0.3, 1e-5) &&
		  near_rel(f.c, 0.2, 1e-4),
		  "offset increasing: %g %g %g", f.a, f.b, f.c);
}

/* ---- Chinchilla approach 3 ---- */

/* Besiroglu et al. 2024, Table 1 / section 3. */
#define BES_E 1.8169
#define BES_A 482.0
#define BES_B 2085.0
#define BES_ALPHA 0.3478
#define BES_BETA 0.3659

static double
chin_objective_at(const ChinRows *r, double A, double B, double E,
				  double alpha, double beta)
{
	double		p[5] = {log(A), log(B), log(E), alpha, beta};

	return soup_chinchilla_objective(r->N, r->D, r->L, r->n, 1e-3, p, NULL);
}

/*
 * compute_optimal against a direct scan of the loss along N D = C/6, and
 * the constraint itself.
 */
static void
check_compute_optimal(const SoupChinchillaFit *fit, double C)
{
	double		n_opt,
				d_opt,
				best = INFINITY,
				n_scan = 0;
	int			k;

	CHECK(soup_compute_optimal(fit, C, &n_opt, &d_opt) == FIT_OK, "compute_optimal");
	CHECK(near_rel(6 * n_opt * d_opt, C, 1e-12), "6 N D = C: %g vs %g",
		  6 * n_opt * d_opt, C);
	for (k = -20000; k <= 20000; k++)
	{
		double		n = n_opt * exp(k * 1e-4);
		double		l;

		soup_chinchilla_loss(fit, n, C / (6 * n), &l);
		if (l < best)
		{
			best = l;
			n_scan = n;
		}
	}
	CHECK(near_rel(n_scan, n_opt, 2e-4), "N_opt %g, scan %g", n_opt, n_scan);
}

static void
test_chinchilla_data(const char *dir)
{
	ChinRows   *r = malloc(sizeof(ChinRows));
	SoupChinchillaFit fit;
	double		t0,
				secs,
				theirs,
				maxdev = 0;
	double		n_opt,
				d_opt,
				loss;
	int			i,
				rc;

	CHECK(load_chinchilla(dir, r) == 245, "chinchilla csv: %d rows", r->n);
	drop_highest_losses(r, 5);
	CHECK(r->n == 240, "standard subset: %d rows, want 240", r->n);
	t0 = now_seconds();
	rc = soup_fit_chinchilla(r->N, r->D, r->L, r->n, NULL, &fit);
	secs = now_seconds() - t0;
	CHECK(rc == FIT_OK, "chinchilla fit status %d", rc);
	theirs = chin_objective_at(r, BES_A, BES_B, BES_E, BES_ALPHA, BES_BETA);
	printf("Chinchilla approach 3, %d rows, %d starts (%d met the stopping test), %.2f s:\n",
		   fit.n, fit.n_starts, fit.n_converged, secs);
	printf("  E %.6f (%+.3f%%)  A %.3f (%+.2f%%)  B %.2f (%+.2f%%)  "
		   "alpha %.6f (%+.3f%%)  beta %.6f (%+.3f%%)\n",
		   fit.E, pct(fit.E, BES_E), fit.A, pct(fit.A, BES_A),
		   fit.B, pct(fit.B, BES_B), fit.alpha, pct(fit.alpha, BES_ALPHA),
		   fit.beta, pct(fit.beta, BES_BETA));
	printf("  objective %.10g; at Besiroglu et al.'s parameters %.10g\n",
		   fit.objective, theirs);
	CHECK(near_rel(fit.E, BES_E, 0.005), "E %g", fit.E);
	CHECK(near_rel(fit.alpha, BES_ALPHA, 0.005), "alpha %g", fit.alpha);
	CHECK(near_rel(fit.beta, BES_BETA, 0.005), "beta %g", fit.beta);
	CHECK(fit.objective <= theirs, "objective %.10g > theirs %.10g",
		  fit.objective, theirs);
	CHECK(fabs(fit.objective - chin_objective_at(r, fit.A, fit.B, fit.E,
												 fit.alpha, fit.beta)) < 1e-9,
		  "reported objective matches a re-evaluation");
	CHECK(fit.n == 240 && fit.n_starts == 4500 && fit.n_converged > 0,
		  "counts %d %d %d", fit.n, fit.n_starts, fit.n_converged);
	CHECK(secs < 10.0, "Chinchilla fit took %.2f s", secs);
	/* predictions agree with the published fit over the data */
	{
		SoupChinchillaFit bes = fit;

		bes.E = BES_E;
		bes.A = BES_A;
		bes.B = BES_B;
		bes.alpha = BES_ALPHA;
		bes.beta = BES_BETA;
		for (i = 0; i < r->n; i++)
		{
			double		l1,
						l2;

			soup_chinchilla_loss(&fit, r->N[i], r->D[i], &l1);
			soup_chinchilla_loss(&bes, r->N[i], r->D[i], &l2);
			maxdev = fmax(maxdev, fabs(l1 / l2 - 1));
		}
		printf("  predictions vs the published fit on the 240 points: max rel. diff %.4f%%\n",
			   100 * maxdev);
		CHECK(maxdev < 0.005, "predictions differ by %g", maxdev);
		soup_compute_optimal(&fit, 5.76e23, &n_opt, &d_opt);
		printf("  compute-optimal at C = 5.76e23 FLOP (Chinchilla's budget): "
			   "N %.4g, D %.4g (published fit: ", n_opt, d_opt);
		soup_compute_optimal(&bes, 5.76e23, &n_opt, &d_opt);
		printf("N %.4g, D %.4g)\n", n_opt, d_opt);
	}
	check_compute_optimal(&fit, 5.76e23);
	check_compute_optimal(&fit, 1e18);
	CHECK(soup_chinchilla_loss(&fit, 70e9, 1.4e12, &loss) == FIT_OK &&
		  fabs(loss - (fit.E + fit.A / pow(70e9, fit.alpha) +
					   fit.B / pow(1.4e12, fit.beta))) < 1e-12,
		  "chinchilla_loss");
	free(r);
}

/* Synthetic data on an 8 x 8 grid of N and D from known parameters. */
static void
test_chinchilla_synthetic(void)
{
	const double E = 1.7,
				A = 400,
				B = 1500,
				alpha = 0.34,
				beta = 0.28;
	double		N[64],
				D[64],
				L[64],
				Ln[64];
	SoupChinchillaFit f,
				f1,
				f2;
	SoupChinchillaOptions o;
	int			i;

	rng_state = 5;
	for (i = 0; i < 64; i++)
	{
		N[i] = 1e7 * pow(10.0, 3.0 * (i % 8) / 7);	/* 1e7 .. 1e10 */
		D[i] = 1e9 * pow(10.0, 3.0 * (i / 8) / 7);	/* 1e9 .. 1e12 */
		L[i] = E + A / pow(N[i], alpha) + B / pow(D[i], beta);
		Ln[i] = L[i] * exp(0.003 * rng_normal());
	}
	CHECK(soup_fit_chinchilla(N, D, L, 64, NULL, &f) == FIT_OK, "synthetic exact ok");
	printf("Chinchilla synthetic exact (E 1.7 A 400 B 1500 alpha .34 beta .28): "
		   "E %.8g A %.8g B %.8g alpha %.8g beta %.8g obj %.3g\n",
		   f.E, f.A, f.B, f.alpha, f.beta, f.objective);
	CHECK(near_rel(f.E, E, 1e-5) && near_rel(f.A, A, 1e-4) && near_rel(f.B, B, 1e-4) &&
		  near_rel(f.alpha, alpha, 1e-5) && near_rel(f.beta, beta, 1e-5),
		  "synthetic exact recovery");

	soup_chinchilla_default_options(&o);
	o.n_threads = 1;
	CHECK(soup_fit_chinchilla(N, D, Ln, 64, &o, &f1) == FIT_OK, "synthetic noisy ok");
	o.n_threads = 2;
	CHECK(soup_fit_chinchilla(N, D, Ln, 64, &o, &f2) == FIT_OK, "synthetic noisy 2 thr");
	printf("Chinchilla synthetic, 0.3%% noise: E %.5g A %.5g B %.5g alpha %.5g beta %.5g\n",
		   f1.E, f1.A, f1.B, f1.alpha, f1.beta);
	CHECK(near_rel(f1.E, E, 0.02) && near_rel(f1.alpha, alpha, 0.05) &&
		  near_rel(f1.beta, beta, 0.05) && near_rel(f1.A, A, 0.5) &&
		  near_rel(f1.B, B, 0.5),
		  "synthetic noisy recovery");
	CHECK(memcmp(&f1, &f2, sizeof(f1)) == 0, "1 and 2 threads give identical fits");
}

/* ---- degenerate inputs ---- */

static void
test_degenerate(void)
{
	double		x[6] = {1, 2, 4, 8, 16, 32};
	double		y[6] = {5, 4, 3.2, 2.9, 2.7, 2.6};
	double		bad[6];
	double		same[6] = {3, 3, 3, 3, 3, 3};
	SoupPowerLawFit pl;
	SoupCbsFit	cb;
	SoupChinchillaFit ch,
				fit;
	double		n_opt,
				d_opt,
				loss;
	int			i;

	CHECK(soup_fit_power_law(x, y, 1, &pl) == FIT_ERR_TOO_FEW, "pl n=1");
	CHECK(soup_fit_power_law(x, y, 0, &pl) == FIT_ERR_TOO_FEW, "pl n=0");
	CHECK(soup_fit_power_law_offset(x, y, 2, &pl) == FIT_ERR_TOO_FEW, "plo n=2");
	CHECK(soup_fit_critical_batch(x, y, 1, &cb) == FIT_ERR_TOO_FEW, "cbs n=1");
	CHECK(soup_fit_chinchilla(x, x, y, 4, NULL, &ch) == FIT_ERR_TOO_FEW, "chin n=4");
	CHECK(soup_fit_power_law(x, y, 2, &pl) == FIT_OK && fabs(pl.r2 - 1) < 1e-12,
		  "pl n=2 is exact");

	for (i = 0; i < 3; i++)
	{
		static const double vals[3] = {0.0, -1.0, NAN};
		int			want = i < 2 ? FIT_ERR_NONPOSITIVE : FIT_ERR_NONFINITE;

		memcpy(bad, x, sizeof(bad));
		bad[3] = vals[i];
		CHECK(soup_fit_power_law(bad, y, 6, &pl) == want, "pl x[3]=%g", vals[i]);
		CHECK(soup_fit_power_law(x, bad, 6, &pl) == want, "pl y[3]=%g", vals[i]);
		CHECK(soup_fit_power_law_offset(bad, y, 6, &pl) == want, "plo x=%g", vals[i]);
		CHECK(soup_fit_power_law_offset(x, bad, 6, &pl) == want, "plo y=%g", vals[i]);
		CHECK(soup_fit_critical_batch(bad, y, 6, &cb) == want, "cbs B=%g", vals[i]);
		CHECK(soup_fit_critical_batch(x, bad, 6, &cb) == want, "cbs S=%g", vals[i]);
		CHECK(soup_fit_chinchilla(bad, x, y, 6, NULL, &ch) == want, "chin N=%g", vals[i]);
		CHECK(soup_fit_chinchilla(x, bad, y, 6, NULL, &ch) == want, "chin D=%g", vals[i]);
		CHECK(soup_fit_chinchilla(x, x, bad, 6, NULL, &ch) == want, "chin L=%g", vals[i]);
	}
	bad[3] = INFINITY;
	CHECK(soup_fit_power_law(bad, y, 6, &pl) == FIT_ERR_NONFINITE, "pl inf");
	/* NaN wins over a non-positive value anywhere in the array */
	bad[0] = -1;
	bad[3] = NAN;
	CHECK(soup_fit_power_law(bad, y, 6, &pl) == FIT_ERR_NONFINITE, "pl NaN first");

	CHECK(soup_fit_power_law(same, y, 6, &pl) == FIT_ERR_DEGENERATE, "pl equal x");
	CHECK(soup_fit_power_law_offset(same, y, 6, &pl) == FIT_ERR_DEGENERATE, "plo equal x");
	CHECK(soup_fit_critical_batch(same, y, 6, &cb) == FIT_ERR_DEGENERATE, "cbs equal B");
	CHECK(soup_fit_chinchilla(same, x, y, 6, NULL, &ch) == FIT_ERR_DEGENERATE, "chin equal N");
	CHECK(soup_fit_chinchilla(x, same, y, 6, NULL, &ch) == FIT_ERR_DEGENERATE, "chin equal D");
	CHECK(soup_fit_power_law(x, same, 6, &pl) == FIT_OK && pl.b == 0 &&
		  near_rel(pl.a, 3, 1e-15) && isnan(pl.r2), "pl constant y: r2 NaN");

	memset(&fit, 0, sizeof(fit));
	fit.E = 1.8;
	fit.A = 400;
	fit.B = 2000;
	fit.alpha = 0.34;
	fit.beta = 0.37;
	CHECK(soup_compute_optimal(&fit, 0, &n_opt, &d_opt) == FIT_ERR_NONPOSITIVE, "C = 0");
	CHECK(soup_compute_optimal(&fit, NAN, &n_opt, &d_opt) == FIT_ERR_NONFINITE, "C NaN");
	CHECK(soup_chinchilla_loss(&fit, 0, 1e9, &loss) == FIT_ERR_NONPOSITIVE && isnan(loss),
		  "loss N = 0");
	CHECK(soup_chinchilla_loss(&fit, 1e9, NAN, &loss) == FIT_ERR_NONFINITE, "loss D NaN");
	fit.alpha = 0;
	CHECK(soup_compute_optimal(&fit, 1e20, &n_opt, &d_opt) == FIT_ERR_BAD_ARGUMENT,
		  "alpha = 0");
	CHECK(isnan(soup_chinchilla_objective(x, x, y, 3, 1e-3, y, NULL)), "objective n=3 NaN");
	{
		SoupChinchillaOptions o;

		soup_chinchilla_default_options(&o);
		o.epsilon = -1;
		CHECK(soup_fit_chinchilla(x, y, y, 6, &o, &ch) == FIT_ERR_BAD_ARGUMENT,
			  "chin epsilon < 0");
		soup_chinchilla_default_options(&o);
		o.huber_delta = 0;
		CHECK(soup_fit_chinchilla(x, y, y, 6, &o, &ch) == FIT_ERR_BAD_ARGUMENT,
			  "chin delta 0");
	}
	for (i = 0; i <= 7; i++)
		CHECK(soup_fit_strerror(i) != NULL && strlen(soup_fit_strerror(i)) > 0,
			  "strerror %d", i);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../shared/data";

	test_cbs_rule();
	test_cbs_synthetic();
	test_cbs_zhang(dir);
	test_gns();
	test_power_law_synthetic();
	test_degenerate();
	test_chinchilla_data(dir);
	test_chinchilla_synthetic();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
