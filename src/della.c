/*
 * della.c - DELLA (Deep et al. 2024, "DELLA-Merging") as mergekit computes
 * it: each task vector loses entries at random with a keep probability that
 * rises with the entry's magnitude rank along dimension 1, then is rescaled
 * to its L1 norm (kernels/della.c has the draw).
 *
 *   soup._della_mask(model_id, base_id, tensor, density, epsilon, seed,
 *                    model_key, rescale) -> (mask bytea, scale float8)
 *       one bit per element (the kept ones) and the task vector's rescale
 *       factor; reads the tensor's chunks in order, a slab (d1 x inner
 *       entries) at a time
 *   soup._della_apply(data, base, mask, offset, scale) -> f64 task vector
 *       of one chunk with the mask and the factor applied, for
 *       soup.ties_merge and soup.delta_sum
 *
 * Memory: the mask (numel / 8 bytes) and one slab (40 bytes an entry: the
 * values and the sort's two arrays): a row for a 2-D tensor, the whole
 * tensor for a 1-D one.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "kernels/della.h"
#include "kernels/sparse.h"
#include "tau_stream.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_della_mask);
PG_FUNCTION_INFO_V1(soup_della_apply_sql);

#define DELLA_NAME "soup._della_mask"

/* The tensor's slab geometry from its shape: d1 along dimension 1, inner after it. */
static void
della_geometry(ArrayType *shape, int64 numel, int64 *d1, int64 *inner)
{
	Datum	   *dims;
	int			ndim;

	deconstruct_array(shape, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &dims, NULL, &ndim);
	if (ndim < 2)
	{
		/* mergekit unsqueezes a 1-D (or scalar) tensor into one row */
		*d1 = numel;
		*inner = 1;
		return;
	}
	if (numel == 0)
	{
		*d1 = *inner = 0;
		return;
	}
	*d1 = DatumGetInt64(dims[1]);
	*inner = 1;
	for (int i = 2; i < ndim; i++)
		*inner *= DatumGetInt64(dims[i]);
	/* the catalog's shape must cut numel into whole slabs */
	if (*d1 <= 0 || *inner <= 0 || numel % (*d1 * *inner) != 0 ||
		numel / (*d1 * *inner) != DatumGetInt64(dims[0]))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg(DELLA_NAME ": the tensor's shape does not hold its " INT64_FORMAT " elements", numel)));
}

/* Fill the slab buffer from chunks; when full, draw its bits. */
typedef struct DellaStream
{
	double	   *slab;
	int64		fill;
	int64		slab_len;
	int64		d1;
	int64		inner;
	uint64		first;			/* the slab's first element */
	double		density;
	double		epsilon;
	uint64		key;
	unsigned char *mask;
	double		l1[4];
	SoupDellaOrder *order;
	int64		numel;			/* the tensor's, from the catalog */
	int64		seen;			/* elements read so far */
	const char *tensor;			/* its name, for errors */
} DellaStream;

static void
della_feed(void *arg, const double *tau, int32 count)
{
	DellaStream *s = (DellaStream *) arg;
	int64		n = count;

	if (s->seen + n > s->numel)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg(DELLA_NAME ": tensor \"%s\" has more elements in chunks than its " INT64_FORMAT,
						s->tensor, s->numel)));
	s->seen += n;
	while (n > 0)
	{
		int64		take = Min(n, s->slab_len - s->fill);

		memcpy(s->slab + s->fill, tau, sizeof(double) * take);
		s->fill += take;
		tau += take;
		n -= take;
		if (s->fill == s->slab_len)
		{
			soup_della_slab(s->slab, (size_t) s->d1, (size_t) s->inner, s->first,
							s->density, s->epsilon, s->key, s->mask, s->l1, s->order);
			s->first += (uint64) s->slab_len;
			s->fill = 0;
		}
	}
}

