/*
 * fit.c - numeric kernels of the critical-batch-size and scaling-law
 *		   queries (DESIGN.md sections 3 and 4).  See fit.h for the API.
 *
 * Pure C, no PostgreSQL calls.  The only shared state is what the caller
 * passes in; OpenMP threads (Chinchilla multi-start) write only their own
 * slot of a result array, and the best start is chosen serially afterwards,
 * so results do not depend on the thread count or schedule.
 *
 * All fits minimise squared (or Huber) residuals of logs, as DESIGN asks:
 * the quantities (steps, losses, batch sizes) span orders of magnitude and
 * their errors are roughly relative, so a linear-space fit would be driven
 * by the largest values alone (DESIGN section 3: "an unweighted fit of S on
 * 1/B is badly wrong").
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lbfgs.h>

#include "kernels/fit.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const char *
soup_fit_strerror(int status)
{
	switch (status)
	{
		case FIT_OK:
			return "ok";
		case FIT_ERR_TOO_FEW:
			return "too few points for the model";
		case FIT_ERR_NONPOSITIVE:
			return "a value that must be positive is zero or negative";
		case FIT_ERR_NONFINITE:
			return "a value is NaN or infinite";
		case FIT_ERR_DEGENERATE:
			return "the data cannot determine the parameters (all values equal)";
		case FIT_ERR_NO_CONVERGENCE:
			return "the optimiser did not converge";
		case FIT_ERR_BAD_ARGUMENT:
			return "a parameter is out of its domain";
		case FIT_ERR_OUT_OF_MEMORY:
			return "out of memory";
	}
	return "unknown fit status";
}

/* ---------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------- */

/* NaN/infinity first, then <= 0: the order documented in fit.h. */
static int
check_positive(const double *v, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return FIT_ERR_NONFINITE;
	for (i = 0; i < n; i++)
		if (v[i] <= 0.0)
			return FIT_ERR_NONPOSITIVE;
	return FIT_OK;
}

/* Checks on two positive arrays of length n >= min_n. */
static int
check_xy(const double *x, const double *y, int n, int min_n)
{
	int			rc;

	if (n < min_n)
		return FIT_ERR_TOO_FEW;
	if ((rc = check_positive(x, n)) != FIT_OK)
		return rc;
	return check_positive(y, n);
}

static int
all_equal(const double *v, int n)
{
	int			i;

	for (i = 1; i < n; i++)
		if (v[i] != v[0])
			return 0;
	return 1;
}

/* log of each element into a new array (NULL when out of memory). */
static double *
log_array(const double *v, int n)
{
	double	   *out = malloc(sizeof(double) * (n > 0 ? n : 1));
	int			i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = log(v[i]);
	return out;
}

static double
mean(const double *v, int n)
{
	double		s = 0.0;
	int			i;

	for (i = 0; i < n; i++)
		s += v[i];
	return s / n;
}

/* Sum of squared deviations from the mean (two-pass, for accuracy). */
static double
sum_sq_dev(const double *v, int n)
{
	double		m = mean(v, n);
	double		s = 0.0;
	int			i;

	for (i = 0; i < n; i++)
		s += (v[i] - m) * (v[i] - m);
	return s;
}

/*
 * Ordinary least squares w = icpt + slope * u, centred for accuracy.
 * FIT_ERR_DEGENERATE when all u are equal.
 */
static int
ols(const double *u, const double *w, int n, double *icpt, double *slope)
{
	double		mu = mean(u, n);
	double		mw = mean(w, n);
	double		suu = 0.0;
	double		suw = 0.0;
	int			i;

	for (i = 0; i < n; i++)
	{
		suu += (u[i] - mu) * (u[i] - mu);
		suw += (u[i] - mu) * (w[i] - mw);
	}
	if (!(suu > 0.0))
		return FIT_ERR_DEGENERATE;
	*slope = suw / suu;
	*icpt = mw - *slope * mu;
	return FIT_OK;
}

/* ---------------------------------------------------------------------
 * Two-parameter Levenberg-Marquardt
 *
 * Both the critical-batch fit and the inner fit of the offset power law
 * are nonlinear least squares in two parameters; a 2x2 normal-equation
 * LM solves them to machine precision in a few dozen cheap iterations,
 * more tightly than a general quasi-Newton method would.
 * ------------------------------------------------------------------- */

/*
 * Fills *cost = sum r_i^2 at p and, when jtj is not NULL, the normal
 * equations jtj = {J'J[0][0], J'J[0][1], J'J[1][1]} and jtr = J'r, where
 * J = dr/dp.  A non-finite cost marks p as infeasible.
 */
typedef void (*NormalEqFn) (void *ctx, const double *p, double *cost,
							double *jtj, double *jtr);

#define LM_MAX_ITER 1000

