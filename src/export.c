/*
 * export.c - a model leaves the database as one safetensors file.
 *
 * A model imported from a single file keeps that file's header bytes; when
 * the catalog still describes exactly that header, it is written back as it
 * was, so the exported file is bit-for-bit the imported one.  Otherwise the
 * header is written in the reference writer's canonical form.  Chunks are
 * streamed through a cursor and checked against the catalog as they go.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "fileio.h"
#include "progress.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_export_safetensors);
PG_FUNCTION_INFO_V1(soup_safetensors_bytea);
PG_FUNCTION_INFO_V1(soup_safetensors_header);

/* Where the bytes go: a file descriptor or a memory buffer. */
typedef struct ExportSink
{
	int			fd;
	const char *path;
	StringInfo	buf;
	bool		header_only;	/* stop after the length prefix and header */
	uint64		written;
} ExportSink;

typedef struct ExportModel
{
	int64		id;
	StHeader	header;
	bytea	   *raw_header;		/* as imported, or NULL */
	int64		n_chunks;		/* chunks of all tensors, for progress */
} ExportModel;

static void
sink_write(ExportSink *sink, const void *data, size_t len)
{
	if (sink->buf)
		appendBinaryStringInfo(sink->buf, data, (int) len);
	else
		soup_write_all(sink->fd, sink->path, data, len);
	sink->written += len;
}

static char *
server_to_utf8(const char *s)
{
	return pg_server_to_any(s, strlen(s), PG_UTF8);
}

static int64
lookup_model(const char *model, bytea **raw_header)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(model)};
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args("SELECT id, header FROM soup.models WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not query soup.models");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", model)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*raw_header = isnull ? NULL : DatumGetByteaPCopy(d);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/* The tensors in file order, with offsets laid out back to back. */
static void
load_tensors(ExportModel *m)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	int64		offset = 0;

	if (SPI_execute_with_args("SELECT name, dtype, shape, numel, n_chunks FROM soup.tensors "
							  "WHERE model_id = $1 ORDER BY ordinal",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not query soup.tensors");
	m->header.ntensors = (int) SPI_processed;
	m->header.tensors = palloc0(sizeof(StTensor) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StTensor   *t = &m->header.tensors[i];
		char	   *dtname = SPI_getvalue(tup, desc, 2);
		bool		isnull;
		ArrayType  *shape = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
		Datum	   *dims;
		int			ndim;

		t->name = server_to_utf8(SPI_getvalue(tup, desc, 1));
		t->dtype = soup_dtype_from_name(dtname, strlen(dtname));
		deconstruct_array(shape, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &dims, NULL, &ndim);
		t->ndim = ndim;
		for (int d = 0; d < ndim; d++)
			t->shape[d] = DatumGetInt64(dims[d]);
		t->numel = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		t->begin = offset;
		offset += t->numel * soup_dtype_size(t->dtype);
		t->end = offset;
		m->n_chunks += DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	}
	m->header.data_len = offset;
}

static void
load_metadata(ExportModel *m)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	int			n;

	if (SPI_execute_with_args("SELECT metadata IS NOT NULL, e.key, e.value "
							  "FROM soup.models m LEFT JOIN LATERAL jsonb_each_text(m.metadata) e ON true "
							  "WHERE m.id = $1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not query soup.models");
	n = (int) SPI_processed;
	m->header.meta_keys = palloc(sizeof(char *) * Max(n, 1));
	m->header.meta_values = palloc(sizeof(char *) * Max(n, 1));
	m->header.has_metadata = n > 0 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0;
	for (int i = 0; i < n; i++)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		char	   *val = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

		if (key == NULL)
			continue;
		m->header.meta_keys[m->header.nmeta] = server_to_utf8(key);
		m->header.meta_values[m->header.nmeta++] = server_to_utf8(val ? val : "null");
	}
}

static bool
same_tensor(const StTensor *a, const StTensor *b)
{
	return strcmp(a->name, b->name) == 0 && a->dtype == b->dtype &&
		a->ndim == b->ndim && a->begin == b->begin && a->end == b->end &&
		memcmp(a->shape, b->shape, sizeof(int64) * a->ndim) == 0;
}

static bool
has_meta(const StHeader *h, const char *key, const char *value)
{
	for (int i = 0; i < h->nmeta; i++)
		if (strcmp(h->meta_keys[i], key) == 0)
			return strcmp(h->meta_values[i], value) == 0;
	return false;
}

/* Does the imported header still describe exactly what the catalog holds? */
static bool
raw_header_matches(const ExportModel *m)
{
	StHeader	orig;
	char	   *msg;
	const StHeader *cur = &m->header;

	if (m->raw_header == NULL ||
		st_parse_header(VARDATA_ANY(m->raw_header), VARSIZE_ANY_EXHDR(m->raw_header),
						&orig, &msg) != ST_OK)
		return false;
	if (orig.ntensors != cur->ntensors || orig.nmeta != cur->nmeta ||
		orig.has_metadata != cur->has_metadata)
		return false;
	for (int i = 0; i < cur->ntensors; i++)
		if (!same_tensor(&orig.tensors[i], &cur->tensors[i]))
			return false;
	for (int i = 0; i < cur->nmeta; i++)
		if (!has_meta(&orig, cur->meta_keys[i], cur->meta_values[i]))
			return false;
	return true;
}

