/*
 * tensor.c - soup.tensor: construction, validation, binary I/O, accessors.
 *
 * Text I/O lives in tensor_text.c, arithmetic and casts in tensor_ops.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "tensor.h"
#include "tensor_wire.h"

PG_FUNCTION_INFO_V1(soup_tensor_recv);
PG_FUNCTION_INFO_V1(soup_tensor_send);
PG_FUNCTION_INFO_V1(soup_tensor_dtype);
PG_FUNCTION_INFO_V1(soup_tensor_numel);
PG_FUNCTION_INFO_V1(soup_tensor_shape);
PG_FUNCTION_INFO_V1(soup_tensor_bytes);
PG_FUNCTION_INFO_V1(soup_tensor_from_bytes);
PG_FUNCTION_INFO_V1(soup_tensor_eq);
PG_FUNCTION_INFO_V1(soup_tensor_ne);

int32
soup_shape_numel(int ndim, const int32 *dims)
{
	int64		numel = 1;

	if (ndim < 0 || ndim > SOUP_MAX_NDIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor has %d dimensions, at most %d are allowed",
						ndim, SOUP_MAX_NDIM)));
	for (int i = 0; i < ndim; i++)
	{
		if (dims[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tensor dimension %d is negative", i + 1)));
		numel *= dims[i];
		/* dims are < 2^31, so checking each step keeps numel < 2^62 */
		if (numel > SOUP_MAX_DATA_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor value too large"),
					 errdetail("A soup.tensor value holds at most %zu elements; "
							   "store large tensors in chunks.",
							   (Size) SOUP_MAX_DATA_BYTES)));
	}
	return (int32) numel;
}

static void
check_data_size(SoupDtype dt, int32 numel)
{
	if ((Size) numel * soup_dtype_size(dt) > SOUP_MAX_DATA_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("tensor value too large"),
				 errdetail("A soup.tensor value holds at most %zu bytes of data.",
						   (Size) SOUP_MAX_DATA_BYTES)));
}

SoupTensor *
soup_tensor_new_shaped(SoupDtype dt, int ndim, const int32 *dims)
{
	int32		numel = soup_shape_numel(ndim, dims);
	Size		hdrsz = SOUP_TENSOR_HDRSZ(ndim);
	Size		size;
	SoupTensor *t;

	check_data_size(dt, numel);
	size = hdrsz + (Size) numel * soup_dtype_size(dt);
	/* only the header is zeroed: callers fill the data (megabytes a chunk) */
	t = (SoupTensor *) palloc(size);
	memset(t, 0, hdrsz);
	SET_VARSIZE(t, size);
	t->dtype = (uint8) dt;
	t->ndim = (uint8) ndim;
	t->numel = numel;
	for (int i = 0; i < ndim; i++)
		t->dims[i] = dims[i];
	return t;
}

SoupTensor *
soup_tensor_new(SoupDtype dt, int ndim, const int32 *dims)
{
	SoupTensor *t = soup_tensor_new_shaped(dt, ndim, dims);

	memset(SOUP_TENSOR_DATA(t), 0, SOUP_TENSOR_NBYTES(t));
	return t;
}

SoupTensor *
soup_tensor_new_1d(SoupDtype dt, int32 numel)
{
	if (numel < 0)
		elog(ERROR, "negative element count %d", numel);
	return soup_tensor_new_shaped(dt, 1, &numel);
}

/*
 * Every path that makes a value from outside bytes ends here, so a bad value
 * can never reach a kernel.
 */
void
soup_tensor_check(const SoupTensor *t)
{
	Size		size = VARSIZE(t);

	if (size < offsetof(SoupTensor, dims))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: too short")));
	if (!soup_dtype_valid(t->dtype))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: unknown dtype code %d", t->dtype)));
	if (t->ndim > SOUP_MAX_NDIM || t->flags != 0 ||
		size < SOUP_TENSOR_HDRSZ(t->ndim))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor header")));
	if (soup_shape_numel(t->ndim, t->dims) != t->numel ||
		size != SOUP_TENSOR_HDRSZ(t->ndim) + SOUP_TENSOR_NBYTES(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: shape does not match the data size")));
}

void
soup_require_float(SoupDtype dt, const char *what)
{
	if (!soup_dtype_is_float(dt))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s needs a float tensor, not dtype %s",
						what, soup_dtype_name(dt)),
				 errhint("Numeric dtypes are f32, f64, f16 and bf16.")));
}