/*
 * Minimise from p (updated in place); *cost gets the final cost.  Returns
 * 0 when converged: a step below 1e-13 relative, a relative decrease of
 * the cost below 1e-15, or no step (even a tiny, damped one) decreases the
 * cost any more, i.e. a minimum at working precision.  1 when the
 * iterations ran out or the start is infeasible.
 */
static int
lm2(NormalEqFn fn, void *ctx, double *p, double *cost)
{
	double		jtj[3];
	double		jtr[2];
	double		lambda = 1e-3;
	int			iter;

	fn(ctx, p, cost, jtj, jtr);
	if (!isfinite(*cost))
		return 1;
	for (iter = 0; iter < LM_MAX_ITER; iter++)
	{
		/* Marquardt's scaling: damp each parameter by its own curvature */
		double		d0 = jtj[0] * (1.0 + lambda) + DBL_MIN;
		double		d1 = jtj[2] * (1.0 + lambda) + DBL_MIN;
		double		det = d0 * d1 - jtj[1] * jtj[1];
		double		step[2];
		double		trial[2];
		double		tcost;

		if (*cost == 0.0)
			return 0;
		step[0] = -(d1 * jtr[0] - jtj[1] * jtr[1]) / det;
		step[1] = -(d0 * jtr[1] - jtj[1] * jtr[0]) / det;
		trial[0] = p[0] + step[0];
		trial[1] = p[1] + step[1];
		fn(ctx, trial, &tcost, NULL, NULL);
		if (isfinite(det) && det > 0.0 && isfinite(tcost) && tcost < *cost)
		{
			/*
			 * Also stop once an undamped (Gauss-Newton-like) step no longer
			 * lowers the cost measurably: this ends a parameter drifting to a
			 * boundary (e.g. E_min -> 0 when the steps do not fall with the
			 * batch size) at a usable point.  Heavily damped steps are tiny
			 * by construction, so they do not count.
			 */
			int			flat = lambda <= 1e-3 && *cost - tcost <= 1e-15 * *cost;

			p[0] = trial[0];
			p[1] = trial[1];
			fn(ctx, p, cost, jtj, jtr);
			if (flat || (fabs(step[0]) <= 1e-13 * (1.0 + fabs(p[0])) &&
						 fabs(step[1]) <= 1e-13 * (1.0 + fabs(p[1]))))
				return 0;
			lambda = fmax(lambda * 0.1, 1e-15);
		}
		else
		{
			lambda *= 10.0;
			if (lambda > 1e20)
				return 0;
		}
	}
	return 1;
}

/* ---------------------------------------------------------------------
 * Power law (DESIGN section 4)
 * ------------------------------------------------------------------- */

/* r2 and rmse in log space from the residual sum of squares. */
static void
fill_gof(SoupPowerLawFit *res, double ssr, const double *ly, int n)
{
	double		sst = sum_sq_dev(ly, n);

	res->r2 = sst > 0.0 ? 1.0 - ssr / sst : NAN;
	res->rmse = sqrt(ssr / n);
	res->n = n;
}

int
soup_fit_power_law(const double *x, const double *y, int n,
				   SoupPowerLawFit *res)
{
	double	   *lx;
	double	   *ly;
	double		la = 0.0;
	double		b = 0.0;
	double		ssr = 0.0;
	int			rc;
	int			i;

	memset(res, 0, sizeof(*res));
	if ((rc = check_xy(x, y, n, 2)) != FIT_OK)
		return rc;
	lx = log_array(x, n);
	ly = log_array(y, n);
	if (lx == NULL || ly == NULL)
		rc = FIT_ERR_OUT_OF_MEMORY;
	else
		rc = ols(lx, ly, n, &la, &b);
	if (rc == FIT_OK)
	{
		for (i = 0; i < n; i++)
		{
			double		r = ly[i] - (la + b * lx[i]);

			ssr += r * r;
		}
		res->a = exp(la);
		res->b = b;
		res->c = 0.0;
		fill_gof(res, ssr, ly, n);
	}
	free(lx);
	free(ly);
	return rc;
}

/*
 * The offset power law y = a x^b + c.
 *
 * Why log space: the offset model is used for losses and step counts that
 * span decades, like the plain law, and with c = 0 it reduces exactly to
 * the plain log-space fit, so the two are comparable (same r2 and rmse
 * scale).  The objective sum (log y - log(a x^b + c))^2 is profiled over c:
 * for a fixed c the best (log a, b) is a 2-parameter least-squares problem
 * (lm2, started from the linear fit of log(y - c) on log x, which is exact
 * at c = 0), and c is searched over [0, min y) by a dense grid then golden
 * section around the best grid point.  c < min(y) keeps the start defined
 * and matches the meaning of c as an asymptote below every observation.
 */
