/*
 * ema.c - soup.ema: the exponential moving average of checkpoints, in the
 * order given (use ORDER BY step inside the call).
 *
 *   e <- d e + (1 - d) x,   the first checkpoint copied
 *
 * The warmup form uses d_t = min(d, 1 - (1 + t / gamma)^(-power)) at step t,
 * as timm's ModelEmaV3 does.  soup.ema_decay(d, k) = d^k is the scaling rule
 * of Busbridge et al. 2023 (batch size x k, or a checkpoint every k steps).
 * The order matters by definition, so there is no combine function.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/float.h"

#include "kernels/accum.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_ema_transfn);
PG_FUNCTION_INFO_V1(soup_ema_warmup_transfn);
PG_FUNCTION_INFO_V1(soup_ema_finalfn);
PG_FUNCTION_INFO_V1(soup_ema_decay);

#define EMA_NAME "soup.ema"

static void
check_decay(double d)
{
	if (!(d >= 0.0 && d <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(EMA_NAME ": decay must be between 0 and 1, not %g", d)));
}

/* The state is a MergeState whose first accumulator's hi half holds e. */
static Datum
ema_accum(FunctionCallInfo fcinfo, double decay)
{
	MemoryContext ctx = mstate_context(fcinfo, EMA_NAME);
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *x;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_SOUP_TENSOR_P(1);
	soup_require_float((SoupDtype) x->dtype, EMA_NAME);
	if (st == NULL)
	{
		st = mstate_new(ctx, x, 1, false);
		soup_scale_load((SoupDtype) x->dtype, 1.0, SOUP_TENSOR_DATA(x),
						MSTATE_HI(st, 0), x->numel, soup_kernel_threads(x->numel));
	}
	else
	{
		mstate_check(st, x, EMA_NAME, "inputs");
		soup_ema_update((SoupDtype) x->dtype, decay, SOUP_TENSOR_DATA(x),
						MSTATE_HI(st, 0), x->numel, soup_kernel_threads(x->numel));
	}
	st->count++;
	PG_RETURN_POINTER(st);
}

/* transfn(state, data, decay) */
Datum
soup_ema_transfn(PG_FUNCTION_ARGS)
{
	double		d = PG_ARGISNULL(2) ? get_float8_nan() : PG_GETARG_FLOAT8(2);

	check_decay(d);
	return ema_accum(fcinfo, d);
}

/* transfn(state, data, decay, t, gamma, power) */
Datum
soup_ema_warmup_transfn(PG_FUNCTION_ARGS)
{
	double		d,
				t,
				gamma,
				power;

	for (int i = 2; i <= 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg(EMA_NAME ": decay, step, gamma and power must not be null")));
	d = PG_GETARG_FLOAT8(2);
	t = PG_GETARG_FLOAT8(3);
	gamma = PG_GETARG_FLOAT8(4);
	power = PG_GETARG_FLOAT8(5);
	check_decay(d);
	if (!(t >= 0.0) || !(gamma > 0.0) || !(power > 0.0) || isinf(t) || isinf(gamma) || isinf(power))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(EMA_NAME ": step must be >= 0, gamma and power > 0")));
	return ema_accum(fcinfo, Min(d, 1.0 - pow(1.0 + t / gamma, -power)));
}

Datum
soup_ema_finalfn(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	SoupTensor *r;

	if (st == NULL)
		PG_RETURN_NULL();
	r = mstate_result(st);
	soup_div_store(st->dtype, MSTATE_HI(st, 0), 1.0, SOUP_TENSOR_DATA(r),
				   st->numel, soup_kernel_threads(st->numel));
	PG_RETURN_SOUP_TENSOR_P(r);
}

/* soup.ema_decay(decay, k) = decay^k */
Datum
soup_ema_decay(PG_FUNCTION_ARGS)
{
	double		d = PG_GETARG_FLOAT8(0);
	double		k = PG_GETARG_FLOAT8(1);

	check_decay(d);
	if (!(k > 0.0) || isinf(k))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.ema_decay: k must be a finite number > 0")));
	PG_RETURN_FLOAT8(pow(d, k));
}