void
soup_check_same_layout(const SoupTensor *a, const SoupTensor *b, const char *what)
{
	if (a->dtype != b->dtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: tensors have different dtypes: %s and %s", what,
						soup_dtype_name((SoupDtype) a->dtype),
						soup_dtype_name((SoupDtype) b->dtype))));
	if (a->ndim != b->ndim ||
		memcmp(a->dims, b->dims, sizeof(int32) * a->ndim) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: tensors have different shapes", what)));
}

/*
 * Binary form (tensor_wire.h): version byte, dtype code, ndim, ndim int32
 * dimensions (network order), then the elements as stored: packed
 * little-endian, as in safetensors, so COPY BINARY moves data without
 * conversion.
 */
Datum
soup_tensor_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	int			dtype = pq_getmsgbyte(buf);
	int			ndim = pq_getmsgbyte(buf);
	int32		dims[SOUP_MAX_NDIM];
	int32		numel;
	SoupTensor *t;

	if (version != SOUP_TENSOR_SEND_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported soup.tensor binary version %d", version)));
	if (!soup_dtype_valid(dtype))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: unknown dtype code %d", dtype)));
	if (ndim > SOUP_MAX_NDIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: %d dimensions", ndim)));
	for (int i = 0; i < ndim; i++)
		dims[i] = pq_getmsgint(buf, 4);
	numel = soup_shape_numel(ndim, dims);

	/* the size check comes before the allocation: a short message cannot
	 * make the server allocate what its shape claims */
	if ((int64) (buf->len - buf->cursor) != (int64) numel * soup_dtype_size((SoupDtype) dtype))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid soup.tensor: %d data bytes for %d elements of %s",
						buf->len - buf->cursor, numel,
						soup_dtype_name((SoupDtype) dtype))));
	/* a chunk (1-D) skips zeroing data that is about to be overwritten */
	t = ndim == 1 ? soup_tensor_new_1d((SoupDtype) dtype, dims[0])
		: soup_tensor_new((SoupDtype) dtype, ndim, dims);
	pq_copymsgbytes(buf, SOUP_TENSOR_DATA(t), SOUP_TENSOR_NBYTES(t));
	PG_RETURN_SOUP_TENSOR_P(t);
}

Datum
soup_tensor_send(PG_FUNCTION_ARGS)
{
	SoupTensor *t = PG_GETARG_SOUP_TENSOR_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, SOUP_TENSOR_SEND_VERSION);
	pq_sendbyte(&buf, t->dtype);
	pq_sendbyte(&buf, t->ndim);
	for (int i = 0; i < t->ndim; i++)
		pq_sendint32(&buf, t->dims[i]);
	pq_sendbytes(&buf, SOUP_TENSOR_DATA(t), SOUP_TENSOR_NBYTES(t));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * The header of a value (dtype, ndim, numel, dims) without its data: for a
 * value stored out of line only the first TOAST chunk is read, so checking
 * the chunks of a large model costs almost nothing.  The data part of the
 * result must not be used.
 */
static SoupTensor *
tensor_header(Datum d)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		return (SoupTensor *) pg_detoast_datum_slice(v, 0,
													 offsetof(SoupTensor, dims) - VARHDRSZ +
													 sizeof(int32) * SOUP_MAX_NDIM);
	return DatumGetSoupTensorP(d);
}

Datum
soup_tensor_dtype(PG_FUNCTION_ARGS)
{
	SoupTensor *t = tensor_header(PG_GETARG_DATUM(0));

	PG_RETURN_TEXT_P(cstring_to_text(soup_dtype_name((SoupDtype) t->dtype)));
}

Datum
soup_tensor_numel(PG_FUNCTION_ARGS)
{
	SoupTensor *t = tensor_header(PG_GETARG_DATUM(0));

	PG_RETURN_INT64(t->numel);
}

