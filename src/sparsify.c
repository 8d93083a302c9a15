/*
 * sparsify.c - the sparsifying merges: TIES (Yadav et al. 2023) and DARE
 * (Yu et al. 2024).
 *
 *   soup.magnitude_threshold(data, base, density)   aggregate over one
 *       model's tensor: the k-th largest |data - base|, k = floor(density n)
 *   soup.trim(data, base, threshold)                f64 task vector with
 *       entries below the threshold set to 0 (ties at it are kept)
 *   soup.dare(data, base, density, seed, model_key, tensor, offset
 *             [, scale])                            f64 task vector with a
 *       reproducible random subset kept and rescaled (1 / density default)
 *   soup.dare_l1(...)                               |tau| sums for L1 rescale
 *   soup.ties_merge(tau, base, weight, lambda)      aggregate: sign election
 *       and the mean of the agreeing entries, added to the base
 *   soup.delta_sum(tau, base, weight, lambda)       aggregate: base +
 *       lambda * sum(w tau) (its final function is task arithmetic's)
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"

#include "kernels/accum.h"
#include "kernels/sparse.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_threshold_transfn);
PG_FUNCTION_INFO_V1(soup_threshold_finalfn);
PG_FUNCTION_INFO_V1(soup_trim_sql);
PG_FUNCTION_INFO_V1(soup_trim_band_sql);
PG_FUNCTION_INFO_V1(soup_dare_sql);
PG_FUNCTION_INFO_V1(soup_dare_l1);
PG_FUNCTION_INFO_V1(soup_ties_transfn);
PG_FUNCTION_INFO_V1(soup_ties_finalfn);
PG_FUNCTION_INFO_V1(soup_delta_transfn);

static double
check_density(double d, const char *fname)
{
	if (!(d >= 0.0 && d <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: density must be between 0 and 1, not %g", fname, d)));
	return d;
}

/* data and base must be float tensors of one dtype and shape. */
static void
check_pair(SoupTensor *x, SoupTensor *base, const char *fname)
{
	soup_require_float((SoupDtype) x->dtype, fname);
	soup_check_same_layout(x, base, fname);
}

/* ---- magnitude threshold: all |tau| of one tensor, then a selection ---- */

typedef struct ThresholdState
{
	double	   *v;
	int64		n;
	int64		cap;
	double		density;
} ThresholdState;

Datum
soup_threshold_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup.magnitude_threshold");
	ThresholdState *st = PG_ARGISNULL(0) ? NULL : (ThresholdState *) PG_GETARG_POINTER(0);
	SoupTensor *x;
	SoupTensor *base;
	double		density;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("soup.magnitude_threshold: base and density must not be null")));
	x = PG_GETARG_SOUP_TENSOR_P(1);
	base = PG_GETARG_SOUP_TENSOR_P(2);
	density = check_density(PG_GETARG_FLOAT8(3), "soup.magnitude_threshold");
	check_pair(x, base, "soup.magnitude_threshold");
	if (st == NULL)
	{
		st = MemoryContextAllocZero(ctx, sizeof(ThresholdState));
		st->density = density;
	}
	else if (st->density != density)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.magnitude_threshold: density must be the same in every row")));
	if (st->n + x->numel > st->cap)
	{
		int64		cap = Max(st->cap * 2, st->n + x->numel);

		st->v = st->v ? repalloc_huge(st->v, sizeof(double) * cap)
			: MemoryContextAllocHuge(ctx, sizeof(double) * cap);
		st->cap = cap;
	}
	soup_trim((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
			  0.0, st->v + st->n, x->numel);
	for (int32 i = 0; i < x->numel; i++)
		st->v[st->n + i] = fabs(st->v[st->n + i]);
	st->n += x->numel;
	PG_RETURN_POINTER(st);
}

