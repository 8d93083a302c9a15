/*
 * merge_driver.c - soup._merge_fused: the elementwise merges of soup.merge
 * (avg, lawa, ema, fisher, task_arithmetic) in one pass per chunk.
 *
 * The GROUP BY form feeds an aggregate one row at a time, and its state
 * (16 bytes an element) is read and written back once per model.  The
 * driver instead reads the N chunks of a (tensor, chunk) together (the
 * models, then the base or the Fishers) and hands them to a fused kernel
 * that rounds each block into the output as soon as every input has been
 * added in: the same operations as the aggregates, so the same bits.
 *
 * Chunks come from one query per tensor, ordered by (chunk, input), and the
 * result of each chunk is inserted before the next is read, so memory holds
 * N + 1 chunks whatever the model's size.  A chunk that some input lacks is
 * skipped; the caller compares the count written with the catalog's.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "kernels/accum.h"
#include "kernels/fused.h"
#include "pg_soup.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_merge_fused);

typedef enum FusedMethod
{
	FUSED_AVG,
	FUSED_SUM,					/* the average's sum, not divided */
	FUSED_EMA,
	FUSED_FISHER,
	FUSED_TASK
} FusedMethod;

typedef struct FusedMerge
{
	FusedMethod method;
	const char *fname;			/* the aggregate it stands for, in errors */
	int64		new_id;
	int			k;				/* models */
	int			ninputs;		/* models, then the base or the Fishers */
	Datum		input_ids;		/* bigint[] of the ninputs model ids */
	double	   *w;				/* k weights */
	double		denom;			/* avg: the weight sum */
	double		param;			/* ema: decay; task: lambda; fisher: floor */
	SPIPlanPtr	read_plan;
	SPIPlanPtr	insert_plan;
	MemoryContext chunk_ctx;
	SoupTensor **in;			/* the current chunk of each input */
	const void **data;			/* and its elements */
	SoupDtype  *fdts;			/* fisher: the Fishers' dtypes */
	int64		written;
} FusedMerge;

static FusedMethod
parse_method(const char *method, const char **fname)
{
	if (strcmp(method, "avg") == 0 || strcmp(method, "lawa") == 0)
		return (*fname = "soup.avg_weights", FUSED_AVG);
	/* mergekit's linear without normalize: the weighted sum, divided by 1 */
	if (strcmp(method, "sum") == 0)
		return (*fname = "soup.merge_config (linear, normalize false)", FUSED_SUM);
	if (strcmp(method, "ema") == 0)
		return (*fname = "soup.ema", FUSED_EMA);
	if (strcmp(method, "fisher") == 0)
		return (*fname = "soup.fisher_merge", FUSED_FISHER);
	if (strcmp(method, "task_arithmetic") == 0)
		return (*fname = "soup.task_arithmetic", FUSED_TASK);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("soup._merge_fused: method \"%s\" is not elementwise", method)));
}

/* A bigint[] or float8[] argument as a C array of exactly n values. */
static Datum *
array_values(ArrayType *a, Oid elemtype, int n, const char *what)
{
	Datum	   *values;
	bool	   *nulls;
	int			count;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, &values, &nulls, &count);
	if (count != n)
		elog(ERROR, "soup._merge_fused: %d %s for %d models", count, what, n);
	for (int i = 0; i < count; i++)
		if (nulls[i])
			elog(ERROR, "soup._merge_fused: null among the %s", what);
	return values;
}

static void
prepare_plans(FusedMerge *fm)
{
	Oid			rargs[2] = {INT8ARRAYOID, TEXTOID};

	/* the ordinality tells the inputs apart even if one model plays two parts */
	fm->read_plan = SPI_prepare("SELECT u.ord::int, c.chunk, c.data "
								"FROM unnest($1) WITH ORDINALITY AS u(id, ord) "
								"JOIN soup.chunks c ON c.model_id = u.id AND c.tensor = $2 "
								"ORDER BY c.chunk, u.ord", 2, rargs);
	if (fm->read_plan == NULL)
		elog(ERROR, "soup._merge_fused: could not prepare: %s",
			 SPI_result_code_string(SPI_result));
	fm->insert_plan = soup_prepare_chunk_insert();
}

/* The inputs must agree as the aggregates require (mstate_check). */
static void
check_inputs(FusedMerge *fm, const char *tensor)
{
	const SoupTensor *x = fm->in[0];

	for (int i = 0; i < fm->ninputs; i++)
	{
		const SoupTensor *y = fm->in[i];
		bool		is_fisher = fm->method == FUSED_FISHER && i >= fm->k;

		if (is_fisher)
			soup_require_float((SoupDtype) y->dtype, fm->fname);
		else if (y->dtype != x->dtype)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s: inputs of tensor \"%s\" have dtypes %s and %s", fm->fname,
							tensor, soup_dtype_name((SoupDtype) x->dtype),
							soup_dtype_name((SoupDtype) y->dtype))));
		if (y->numel != x->numel || y->ndim != x->ndim ||
			memcmp(y->dims, x->dims, sizeof(int32) * x->ndim) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s: inputs of tensor \"%s\" have different shapes",
							fm->fname, tensor)));
	}
	soup_require_float((SoupDtype) x->dtype, fm->fname);
}