typedef struct OffsetCtx
{
	const double *lx;
	const double *ly;
	const double *y;
	double		c;
	int			n;
	double	   *work;			/* n doubles: log(y - c) */
} OffsetCtx;

/* p = {log a, b}; r_i = log y_i - log(a x_i^b + c). */
static void
offset_normal_eq(void *vctx, const double *p, double *cost,
				 double *jtj, double *jtr)
{
	const OffsetCtx *ctx = vctx;
	double		s = 0.0;
	int			i;

	if (jtj)
		jtj[0] = jtj[1] = jtj[2] = jtr[0] = jtr[1] = 0.0;
	for (i = 0; i < ctx->n; i++)
	{
		double		m = exp(p[0] + p[1] * ctx->lx[i]);
		double		f = m + ctx->c;
		double		r = ctx->ly[i] - log(f);

		s += r * r;
		if (jtj)
		{
			double		j0 = -m / f;
			double		j1 = j0 * ctx->lx[i];

			jtj[0] += j0 * j0;
			jtj[1] += j0 * j1;
			jtj[2] += j1 * j1;
			jtr[0] += j0 * r;
			jtr[1] += j1 * r;
		}
	}
	*cost = isnan(s) ? INFINITY : s;
}

/*
 * Profile objective at c: the best cost over (log a, b), from the linear
 * start and, when warm is not NULL, from warm too.  p gets the minimiser.
 */
static double
offset_profile(OffsetCtx *ctx, double c, const double *warm, double *p)
{
	double		q[2];
	double		cost = INFINITY;
	double		qcost;
	int			i;

	ctx->c = c;
	for (i = 0; i < ctx->n; i++)
		ctx->work[i] = log(ctx->y[i] - c);
	/* distinct x was checked, so the linear fit exists */
	(void) ols(ctx->lx, ctx->work, ctx->n, &q[0], &q[1]);
	(void) lm2(offset_normal_eq, ctx, q, &qcost);
	if (qcost < cost)
	{
		cost = qcost;
		p[0] = q[0];
		p[1] = q[1];
	}
	if (warm)
	{
		q[0] = warm[0];
		q[1] = warm[1];
		(void) lm2(offset_normal_eq, ctx, q, &qcost);
		if (qcost < cost)
		{
			cost = qcost;
			p[0] = q[0];
			p[1] = q[1];
		}
	}
	return cost;
}

#define OFFSET_GRID 200

/*
 * Grid point k of [0, ymin): t = 1 - (1 - k/K)^6 puts half the points in
 * the last ~10% below min(y), where the asymptote of a decaying law sits,
 * and reaches within ~1e-14 relative of it.
 */
static double
offset_grid_c(int k, double ymin)
{
	double		s = 1.0 - (double) k / OFFSET_GRID;

	return ymin * (1.0 - pow(s, 6.0));
}

/* Best (c, p, cost) over the grid, then golden section around it. */
static double
offset_search(OffsetCtx *ctx, double ymin, double *c_best, double *p_best)
{
	const double g = (sqrt(5.0) - 1.0) / 2.0;
	double		p[2] = {0.0, 0.0};
	double		best = INFINITY;
	double		lo,
				hi,
				c1,
				c2,
				f1,
				f2;
	double		p1[2],
				p2[2];
	int			kbest = 0;
	int			k,
				it;

	/* each grid point is also warm-started from its neighbour's solution */
	for (k = 0; k < OFFSET_GRID; k++)
	{
		double		prev[2] = {p[0], p[1]};
		double		f = offset_profile(ctx, offset_grid_c(k, ymin),
									   k > 0 ? prev : NULL, p);

		if (f < best)
		{
			best = f;
			kbest = k;
			*c_best = offset_grid_c(k, ymin);
			p_best[0] = p[0];
			p_best[1] = p[1];
		}
	}
	lo = offset_grid_c(kbest > 0 ? kbest - 1 : 0, ymin);
	hi = offset_grid_c(kbest < OFFSET_GRID - 1 ? kbest + 1 : kbest, ymin);
	c1 = hi - g * (hi - lo);
	c2 = lo + g * (hi - lo);
	f1 = offset_profile(ctx, c1, p_best, p1);
	f2 = offset_profile(ctx, c2, p_best, p2);
	for (it = 0; it < 200 && hi - lo > 1e-14 * ymin; it++)
	{
		if (f1 <= f2)
		{
			hi = c2;
			c2 = c1;
			f2 = f1;
			p2[0] = p1[0];
			p2[1] = p1[1];
			c1 = hi - g * (hi - lo);
			f1 = offset_profile(ctx, c1, p2, p1);
		}
		else
		{
			lo = c1;
			c1 = c2;
			f1 = f2;
			p1[0] = p2[0];
			p1[1] = p2[1];
			c2 = lo + g * (hi - lo);
			f2 = offset_profile(ctx, c2, p1, p2);
		}
	}
	/* keep the grid point if the bracket was not unimodal after all */
	if (f1 < best)
	{
		best = f1;
		*c_best = c1;
		p_best[0] = p1[0];
		p_best[1] = p1[1];
	}
	if (f2 < best)
	{
		best = f2;
		*c_best = c2;
		p_best[0] = p2[0];
		p_best[1] = p2[1];
	}
	return best;
}

