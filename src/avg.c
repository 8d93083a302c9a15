/*
 * avg.c - soup.avg_weights: the weighted average of tensors.
 *
 *   result = sum_i w_i x_i / sum_i w_i      (w_i = 1 without weights)
 *
 * The state carries sum_i w_i x_i as double-double pairs (see accum.h), so
 * the result is the same whatever order the rows come in; it is updated in
 * place, and combine, serial and deserial functions make it parallel-safe.
 * The result has the dtype and shape of the inputs and rounds to nearest
 * even.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "kernels/accum.h"
#include "pg_soup.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_avg_transfn);
PG_FUNCTION_INFO_V1(soup_avg_w_transfn);
PG_FUNCTION_INFO_V1(soup_avg_combinefn);
PG_FUNCTION_INFO_V1(soup_avg_serialfn);
PG_FUNCTION_INFO_V1(soup_avg_deserialfn);
PG_FUNCTION_INFO_V1(soup_avg_finalfn);

typedef struct AvgState
{
	SoupDtype	dtype;
	int			ndim;
	int32		dims[SOUP_MAX_NDIM];
	int32		numel;
	int64		count;			/* rows folded in */
	double		wsum_hi;		/* sum of weights, double-double */
	double		wsum_lo;
	double	   *hi;				/* sum of w * x, numel double-double pairs */
	double	   *lo;
} AvgState;

static MemoryContext
agg_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext ctx;

	if (!AggCheckCallContext(fcinfo, &ctx))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return ctx;
}

static AvgState *
avg_state_new(MemoryContext ctx, SoupDtype dt, int ndim, const int32 *dims,
			  int32 numel)
{
	AvgState   *st = MemoryContextAllocZero(ctx, sizeof(AvgState));

	st->dtype = dt;
	st->ndim = ndim;
	memcpy(st->dims, dims, sizeof(int32) * ndim);
	st->numel = numel;
	st->hi = MemoryContextAllocHuge(ctx, sizeof(double) * 2 * Max(numel, 1));
	st->lo = st->hi + Max(numel, 1);
	return st;
}

/* Inputs of one group must agree in dtype and shape. */
static void
check_compatible(const AvgState *st, SoupDtype dt, int ndim, const int32 *dims,
				 int32 numel)
{
	if (st->dtype != dt)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("soup.avg_weights: inputs have different dtypes: %s and %s",
						soup_dtype_name(st->dtype), soup_dtype_name(dt))));
	if (st->numel != numel || st->ndim != ndim ||
		memcmp(st->dims, dims, sizeof(int32) * ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("soup.avg_weights: inputs have different shapes (%d and %d elements)",
						st->numel, numel)));
}

/* The weight sum is exact too, so it does not depend on row order either. */
static void
wsum_add(AvgState *st, double hi, double lo)
{
	double		s = st->wsum_hi + hi;
	double		b = s - st->wsum_hi;

	st->wsum_lo += (st->wsum_hi - (s - b)) + (hi - b) + lo;
	st->wsum_hi = s;
}

static double
check_weight(double w)
{
	if (isnan(w) || isinf(w))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.avg_weights: weight must be finite, not %g", w)));
	return w;
}

static Datum
avg_accum(FunctionCallInfo fcinfo, double w)
{
	MemoryContext ctx = agg_context(fcinfo, "soup.avg_weights");
	AvgState   *st = PG_ARGISNULL(0) ? NULL : (AvgState *) PG_GETARG_POINTER(0);
	SoupTensor *x;
	SoupDtype	dt;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);	/* NULL tensors are skipped, as avg() does */
	x = PG_GETARG_SOUP_TENSOR_P(1);
	dt = (SoupDtype) x->dtype;
	soup_require_float(dt, "soup.avg_weights");
	if (st == NULL)
	{
		st = avg_state_new(ctx, dt, x->ndim, x->dims, x->numel);
		soup_dd_scale_load(dt, w, SOUP_TENSOR_DATA(x), st->hi, st->lo,
						   x->numel, soup_kernel_threads(x->numel));
	}
	else
	{
		check_compatible(st, dt, x->ndim, x->dims, x->numel);
		soup_dd_axpy(dt, w, SOUP_TENSOR_DATA(x), st->hi, st->lo, x->numel,
					 soup_kernel_threads(x->numel));
	}
	st->count++;
	wsum_add(st, w, 0.0);
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
				 errmsg("soup.avg_weights: weight must not be null")));
	return avg_accum(fcinfo, check_weight(PG_GETARG_FLOAT8(2)));
}