Datum
soup_threshold_finalfn(PG_FUNCTION_ARGS)
{
	ThresholdState *st = PG_ARGISNULL(0) ? NULL : (ThresholdState *) PG_GETARG_POINTER(0);
	int64		k;

	if (st == NULL)
		PG_RETURN_NULL();
	k = (int64) floor(st->density * (double) st->n);
	if (k <= 0)
		PG_RETURN_FLOAT8(get_float8_infinity());	/* keep nothing */
	/* the selection reorders the values: work on a copy (finalfns may rerun) */
	{
		double	   *v = palloc_extended(sizeof(double) * st->n, MCXT_ALLOC_HUGE);

		memcpy(v, st->v, sizeof(double) * st->n);
		PG_RETURN_FLOAT8(soup_kth_largest(v, st->n, k));
	}
}

static SoupTensor *
f64_like(SoupTensor *x)
{
	return soup_tensor_new(SOUP_DT_F64, x->ndim, x->dims);
}

/* soup.trim(data, base, threshold) */
Datum
soup_trim_sql(PG_FUNCTION_ARGS)
{
	SoupTensor *x = PG_GETARG_SOUP_TENSOR_P(0);
	SoupTensor *base = PG_GETARG_SOUP_TENSOR_P(1);
	double		threshold = PG_GETARG_FLOAT8(2);
	SoupTensor *r;

	check_pair(x, base, "soup.trim");
	if (isnan(threshold))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.trim: threshold must not be NaN")));
	r = f64_like(x);
	soup_trim((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
			  threshold, (double *) SOUP_TENSOR_DATA(r), x->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}

/*
 * soup._trim_band(data, base, lo float8, hi float8) RETURNS soup.tensor: the
 * task vector (float64) where lo <= |tau| < hi, 0 elsewhere; hi NULL for no
 * upper cut (breadcrumbs with no top outliers to drop).
 */
Datum
soup_trim_band_sql(PG_FUNCTION_ARGS)
{
	SoupTensor *x;
	SoupTensor *base;
	double		lo;
	double		hi = 0.0;
	SoupTensor *r;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	x = PG_GETARG_SOUP_TENSOR_P(0);
	base = PG_GETARG_SOUP_TENSOR_P(1);
	lo = PG_GETARG_FLOAT8(2);
	if (!PG_ARGISNULL(3))
		hi = PG_GETARG_FLOAT8(3);
	check_pair(x, base, "soup._trim_band");
	if (isnan(lo) || isnan(hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup._trim_band: thresholds must not be NaN")));
	r = f64_like(x);
	soup_trim_band((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
				   lo, !PG_ARGISNULL(3), hi, (double *) SOUP_TENSOR_DATA(r), x->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}

static uint64
dare_key(FunctionCallInfo fcinfo)
{
	text	   *tensor = PG_GETARG_TEXT_PP(5);

	return soup_dare_key((uint64) PG_GETARG_INT64(3), (uint64) PG_GETARG_INT64(4),
						 soup_fnv1a(VARDATA_ANY(tensor), VARSIZE_ANY_EXHDR(tensor)));
}

static int64
dare_offset(FunctionCallInfo fcinfo)
{
	int64		offset = PG_GETARG_INT64(6);

	if (offset < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.dare: offset must be >= 0")));
	return offset;
}

/* soup.dare(data, base, density, seed, model_key, tensor, offset [, scale]) */
Datum
soup_dare_sql(PG_FUNCTION_ARGS)
{
	SoupTensor *x = PG_GETARG_SOUP_TENSOR_P(0);
	SoupTensor *base = PG_GETARG_SOUP_TENSOR_P(1);
	double		density = check_density(PG_GETARG_FLOAT8(2), "soup.dare");
	double		scale;
	SoupTensor *r;

	check_pair(x, base, "soup.dare");
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
		scale = PG_GETARG_FLOAT8(7);
	else
		scale = density > 0 ? 1.0 / density : 0.0;
	if (isnan(scale) || isinf(scale))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.dare: scale must be finite")));
	r = f64_like(x);
	soup_dare((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
			  density, dare_key(fcinfo), (uint64) dare_offset(fcinfo), scale,
			  (double *) SOUP_TENSOR_DATA(r), x->numel, NULL);
	PG_RETURN_SOUP_TENSOR_P(r);
}

/*
 * soup.dare_l1(data, base, density, seed, model_key, tensor, offset):
 * double-double pairs (sum |tau|, sum |tau| kept) for soup.dd_sum, so that
 * the L1-matching rescale factor of a whole tensor is exact.
 */
Datum
soup_dare_l1(PG_FUNCTION_ARGS)
{
	SoupTensor *x = PG_GETARG_SOUP_TENSOR_P(0);
	SoupTensor *base = PG_GETARG_SOUP_TENSOR_P(1);
	double		density = check_density(PG_GETARG_FLOAT8(2), "soup.dare_l1");
	double		sums[4] = {0, 0, 0, 0};
	Datum		d[4];
	double	   *scratch;

	check_pair(x, base, "soup.dare_l1");
	scratch = palloc(sizeof(double) * Max(x->numel, 1));
	soup_dare((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
			  density, dare_key(fcinfo), (uint64) dare_offset(fcinfo), 1.0,
			  scratch, x->numel, sums);
	for (int i = 0; i < 4; i++)
		d[i] = Float8GetDatum(sums[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, 4, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* ---- the aggregates over sparsified task vectors ---- */

/* transfn(state, tau f64, base, weight, lambda) for both aggregates */
static MergeState *
delta_accum_start(FunctionCallInfo fcinfo, const char *fname, int nacc,
				  SoupTensor **tau, double *w)
{
	MemoryContext ctx = mstate_context(fcinfo, fname);
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *base;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: base, weight and lambda must not be null", fname)));
	*tau = PG_GETARG_SOUP_TENSOR_P(1);
	base = PG_GETARG_SOUP_TENSOR_P(2);
	*w = mstate_check_weight(PG_GETARG_FLOAT8(3), fname);
	soup_require_float((SoupDtype) base->dtype, fname);
	if ((*tau)->dtype != SOUP_DT_F64 || (*tau)->numel != base->numel ||
		(*tau)->ndim != base->ndim ||
		memcmp((*tau)->dims, base->dims, sizeof(int32) * base->ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: tau must be an f64 task vector shaped like the base", fname),
				 errhint("Make it with soup.trim or soup.dare.")));
	if (st == NULL)
		st = mstate_new(ctx, base, nacc, true);
	mstate_set_base(ctx, st, base, fname);
	mstate_set_param(st, PG_GETARG_FLOAT8(4), fname, "lambda");
	st->count++;
	mstate_add_weight(st, *w, 0.0);
	return st;
}

Datum
soup_ties_transfn(PG_FUNCTION_ARGS)
{
	SoupTensor *tau;
	double		w;
	MergeState *st;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(PG_ARGISNULL(0) ? NULL : PG_GETARG_POINTER(0));
	st = delta_accum_start(fcinfo, "soup.ties_merge", 4, &tau, &w);
	soup_ties_accum((double *) SOUP_TENSOR_DATA(tau), w, st->acc, st->numel);
	PG_RETURN_POINTER(st);
}

Datum
soup_ties_finalfn(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *r;

	if (st == NULL)
		PG_RETURN_NULL();
	r = mstate_result(st);
	soup_ties_store(st->dtype, st->base, st->acc, st->param, SOUP_TENSOR_DATA(r),
					st->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}

Datum
soup_delta_transfn(PG_FUNCTION_ARGS)
{
	SoupTensor *tau;
	double		w;
	MergeState *st;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(PG_ARGISNULL(0) ? NULL : PG_GETARG_POINTER(0));
	st = delta_accum_start(fcinfo, "soup.delta_sum", 1, &tau, &w);
	soup_dd_axpy(SOUP_DT_F64, w, SOUP_TENSOR_DATA(tau), MSTATE_HI(st, 0),
				 MSTATE_LO(st, 0), st->numel, soup_kernel_threads(st->numel));
	PG_RETURN_POINTER(st);
}