int
soup_fit_power_law_offset(const double *x, const double *y, int n,
						  SoupPowerLawFit *res)
{
	OffsetCtx	ctx;
	double		ymin;
	double		c = 0.0;
	double		p[2] = {0.0, 0.0};
	double		ssr;
	int			rc;
	int			i;

	memset(res, 0, sizeof(*res));
	if ((rc = check_xy(x, y, n, 3)) != FIT_OK)
		return rc;
	if (all_equal(x, n))
		return FIT_ERR_DEGENERATE;
	ymin = y[0];
	for (i = 1; i < n; i++)
		ymin = fmin(ymin, y[i]);
	ctx.lx = log_array(x, n);
	ctx.ly = log_array(y, n);
	ctx.work = malloc(sizeof(double) * n);
	ctx.y = y;
	ctx.n = n;
	if (ctx.lx == NULL || ctx.ly == NULL || ctx.work == NULL)
		rc = FIT_ERR_OUT_OF_MEMORY;
	else
	{
		ssr = offset_search(&ctx, ymin, &c, p);
		if (!isfinite(ssr))
			rc = FIT_ERR_NO_CONVERGENCE;
		else
		{
			res->a = exp(p[0]);
			res->b = p[1];
			res->c = c;
			fill_gof(res, ssr, ctx.ly, n);
		}
	}
	free((void *) ctx.lx);
	free((void *) ctx.ly);
	free(ctx.work);
	return rc;
}

/* ---------------------------------------------------------------------
 * Critical batch size (DESIGN section 3)
 *
 * McCandlish et al. 2018: (S/S_min - 1)(E/E_min - 1) = 1, i.e.
 * S(B) = S_min + E_min / B.  Fitted, as Zhang et al. 2024 do, by least
 * squares on log S over p = {log S_min, log E_min}: the log parameters
 * keep both positive without constraints.
 * ------------------------------------------------------------------- */

typedef struct CbsCtx
{
	const double *batch;
	const double *ls;			/* log steps */
	int			n;
} CbsCtx;

static void
cbs_normal_eq(void *vctx, const double *p, double *cost,
			  double *jtj, double *jtr)
{
	const CbsCtx *ctx = vctx;
	double		smin = exp(p[0]);
	double		emin = exp(p[1]);
	double		s = 0.0;
	int			i;

	if (jtj)
		jtj[0] = jtj[1] = jtj[2] = jtr[0] = jtr[1] = 0.0;
	for (i = 0; i < ctx->n; i++)
	{
		double		q = emin / ctx->batch[i];
		double		f = smin + q;
		double		r = ctx->ls[i] - log(f);

		s += r * r;
		if (jtj)
		{
			double		j0 = -smin / f;
			double		j1 = -q / f;

			jtj[0] += j0 * j0;
			jtj[1] += j0 * j1;
			jtj[2] += j1 * j1;
			jtr[0] += j0 * r;
			jtr[1] += j1 * r;
		}
	}
	*cost = isfinite(s) ? s : INFINITY;
}

/*
 * Starting points: (1) the linear fit of S on 1/B, each parameter clipped
 * to a positive value; (2) S_min = min(S) / 2 with E_min the geometric mean
 * of (S_i - S_min) B_i, which is usually close in log space even when (1)
 * is thrown off by the largest S.
 */
static void
cbs_starts(const double *batch, const double *steps, int n, double st[2][2])
{
	double		smin_obs = steps[0];
	double		sumx = 0.0,
				sumy = 0.0,
				sxx = 0.0,
				sxy = 0.0;
	double		s0,
				e0,
				lg = 0.0;
	int			i;

	for (i = 0; i < n; i++)
	{
		smin_obs = fmin(smin_obs, steps[i]);
		sumx += 1.0 / batch[i];
		sumy += steps[i];
	}
	for (i = 0; i < n; i++)
	{
		double		dx = 1.0 / batch[i] - sumx / n;

		sxx += dx * dx;
		sxy += dx * (steps[i] - sumy / n);
	}
	e0 = sxx > 0.0 ? sxy / sxx : 0.0;
	s0 = sumy / n - e0 * sumx / n;
	s0 = s0 > 0.0 ? s0 : 0.5 * smin_obs;
	e0 = e0 > 0.0 ? e0 : s0 * batch[0];
	st[0][0] = log(s0);
	st[0][1] = log(e0);

	s0 = 0.5 * smin_obs;
	for (i = 0; i < n; i++)
		lg += log((steps[i] - s0) * batch[i]);
	st[1][0] = log(s0);
	st[1][1] = lg / n;
}

