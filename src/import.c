/*
 * import.c - soup.import_safetensors: a safetensors file (or a sharded set)
 * becomes one model in the catalog.
 *
 * Every header is read and validated before the first row is written, and
 * data is streamed one chunk at a time, so memory is bounded by a chunk and
 * a bad file fails before it costs anything.  The function runs inside the
 * caller's transaction: any error leaves no rows behind.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "fileio.h"
#include "pg_soup.h"
#include "progress.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_import_safetensors);

/* One file to import and its validated header. */
typedef struct ImportFile
{
	char	   *path;
	int			fd;
	uint64		hdr_len;
	StHeader	header;
} ImportFile;

typedef struct ImportCtx
{
	int64		model_id;
	int32		chunk_elems;
	int32		ordinal;
	SPIPlanPtr	tensor_plan;
	SPIPlanPtr	chunk_plan;
	MemoryContext chunk_ctx;
} ImportCtx;

/* Names in files are UTF-8; the database may use another encoding. */
static char *
utf8_to_server(const char *s)
{
	return pg_any_to_server(s, strlen(s), PG_UTF8);
}

static void
open_file(ImportFile *f, bool keep_raw, char **raw)
{
	off_t		size;

	f->fd = soup_open_read(f->path, &size);
	soup_read_st_header(f->fd, f->path, size, &f->header, &f->hdr_len,
						keep_raw ? raw : NULL);
}

/* __metadata__ as a JSON object text, or NULL when the file has none. */
static char *
metadata_json(const StHeader *h)
{
	char	   *json = st_metadata_json(h);

	return json ? utf8_to_server(json) : NULL;
}

/* ---- sharded checkpoints ---- */

static char *
read_index(const char *path, StIndex *idx)
{
	off_t		size;
	int			fd = soup_open_read(path, &size);
	char	   *json;
	char	   *msg = NULL;
	StError		err;

	if (size > ST_MAX_HEADER_LEN)
		soup_raise_st_error(ST_ERR_HEADER_TOO_LARGE, path, "index file too large");
	json = palloc(size + 1);
	soup_read_exact(fd, path, json, size, 0);
	json[size] = '\0';
	CloseTransientFile(fd);
	err = st_parse_index(json, size, idx, &msg);
	if (err != ST_OK)
		soup_raise_st_error(err, path, msg);
	return json;
}

/* The shards' headers side by side, as st_check_shards wants them. */
static StHeader *
shard_headers(ImportFile *files, int nfiles)
{
	StHeader   *headers = palloc(sizeof(StHeader) * Max(nfiles, 1));

	for (int f = 0; f < nfiles; f++)
		headers[f] = files[f].header;
	return headers;
}

/*
 * Open every shard an index names and check that each tensor sits in the
 * shard the index says, and nowhere else.
 */
static ImportFile *
open_shards(const char *index_path, const StIndex *idx)
{
	char	   *dir = pstrdup(index_path);
	ImportFile *files = palloc0(sizeof(ImportFile) * Max(idx->nfiles, 1));
	int			bad_file = -1;
	char	   *msg = NULL;
	StError		err;

	get_parent_directory(dir);
	for (int f = 0; f < idx->nfiles; f++)
	{
		files[f].path = psprintf("%s/%s", dir, idx->files[f]);
		open_file(&files[f], false, NULL);
	}
	err = st_check_shards(idx, shard_headers(files, idx->nfiles), &bad_file, &msg);
	if (err != ST_OK)
		soup_raise_st_error(err, bad_file >= 0 ? files[bad_file].path : index_path, msg);
	return files;
}

/* Metadata of a sharded model: the shards' __metadata__, first value wins. */
static char *
shards_metadata_json(ImportFile *files, int nfiles)
{
	StHeader	merged = {0};

	st_merge_metadata(shard_headers(files, nfiles), nfiles, &merged);
	return metadata_json(&merged);
}

/* ---- catalog rows ---- */