Datum
soup_avg_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = agg_context(fcinfo, "soup.avg_weights");
	AvgState   *a = PG_ARGISNULL(0) ? NULL : (AvgState *) PG_GETARG_POINTER(0);
	AvgState   *b = PG_ARGISNULL(1) ? NULL : (AvgState *) PG_GETARG_POINTER(1);

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
	{
		/* b may live in a shorter-lived context: copy it */
		a = avg_state_new(ctx, b->dtype, b->ndim, b->dims, b->numel);
		memcpy(a->hi, b->hi, sizeof(double) * b->numel);
		memcpy(a->lo, b->lo, sizeof(double) * b->numel);
		a->count = b->count;
		a->wsum_hi = b->wsum_hi;
		a->wsum_lo = b->wsum_lo;
		PG_RETURN_POINTER(a);
	}
	check_compatible(a, b->dtype, b->ndim, b->dims, b->numel);
	soup_dd_add(a->hi, a->lo, b->hi, b->lo, a->numel,
				soup_kernel_threads(a->numel));
	a->count += b->count;
	wsum_add(a, b->wsum_hi, b->wsum_lo);
	PG_RETURN_POINTER(a);
}

/*
 * Serial form: dtype, ndim, dims, numel, count, wsum, then the float64
 * accumulators in host order (states never leave one server's workers).
 */
Datum
soup_avg_serialfn(PG_FUNCTION_ARGS)
{
	AvgState   *st = (AvgState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, st->dtype);
	pq_sendbyte(&buf, st->ndim);
	for (int i = 0; i < st->ndim; i++)
		pq_sendint32(&buf, st->dims[i]);
	pq_sendint32(&buf, st->numel);
	pq_sendint64(&buf, st->count);
	pq_sendfloat8(&buf, st->wsum_hi);
	pq_sendfloat8(&buf, st->wsum_lo);
	pq_sendbytes(&buf, (char *) st->hi, sizeof(double) * st->numel);
	pq_sendbytes(&buf, (char *) st->lo, sizeof(double) * st->numel);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
soup_avg_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	SoupDtype	dt;
	int			ndim;
	int32		dims[SOUP_MAX_NDIM];
	int32		numel;
	AvgState   *st;

	agg_context(fcinfo, "soup.avg_weights");
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	dt = (SoupDtype) pq_getmsgbyte(&buf);
	ndim = pq_getmsgbyte(&buf);
	if (!soup_dtype_is_float(dt) || ndim > SOUP_MAX_NDIM)
		elog(ERROR, "invalid soup.avg_weights state");
	for (int i = 0; i < ndim; i++)
		dims[i] = pq_getmsgint(&buf, 4);
	numel = pq_getmsgint(&buf, 4);
	if (numel != soup_shape_numel(ndim, dims) ||
		buf.len - buf.cursor != (int) (8 + 16 + 2 * sizeof(double) * numel))
		elog(ERROR, "invalid soup.avg_weights state");
	st = avg_state_new(CurrentMemoryContext, dt, ndim, dims, numel);
	st->count = pq_getmsgint64(&buf);
	st->wsum_hi = pq_getmsgfloat8(&buf);
	st->wsum_lo = pq_getmsgfloat8(&buf);
	pq_copymsgbytes(&buf, (char *) st->hi, sizeof(double) * numel);
	pq_copymsgbytes(&buf, (char *) st->lo, sizeof(double) * numel);
	PG_RETURN_POINTER(st);
}

Datum
soup_avg_finalfn(PG_FUNCTION_ARGS)
{
	AvgState   *st = PG_ARGISNULL(0) ? NULL : (AvgState *) PG_GETARG_POINTER(0);
	SoupTensor *r;
	double		wsum;

	if (st == NULL)
		PG_RETURN_NULL();
	wsum = st->wsum_hi + st->wsum_lo;
	if (wsum == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("soup.avg_weights: the weights sum to zero")));
	r = soup_tensor_new(st->dtype, st->ndim, st->dims);
	soup_dd_div_store(st->dtype, st->hi, st->lo, wsum, SOUP_TENSOR_DATA(r),
					  st->numel, soup_kernel_threads(st->numel));
	PG_RETURN_SOUP_TENSOR_P(r);
}