int
soup_fit_critical_batch(const double *batch, const double *steps, int n,
						SoupCbsFit *res)
{
	CbsCtx		ctx;
	double		st[2][2];
	double		best = INFINITY;
	double		pbest[2] = {0.0, 0.0};
	int			conv = 0;
	int			rc;
	int			k;

	memset(res, 0, sizeof(*res));
	if ((rc = check_xy(batch, steps, n, 2)) != FIT_OK)
		return rc;
	if (all_equal(batch, n))
		return FIT_ERR_DEGENERATE;
	ctx.batch = batch;
	ctx.n = n;
	ctx.ls = log_array(steps, n);
	if (ctx.ls == NULL)
		return FIT_ERR_OUT_OF_MEMORY;
	cbs_starts(batch, steps, n, st);
	for (k = 0; k < 2; k++)
	{
		double		cost;
		int			notconv = lm2(cbs_normal_eq, &ctx, st[k], &cost);

		if (cost < best)
		{
			best = cost;
			conv = !notconv;
			pbest[0] = st[k][0];
			pbest[1] = st[k][1];
		}
	}
	free((void *) ctx.ls);
	if (!conv || !isfinite(best))
		return FIT_ERR_NO_CONVERGENCE;
	res->s_min = exp(pbest[0]);
	res->e_min = exp(pbest[1]);
	res->b_crit = exp(pbest[1] - pbest[0]);
	res->objective = best;
	res->n = n;
	return FIT_OK;
}

/*
 * CBS by the threshold rule of Zhang et al. 2024 (DESIGN section 3).  With
 * S(B) = S_min + E_min / B, perfect linear scaling from B0 predicts
 * S_lin(B) = S(B0) B0 / B.  The critical batch B* is where the steps exceed
 * that by the fraction o:
 *		S_min + E_min / B* = (1 + o) (S_min + E_min / B0) B0 / B*
 *		S_min B* + E_min   = (1 + o) (S_min B0 + E_min)
 *		B* = (1 + o) B0 + o E_min / S_min,
 * which for o = 0.2 is DESIGN's 1.2 B0 + 0.2 E_min / S_min.
 */
int
soup_cbs(double s_min, double e_min, double b0, double overhead, double *cbs)
{
	*cbs = NAN;
	if (!isfinite(s_min) || !isfinite(e_min) || !isfinite(b0) ||
		!isfinite(overhead))
		return FIT_ERR_NONFINITE;
	if (s_min <= 0.0 || b0 <= 0.0)
		return FIT_ERR_NONPOSITIVE;
	if (e_min < 0.0 || overhead < 0.0)
		return FIT_ERR_BAD_ARGUMENT;
	*cbs = (1.0 + overhead) * b0 + overhead * (e_min / s_min);
	return FIT_OK;
}

/* ---------------------------------------------------------------------
 * Gradient noise scale (DESIGN section 3; McCandlish et al. 2018, App. A)
 *
 * E|G_B|^2 = |G|^2 + tr(Sigma) / B, so two batch sizes give unbiased
 * per-step estimates of |G|^2 and tr(Sigma).  Each is noisy, and their
 * ratio is biased, so the numerator and denominator are smoothed
 * separately and divided only at the end.  The EMAs start from 0 and are
 * bias-corrected by 1 - prod(beta) (Adam-style), which lets beta vary
 * between steps and makes two consecutive pieces combinable.
 * ------------------------------------------------------------------- */

void
soup_gns_init(SoupGnsState *st)
{
	st->g2_ema = 0.0;
	st->trsigma_ema = 0.0;
	st->decay_prod = 1.0;
	st->count = 0;
}

int
soup_gns_update(SoupGnsState *st, double g_small_sq, double g_big_sq,
				double b_small, double b_big, double beta)
{
	double		g2;
	double		trsigma;

	if (!isfinite(g_small_sq) || !isfinite(g_big_sq) ||
		!isfinite(b_small) || !isfinite(b_big) || !isfinite(beta))
		return FIT_ERR_NONFINITE;
	if (b_small <= 0.0 || b_big <= 0.0)
		return FIT_ERR_NONPOSITIVE;
	if (b_small == b_big || beta < 0.0 || beta >= 1.0)
		return FIT_ERR_BAD_ARGUMENT;
	if (st->count == 0)
		soup_gns_init(st);		/* a zeroed struct is a valid empty state */
	g2 = (b_big * g_big_sq - b_small * g_small_sq) / (b_big - b_small);
	trsigma = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / b_big);
	st->g2_ema = beta * st->g2_ema + (1.0 - beta) * g2;
	st->trsigma_ema = beta * st->trsigma_ema + (1.0 - beta) * trsigma;
	st->decay_prod *= beta;
	st->count++;
	return FIT_OK;
}

