/*
 * tensor_ops.c - casts and arithmetic on soup.tensor values.
 *
 * Arithmetic runs in float64 and rounds once into the dtype of the inputs.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "kernels/accum.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_tensor_from_float4_array);
PG_FUNCTION_INFO_V1(soup_tensor_from_float8_array);
PG_FUNCTION_INFO_V1(soup_tensor_from_array_dtype);
PG_FUNCTION_INFO_V1(soup_tensor_to_float4_array);
PG_FUNCTION_INFO_V1(soup_tensor_to_float8_array);
PG_FUNCTION_INFO_V1(soup_tensor_astype);
PG_FUNCTION_INFO_V1(soup_tensor_norm);
PG_FUNCTION_INFO_V1(soup_tensor_dot);
PG_FUNCTION_INFO_V1(soup_tensor_add);
PG_FUNCTION_INFO_V1(soup_tensor_sub);
PG_FUNCTION_INFO_V1(soup_tensor_mul_scalar);
PG_FUNCTION_INFO_V1(soup_scalar_mul_tensor);

static SoupDtype
dtype_arg(text *name)
{
	SoupDtype	dt = soup_dtype_from_name(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));

	if (dt == SOUP_DT_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown dtype \"%s\"", text_to_cstring(name))));
	return dt;
}

/*
 * A float4[] or float8[] becomes a tensor of dtype dt with the array's
 * shape; NULL elements are refused, a tensor has no holes.
 */
static SoupTensor *
tensor_from_array(ArrayType *arr, SoupDtype dt)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int			ndim = ARR_NDIM(arr);
	int32		dims[MAXDIM];
	int32		zero = 0;
	SoupTensor *t;
	int			n;
	double	   *vals;

	if (array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls")));
	for (int i = 0; i < ndim; i++)
		dims[i] = ARR_DIMS(arr)[i];
	/* an empty array has no dimensions in PostgreSQL: make it shape [0] */
	t = ndim == 0 ? soup_tensor_new(dt, 1, &zero) : soup_tensor_new(dt, ndim, dims);
	n = t->numel;
	vals = palloc(sizeof(double) * Max(n, 1));
	if (elemtype == FLOAT4OID)
	{
		float	   *src = (float *) ARR_DATA_PTR(arr);

		for (int i = 0; i < n; i++)
			vals[i] = src[i];
	}
	else if (elemtype == FLOAT8OID)
		memcpy(vals, ARR_DATA_PTR(arr), sizeof(double) * n);
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("expected a float4[] or float8[] array")));
	if (dt == SOUP_DT_F32 && elemtype == FLOAT4OID)
		memcpy(SOUP_TENSOR_DATA(t), ARR_DATA_PTR(arr), sizeof(float) * n);
	else
		soup_store_f64(dt, vals, SOUP_TENSOR_DATA(t), n);
	pfree(vals);
	return t;
}

Datum
soup_tensor_from_float4_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(tensor_from_array(PG_GETARG_ARRAYTYPE_P(0), SOUP_DT_F32));
}

Datum
soup_tensor_from_float8_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(tensor_from_array(PG_GETARG_ARRAYTYPE_P(0), SOUP_DT_F64));
}

/* soup.tensor(values float8[], dtype text) */
Datum
soup_tensor_from_array_dtype(PG_FUNCTION_ARGS)
{
	SoupDtype	dt = dtype_arg(PG_GETARG_TEXT_PP(1));

	soup_require_float(dt, "soup.tensor(float8[], dtype)");
	PG_RETURN_SOUP_TENSOR_P(tensor_from_array(PG_GETARG_ARRAYTYPE_P(0), dt));
}

static ArrayType *
tensor_to_array(SoupTensor *t, Oid elemtype)
{
	int			dims[MAXDIM];
	int			lbs[MAXDIM];
	int			ndim = Max(t->ndim, 1);
	double	   *vals = palloc(sizeof(double) * Max(t->numel, 1));
	Datum	   *elems = palloc(sizeof(Datum) * Max(t->numel, 1));
	int16		typlen;
	bool		typbyval;
	char		typalign;

	soup_require_float((SoupDtype) t->dtype, "a cast to a float array");
	if (t->ndim > MAXDIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor has %d dimensions, arrays at most %d",
						t->ndim, MAXDIM)));
	if (t->numel == 0)
		return construct_empty_array(elemtype);
	for (int i = 0; i < ndim; i++)
	{
		dims[i] = t->ndim == 0 ? 1 : t->dims[i];
		lbs[i] = 1;
	}
	soup_load_f64((SoupDtype) t->dtype, SOUP_TENSOR_DATA(t), vals, t->numel);
	for (int i = 0; i < t->numel; i++)
		elems[i] = elemtype == FLOAT4OID ? Float4GetDatum((float) vals[i])
			: Float8GetDatum(vals[i]);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return construct_md_array(elems, NULL, ndim, dims, lbs, elemtype,
							  typlen, typbyval, typalign);
}

