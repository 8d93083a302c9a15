/*
 * fit.h - numeric kernels of the critical-batch-size and scaling-law
 *		   queries (DESIGN.md sections 3 and 4).
 *
 * Pure C: no PostgreSQL calls, no global state, no printing, so the
 * kernels are thread-safe and unit-tested without a server
 * (test/unit/test_fit.c).  Every fit takes plain arrays, fills a result
 * struct and returns a status: FIT_OK (0) or one of the FitStatus errors
 * below, which the SQL glue maps to ereport messages (soup_fit_strerror).
 * On an error the result struct is left zeroed except where noted.
 *
 * Input checks common to the fits, in this order: too few points
 * (FIT_ERR_TOO_FEW), then per value NaN or infinity (FIT_ERR_NONFINITE),
 * then a value <= 0 where logs are taken (FIT_ERR_NONPOSITIVE), then data
 * that cannot identify the model, e.g. all x equal (FIT_ERR_DEGENERATE).
 */
#ifndef SOUP_FIT_H
#define SOUP_FIT_H

#include <stdint.h>

typedef enum FitStatus
{
	FIT_OK = 0,
	FIT_ERR_TOO_FEW = 1,		/* fewer points than the model needs */
	FIT_ERR_NONPOSITIVE = 2,	/* a value that must be > 0 is not */
	FIT_ERR_NONFINITE = 3,		/* NaN or infinity in the input */
	FIT_ERR_DEGENERATE = 4,		/* data cannot determine the parameters */
	FIT_ERR_NO_CONVERGENCE = 5, /* the optimiser found no usable optimum */
	FIT_ERR_BAD_ARGUMENT = 6,	/* a parameter out of its domain */
	FIT_ERR_OUT_OF_MEMORY = 7
} FitStatus;

/* A short English message for a status ("too few points", ...). */
extern const char *soup_fit_strerror(int status);

/* ---------------------------------------------------------------------
 * Power law (DESIGN section 4)
 * ------------------------------------------------------------------- */

/*
 * y = a * x^b (+ c).  r2 and rmse are in log space, where the fit is
 * made: r2 = 1 - SS_res / SS_tot of log y, rmse = sqrt(SS_res / n).
 * r2 is NaN when all y are equal (SS_tot = 0).  c is 0 for the plain fit.
 */
typedef struct SoupPowerLawFit
{
	double		a;
	double		b;
	double		c;
	double		r2;
	double		rmse;
	int			n;
} SoupPowerLawFit;

/*
 * Ordinary least squares of log y on log x.  Needs n >= 2, x > 0, y > 0
 * and at least two distinct x.
 */
extern int	soup_fit_power_law(const double *x, const double *y, int n,
							   SoupPowerLawFit *res);

/*
 * y = a * x^b + c with 0 <= c < min(y), minimising
 * sum (log y - log(a x^b + c))^2.  Needs n >= 3 (three parameters), x > 0,
 * y > 0 and at least two distinct x.
 */
extern int	soup_fit_power_law_offset(const double *x, const double *y, int n,
									  SoupPowerLawFit *res);

/* ---------------------------------------------------------------------
 * Critical batch size (DESIGN section 3; McCandlish et al. 2018,
 * Zhang et al. 2024)
 * ------------------------------------------------------------------- */

typedef struct SoupCbsFit
{
	double		s_min;			/* fewest steps, at infinite batch */
	double		e_min;			/* fewest examples, at batch -> 0 */
	double		b_crit;			/* e_min / s_min */
	double		objective;		/* sum (log S - log(s_min + e_min / B))^2 */
	int			n;
} SoupCbsFit;

/*
 * Fit S(B) = s_min + e_min / B to (batch size, steps) pairs in log space.
 * Needs n >= 2, B > 0, S > 0 and at least two distinct B.
 */
extern int	soup_fit_critical_batch(const double *batch, const double *steps,
									int n, SoupCbsFit *res);

/*
 * The batch at which the steps exceed linear scaling from b0 by the
 * fraction overhead: (1 + overhead) * b0 + overhead * e_min / s_min
 * (Zhang et al. 2024 use overhead 0.2, b0 256).  Needs s_min > 0,
 * e_min >= 0, b0 > 0, overhead >= 0.
 */
extern int	soup_cbs(double s_min, double e_min, double b0, double overhead,
					 double *cbs);

/* ---------------------------------------------------------------------
 * Gradient noise scale (DESIGN section 3; McCandlish et al. 2018 App. A)
 * ------------------------------------------------------------------- */

/*
 * Streaming state: raw (zero-started) EMAs of the per-step estimates of
 * |G|^2 and tr(Sigma), and the product of the decays applied so far, which
 * gives each EMA's bias correction 1 - prod(beta).  Plain fixed-size data
 * (no pointers), so it can be stored and copied as bytes.  Zero it (or call
 * soup_gns_init) before the first update.
 */
typedef struct SoupGnsState
{
	double		g2_ema;			/* raw EMA of the |G|^2 estimates */
	double		trsigma_ema;	/* raw EMA of the tr(Sigma) estimates */
	double		decay_prod;		/* prod of the betas used; 1 when empty */
	int64_t		count;			/* number of updates */
} SoupGnsState;