/*
 * A raw EMA is sum_t (1 - beta_t) x_t prod_{s > t} beta_s, so the later
 * piece's decays scale the earlier piece's sums.
 */
void
soup_gns_combine(SoupGnsState *st, const SoupGnsState *later)
{
	if (later->count == 0)
		return;
	if (st->count == 0)
	{
		*st = *later;
		return;
	}
	st->g2_ema = st->g2_ema * later->decay_prod + later->g2_ema;
	st->trsigma_ema = st->trsigma_ema * later->decay_prod + later->trsigma_ema;
	st->decay_prod *= later->decay_prod;
	st->count += later->count;
}

int
soup_gns_result(const SoupGnsState *st, SoupGnsResult *res)
{
	double		corr;

	memset(res, 0, sizeof(*res));
	res->b_simple = NAN;
	if (st->count == 0)
		return FIT_ERR_TOO_FEW;
	corr = 1.0 - st->decay_prod;
	res->count = st->count;
	res->g2 = st->g2_ema / corr;
	res->trsigma = st->trsigma_ema / corr;
	if (!(res->g2 > 0.0))
		return FIT_ERR_NONPOSITIVE;
	res->b_simple = res->trsigma / res->g2;
	return FIT_OK;
}

/* ---------------------------------------------------------------------
 * Chinchilla approach 3 (DESIGN section 4; Hoffmann et al. 2022 App. D.2,
 * Besiroglu et al. 2024)
 *
 * log L = LSE(a - alpha log N, b - beta log D, e), residuals summed under
 * a Huber loss with delta 1e-3.  The delta is so small that almost every
 * residual sits in the linear (L1-like) part, which makes the objective
 * nearly piecewise linear: hence the many starts and the restarts of
 * L-BFGS from the best point (its curvature pairs go stale at the kinks).
 * ------------------------------------------------------------------- */

#define CHIN_NPAR 5				/* a, b, e, alpha, beta */

typedef struct ChinData
{
	const double *lN;
	const double *lD;
	const double *lL;
	int			n;
	double		delta;
} ChinData;

/* Huber_delta(r) as scipy.special.huber; *dh gets its derivative. */
static inline double
huber(double r, double delta, double *dh)
{
	if (fabs(r) <= delta)
	{
		*dh = r;
		return 0.5 * r * r;
	}
	*dh = r > 0.0 ? delta : -delta;
	return delta * (fabs(r) - 0.5 * delta);
}

/*
 * Objective and gradient at x = {a, b, e, alpha, beta}.  LSE is taken
 * relative to its largest term so no exp overflows wherever the line
 * search goes; the softmax weights w are its partial derivatives.
 */
static double
chin_eval(const ChinData *d, const double *x, double *g)
{
	double		f = 0.0;
	double		ga = 0.0,
				gb = 0.0,
				ge = 0.0,
				gal = 0.0,
				gbe = 0.0;
	int			i;

	for (i = 0; i < d->n; i++)
	{
		double		t1 = x[0] - x[3] * d->lN[i];
		double		t2 = x[1] - x[4] * d->lD[i];
		double		t3 = x[2];
		double		m,
					e1,
					e2,
					e3,
					s,
					dh,
					hs;

		/* exp of the largest term is 1: two exps per point, not three */
		if (t1 >= t2 && t1 >= t3)
		{
			m = t1;
			e1 = 1.0;
			e2 = exp(t2 - m);
			e3 = exp(t3 - m);
		}
		else if (t2 >= t3)
		{
			m = t2;
			e1 = exp(t1 - m);
			e2 = 1.0;
			e3 = exp(t3 - m);
		}
		else
		{
			m = t3;
			e1 = exp(t1 - m);
			e2 = exp(t2 - m);
			e3 = 1.0;
		}
		s = e1 + e2 + e3;
		f += huber(m + log(s) - d->lL[i], d->delta, &dh);
		hs = dh / s;
		ga += hs * e1;
		gb += hs * e2;
		ge += hs * e3;
		gal -= hs * e1 * d->lN[i];
		gbe -= hs * e2 * d->lD[i];
	}
	if (g)
	{
		g[0] = ga;
		g[1] = gb;
		g[2] = ge;
		g[3] = gal;
		g[4] = gbe;
	}
	return f;
}

static lbfgsfloatval_t
chin_lbfgs_eval(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g,
				const int n, const lbfgsfloatval_t step)
{
	(void) n;					/* always CHIN_NPAR */
	(void) step;
	return chin_eval((const ChinData *) inst, x, g);
}

/* One start's outcome. */
typedef struct ChinStart
{
	double		x[CHIN_NPAR];
	double		f;
	int			status;			/* liblbfgs return code */
} ChinStart;

