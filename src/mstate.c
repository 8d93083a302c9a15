/*
 * mstate.c - the state of the elementwise merge aggregates, and the combine,
 * serial and deserial functions they all share.
 */
#include "postgres.h"

#include <math.h>

#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/float.h"

#include "kernels/accum.h"
#include "kernels/dd.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_mstate_combine);
PG_FUNCTION_INFO_V1(soup_mstate_serial);
PG_FUNCTION_INFO_V1(soup_mstate_deserial);

/* Version of the serial form; states never outlive one query. */
#define MSTATE_SERIAL_VERSION 1

MemoryContext
mstate_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext ctx;

	if (!AggCheckCallContext(fcinfo, &ctx))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return ctx;
}

static MergeState *
mstate_alloc(MemoryContext ctx, SoupDtype dt, int ndim, const int32 *dims,
			 int32 numel, int nacc)
{
	MergeState *st = MemoryContextAllocZero(ctx, sizeof(MergeState));

	st->dtype = dt;
	st->ndim = ndim;
	memcpy(st->dims, dims, sizeof(int32) * ndim);
	st->numel = numel;
	st->nacc = nacc;
	st->param = get_float8_nan();
	st->acc = MemoryContextAllocHuge(ctx, sizeof(double) * 2 * nacc * Max(numel, 1));
	return st;
}

MergeState *
mstate_new(MemoryContext ctx, const SoupTensor *x, int nacc, bool zero)
{
	MergeState *st = mstate_alloc(ctx, (SoupDtype) x->dtype, x->ndim, x->dims,
								  x->numel, nacc);

	if (zero)
		memset(st->acc, 0, sizeof(double) * 2 * nacc * x->numel);
	return st;
}

void
mstate_check(const MergeState *st, const SoupTensor *x, const char *fname,
			 const char *what)
{
	if (st->dtype != x->dtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: %s have different dtypes: %s and %s", fname, what,
						soup_dtype_name(st->dtype),
						soup_dtype_name((SoupDtype) x->dtype))));
	if (st->numel != x->numel || st->ndim != x->ndim ||
		memcmp(st->dims, x->dims, sizeof(int32) * x->ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: %s have different shapes (%d and %d elements)",
						fname, what, st->numel, x->numel),
				 (st->ndim == 1 && x->ndim == 1) ?
				 errhint("Chunks of one (tensor, chunk) group differ in length when the "
						 "models are stored in different chunk layouts: soup.merge merges "
						 "them as they are, and soup.rechunk(model, chunk_elems) gives a "
						 "model another layout for a GROUP BY by hand.") : 0));
}

void
mstate_set_base(MemoryContext ctx, MergeState *st, const SoupTensor *base,
				const char *fname)
{
	Size		n = SOUP_TENSOR_NBYTES(base);

	mstate_check(st, base, fname, "the models and the base");
	if (st->base == NULL)
	{
		st->base = MemoryContextAllocHuge(ctx, Max(n, 1));
		memcpy(st->base, SOUP_TENSOR_DATA(base), n);
	}
	else if (memcmp(st->base, SOUP_TENSOR_DATA(base), n) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: the base differs between rows of one group", fname),
				 errhint("Join each model's chunk with the same chunk of one base model.")));
}