Datum
soup_tensor_to_float4_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(tensor_to_array(PG_GETARG_SOUP_TENSOR_P(0), FLOAT4OID));
}

Datum
soup_tensor_to_float8_array(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(tensor_to_array(PG_GETARG_SOUP_TENSOR_P(0), FLOAT8OID));
}

/* soup.astype(t, dtype): convert between float dtypes, rounding to even. */
Datum
soup_tensor_astype(PG_FUNCTION_ARGS)
{
	SoupTensor *t = PG_GETARG_SOUP_TENSOR_P(0);
	SoupDtype	dt = dtype_arg(PG_GETARG_TEXT_PP(1));
	SoupTensor *r;
	double	   *vals;

	if (dt == t->dtype)
		PG_RETURN_SOUP_TENSOR_P(t);
	soup_require_float((SoupDtype) t->dtype, "soup.astype");
	soup_require_float(dt, "soup.astype");
	r = soup_tensor_new(dt, t->ndim, t->dims);
	vals = palloc(sizeof(double) * Max(t->numel, 1));
	soup_load_f64((SoupDtype) t->dtype, SOUP_TENSOR_DATA(t), vals, t->numel);
	soup_store_f64(dt, vals, SOUP_TENSOR_DATA(r), t->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}

Datum
soup_tensor_norm(PG_FUNCTION_ARGS)
{
	SoupTensor *t = PG_GETARG_SOUP_TENSOR_P(0);
	void	   *d = SOUP_TENSOR_DATA(t);

	soup_require_float((SoupDtype) t->dtype, "soup.norm");
	PG_RETURN_FLOAT8(sqrt(soup_dot((SoupDtype) t->dtype, d, d, t->numel)));
}

Datum
soup_tensor_dot(PG_FUNCTION_ARGS)
{
	SoupTensor *a = PG_GETARG_SOUP_TENSOR_P(0);
	SoupTensor *b = PG_GETARG_SOUP_TENSOR_P(1);

	soup_check_same_layout(a, b, "tensor arithmetic");
	soup_require_float((SoupDtype) a->dtype, "tensor arithmetic");
	PG_RETURN_FLOAT8(soup_dot((SoupDtype) a->dtype, SOUP_TENSOR_DATA(a),
							  SOUP_TENSOR_DATA(b), a->numel));
}

static SoupTensor *
lincomb(SoupTensor *a, double wa, SoupTensor *b, double wb)
{
	SoupTensor *r;

	soup_check_same_layout(a, b, "tensor arithmetic");
	soup_require_float((SoupDtype) a->dtype, "tensor arithmetic");
	r = soup_tensor_new((SoupDtype) a->dtype, a->ndim, a->dims);
	soup_lincomb2((SoupDtype) a->dtype, wa, SOUP_TENSOR_DATA(a), wb,
				  SOUP_TENSOR_DATA(b), SOUP_TENSOR_DATA(r), a->numel);
	return r;
}

Datum
soup_tensor_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(lincomb(PG_GETARG_SOUP_TENSOR_P(0), 1.0,
									PG_GETARG_SOUP_TENSOR_P(1), 1.0));
}

Datum
soup_tensor_sub(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(lincomb(PG_GETARG_SOUP_TENSOR_P(0), 1.0,
									PG_GETARG_SOUP_TENSOR_P(1), -1.0));
}

static SoupTensor *
scale(SoupTensor *t, double s)
{
	SoupDtype	dt = (SoupDtype) t->dtype;
	SoupTensor *r;
	double	   *vals;

	soup_require_float(dt, "tensor arithmetic");
	r = soup_tensor_new(dt, t->ndim, t->dims);
	vals = palloc(sizeof(double) * Max(t->numel, 1));
	soup_scale_load(dt, s, SOUP_TENSOR_DATA(t), vals, t->numel, 1);
	soup_div_store(dt, vals, 1.0, SOUP_TENSOR_DATA(r), t->numel, 1);
	pfree(vals);
	return r;
}

Datum
soup_tensor_mul_scalar(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(scale(PG_GETARG_SOUP_TENSOR_P(0), PG_GETARG_FLOAT8(1)));
}

Datum
soup_scalar_mul_tensor(PG_FUNCTION_ARGS)
{
	PG_RETURN_SOUP_TENSOR_P(scale(PG_GETARG_SOUP_TENSOR_P(1), PG_GETARG_FLOAT8(0)));
}