static void
chin_params(const SoupChinchillaOptions *o, lbfgs_parameter_t *p)
{
	lbfgs_parameter_init(p);
	p->m = 10;
	p->epsilon = o->epsilon;
	p->past = 5;
	p->delta = o->ftol_delta;
	p->max_iterations = o->max_iterations;
	p->max_linesearch = 100;
}

/*
 * Run L-BFGS from x (updated).  liblbfgs keeps the best point it accepted
 * in x even when it stops on an error (e.g. a rounding error in the line
 * search near a kink), so the point is still usable; the status records
 * whether the stopping test was met.
 */
static void
chin_run(const ChinData *d, const lbfgs_parameter_t *prm, ChinStart *s)
{
	lbfgsfloatval_t *x = lbfgs_malloc(CHIN_NPAR);
	lbfgsfloatval_t fx = INFINITY;
	lbfgs_parameter_t p = *prm;
	int			k;

	if (x == NULL)
	{
		s->f = INFINITY;
		s->status = LBFGSERR_OUTOFMEMORY;
		return;
	}
	for (k = 0; k < CHIN_NPAR; k++)
		x[k] = s->x[k];
	s->status = lbfgs(CHIN_NPAR, x, &fx, chin_lbfgs_eval, NULL, (void *) d, &p);
	/* on some early errors fx is not set: evaluate the returned point */
	fx = chin_eval(d, x, NULL);
	for (k = 0; k < CHIN_NPAR; k++)
		s->x[k] = x[k];
	s->f = isfinite(fx) ? fx : INFINITY;
	lbfgs_free(x);
}

/* Start k of the DESIGN grid, in the order alpha, beta, e, a, b. */
static void
chin_grid_start(int k, double *x)
{
	static const double ab[5] = {0.0, 0.5, 1.0, 1.5, 2.0};
	static const double ee[5] = {-1.0, -0.5, 0.0, 0.5, 1.0};
	static const double AB[6] = {0.0, 5.0, 10.0, 15.0, 20.0, 25.0};

	x[1] = AB[k % 6];
	k /= 6;
	x[0] = AB[k % 6];
	k /= 6;
	x[2] = ee[k % 5];
	k /= 5;
	x[4] = ab[k % 5];
	k /= 5;
	x[3] = ab[k];
}

#define CHIN_NSTARTS (5 * 5 * 5 * 6 * 6)
#define CHIN_POLISH_ROUNDS 50

void
soup_chinchilla_default_options(SoupChinchillaOptions *opts)
{
	opts->huber_delta = 1e-3;
	opts->epsilon = 1e-10;
	opts->ftol_delta = 1e-13;
	opts->max_iterations = 10000;
	opts->n_threads = 0;
}

/* Every start of the grid, each in its own slot of st. */
static void
chin_all_starts(const ChinData *d, const lbfgs_parameter_t *prm,
				int n_threads, ChinStart *st)
{
	int			k;

#ifdef _OPENMP
	int			nt = n_threads > 0 ? n_threads : omp_get_max_threads();

#pragma omp parallel for schedule(dynamic, 8) num_threads(nt)
#endif
	for (k = 0; k < CHIN_NSTARTS; k++)
	{
		chin_grid_start(k, st[k].x);
		chin_run(d, prm, &st[k]);
	}
}

/*
 * The best start (lowest objective, first in grid order on ties), then
 * L-BFGS restarted from it with fresh curvature memory until a round no
 * longer lowers the objective.
 */
static ChinStart
chin_best(const ChinData *d, const lbfgs_parameter_t *prm, const ChinStart *st)
{
	ChinStart	best = st[0];
	int			k;

	for (k = 1; k < CHIN_NSTARTS; k++)
		if (st[k].f < best.f)
			best = st[k];
	for (k = 0; k < CHIN_POLISH_ROUNDS && isfinite(best.f); k++)
	{
		ChinStart	next = best;

		chin_run(d, prm, &next);
		if (!(next.f < best.f))
			break;
		best = next;
	}
	return best;
}

/* Validate the inputs and take logs into ld/lD/lL (allocated). */
static int
chin_prepare(const double *N, const double *D, const double *L, int n,
			 double delta, ChinData *d)
{
	int			rc;

	memset(d, 0, sizeof(*d));
	if (n < CHIN_NPAR)
		return FIT_ERR_TOO_FEW;
	if ((rc = check_positive(N, n)) != FIT_OK ||
		(rc = check_positive(D, n)) != FIT_OK ||
		(rc = check_positive(L, n)) != FIT_OK)
		return rc;
	if (!(delta > 0.0) || !isfinite(delta))
		return FIT_ERR_BAD_ARGUMENT;
	d->n = n;
	d->delta = delta;
	d->lN = log_array(N, n);
	d->lD = log_array(D, n);
	d->lL = log_array(L, n);
	if (d->lN == NULL || d->lD == NULL || d->lL == NULL)
		return FIT_ERR_OUT_OF_MEMORY;
	return FIT_OK;
}