void
mstate_set_param(MergeState *st, double value, const char *fname,
				 const char *what)
{
	if (isnan(value) || isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must be finite", fname, what)));
	if (isnan(st->param))
		st->param = value;
	else if (st->param != value)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must be the same in every row of a group", fname, what)));
}

/* The weight sum is exact too, so it does not depend on row order either. */
void
mstate_add_weight(MergeState *st, double hi, double lo)
{
	dd_add_pair(&st->wsum_hi, &st->wsum_lo, hi, lo);
}

double
mstate_check_weight(double w, const char *fname)
{
	if (isnan(w) || isinf(w))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: weight must be finite, not %g", fname, w)));
	return w;
}

double
mstate_weight_sum(const MergeState *st)
{
	return st->wsum_hi + st->wsum_lo;
}

void
mstate_reader(bytea *b, StringInfo buf)
{
	buf->data = VARDATA_ANY(b);
	buf->len = VARSIZE_ANY_EXHDR(b);
	buf->maxlen = buf->len;
	buf->cursor = 0;
}

SoupTensor *
mstate_result(const MergeState *st)
{
	/* every final function writes every element */
	return soup_tensor_new_shaped(st->dtype, st->ndim, st->dims);
}

/* ---- shared combine / serial / deserial ---- */

static MergeState *
mstate_copy(MemoryContext ctx, const MergeState *b)
{
	MergeState *a = mstate_alloc(ctx, b->dtype, b->ndim, b->dims, b->numel, b->nacc);
	Size		nbase = (Size) b->numel * soup_dtype_size(b->dtype);

	memcpy(a->acc, b->acc, sizeof(double) * 2 * b->nacc * b->numel);
	a->count = b->count;
	a->wsum_hi = b->wsum_hi;
	a->wsum_lo = b->wsum_lo;
	a->param = b->param;
	if (b->base)
	{
		a->base = MemoryContextAllocHuge(ctx, Max(nbase, 1));
		memcpy(a->base, b->base, nbase);
	}
	return a;
}

Datum
soup_mstate_combine(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "merge aggregate combine");
	MergeState *a = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	MergeState *b = PG_ARGISNULL(1) ? NULL : (MergeState *) PG_GETARG_POINTER(1);
	Size		nbase;

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		PG_RETURN_POINTER(mstate_copy(ctx, b));	/* b may be short-lived */
	if (a->dtype != b->dtype || a->numel != b->numel || a->nacc != b->nacc ||
		a->ndim != b->ndim || memcmp(a->dims, b->dims, sizeof(int32) * a->ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("merge aggregate: inputs have different dtypes or shapes")));
	nbase = (Size) a->numel * soup_dtype_size(a->dtype);
	if ((a->base == NULL) != (b->base == NULL) ||
		(a->base && memcmp(a->base, b->base, nbase) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("merge aggregate: the base differs between rows of one group")));
	if (!isnan(b->param))
		mstate_set_param(a, b->param, "merge aggregate", "the parameter");
	for (int k = 0; k < a->nacc; k++)
		soup_dd_add(MSTATE_HI(a, k), MSTATE_LO(a, k), MSTATE_HI(b, k),
					MSTATE_LO(b, k), a->numel, soup_kernel_threads(a->numel));
	a->count += b->count;
	mstate_add_weight(a, b->wsum_hi, b->wsum_lo);
	PG_RETURN_POINTER(a);
}

/*
 * Serial form: header fields, then the accumulators and the base in host
 * order (a state never leaves the server that made it).
 */
Datum
soup_mstate_serial(PG_FUNCTION_ARGS)
{
	MergeState *st = (MergeState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, MSTATE_SERIAL_VERSION);
	pq_sendbyte(&buf, st->dtype);
	pq_sendbyte(&buf, st->ndim);
	pq_sendbyte(&buf, st->nacc);
	pq_sendbyte(&buf, st->base != NULL);
	for (int i = 0; i < st->ndim; i++)
		pq_sendint32(&buf, st->dims[i]);
	pq_sendint32(&buf, st->numel);
	pq_sendint64(&buf, st->count);
	pq_sendfloat8(&buf, st->wsum_hi);
	pq_sendfloat8(&buf, st->wsum_lo);
	pq_sendfloat8(&buf, st->param);
	pq_sendbytes(&buf, (char *) st->acc, sizeof(double) * 2 * st->nacc * st->numel);
	if (st->base)
		pq_sendbytes(&buf, st->base, (Size) st->numel * soup_dtype_size(st->dtype));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
soup_mstate_deserial(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	int			version, dt, ndim, nacc, has_base;
	int32		dims[SOUP_MAX_NDIM];
	int32		numel;
	Size		nacc_bytes, nbase;
	MergeState *st;

	mstate_context(fcinfo, "merge aggregate deserial");
	mstate_reader(b, &buf);
	version = pq_getmsgbyte(&buf);
	dt = pq_getmsgbyte(&buf);
	ndim = pq_getmsgbyte(&buf);
	nacc = pq_getmsgbyte(&buf);
	has_base = pq_getmsgbyte(&buf);
	if (version != MSTATE_SERIAL_VERSION || !soup_dtype_is_float((SoupDtype) dt) ||
		ndim > SOUP_MAX_NDIM || nacc < 1 || nacc > 4)
		elog(ERROR, "invalid merge aggregate state");
	for (int i = 0; i < ndim; i++)
		dims[i] = pq_getmsgint(&buf, 4);
	numel = pq_getmsgint(&buf, 4);
	nacc_bytes = sizeof(double) * 2 * nacc * (Size) numel;
	nbase = has_base ? (Size) numel * soup_dtype_size((SoupDtype) dt) : 0;
	if (numel != soup_shape_numel(ndim, dims) ||
		buf.len - buf.cursor != (int) (8 + 24 + nacc_bytes + nbase))
		elog(ERROR, "invalid merge aggregate state");
	st = mstate_alloc(CurrentMemoryContext, (SoupDtype) dt, ndim, dims, numel, nacc);
	st->count = pq_getmsgint64(&buf);
	st->wsum_hi = pq_getmsgfloat8(&buf);
	st->wsum_lo = pq_getmsgfloat8(&buf);
	st->param = pq_getmsgfloat8(&buf);
	pq_copymsgbytes(&buf, (char *) st->acc, nacc_bytes);
	if (has_base)
	{
		st->base = palloc(Max(nbase, 1));
		pq_copymsgbytes(&buf, st->base, nbase);
	}
	PG_RETURN_POINTER(st);
}