typedef struct SoupGnsResult
{
	double		g2;				/* bias-corrected EMA of |G|^2 */
	double		trsigma;		/* bias-corrected EMA of tr(Sigma) */
	double		b_simple;		/* trsigma / g2 */
	int64_t		count;
} SoupGnsResult;

extern void soup_gns_init(SoupGnsState *st);

/*
 * Fold one step in: g_small_sq and g_big_sq are the squared gradient norms
 * measured at batch sizes b_small and b_big (b_small != b_big, both > 0),
 * beta the EMA decay in [0, 1).  The state is unchanged on an error.
 */
extern int	soup_gns_update(SoupGnsState *st, double g_small_sq,
							double g_big_sq, double b_small, double b_big,
							double beta);

/*
 * Fold state later (covering the steps after those of *st) into *st: the
 * result equals updating one state with all the steps in order.  Only valid
 * when the order of the two pieces is known.
 */
extern void soup_gns_combine(SoupGnsState *st, const SoupGnsState *later);

/*
 * Bias-corrected EMAs and B_simple = trsigma / g2.  FIT_ERR_TOO_FEW when no
 * step was folded in; FIT_ERR_NONPOSITIVE when g2 <= 0 (then g2 and trsigma
 * are filled and b_simple is NaN).
 */
extern int	soup_gns_result(const SoupGnsState *st, SoupGnsResult *res);

/* ---------------------------------------------------------------------
 * Chinchilla approach 3 (DESIGN section 4; Hoffmann et al. 2022,
 * Besiroglu et al. 2024)
 * ------------------------------------------------------------------- */

/* L(N, D) = E + A / N^alpha + B / D^beta; e, a, b are log E, A, B. */
typedef struct SoupChinchillaFit
{
	double		e;
	double		a;
	double		b;
	double		E;
	double		A;
	double		B;
	double		alpha;
	double		beta;
	double		objective;		/* summed Huber loss at the optimum */
	int			n;
	int			n_starts;		/* starts run */
	int			n_converged;	/* starts whose L-BFGS met its stopping test */
} SoupChinchillaFit;

/*
 * n_converged is diagnostic: with delta 1e-3 most residuals sit on the
 * linear part of the Huber loss, and many starts end with a line-search
 * rounding error at a kink rather than the gradient or decrease test; their
 * point is still kept and compared.  The best point is then polished by
 * restarting L-BFGS from it until the objective stops falling.
 */

/* Options; soup_chinchilla_default_options fills the defaults noted. */
typedef struct SoupChinchillaOptions
{
	double		huber_delta;	/* 1e-3 */
	double		epsilon;		/* L-BFGS gradient test, 1e-10 */
	double		ftol_delta;		/* L-BFGS relative decrease test, 1e-13 */
	int			max_iterations; /* per start, 10000 */
	int			n_threads;		/* OpenMP threads; 0 = OpenMP default */
} SoupChinchillaOptions;

extern void soup_chinchilla_default_options(SoupChinchillaOptions *opts);

/*
 * Minimise sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e)
 * - log L_i) by L-BFGS from the grid of starts alpha, beta in
 * {0, .5, 1, 1.5, 2}, e in {-1, -.5, 0, .5, 1}, a, b in {0, 5, .., 25}
 * (4500 starts), keeping the lowest objective (ties: first start in grid
 * order), so the result does not depend on the thread count.  Needs
 * n >= 5, N, D, L > 0 and more than one distinct N and D.  opts may be
 * NULL for the defaults.  FIT_ERR_NO_CONVERGENCE only when no start reaches
 * a finite objective.  Runs OpenMP threads: call it from the main thread of
 * a backend, never with a PostgreSQL callback pending.  Takes ~2 s for 240
 * points on 2 cores (4 s on 1).
 */
extern int	soup_fit_chinchilla(const double *N, const double *D,
								const double *L, int n,
								const SoupChinchillaOptions *opts,
								SoupChinchillaFit *res);

/*
 * The objective above at params = {a, b, e, alpha, beta}; grad (may be
 * NULL) receives its gradient in the same order.  NaN on bad input.
 */
extern double soup_chinchilla_objective(const double *N, const double *D,
										const double *L, int n,
										double huber_delta,
										const double *params, double *grad);

/*
 * Predicted loss E + A / N^alpha + B / D^beta; needs N, D > 0.  This and
 * soup_compute_optimal read only fit->E, A, B, alpha and beta (not the
 * logs e, a, b), so a caller may fill just those.
 */
extern int	soup_chinchilla_loss(const SoupChinchillaFit *fit, double N,
								 double D, double *loss);

/*
 * Compute-optimal split of C = 6 N D FLOP: N_opt = G (C/6)^(beta/(alpha+beta)),
 * D_opt = G^-1 (C/6)^(alpha/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)).
 * Needs C > 0 and A, B, alpha, beta > 0.
 */
extern int	soup_compute_optimal(const SoupChinchillaFit *fit, double C,
								 double *n_opt, double *d_opt);

#endif							/* SOUP_FIT_H */