/*
 * A chunk's value in chunk_ctx.  Detoasting copies a TOASTed value; a small
 * one stored inline would still point into the fetched tuple, which is freed
 * with its batch, so it is copied too.
 */
static SoupTensor *
chunk_value(Datum d)
{
	SoupTensor *t = DatumGetSoupTensorP(d);

	if ((Pointer) t == DatumGetPointer(d))
	{
		SoupTensor *copy = palloc(VARSIZE(t));

		memcpy(copy, t, VARSIZE(t));
		t = copy;
	}
	return t;
}

/* Merge the current chunk of every input into a new value. */
static SoupTensor *
merge_chunk(FusedMerge *fm, const char *tensor)
{
	const SoupTensor *x = fm->in[0];
	SoupDtype	dt = (SoupDtype) x->dtype;
	SoupTensor *r = soup_tensor_new_shaped(dt, x->ndim, x->dims);
	const void **xs = fm->data;
	int			threads = soup_kernel_threads(x->numel);

	check_inputs(fm, tensor);
	for (int i = 0; i < fm->ninputs; i++)
		xs[i] = SOUP_TENSOR_DATA(fm->in[i]);
	switch (fm->method)
	{
		case FUSED_AVG:
		case FUSED_SUM:
			soup_fused_avg(dt, fm->k, xs, fm->w, fm->denom, SOUP_TENSOR_DATA(r),
						   x->numel, threads);
			break;
		case FUSED_EMA:
			soup_fused_ema(dt, fm->k, xs, fm->param, SOUP_TENSOR_DATA(r), x->numel,
						   threads);
			break;
		case FUSED_FISHER:
			for (int i = 0; i < fm->k; i++)
				fm->fdts[i] = (SoupDtype) fm->in[fm->k + i]->dtype;
			soup_fused_fisher(dt, fm->k, xs, fm->fdts, xs + fm->k, fm->w, fm->param,
							  SOUP_TENSOR_DATA(r), x->numel, threads);
			break;
		case FUSED_TASK:
			soup_fused_task(dt, fm->k, xs, xs[fm->k], fm->w, fm->param,
							SOUP_TENSOR_DATA(r), x->numel, threads);
			break;
	}
	return r;
}

/*
 * Merge every chunk of one tensor.  Rows arrive ordered by (chunk, input);
 * a chunk is merged when all ninputs rows are there, in order.
 */