static int64
insert_model(const char *model, text *run, Datum step, bool step_null,
			 const char *metadata, const char *source, bytea *header)
{
	Oid			argtypes[6] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, BYTEAOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = CStringGetTextDatum(model);
	values[1] = run ? PointerGetDatum(run) : (Datum) 0;
	nulls[1] = run ? ' ' : 'n';
	values[2] = step;
	nulls[2] = step_null ? 'n' : ' ';
	values[3] = metadata ? CStringGetTextDatum(metadata) : (Datum) 0;
	nulls[3] = metadata ? ' ' : 'n';
	values[4] = CStringGetTextDatum(source);
	values[5] = header ? PointerGetDatum(header) : (Datum) 0;
	nulls[5] = header ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO soup.models "
							  "(name, kind, run, step, metadata, source, header) "
							  "VALUES ($1, 'checkpoint', $2, $3, $4::jsonb, $5::jsonb, $6) "
							  "RETURNING id",
							  6, argtypes, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert into soup.models");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

static void
prepare_plans(ImportCtx *ctx)
{
	Oid			targs[7] = {INT8OID, TEXTOID, INT4OID, TEXTOID, INT8ARRAYOID, INT8OID, INT4OID};

	ctx->tensor_plan = SPI_prepare("INSERT INTO soup.tensors "
								   "(model_id, name, ordinal, dtype, shape, numel, chunk_elems) "
								   "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, targs);
	if (ctx->tensor_plan == NULL)
		elog(ERROR, "could not prepare catalog inserts: %s",
			 SPI_result_code_string(SPI_result));
	ctx->chunk_plan = soup_prepare_chunk_insert();
}

static void
insert_tensor_row(ImportCtx *ctx, const StTensor *t, const char *name)
{
	Datum	   *dims = palloc(sizeof(Datum) * Max(t->ndim, 1));
	Datum		values[7];

	for (int i = 0; i < t->ndim; i++)
		dims[i] = Int64GetDatum(t->shape[i]);
	values[0] = Int64GetDatum(ctx->model_id);
	values[1] = CStringGetTextDatum(name);
	values[2] = Int32GetDatum(ctx->ordinal++);
	values[3] = CStringGetTextDatum(soup_dtype_name(t->dtype));
	values[4] = PointerGetDatum(construct_array(dims, t->ndim, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = Int64GetDatum(t->numel);
	values[6] = Int32GetDatum(ctx->chunk_elems);
	if (SPI_execute_plan(ctx->tensor_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into soup.tensors");
}

/* Stream one tensor's bytes from the file into chunk rows. */
static void
import_tensor(ImportCtx *ctx, ImportFile *f, const StTensor *t)
{
	char	   *name = utf8_to_server(t->name);
	int			es = soup_dtype_size(t->dtype);
	off_t		base = 8 + f->hdr_len + t->begin;
	text	   *tensor = cstring_to_text(name);

	insert_tensor_row(ctx, t, name);
	for (int64 off = 0, chunk = 0; off < t->numel; off += ctx->chunk_elems, chunk++)
	{
		MemoryContext old = MemoryContextSwitchTo(ctx->chunk_ctx);
		int32		len = (int32) Min(t->numel - off, (int64) ctx->chunk_elems);
		SoupTensor *c = soup_tensor_new_1d(t->dtype, len);

		CHECK_FOR_INTERRUPTS();
		if (chunk > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("tensor \"%s\" needs too many chunks", name),
					 errhint("Raise soup.chunk_elems.")));
		soup_read_exact(f->fd, f->path, SOUP_TENSOR_DATA(c), (size_t) len * es,
						base + off * es);
		soup_insert_chunk(ctx->chunk_plan, ctx->model_id, tensor, (int32) chunk, c);
		MemoryContextSwitchTo(old);
		MemoryContextReset(ctx->chunk_ctx);
	}
}

/* Report the import's totals: every chunk and byte the files will give. */
static bool
begin_progress(ImportCtx *ctx, ImportFile *files, int nfiles)
{
	int64		chunks = 0;
	int64		bytes = 0;

	for (int f = 0; f < nfiles; f++)
		for (int t = 0; t < files[f].header.ntensors; t++)
		{
			const StTensor *st = &files[f].header.tensors[t];

			chunks += (st->numel + ctx->chunk_elems - 1) / ctx->chunk_elems;
			bytes += st->end - st->begin;
		}
	return soup_progress_begin(SOUP_PROGRESS_IMPORT, ctx->model_id, chunks, bytes);
}

/* Chunks count their progress as they are inserted (soup._chunk_written). */
static void
import_files(ImportCtx *ctx, ImportFile *files, int nfiles)
{
	bool		reporting = begin_progress(ctx, files, nfiles);

	for (int f = 0; f < nfiles; f++)
	{
		for (int t = 0; t < files[f].header.ntensors; t++)
			import_tensor(ctx, &files[f], &files[f].header.tensors[t]);
		CloseTransientFile(files[f].fd);
	}
	if (reporting)
		soup_progress_end();
}

static void
check_model_absent(const char *model)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(model)};

	if (SPI_execute_with_args("SELECT 1 FROM soup.models WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not query soup.models");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", model)));
}

static char *
source_json(const char *path, const StIndex *idx)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"format\":\"safetensors\",\"path\":");
	escape_json(&buf, path);
	if (idx)
	{
		appendStringInfoString(&buf, ",\"shards\":[");
		for (int i = 0; i < idx->nfiles; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, utf8_to_server(idx->files[i]));
		}
		appendStringInfoChar(&buf, ']');
		if (idx->metadata_json)
		{
			appendStringInfoString(&buf, ",\"index_metadata\":");
			appendStringInfoString(&buf, utf8_to_server(idx->metadata_json));
		}
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * soup.import_safetensors(path text, model text, run text, step bigint)
 * RETURNS bigint: the new model's id.
 */
Datum
soup_import_safetensors(PG_FUNCTION_ARGS)
{
	char	   *path;
	char	   *model;
	ImportFile *files;
	int			nfiles;
	StIndex		idx;
	bool		sharded;
	char	   *raw = NULL;
	bytea	   *header = NULL;
	ImportCtx	ctx = {0};
	int			nest_level;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("path and model must not be null")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	model = text_to_cstring(PG_GETARG_TEXT_PP(1));
	soup_check_file_privilege(false, "soup.import_safetensors");
	soup_check_absolute_path(path);
	soup_check_model_name(model);

	sharded = st_is_index_path(path);
	if (sharded)
	{
		read_index(path, &idx);
		files = open_shards(path, &idx);
		nfiles = idx.nfiles;
	}
	else
	{
		files = palloc0(sizeof(ImportFile));
		files[0].path = path;
		open_file(&files[0], true, &raw);
		nfiles = 1;
		header = (bytea *) palloc(VARHDRSZ + files[0].hdr_len);
		SET_VARSIZE(header, VARHDRSZ + files[0].hdr_len);
		memcpy(VARDATA(header), raw, files[0].hdr_len);
	}

	SPI_connect();
	nest_level = soup_pin_search_path();
	check_model_absent(model);
	ctx.model_id = insert_model(model, PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
								PG_ARGISNULL(3) ? 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3),
								sharded ? shards_metadata_json(files, nfiles)
								: metadata_json(&files[0].header),
								source_json(path, sharded ? &idx : NULL), header);
	ctx.chunk_elems = soup_chunk_elems;
	ctx.chunk_ctx = AllocSetContextCreate(CurrentMemoryContext, "soup import chunk",
										  ALLOCSET_DEFAULT_SIZES);
	prepare_plans(&ctx);
	import_files(&ctx, files, nfiles);
	soup_restore_search_path(nest_level);
	SPI_finish();
	PG_RETURN_INT64(ctx.model_id);
}
