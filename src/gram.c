/*
 * gram.c - statistics of whole tensors for the angle-based merges (SLERP,
 * Model Stock): Gram matrices per chunk, summed exactly across chunks, and
 * the elementwise linear combination that applies them.
 *
 *   soup.gram(tensors soup.tensor[], base soup.tensor DEFAULT NULL)
 *       the n x n matrix of dot products of t_i = x_i - base, as n*n
 *       double-double pairs (hi, lo) in a float8[] of 2*n*n values
 *   soup.dd_sum(float8[])
 *       aggregate: the exact sum of such pair arrays, rounded once:
 *       a float8[] of n*n values
 *   soup.lincomb(a, wa, b, wb)
 *       wa * a + wb * b elementwise, in float64, rounded into the dtype
 *
 * Because each product is rounded once and every sum is exact, the angles
 * do not depend on how the tensors are chunked.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "kernels/accum.h"
#include "mstate.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_gram);
PG_FUNCTION_INFO_V1(soup_dd_sum_transfn);
PG_FUNCTION_INFO_V1(soup_dd_sum_combinefn);
PG_FUNCTION_INFO_V1(soup_dd_sum_serialfn);
PG_FUNCTION_INFO_V1(soup_dd_sum_deserialfn);
PG_FUNCTION_INFO_V1(soup_dd_sum_finalfn);
PG_FUNCTION_INFO_V1(soup_tensor_lincomb);

/* Models in one Gram matrix: model soups combine a handful, not hundreds. */
#define SOUP_GRAM_MAX 64

static ArrayType *
float8_array(const double *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Float8GetDatum(v[i]);
	return construct_array(d, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

Datum
soup_gram(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	SoupTensor *base = PG_ARGISNULL(1) ? NULL : PG_GETARG_SOUP_TENSOR_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	SoupTensor *ts[SOUP_GRAM_MAX];
	const void *xs[SOUP_GRAM_MAX];
	double	   *g;

	deconstruct_array(arr, ARR_ELEMTYPE(arr), -1, false,
					  TYPALIGN_DOUBLE, &elems, &nulls, &n);
	if (n < 1 || n > SOUP_GRAM_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.gram takes 1 to %d tensors, not %d", SOUP_GRAM_MAX, n)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("soup.gram: tensors must not be null")));
		ts[i] = DatumGetSoupTensorP(elems[i]);
		xs[i] = SOUP_TENSOR_DATA(ts[i]);
		soup_require_float((SoupDtype) ts[i]->dtype, "soup.gram");
		if (i > 0)
			soup_check_same_layout(ts[0], ts[i], "soup.gram");
	}
	if (base)
		soup_check_same_layout(ts[0], base, "soup.gram");
	g = palloc0(sizeof(double) * 2 * n * n);
	soup_dd_gram((SoupDtype) ts[0]->dtype, xs, n, base ? SOUP_TENSOR_DATA(base) : NULL,
				 ts[0]->numel, g, palloc(sizeof(double) * SOUP_GRAM_WORK(n)));
	/* mirror the upper triangle */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
		{
			g[(i * n + j) * 2] = g[(j * n + i) * 2];
			g[(i * n + j) * 2 + 1] = g[(j * n + i) * 2 + 1];
		}
	PG_RETURN_ARRAYTYPE_P(float8_array(g, 2 * n * n));
}

/* ---- soup.dd_sum: exact sums of double-double pair arrays ---- */

typedef struct DdSumState
{
	int			npairs;
	double	   *v;				/* npairs (hi, lo) */
} DdSumState;

static DdSumState *
ddsum_new(MemoryContext ctx, int npairs)
{
	DdSumState *st = MemoryContextAllocZero(ctx, sizeof(DdSumState));

	st->npairs = npairs;
	st->v = MemoryContextAllocZero(ctx, sizeof(double) * 2 * Max(npairs, 1));
	return st;
}

Datum
soup_dd_sum_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup.dd_sum");
	DdSumState *st = PG_ARGISNULL(0) ? NULL : (DdSumState *) PG_GETARG_POINTER(0);
	ArrayType  *arr;
	int			n;

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	arr = PG_GETARG_ARRAYTYPE_P(1);
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (ARR_ELEMTYPE(arr) != FLOAT8OID || array_contains_nulls(arr) || n % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup.dd_sum takes float8[] arrays of (hi, lo) pairs without nulls")));
	if (st == NULL)
		st = ddsum_new(ctx, n / 2);
	else if (st->npairs != n / 2)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("soup.dd_sum: arrays of %d and %d values", 2 * st->npairs, n)));
	soup_dd_add_pairs(st->v, (double *) ARR_DATA_PTR(arr), st->npairs);
	PG_RETURN_POINTER(st);
}

