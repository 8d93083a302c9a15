/*
 * rechunk.c - soup._rechunk_into: copy a model's tensors into another
 * model's chunk layout.
 *
 * Chunk k of a tensor holds elements [k * chunk_elems, (k + 1) *
 * chunk_elems) of the flattened tensor, so a layout is only a way of cutting
 * the same bytes: the copy streams the source's chunks in order and cuts
 * them again, holding one source chunk and one target chunk at a time.
 * soup.rechunk (in place) and soup.merge (models stored in different
 * layouts) are built on it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_rechunk_into);

/* One tensor of the target model, and where its copy has got to. */
typedef struct Target
{
	const char *src_name;		/* the source model, for errors */
	int64		model_id;
	text	   *name;
	const char *cname;
	SoupDtype	dtype;
	int64		numel;
	int32		chunk_elems;
	SPIPlanPtr	insert_plan;
	SoupTensor *out;			/* the chunk being filled */
	int32		out_chunk;
	int32		out_fill;		/* elements in out */
	int64		done;			/* elements of the tensor written */
	int64		written;		/* chunks inserted */
	MemoryContext out_ctx;
} Target;

static void
damaged(const char *model, const char *tensor, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model \"%s\" is damaged: tensor \"%s\" %s", model, tensor, what),
			 errhint("soup.verify(model) lists its problems.")));
}

/* Append n elements to the target, inserting each chunk once it is full. */
static void
append(Target *t, const char *data, int64 n)
{
	int			es = soup_dtype_size(t->dtype);

	while (n > 0)
	{
		int32		room;
		int32		take;

		if (t->out == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(t->out_ctx);

			t->out = soup_tensor_new_1d(t->dtype,
										(int32) Min((int64) t->chunk_elems,
													t->numel - t->done));
			MemoryContextSwitchTo(old);
			t->out_fill = 0;
		}
		room = t->out->numel - t->out_fill;
		take = (int32) Min((int64) room, n);
		memcpy((char *) SOUP_TENSOR_DATA(t->out) + (Size) t->out_fill * es, data,
			   (Size) take * es);
		t->out_fill += take;
		t->done += take;
		data += (Size) take * es;
		n -= take;
		if (t->out_fill == t->out->numel)
		{
			soup_insert_chunk(t->insert_plan, t->model_id, t->name, t->out_chunk++, t->out);
			t->written++;
			t->out = NULL;
			MemoryContextReset(t->out_ctx);
		}
	}
}

/* Stream the source's chunks of one tensor, in order, into the target. */
static void
copy_tensor(int64 src, SPIPlanPtr read_plan, Target *t)
{
	Datum		args[2] = {Int64GetDatum(src), PointerGetDatum(t->name)};
	Portal		portal = SPI_cursor_open(NULL, read_plan, args, NULL, true);
	int32		next = 0;

	for (;;)
	{
		SPITupleTable *batch;

		SPI_cursor_fetch(portal, true, 4);
		/* the inserts below replace SPI_tuptable: keep the batch */
		batch = SPI_tuptable;
		if (batch->numvals == 0)
			break;
		for (uint64 r = 0; r < batch->numvals; r++)
		{
			bool		isnull;
			int32		chunk = DatumGetInt32(SPI_getbinval(batch->vals[r], batch->tupdesc, 1,
															&isnull));
			Datum		d = SPI_getbinval(batch->vals[r], batch->tupdesc, 2, &isnull);
			SoupTensor *c;

			CHECK_FOR_INTERRUPTS();
			if (chunk != next)
				damaged(t->src_name, t->cname, psprintf("lacks chunk %d", next));
			c = DatumGetSoupTensorP(d);
			if (c->dtype != t->dtype || c->numel <= 0 || t->done + c->numel > t->numel)
				damaged(t->src_name, t->cname,
						psprintf("has a chunk %d that does not fit its dtype or size", chunk));
			append(t, SOUP_TENSOR_DATA(c), c->numel);
			if ((Pointer) c != DatumGetPointer(d))
				pfree(c);
			next++;
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	if (t->done != t->numel)
		damaged(t->src_name, t->cname, "has chunks missing");
}

/*
 * soup._rechunk_into(src bigint, dst bigint) RETURNS bigint: write the
 * chunks of every tensor dst's catalog lists, cut as dst's catalog says,
 * from src's chunks of the same tensor.  dst has catalog rows and no chunks.
 * Returns the chunks written.
 */
Datum
soup_rechunk_into(PG_FUNCTION_ARGS)
{
	int64		src = PG_GETARG_INT64(0);
	int64		dst = PG_GETARG_INT64(1);
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[1] = {Int64GetDatum(dst)};
	SPIPlanPtr	read_plan;
	SPIPlanPtr	insert_plan;
	SPITupleTable *tensors;
	int64		written = 0;
	int			nest_level;
	char	   *src_name;
	MemoryContext out_ctx = AllocSetContextCreate(CurrentMemoryContext, "soup rechunk",
												  ALLOCSET_DEFAULT_SIZES);

	SPI_connect();
	nest_level = soup_pin_search_path();
	read_plan = SPI_prepare("SELECT chunk, data FROM soup.chunks "
							"WHERE model_id = $1 AND tensor = $2 ORDER BY chunk", 2, argtypes);
	if (read_plan == NULL)
		elog(ERROR, "soup._rechunk_into: could not prepare: %s",
			 SPI_result_code_string(SPI_result));
	insert_plan = soup_prepare_chunk_insert();
	if (SPI_execute_with_args("SELECT name, dtype, numel, chunk_elems FROM soup.tensors "
							  "WHERE model_id = $1 ORDER BY ordinal",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "soup._rechunk_into: could not query soup.tensors");
	tensors = SPI_tuptable;
	values[0] = Int64GetDatum(src);
	if (SPI_execute_with_args("SELECT name FROM soup.models WHERE id = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "soup._rechunk_into: no model %lld", (long long) src);
	src_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	for (uint64 i = 0; i < tensors->numvals; i++)
	{
		HeapTuple	tup = tensors->vals[i];
		char	   *dtname = SPI_getvalue(tup, tensors->tupdesc, 2);
		bool		isnull;
		Target		t = {0};

		t.src_name = src_name;
		t.model_id = dst;
		t.cname = SPI_getvalue(tup, tensors->tupdesc, 1);
		t.name = cstring_to_text(t.cname);
		t.dtype = soup_dtype_from_name(dtname, strlen(dtname));
		t.numel = DatumGetInt64(SPI_getbinval(tup, tensors->tupdesc, 3, &isnull));
		t.chunk_elems = DatumGetInt32(SPI_getbinval(tup, tensors->tupdesc, 4, &isnull));
		t.insert_plan = insert_plan;
		t.out_ctx = out_ctx;
		copy_tensor(src, read_plan, &t);
		written += t.written;
	}
	soup_restore_search_path(nest_level);
	SPI_finish();
	MemoryContextDelete(out_ctx);
	PG_RETURN_INT64(written);
}