static void
merge_tensor(FusedMerge *fm, const char *name)
{
	text	   *tensor = cstring_to_text(name);
	Datum		args[2] = {fm->input_ids, PointerGetDatum(tensor)};
	Portal		portal = SPI_cursor_open(NULL, fm->read_plan, args, NULL, true);
	int32		cur_chunk = -1;
	int			have = 0;		/* inputs of cur_chunk seen, in order */

	for (;;)
	{
		SPITupleTable *batch;

		SPI_cursor_fetch(portal, true, fm->ninputs);
		/* the inserts below replace SPI_tuptable: keep the batch */
		batch = SPI_tuptable;
		if (batch->numvals == 0)
			break;
		for (uint64 r = 0; r < batch->numvals; r++)
		{
			HeapTuple	tup = batch->vals[r];
			TupleDesc	desc = batch->tupdesc;
			bool		isnull;
			int32		ord = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			int32		chunk = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
			Datum		data = SPI_getbinval(tup, desc, 3, &isnull);
			MemoryContext old;

			CHECK_FOR_INTERRUPTS();
			if (chunk != cur_chunk)
			{
				cur_chunk = chunk;
				have = 0;
				MemoryContextReset(fm->chunk_ctx);
			}
			if (ord != have + 1)
				continue;		/* an input lacks this chunk: skip it */
			old = MemoryContextSwitchTo(fm->chunk_ctx);
			fm->in[have++] = chunk_value(data);
			if (have == fm->ninputs)
			{
				soup_insert_chunk(fm->insert_plan, fm->new_id, tensor, chunk,
								  merge_chunk(fm, name));
				fm->written++;
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	MemoryContextReset(fm->chunk_ctx);
}

/*
 * The float tensors of the first model, in file order; only those named in
 * `only` when it is not NULL (soup.merge_config merges a model in groups of
 * tensors that share their parameters).
 */
static char **
float_tensors(int64 model_id, Datum only, bool only_null, int *n)
{
	Oid			argtypes[2] = {INT8OID, TEXTARRAYOID};
	Datum		values[2] = {Int64GetDatum(model_id), only};
	char		nulls[2] = {' ', only_null ? 'n' : ' '};
	char	  **names;

	if (SPI_execute_with_args("SELECT name FROM soup.tensors WHERE model_id = $1 "
							  "AND dtype IN ('f32', 'f64', 'f16', 'bf16') "
							  "AND ($2 IS NULL OR name = ANY ($2)) ORDER BY ordinal",
							  2, argtypes, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "soup._merge_fused: could not query soup.tensors");
	*n = (int) SPI_processed;
	names = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	return names;
}

/* The weight sum as the aggregates form it; an error where it is zero. */
static double
weight_sum(FusedMerge *fm)
{
	double		wsum = soup_weight_sum(fm->w, fm->k);

	if (wsum == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("%s: the weights sum to zero", fm->fname)));
	return wsum;
}

/*
 * soup._merge_fused(new_id bigint, method text, ids bigint[], weights
 * float8[], extra_ids bigint[], param float8, tensors text[]) RETURNS
 * bigint: the chunks written.  extra_ids: the base (task_arithmetic) or one
 * Fisher per model (fisher), else empty; param: the decay (ema), lambda
 * (task_arithmetic) or floor (fisher); tensors: the tensors to merge, NULL
 * for all.  soup.merge checks the arguments before calling.
 */
Datum
soup_merge_fused(PG_FUNCTION_ARGS)
{
	FusedMerge	fm = {0};
	ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *extra = PG_GETARG_ARRAYTYPE_P(4);
	int			nextra = ArrayGetNItems(ARR_NDIM(extra), ARR_DIMS(extra));
	Datum	   *wd;
	Datum	   *all;
	char	  **tensors;
	int			ntensors;
	int			nest_level;

	for (int i = 0; i < 6; i++)
		if (PG_ARGISNULL(i))
			elog(ERROR, "soup._merge_fused: argument %d is null", i + 1);
	fm.new_id = PG_GETARG_INT64(0);
	fm.method = parse_method(text_to_cstring(PG_GETARG_TEXT_PP(1)), &fm.fname);
	fm.k = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
	fm.ninputs = fm.k + nextra;
	if (fm.k < 1)
		elog(ERROR, "soup._merge_fused: no models");
	if (nextra != (fm.method == FUSED_FISHER ? fm.k : fm.method == FUSED_TASK ? 1 : 0))
		elog(ERROR, "soup._merge_fused: %d extra models for method %s", nextra, fm.fname);
	wd = array_values(PG_GETARG_ARRAYTYPE_P(3), FLOAT8OID, fm.k, "weights");
	fm.w = palloc(sizeof(double) * fm.k);
	for (int i = 0; i < fm.k; i++)
		fm.w[i] = DatumGetFloat8(wd[i]);
	fm.param = PG_GETARG_FLOAT8(5);
	if (fm.method == FUSED_AVG)
		fm.denom = weight_sum(&fm);
	else if (fm.method == FUSED_SUM)
		fm.denom = 1.0;
	else if (fm.method == FUSED_FISHER)
		(void) weight_sum(&fm);

	/* the inputs in order: the models, then the base or the Fishers */
	all = palloc(sizeof(Datum) * fm.ninputs);
	memcpy(all, array_values(ids, INT8OID, fm.k, "ids"), sizeof(Datum) * fm.k);
	if (nextra > 0)
		memcpy(all + fm.k, array_values(extra, INT8OID, nextra, "extra ids"),
			   sizeof(Datum) * nextra);
	fm.input_ids = PointerGetDatum(construct_array(all, fm.ninputs, INT8OID, 8,
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	fm.in = palloc(sizeof(SoupTensor *) * fm.ninputs);
	fm.data = palloc(sizeof(void *) * fm.ninputs);
	fm.fdts = palloc(sizeof(SoupDtype) * fm.k);
	fm.chunk_ctx = AllocSetContextCreate(CurrentMemoryContext, "soup fused merge chunk",
										 ALLOCSET_DEFAULT_SIZES);

	SPI_connect();
	nest_level = soup_pin_search_path();
	prepare_plans(&fm);
	tensors = float_tensors(DatumGetInt64(all[0]), PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6),
							PG_ARGISNULL(6), &ntensors);
	for (int t = 0; t < ntensors; t++)
		merge_tensor(&fm, tensors[t]);
	soup_restore_search_path(nest_level);
	SPI_finish();
	MemoryContextDelete(fm.chunk_ctx);
	PG_RETURN_INT64(fm.written);
}