Datum
soup_dd_sum_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup.dd_sum");
	DdSumState *a = PG_ARGISNULL(0) ? NULL : (DdSumState *) PG_GETARG_POINTER(0);
	DdSumState *b = PG_ARGISNULL(1) ? NULL : (DdSumState *) PG_GETARG_POINTER(1);

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = ddsum_new(ctx, b->npairs);
	else if (a->npairs != b->npairs)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("soup.dd_sum: arrays of %d and %d values", 2 * a->npairs, 2 * b->npairs)));
	soup_dd_add_pairs(a->v, b->v, a->npairs);
	PG_RETURN_POINTER(a);
}

Datum
soup_dd_sum_serialfn(PG_FUNCTION_ARGS)
{
	DdSumState *st = (DdSumState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, st->npairs);
	pq_sendbytes(&buf, (char *) st->v, sizeof(double) * 2 * st->npairs);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
soup_dd_sum_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	DdSumState *st;
	int			npairs;

	mstate_context(fcinfo, "soup.dd_sum");
	mstate_reader(b, &buf);
	npairs = pq_getmsgint(&buf, 4);
	if (npairs < 0 || buf.len - buf.cursor != (int) (sizeof(double) * 2 * npairs))
		elog(ERROR, "invalid soup.dd_sum state");
	st = ddsum_new(CurrentMemoryContext, npairs);
	pq_copymsgbytes(&buf, (char *) st->v, sizeof(double) * 2 * npairs);
	PG_RETURN_POINTER(st);
}

Datum
soup_dd_sum_finalfn(PG_FUNCTION_ARGS)
{
	DdSumState *st = PG_ARGISNULL(0) ? NULL : (DdSumState *) PG_GETARG_POINTER(0);
	double	   *out;

	if (st == NULL)
		PG_RETURN_NULL();
	out = palloc(sizeof(double) * Max(st->npairs, 1));
	for (int k = 0; k < st->npairs; k++)
		out[k] = st->v[2 * k] + st->v[2 * k + 1];
	PG_RETURN_ARRAYTYPE_P(float8_array(out, st->npairs));
}

/* soup.lincomb(a, wa, b, wb) = wa * a + wb * b */
Datum
soup_tensor_lincomb(PG_FUNCTION_ARGS)
{
	SoupTensor *a = PG_GETARG_SOUP_TENSOR_P(0);
	double		wa = PG_GETARG_FLOAT8(1);
	SoupTensor *b = PG_GETARG_SOUP_TENSOR_P(2);
	double		wb = PG_GETARG_FLOAT8(3);
	SoupTensor *r;

	soup_require_float((SoupDtype) a->dtype, "soup.lincomb");
	soup_check_same_layout(a, b, "soup.lincomb");
	r = soup_tensor_new((SoupDtype) a->dtype, a->ndim, a->dims);
	soup_lincomb2((SoupDtype) a->dtype, wa, SOUP_TENSOR_DATA(a), wb,
				  SOUP_TENSOR_DATA(b), SOUP_TENSOR_DATA(r), a->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}