static void
write_header(ExportSink *sink, const ExportModel *m, uint64 *total)
{
	StringInfoData json;
	unsigned char lenbuf[8];
	uint64		n;

	initStringInfo(&json);
	if (raw_header_matches(m))
		appendBinaryStringInfo(&json, VARDATA_ANY(m->raw_header),
							   VARSIZE_ANY_EXHDR(m->raw_header));
	else
		st_write_header(&m->header, &json);
	n = json.len;
	*total = 8 + n + m->header.data_len;
	if (sink->buf && !sink->header_only && *total > MaxAllocSize - VARHDRSZ - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model is too large for a bytea value (" UINT64_FORMAT " bytes)",
						*total),
				 errhint("Use soup.export_safetensors to write it to a file.")));
	if (sink->buf && !sink->header_only)
		enlargeStringInfo(sink->buf, (int) *total);
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (unsigned char) (n >> (8 * i));
	sink_write(sink, lenbuf, 8);
	sink_write(sink, json.data, json.len);
	pfree(json.data);
}

static void
damaged(const char *model, const char *tensor, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model \"%s\" is damaged: tensor \"%s\" %s", model, tensor, what)));
}

/* Stream the chunks in file order, checking each against the catalog. */
static void
write_data(ExportSink *sink, const char *model, const ExportModel *m)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	SPIPlanPtr	plan;
	Portal		portal;
	int			ti = 0;
	int64		done = 0;		/* elements of tensor ti written so far */
	int32		next_chunk = 0;

	plan = SPI_prepare("SELECT t.ordinal, c.chunk, c.data FROM soup.chunks c "
					   "JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor "
					   "WHERE c.model_id = $1 ORDER BY t.ordinal, c.chunk",
					   1, argtypes);
	portal = SPI_cursor_open(NULL, plan, values, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 8);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			bool		isnull;
			int32		ord = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
			int32		chunk = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull);
			SoupTensor *c;
			const StTensor *t;

			CHECK_FOR_INTERRUPTS();
			while (ti < m->header.ntensors && done == m->header.tensors[ti].numel &&
				   ord > ti)
				ti++, done = 0, next_chunk = 0;
			if (ti >= m->header.ntensors || ord != ti)
				damaged(model, ti < m->header.ntensors ? m->header.tensors[ti].name : "?",
						"has chunks missing or out of place");
			t = &m->header.tensors[ti];
			if (isnull || chunk != next_chunk)
				damaged(model, t->name, psprintf("lacks chunk %d", next_chunk));
			c = DatumGetSoupTensorP(d);
			if (c->dtype != t->dtype || c->numel <= 0 || done + c->numel > t->numel)
				damaged(model, t->name,
						psprintf("has a chunk %d that does not fit its dtype or size", chunk));
			sink_write(sink, SOUP_TENSOR_DATA(c), SOUP_TENSOR_NBYTES(c));
			soup_progress_chunk(SOUP_TENSOR_NBYTES(c));
			done += c->numel;
			next_chunk++;
			if ((Pointer) c != DatumGetPointer(d))
				pfree(c);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	/* every remaining tensor must be complete (zero-size ones have no chunks) */
	for (; ti < m->header.ntensors; ti++, done = 0)
		if (done != m->header.tensors[ti].numel)
			damaged(model, m->header.tensors[ti].name, "has chunks missing");
}

static uint64
export_model(const char *model, ExportSink *sink)
{
	ExportModel m = {0};
	uint64		total;
	int			nest_level = soup_pin_search_path();

	m.id = lookup_model(model, &m.raw_header);
	load_tensors(&m);
	load_metadata(&m);
	write_header(sink, &m, &total);
	if (!sink->header_only)
	{
		bool		reporting = soup_progress_begin(SOUP_PROGRESS_EXPORT, m.id, m.n_chunks,
													m.header.data_len);

		write_data(sink, model, &m);
		Assert(sink->written == total);
		if (reporting)
			soup_progress_end();
	}
	soup_restore_search_path(nest_level);
	return sink->written;
}

/* soup.export_safetensors(model text, path text) RETURNS bigint */
Datum
soup_export_safetensors(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *tmp;
	ExportSink	sink = {0};
	mode_t		oumask;

	soup_check_file_privilege(true, "soup.export_safetensors");
	soup_check_absolute_path(path);
	/* write beside the target, then rename: no reader sees half a file */
	tmp = psprintf("%s.soup-tmp.%d", path, MyProcPid);
	sink.path = tmp;
	/* files readable by others, as COPY TO writes them */
	oumask = umask(S_IWGRP | S_IWOTH);
	sink.fd = OpenTransientFilePerm(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
									S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
	umask(oumask);
	if (sink.fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for writing: %m", tmp)));
	PG_TRY();
	{
		SPI_connect();
		export_model(model, &sink);
		SPI_finish();
		if (pg_fsync(sink.fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not fsync file \"%s\": %m", tmp)));
		CloseTransientFile(sink.fd);
		sink.fd = -1;
		durable_rename(tmp, path, ERROR);
	}
	PG_CATCH();
	{
		unlink(tmp);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PG_RETURN_INT64((int64) sink.written);
}

/* The exported file, or just its head, as a bytea. */
static bytea *
export_bytea(const char *model, bool header_only)
{
	StringInfoData buf;
	ExportSink	sink = {0};
	bytea	   *result;

	initStringInfo(&buf);
	/* reserve room for the varlena header in front of the file's bytes */
	appendStringInfoSpaces(&buf, VARHDRSZ);
	sink.buf = &buf;
	sink.header_only = header_only;
	SPI_connect();
	export_model(model, &sink);
	SPI_finish();
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/* soup.safetensors(model text) RETURNS bytea: the file, for small models */
Datum
soup_safetensors_bytea(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(export_bytea(text_to_cstring(PG_GETARG_TEXT_PP(0)), false));
}

/*
 * soup.safetensors_header(model text) RETURNS bytea: the first bytes of the
 * exported file (length prefix and JSON header), for clients that stream the
 * chunks themselves and must write the same file as soup.export_safetensors.
 */
Datum
soup_safetensors_header(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(export_bytea(text_to_cstring(PG_GETARG_TEXT_PP(0)), true));
}