Datum
soup_della_mask(PG_FUNCTION_ARGS)
{
	Datum		args[3] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};
	text	   *tensor = PG_GETARG_TEXT_PP(2);
	bool		rescale = PG_GETARG_BOOL(7);
	DellaStream s;
	MemoryContext outer = CurrentMemoryContext;
	int			nest_level;
	int64		numel;
	bytea	   *mask;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	SPIPlanPtr	plan;

	memset(&s, 0, sizeof(s));
	s.density = PG_GETARG_FLOAT8(3);
	s.epsilon = PG_GETARG_FLOAT8(4);
	if (!(s.density >= 0.0 && s.density <= 1.0) || !(s.epsilon >= 0.0 && s.epsilon <= 0.5))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(DELLA_NAME ": density must be in [0, 1] and epsilon in [0, 0.5], not %g and %g",
						s.density, s.epsilon)));
	s.key = soup_dare_key((uint64) PG_GETARG_INT64(5), (uint64) PG_GETARG_INT64(6),
						  soup_fnv1a(VARDATA_ANY(tensor), VARSIZE_ANY_EXHDR(tensor)));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, DELLA_NAME ": must return a record");

	SPI_connect();
	nest_level = soup_pin_search_path();
	{
		Oid			t2[2] = {INT8OID, TEXTOID};
		Datum		a2[2] = {args[0], args[2]};
		bool		isnull;

		if (SPI_execute_with_args("SELECT shape, numel FROM soup.tensors WHERE model_id = $1 AND name = $2",
								  2, t2, a2, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg(DELLA_NAME ": model %ld has no tensor \"%s\"",
							(long) PG_GETARG_INT64(0), text_to_cstring(tensor))));
		numel = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		della_geometry(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
					   numel, &s.d1, &s.inner);
	}
	s.slab_len = s.d1 * s.inner;
	/* the mask is the result: allocate it outside SPI's memory */
	if ((numel + 7) / 8 > (int64) (MaxAllocSize - VARHDRSZ))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg(DELLA_NAME ": tensor \"%s\" has " INT64_FORMAT " elements, more than a mask of 1 GB holds",
						text_to_cstring(tensor), numel)));
	mask = (bytea *) MemoryContextAllocExtended(outer, VARHDRSZ + (numel + 7) / 8, MCXT_ALLOC_ZERO);
	SET_VARSIZE(mask, VARHDRSZ + (numel + 7) / 8);
	s.mask = (unsigned char *) VARDATA(mask);
	if (s.slab_len > 0)
	{
		s.slab = palloc_extended(sizeof(double) * s.slab_len, MCXT_ALLOC_HUGE);
		s.order = palloc_extended(sizeof(SoupDellaOrder) * 2 * s.d1, MCXT_ALLOC_HUGE);
	}

	s.numel = numel;
	s.tensor = text_to_cstring(tensor);
	plan = soup_prepare_tau_stream(true, DELLA_NAME);
	soup_stream_tau(plan, args, DELLA_NAME, della_feed, &s);
	if (s.seen != numel || s.fill != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg(DELLA_NAME ": tensor \"%s\" has " INT64_FORMAT " of its " INT64_FORMAT " elements in chunks",
						s.tensor, s.seen, numel),
				 errhint("Check the models with soup.verify.")));
	soup_restore_search_path(nest_level);
	SPI_finish();

	values[0] = PointerGetDatum(mask);
	{
		double		all = s.l1[0] + s.l1[1];
		double		kept = s.l1[2] + s.l1[3];

		/* mergekit's rescaled_masked_tensor with the L1 norm */
		values[1] = Float8GetDatum(rescale && kept != 0.0 ? all / kept : 1.0);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* soup._della_apply(data, base, mask, offset, scale) */
Datum
soup_della_apply_sql(PG_FUNCTION_ARGS)
{
	SoupTensor *x = PG_GETARG_SOUP_TENSOR_P(0);
	SoupTensor *base = PG_GETARG_SOUP_TENSOR_P(1);
	bytea	   *mask = PG_GETARG_BYTEA_PP(2);
	int64		offset = PG_GETARG_INT64(3);
	double		scale = PG_GETARG_FLOAT8(4);
	SoupTensor *r;

	soup_require_float((SoupDtype) x->dtype, "soup._della_apply");
	soup_check_same_layout(x, base, "soup._della_apply");
	if (offset < 0 || offset > PG_INT64_MAX - x->numel - 7 ||
		(uint64) (offset + x->numel + 7) / 8 > VARSIZE_ANY_EXHDR(mask))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup._della_apply: elements " INT64_FORMAT " to " INT64_FORMAT " are outside the mask",
						offset, offset + x->numel)));
	r = soup_tensor_new(SOUP_DT_F64, x->ndim, x->dims);
	soup_trim((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base), 0.0,
			  (double *) SOUP_TENSOR_DATA(r), x->numel);
	soup_della_apply((double *) SOUP_TENSOR_DATA(r), (unsigned char *) VARDATA_ANY(mask),
					 (uint64) offset, scale, (double *) SOUP_TENSOR_DATA(r), x->numel);
	PG_RETURN_SOUP_TENSOR_P(r);
}