Datum
soup_tensor_shape(PG_FUNCTION_ARGS)
{
	SoupTensor *t = tensor_header(PG_GETARG_DATUM(0));
	Datum	   *elems = palloc(sizeof(Datum) * Max(t->ndim, 1));

	for (int i = 0; i < t->ndim; i++)
		elems[i] = Int64GetDatum(t->dims[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, t->ndim, INT8OID, 8,
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* The element bytes, packed little-endian as in a safetensors file. */
Datum
soup_tensor_bytes(PG_FUNCTION_ARGS)
{
	SoupTensor *t = PG_GETARG_SOUP_TENSOR_P(0);
	Size		n = SOUP_TENSOR_NBYTES(t);
	bytea	   *result = (bytea *) palloc(VARHDRSZ + n);

	SET_VARSIZE(result, VARHDRSZ + n);
	memcpy(VARDATA(result), SOUP_TENSOR_DATA(t), n);
	PG_RETURN_BYTEA_P(result);
}

/* soup.tensor_from_bytes(data bytea, dtype text, shape bigint[]) */
Datum
soup_tensor_from_bytes(PG_FUNCTION_ARGS)
{
	bytea	   *data;
	text	   *dtname;
	ArrayType  *shape;
	SoupDtype	dt;
	Size		nbytes;
	int32		dims[SOUP_MAX_NDIM];
	int			ndim = 1;
	SoupTensor *t;

	/* not STRICT: a NULL shape means one dimension */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	data = PG_GETARG_BYTEA_PP(0);
	dtname = PG_GETARG_TEXT_PP(1);
	shape = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	dt = soup_dtype_from_name(VARDATA_ANY(dtname), VARSIZE_ANY_EXHDR(dtname));
	nbytes = VARSIZE_ANY_EXHDR(data);

	if (dt == SOUP_DT_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown dtype \"%s\"", text_to_cstring(dtname))));
	if (shape == NULL)
		dims[0] = (int32) Min(nbytes / soup_dtype_size(dt), PG_INT32_MAX);
	else
	{
		Datum	   *elems;
		bool	   *nulls;

		if (ARR_NDIM(shape) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("shape must be a one-dimensional array")));
		deconstruct_array(shape, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &nulls, &ndim);
		if (ndim > SOUP_MAX_NDIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor has %d dimensions, at most %d are allowed",
							ndim, SOUP_MAX_NDIM)));
		for (int i = 0; i < ndim; i++)
		{
			int64		d = DatumGetInt64(elems[i]);

			if (nulls[i] || d < 0 || d > PG_INT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("shape dimension %d is null, negative or too large",
								i + 1)));
			dims[i] = (int32) d;
		}
	}
	t = soup_tensor_new(dt, ndim, dims);
	if (SOUP_TENSOR_NBYTES(t) != nbytes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%zu bytes do not hold %d elements of %s",
						nbytes, t->numel, soup_dtype_name(dt))));
	memcpy(SOUP_TENSOR_DATA(t), VARDATA_ANY(data), nbytes);
	PG_RETURN_SOUP_TENSOR_P(t);
}

/* Identical: same dtype, shape and bytes (so NaNs compare by bits). */
static bool
tensor_identical(SoupTensor *a, SoupTensor *b)
{
	if (a->dtype != b->dtype || a->ndim != b->ndim || a->numel != b->numel)
		return false;
	if (memcmp(a->dims, b->dims, sizeof(int32) * a->ndim) != 0)
		return false;
	return memcmp(SOUP_TENSOR_DATA(a), SOUP_TENSOR_DATA(b),
				  SOUP_TENSOR_NBYTES(a)) == 0;
}

Datum
soup_tensor_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(tensor_identical(PG_GETARG_SOUP_TENSOR_P(0),
									PG_GETARG_SOUP_TENSOR_P(1)));
}

Datum
soup_tensor_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!tensor_identical(PG_GETARG_SOUP_TENSOR_P(0),
									 PG_GETARG_SOUP_TENSOR_P(1)));
}
