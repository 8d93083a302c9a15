/*
 * task.c - soup.task_arithmetic: add weighted task vectors to a base.
 *
 *   result = base + lambda * sum_i w_i (x_i - base)
 *
 * Each row carries a model's chunk and the same chunk of the base model.
 * The sum is double-double, so the result does not depend on row order.
 */
#include "postgres.h"

#include "fmgr.h"

#include "kernels/accum.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_task_transfn);
PG_FUNCTION_INFO_V1(soup_task_finalfn);

#define TASK_NAME "soup.task_arithmetic"

/* transfn(state, data, base, weight, lambda) */
Datum
soup_task_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, TASK_NAME);
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *x;
	SoupTensor *base;
	double		w;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg(TASK_NAME ": base, weight and lambda must not be null")));
	x = PG_GETARG_SOUP_TENSOR_P(1);
	base = PG_GETARG_SOUP_TENSOR_P(2);
	w = mstate_check_weight(PG_GETARG_FLOAT8(3), TASK_NAME);
	soup_require_float((SoupDtype) x->dtype, TASK_NAME);
	if (st == NULL)
		st = mstate_new(ctx, x, 1, true);
	else
		mstate_check(st, x, TASK_NAME, "inputs");
	mstate_set_base(ctx, st, base, TASK_NAME);
	mstate_set_param(st, PG_GETARG_FLOAT8(4), TASK_NAME, "lambda");
	soup_dd_axpy_diff((SoupDtype) x->dtype, w, SOUP_TENSOR_DATA(x), st->base,
					  MSTATE_HI(st, 0), MSTATE_LO(st, 0), x->numel,
					  soup_kernel_threads(x->numel));
	st->count++;
	mstate_add_weight(st, w, 0.0);
	PG_RETURN_POINTER(st);
}

Datum
soup_task_finalfn(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *r;

	if (st == NULL)
		PG_RETURN_NULL();
	r = mstate_result(st);
	soup_task_store(st->dtype, st->base, MSTATE_HI(st, 0), MSTATE_LO(st, 0),
					st->param, SOUP_TENSOR_DATA(r), st->numel,
					soup_kernel_threads(st->numel));
	PG_RETURN_SOUP_TENSOR_P(r);
}