static void
chin_release(ChinData *d)
{
	free((void *) d->lN);
	free((void *) d->lD);
	free((void *) d->lL);
}

double
soup_chinchilla_objective(const double *N, const double *D, const double *L,
						  int n, double huber_delta, const double *params,
						  double *grad)
{
	ChinData	d;
	double		f = NAN;

	if (chin_prepare(N, D, L, n, huber_delta, &d) == FIT_OK)
		f = chin_eval(&d, params, grad);
	chin_release(&d);
	return f;
}

static void
chin_fill(const ChinStart *best, int n, const ChinStart *st,
		  SoupChinchillaFit *res)
{
	int			k;

	res->a = best->x[0];
	res->b = best->x[1];
	res->e = best->x[2];
	res->alpha = best->x[3];
	res->beta = best->x[4];
	res->A = exp(res->a);
	res->B = exp(res->b);
	res->E = exp(res->e);
	res->objective = best->f;
	res->n = n;
	res->n_starts = CHIN_NSTARTS;
	for (k = 0; k < CHIN_NSTARTS; k++)
		if (st[k].status >= 0)
			res->n_converged++;
}

int
soup_fit_chinchilla(const double *N, const double *D, const double *L, int n,
					const SoupChinchillaOptions *opts, SoupChinchillaFit *res)
{
	SoupChinchillaOptions o;
	lbfgs_parameter_t prm;
	ChinData	d;
	ChinStart  *st;
	ChinStart	best;
	int			rc;

	memset(res, 0, sizeof(*res));
	if (opts)
		o = *opts;
	else
		soup_chinchilla_default_options(&o);
	/* liblbfgs would reject these on every start without iterating */
	if (!(o.epsilon >= 0.0) || !(o.ftol_delta >= 0.0) ||
		o.max_iterations < 0 || o.n_threads < 0)
		return FIT_ERR_BAD_ARGUMENT;
	if ((rc = chin_prepare(N, D, L, n, o.huber_delta, &d)) != FIT_OK)
	{
		chin_release(&d);
		return rc;
	}
	if (all_equal(N, n) || all_equal(D, n))
	{
		chin_release(&d);
		return FIT_ERR_DEGENERATE;
	}
	chin_params(&o, &prm);
	st = malloc(sizeof(ChinStart) * CHIN_NSTARTS);
	if (st == NULL)
	{
		chin_release(&d);
		return FIT_ERR_OUT_OF_MEMORY;
	}
	chin_all_starts(&d, &prm, o.n_threads, st);
	best = chin_best(&d, &prm, st);
	if (isfinite(best.f))
		chin_fill(&best, n, st, res);
	else
		rc = FIT_ERR_NO_CONVERGENCE;
	free(st);
	chin_release(&d);
	return rc;
}

int
soup_chinchilla_loss(const SoupChinchillaFit *fit, double N, double D,
					 double *loss)
{
	*loss = NAN;
	if (!isfinite(N) || !isfinite(D))
		return FIT_ERR_NONFINITE;
	if (N <= 0.0 || D <= 0.0)
		return FIT_ERR_NONPOSITIVE;
	*loss = fit->E + fit->A * pow(N, -fit->alpha) + fit->B * pow(D, -fit->beta);
	return FIT_OK;
}

/*
 * Minimising A N^-alpha + B D^-beta subject to N D = C / 6 (Hoffmann et
 * al. 2022, eq. 4): setting the derivative along the constraint to zero
 * gives alpha A N^-alpha = beta B D^-beta, whence the G formula.  Computed
 * with logs so large C and A, B do not overflow.
 */
int
soup_compute_optimal(const SoupChinchillaFit *fit, double C,
					 double *n_opt, double *d_opt)
{
	double		s;
	double		lg;
	double		lc;

	*n_opt = *d_opt = NAN;
	if (!isfinite(C) || !isfinite(fit->A) || !isfinite(fit->B) ||
		!isfinite(fit->alpha) || !isfinite(fit->beta))
		return FIT_ERR_NONFINITE;
	if (C <= 0.0)
		return FIT_ERR_NONPOSITIVE;
	if (!(fit->A > 0.0 && fit->B > 0.0 && fit->alpha > 0.0 && fit->beta > 0.0))
		return FIT_ERR_BAD_ARGUMENT;
	s = fit->alpha + fit->beta;
	lg = (log(fit->alpha) + log(fit->A) - log(fit->beta) - log(fit->B)) / s;
	lc = log(C / 6.0);
	*n_opt = exp(lg + lc * fit->beta / s);
	*d_opt = exp(-lg + lc * fit->alpha / s);
	return FIT_OK;
}
