/*
 * avg.c - soup.avg_weights: the weighted average of tensors.
 *
 *   result = sum_i w_i x_i / sum_i w_i      (w_i = 1 without weights)
 *
 * The state carries sum_i w_i x_i as double-double pairs (see accum.h), so
 * the result is the same whatever order the rows come in.  The result has
 * the dtype and shape of the inputs and rounds to nearest even.
 */
#include "postgres.h"

#include "fmgr.h"

#include "kernels/accum.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_avg_transfn);
PG_FUNCTION_INFO_V1(soup_avg_w_transfn);
PG_FUNCTION_INFO_V1(soup_avg_finalfn);

#define AVG_NAME "soup.avg_weights"

static Datum
avg_accum(FunctionCallInfo fcinfo, double w)
{
	MemoryContext ctx = mstate_context(fcinfo, AVG_NAME);
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *x;
	SoupDtype	dt;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);	/* NULL tensors are skipped, as avg() does */
	x = PG_GETARG_SOUP_TENSOR_P(1);
	dt = (SoupDtype) x->dtype;
	soup_require_float(dt, AVG_NAME);
	if (st == NULL)
	{
		st = mstate_new(ctx, x, 1, false);
		soup_dd_scale_load(dt, w, SOUP_TENSOR_DATA(x), MSTATE_HI(st, 0),
						   MSTATE_LO(st, 0), x->numel, soup_kernel_threads(x->numel));
	}
	else
	{
		mstate_check(st, x, AVG_NAME, "inputs");
		soup_dd_axpy(dt, w, SOUP_TENSOR_DATA(x), MSTATE_HI(st, 0),
					 MSTATE_LO(st, 0), x->numel, soup_kernel_threads(x->numel));
	}
	st->count++;
	mstate_add_weight(st, w, 0.0);
	/* a detoasted copy of a multi-megabyte chunk should not wait for reset */
	if ((Pointer) x != PG_GETARG_POINTER(1))
		pfree(x);
	PG_RETURN_POINTER(st);
}

Datum
soup_avg_transfn(PG_FUNCTION_ARGS)
{
	return avg_accum(fcinfo, 1.0);
}

Datum
soup_avg_w_transfn(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(PG_ARGISNULL(0) ? NULL : PG_GETARG_POINTER(0));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg(AVG_NAME ": weight must not be null")));
	return avg_accum(fcinfo, mstate_check_weight(PG_GETARG_FLOAT8(2), AVG_NAME));
}

Datum
soup_avg_finalfn(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *r;
	double		wsum;

	if (st == NULL)
		PG_RETURN_NULL();
	wsum = mstate_weight_sum(st);
	if (wsum == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg(AVG_NAME ": the weights sum to zero")));
	r = mstate_result(st);
	soup_dd_div_store(st->dtype, MSTATE_HI(st, 0), MSTATE_LO(st, 0), wsum,
					  SOUP_TENSOR_DATA(r), st->numel, soup_kernel_threads(st->numel));
	PG_RETURN_SOUP_TENSOR_P(r);
}
