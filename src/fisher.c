/*
 * fisher.c - soup.fisher_merge: Fisher-weighted averaging (Matena and
 * Raffel 2022).
 *
 *   result = sum_i w_i F'_i x_i / sum_i w_i F'_i,   F'_i = max(F_i, floor)
 *
 * elementwise, with F_i the diagonal Fisher of model i stored like its
 * weights (same tensors and chunks).  Both sums are double-double, so the
 * result does not depend on row order.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"

#include "kernels/accum.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_fisher_transfn);
PG_FUNCTION_INFO_V1(soup_fisher_finalfn);

#define FISHER_NAME "soup.fisher_merge"
#define FISHER_DEFAULT_FLOOR 1e-6

/* transfn(state, data, fisher [, weight [, floor]]) */
Datum
soup_fisher_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, FISHER_NAME);
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	int			nargs = PG_NARGS();
	double		w = 1.0;
	double		floor = FISHER_DEFAULT_FLOOR;
	SoupTensor *x;
	SoupTensor *f;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	if (PG_ARGISNULL(2) || (nargs > 3 && PG_ARGISNULL(3)) || (nargs > 4 && PG_ARGISNULL(4)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg(FISHER_NAME ": fisher, weight and floor must not be null")));
	x = PG_GETARG_SOUP_TENSOR_P(1);
	f = PG_GETARG_SOUP_TENSOR_P(2);
	if (nargs > 3)
		w = mstate_check_weight(PG_GETARG_FLOAT8(3), FISHER_NAME);
	if (nargs > 4)
		floor = PG_GETARG_FLOAT8(4);
	if (!(floor >= 0.0) || isinf(floor))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(FISHER_NAME ": floor must be a finite number >= 0")));
	soup_require_float((SoupDtype) x->dtype, FISHER_NAME);
	soup_require_float((SoupDtype) f->dtype, FISHER_NAME);
	if (x->numel != f->numel || x->ndim != f->ndim ||
		memcmp(x->dims, f->dims, sizeof(int32) * x->ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg(FISHER_NAME ": a tensor and its Fisher have different shapes")));
	if (st == NULL)
		st = mstate_new(ctx, x, 2, true);
	else
		mstate_check(st, x, FISHER_NAME, "inputs");
	soup_dd_fisher((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), (SoupDtype) f->dtype,
				   SOUP_TENSOR_DATA(f), w, floor, MSTATE_HI(st, 0), MSTATE_LO(st, 0),
				   MSTATE_HI(st, 1), MSTATE_LO(st, 1), x->numel,
				   soup_kernel_threads(x->numel));
	st->count++;
	mstate_add_weight(st, w, 0.0);
	PG_RETURN_POINTER(st);
}

Datum
soup_fisher_finalfn(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *r;

	if (st == NULL)
		PG_RETURN_NULL();
	if (mstate_weight_sum(st) == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg(FISHER_NAME ": the weights sum to zero")));
	r = mstate_result(st);
	soup_dd_div2_store(st->dtype, MSTATE_HI(st, 0), MSTATE_LO(st, 0),
					   MSTATE_HI(st, 1), MSTATE_LO(st, 1), SOUP_TENSOR_DATA(r),
					   st->numel, soup_kernel_threads(st->numel));
	PG_RETURN_SOUP_TENSOR_P(r);
}
