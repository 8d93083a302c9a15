/*
 * cmd_import.c - pg_soup import FILE|INDEX|DIR --model M [--run R --step S]
 *
 * Reads and validates every header locally (the same parser and checks as
 * soup.import_safetensors), then in one transaction inserts the model's
 * catalog rows and streams its chunks with COPY soup.chunks FROM STDIN
 * (FORMAT binary), each value in soup.tensor's binary form.  Before the
 * commit, soup.verify must find the stored model whole.  The rows are the
 * ones the server-side import writes for the same file, header included,
 * so an export gives back the file bit for bit.
 *
 * A directory is a model folder as the Hugging Face ecosystem writes it:
 * the weights (model.safetensors, the shards of model.safetensors.index.json,
 * or the folder's one .safetensors file) and every other regular file
 * (config.json, tokenizer files, ...), which go to soup.model_files in the
 * same transaction.
 */
#include "client.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "getopt_long.h"
#include "safetensors.h"
#include "tensor_wire.h"

static const char *const import_usage =
"Usage:\n"
"  pg_soup import FILE|INDEX|DIR --model M [OPTION]...\n"
"\n"
"Stores a safetensors file, or a sharded checkpoint given by its\n"
"model.safetensors.index.json, as model M.  A directory is a model folder:\n"
"its weights (model.safetensors, model.safetensors.index.json and its\n"
"shards, or its one .safetensors file) and every other file in it\n"
"(config.json, tokenizer files, ...; 64 MiB at most each) are stored.\n"
"\n"
"Options:\n"
"  -m, --model=M         name of the new model (required)\n"
"      --run=R           training run the checkpoint belongs to\n"
"      --step=S          its training step\n"
"      --chunk-elems=N   elements per stored chunk (default: the server's\n"
"                        soup.chunk_elems)\n"
"  -d, --dbname=CONNINFO database name or connection string\n"
"  -q, --quiet           no progress bar and no summary\n";

typedef struct InFile
{
	char	   *path;
	int			fd;
	uint64		hdr_len;
	char	   *raw;			/* header JSON as read */
	StHeader	header;
} InFile;

typedef struct ImportJob
{
	const char *model;
	const char *run;
	const char *step;
	int32		chunk_elems;
	InFile	   *files;
	int			nfiles;
	StIndex		index;
	bool		sharded;
	char	   *source_path;
	uint64		data_bytes;
	bool		folder;			/* a model folder: other files too */
	const char *weights_file;	/* its single weights file, when not model.safetensors */
	char	  **other_files;	/* paths of the folder's other files */
	char	  **other_names;
	int			nother;
} ImportJob;

/* The CHECK on soup.model_files: files beside the weights are small. */
#define SOUP_MAX_FOLDER_FILE (64 * 1024 * 1024)

static pg_attribute_noreturn() void
bad_file(const char *path, const char *msg)
{
	soup_fatal(EXIT_FILE, "invalid safetensors file \"%s\": %s", path, msg);
}

static void
read_file_header(InFile *f)
{
	uint64		size;
	unsigned char lenbuf[8] = {0};
	char	   *msg = NULL;

	f->fd = soup_open_file(f->path, &size);
	if (size >= 8)
		soup_pread_exact(f->fd, f->path, lenbuf, 8, 0);
	if (st_check_prefix(lenbuf, size, &f->hdr_len, &msg) != ST_OK)
		bad_file(f->path, msg);
	f->raw = palloc(f->hdr_len + 1);
	soup_pread_exact(f->fd, f->path, f->raw, f->hdr_len, 8);
	f->raw[f->hdr_len] = '\0';
	if (st_parse_header(f->raw, f->hdr_len, &f->header, &msg) != ST_OK ||
		st_check_extent(&f->header, size, f->hdr_len, &msg) != ST_OK)
		bad_file(f->path, msg);
}

/* The index, then every shard it names, checked against each other. */
static void
read_sharded(ImportJob *job, const char *index_path)
{
	size_t		len;
	char	   *json = soup_read_whole(index_path, ST_MAX_HEADER_LEN, &len);
	char	   *dir = pstrdup(index_path);
	StHeader   *headers;
	char	   *msg = NULL;
	int			bad = -1;

	if (st_parse_index(json, len, &job->index, &msg) != ST_OK)
		bad_file(index_path, msg);
	get_parent_directory(dir);
	job->nfiles = job->index.nfiles;
	job->files = palloc0(sizeof(InFile) * Max(job->nfiles, 1));
	headers = palloc(sizeof(StHeader) * Max(job->nfiles, 1));
	for (int f = 0; f < job->nfiles; f++)
	{
		job->files[f].path = dir[0] ? psprintf("%s/%s", dir, job->index.files[f])
			: pstrdup(job->index.files[f]);
		read_file_header(&job->files[f]);
		headers[f] = job->files[f].header;
	}
	if (st_check_shards(&job->index, headers, &bad, &msg) != ST_OK)
		bad_file(bad >= 0 ? job->files[bad].path : index_path, msg);
}

static bool
is_weights_name(const ImportJob *job, const char *name)
{
	if (strcmp(name, "model.safetensors.index.json") == 0 && job->sharded)
		return true;
	for (int f = 0; f < job->nfiles; f++)
	{
		const char *base = strrchr(job->files[f].path, '/');

		if (strcmp(base ? base + 1 : job->files[f].path, name) == 0)
			return true;
	}
	return false;
}

static int
safetensors_entry(const struct dirent *e)
{
	size_t		len = strlen(e->d_name);

	return len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0;
}

static int
not_dot_entry(const struct dirent *e)
{
	return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* Which file(s) of a folder hold the weights. */
static char *
folder_weights_path(ImportJob *job, const char *dir)
{
	char	   *index = psprintf("%s/model.safetensors.index.json", dir);
	char	   *single = psprintf("%s/model.safetensors", dir);
	struct dirent **list;
	int			n;

	if (access(index, F_OK) == 0)
		return index;
	if (access(single, F_OK) == 0)
		return single;
	n = scandir(dir, &list, safetensors_entry, alphasort);
	if (n < 0)
		soup_fatal(EXIT_FILE, "could not read directory \"%s\": %m", dir);
	if (n != 1)
		soup_fatal(EXIT_FILE, "directory \"%s\" holds neither model.safetensors nor "
				   "model.safetensors.index.json%s", dir,
				   n > 1 ? psprintf(" (and %d other .safetensors files: which?)", n) : "");
	job->weights_file = pstrdup(list[0]->d_name);
	return psprintf("%s/%s", dir, list[0]->d_name);
}

/* The folder's other entries: regular files (links followed), small enough. */
static void
read_folder_files(ImportJob *job, const char *dir)
{
	struct dirent **list;
	int			n = scandir(dir, &list, not_dot_entry, alphasort);

	if (n < 0)
		soup_fatal(EXIT_FILE, "could not read directory \"%s\": %m", dir);
	job->other_files = palloc(sizeof(char *) * Max(n, 1));
	job->other_names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *path = psprintf("%s/%s", dir, list[i]->d_name);
		struct stat st;

		if (is_weights_name(job, list[i]->d_name))
			continue;
		if (stat(path, &st) != 0)
			soup_fatal(EXIT_FILE, "could not stat \"%s\": %m", path);
		if (!S_ISREG(st.st_mode))
			soup_fatal(EXIT_FILE, "\"%s\" is not a regular file: a model folder holds files only",
					   path);
		if (st.st_size > SOUP_MAX_FOLDER_FILE)
			soup_fatal(EXIT_FILE, "\"%s\" is %lld bytes, over the limit of %d for a file beside the weights",
					   path, (long long) st.st_size, SOUP_MAX_FOLDER_FILE);
		job->other_files[job->nother] = path;
		job->other_names[job->nother++] = pstrdup(list[i]->d_name);
	}
}

static void
read_inputs(ImportJob *job, const char *path)
{
	char		resolved[PATH_MAX];
	struct stat st;
	const char *dir = NULL;

	job->source_path = realpath(path, resolved) ? pstrdup(resolved) : pstrdup(path);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
	{
		job->folder = true;
		dir = path;
		path = folder_weights_path(job, dir);
	}
	job->sharded = st_is_index_path(path);
	if (job->sharded)
		read_sharded(job, path);
	else
	{
		job->nfiles = 1;
		job->files = palloc0(sizeof(InFile));
		job->files[0].path = pstrdup(path);
		read_file_header(&job->files[0]);
	}
	for (int f = 0; f < job->nfiles; f++)
		job->data_bytes += job->files[f].header.data_len;
	if (dir)
		read_folder_files(job, dir);
}

/* ---- the catalog rows ---- */

static char *
job_metadata_json(const ImportJob *job)
{
	StHeader	merged = {0};
	StHeader   *headers;

	if (!job->sharded)
		return st_metadata_json(&job->files[0].header);
	headers = palloc(sizeof(StHeader) * Max(job->nfiles, 1));
	for (int f = 0; f < job->nfiles; f++)
		headers[f] = job->files[f].header;
	st_merge_metadata(headers, job->nfiles, &merged);
	return st_metadata_json(&merged);
}

/* Where the model came from, as soup.import_safetensors records it. */
static char *
source_json(const ImportJob *job)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"format\":\"safetensors\",\"path\":");
	st_write_json_string(&buf, job->source_path);
	appendStringInfoString(&buf, ",\"client\":\"pg_soup\"");
	if (job->folder)
		appendStringInfoString(&buf, ",\"folder\":true");
	if (job->weights_file)
	{
		appendStringInfoString(&buf, ",\"weights_file\":");
		st_write_json_string(&buf, job->weights_file);
	}
	if (job->sharded)
	{
		appendStringInfoString(&buf, ",\"shards\":[");
		for (int i = 0; i < job->index.nfiles; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			st_write_json_string(&buf, job->index.files[i]);
		}
		appendStringInfoChar(&buf, ']');
		if (job->index.metadata_json)
			appendStringInfo(&buf, ",\"index_metadata\":%s", job->index.metadata_json);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static char *
insert_model(PGconn *conn, const ImportJob *job)
{
	const char *values[6];
	int			lengths[6] = {0};
	int			formats[6] = {0};
	PGresult   *res;
	char	   *id;

	values[0] = job->model;
	values[1] = job->run;
	values[2] = job->step;
	values[3] = job_metadata_json(job);
	values[4] = source_json(job);
	/* a single file keeps its header bytes, so exports are bit for bit */
	values[5] = job->sharded ? NULL : job->files[0].raw;
	lengths[5] = job->sharded ? 0 : (int) job->files[0].hdr_len;
	formats[5] = 1;
	res = soup_check(conn, PQexecParams(conn,
										"INSERT INTO soup.models "
										"(name, kind, run, step, metadata, source, header) "
										"VALUES ($1, 'checkpoint', $2, $3::bigint, $4::jsonb, $5::jsonb, $6::bytea) "
										"RETURNING id",
										6, NULL, values, lengths, formats, 0));
	id = pstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return id;
}

static void
copy_tensor_rows(PGconn *conn, const ImportJob *job, const char *model_id)
{
	StringInfoData line;
	int			ordinal = 0;

	soup_copy_start(conn, "COPY soup.tensors (model_id, name, ordinal, dtype, shape, numel, chunk_elems) "
			  "FROM STDIN");
	initStringInfo(&line);
	for (int f = 0; f < job->nfiles; f++)
	{
		const StHeader *h = &job->files[f].header;

		for (int t = 0; t < h->ntensors; t++)
		{
			const StTensor *st = &h->tensors[t];

			resetStringInfo(&line);
			appendStringInfo(&line, "%s\t", model_id);
			soup_append_copy_text(&line, st->name);
			appendStringInfo(&line, "\t%d\t%s\t{", ordinal++, soup_dtype_name(st->dtype));
			for (int d = 0; d < st->ndim; d++)
				appendStringInfo(&line, d ? "," INT64_FORMAT : INT64_FORMAT, st->shape[d]);
			appendStringInfo(&line, "}\t" INT64_FORMAT "\t%d\n", st->numel, job->chunk_elems);
			soup_copy_put(conn, line.data, line.len);
		}
	}
	soup_copy_end(conn, "could not store the tensors");
	pfree(line.data);
}

/* ---- the chunks, as COPY BINARY rows ---- */

static void
put_int16(StringInfo buf, int v)
{
	appendStringInfoChar(buf, (char) ((v >> 8) & 0xff));
	appendStringInfoChar(buf, (char) (v & 0xff));
}

static void
put_int32(StringInfo buf, uint32 v)
{
	for (int s = 24; s >= 0; s -= 8)
		appendStringInfoChar(buf, (char) ((v >> s) & 0xff));
}

static void
put_int64(StringInfo buf, uint64 v)
{
	for (int s = 56; s >= 0; s -= 8)
		appendStringInfoChar(buf, (char) ((v >> s) & 0xff));
}

/* Everything of a chunk's row up to its data bytes. */
static void
chunk_row_head(StringInfo row, int64 model_id, const char *name, int32 chunk,
			   SoupDtype dtype, int32 len, size_t nbytes)
{
	resetStringInfo(row);
	put_int16(row, 4);
	put_int32(row, 8);
	put_int64(row, (uint64) model_id);
	put_int32(row, (uint32) strlen(name));
	appendStringInfoString(row, name);
	put_int32(row, 4);
	put_int32(row, (uint32) chunk);
	put_int32(row, (uint32) (SOUP_TENSOR_WIRE_1D_HEADER + nbytes));
	appendStringInfoChar(row, SOUP_TENSOR_SEND_VERSION);
	appendStringInfoChar(row, (char) dtype);
	appendStringInfoChar(row, 1);
	put_int32(row, (uint32) len);
}

static void
copy_chunks(PGconn *conn, const ClientOptions *opts, const ImportJob *job, int64 model_id)
{
	static const char signature[11] = "PGCOPY\n\377\r\n\0";
	StringInfoData row;
	char	   *data = NULL;
	size_t		data_cap = 0;
	Progress	progress;

	soup_copy_start(conn, "COPY soup.chunks (model_id, tensor, chunk, data) FROM STDIN (FORMAT binary)");
	initStringInfo(&row);
	appendBinaryStringInfo(&row, signature, sizeof(signature));
	put_int32(&row, 0);			/* flags */
	put_int32(&row, 0);			/* header extension length */
	soup_copy_put(conn, row.data, row.len);
	progress_start(&progress, opts, job->model, job->data_bytes);
	for (int f = 0; f < job->nfiles; f++)
	{
		InFile	   *in = &job->files[f];

		for (int t = 0; t < in->header.ntensors; t++)
		{
			const StTensor *st = &in->header.tensors[t];
			int			es = soup_dtype_size(st->dtype);

			for (int64 off = 0, chunk = 0; off < st->numel; off += job->chunk_elems, chunk++)
			{
				int32		len = (int32) Min(st->numel - off, (int64) job->chunk_elems);
				size_t		nbytes = (size_t) len * es;

				if (chunk > PG_INT32_MAX)
					soup_fatal(EXIT_USAGE, "tensor \"%s\" needs too many chunks: raise --chunk-elems",
							   st->name);
				if (nbytes > data_cap)
				{
					free(data);
					data = pg_malloc(nbytes);
					data_cap = nbytes;
				}
				soup_pread_exact(in->fd, in->path, data, nbytes,
								 8 + in->hdr_len + st->begin + (uint64) off * es);
				chunk_row_head(&row, model_id, st->name, (int32) chunk, st->dtype, len, nbytes);
				soup_copy_put(conn, row.data, row.len);
				soup_copy_put(conn, data, nbytes);
				progress_add(&progress, nbytes);
			}
		}
		close(in->fd);
	}
	free(data);
	resetStringInfo(&row);
	put_int16(&row, -1);		/* end of data */
	soup_copy_put(conn, row.data, row.len);
	soup_copy_end(conn, "could not store the chunks");
	progress_finish(&progress);
}

/* The folder's other files, bytes as they are, in the import's transaction. */
static void
insert_folder_files(PGconn *conn, const ImportJob *job, const char *model_id)
{
	for (int i = 0; i < job->nother; i++)
	{
		size_t		len;
		char	   *data = soup_read_whole(job->other_files[i], SOUP_MAX_FOLDER_FILE, &len);
		const char *values[3] = {model_id, job->other_names[i], data};
		int			lengths[3] = {0, 0, (int) len};
		int			formats[3] = {0, 0, 1};

		PQclear(soup_check(conn, PQexecParams(conn,
											  "INSERT INTO soup.model_files (model_id, name, bytes) "
											  "VALUES ($1, $2, $3)",
											  3, NULL, values, lengths, formats, 0)));
		pfree(data);
	}
}

/* The server's own check of the stored model: any problem aborts it. */
static void
verify_model(PGconn *conn, const char *model)
{
	const char *values[1] = {model};
	PGresult   *res = soup_query(conn, "SELECT tensor, chunk, problem FROM soup.verify($1)",
								 1, values, 0);

	if (PQntuples(res) > 0)
		soup_fatal(EXIT_SERVER, "the stored model failed soup.verify: tensor \"%s\" chunk %s: %s",
				   PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	PQclear(res);
}

static int32
server_chunk_elems(PGconn *conn)
{
	PGresult   *res;
	int32		n;

	/* reading a tensor value loads the library, which defines the setting */
	soup_exec(conn, "SELECT 'f32:[]'::soup.tensor");
	res = soup_query(conn, "SELECT pg_catalog.current_setting('soup.chunk_elems')::int", 0, NULL, 0);
	n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

static void
check_model_absent(PGconn *conn, const char *model)
{
	const char *values[1] = {model};
	PGresult   *res = soup_query(conn, "SELECT 1 FROM soup.models WHERE name = $1", 1, values, 0);

	if (PQntuples(res) > 0)
		soup_fatal(EXIT_SERVER, "model \"%s\" already exists", model);
	PQclear(res);
}

static void
parse_import_options(ImportJob *job, ClientOptions *opts, int argc, char **argv,
					 const char **path)
{
	static const struct option long_options[] = {
		{"model", required_argument, NULL, 'm'},
		{"run", required_argument, NULL, 'r'},
		{"step", required_argument, NULL, 's'},
		{"chunk-elems", required_argument, NULL, 'c'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	int			c;
	char	   *end;
	long		n;

	while ((c = getopt_long(argc, argv, "m:" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, import_usage))
			continue;
		switch (c)
		{
			case 'm':
				job->model = optarg;
				break;
			case 'r':
				job->run = optarg;
				break;
			case 's':
				errno = 0;
				(void) strtoll(optarg, &end, 10);
				if (errno || end == optarg || *end)
					usage_error("import", "--step must be an integer, not \"%s\"", optarg);
				job->step = optarg;
				break;
			case 'c':
				errno = 0;
				n = strtol(optarg, &end, 10);
				if (errno || end == optarg || *end || n < 1 || n > SOUP_MAX_CHUNK_ELEMS)
					usage_error("import", "--chunk-elems must be an integer from 1 to %d",
								SOUP_MAX_CHUNK_ELEMS);
				job->chunk_elems = (int32) n;
				break;
			default:
				usage_error("import", "bad option");
		}
	}
	if (optind != argc - 1)
		usage_error("import", "import takes one FILE, INDEX or DIR");
	if (job->model == NULL)
		usage_error("import", "--model is required");
	if (job->model[0] == '\0' || strlen(job->model) > SOUP_MAX_MODEL_NAME)
		usage_error("import", "model name must have 1 to %d bytes", SOUP_MAX_MODEL_NAME);
	*path = argv[optind];
}

int
cmd_import(ClientOptions *opts, int argc, char **argv)
{
	ImportJob	job = {0};
	const char *path;
	PGconn	   *conn;
	char	   *model_id;
	double		start = soup_now();

	parse_import_options(&job, opts, argc, argv, &path);
	read_inputs(&job, path);
	conn = soup_connect(opts);
	if (job.chunk_elems == 0)
		job.chunk_elems = server_chunk_elems(conn);
	soup_exec(conn, "BEGIN");
	check_model_absent(conn, job.model);
	model_id = insert_model(conn, &job);
	copy_tensor_rows(conn, &job, model_id);
	copy_chunks(conn, opts, &job, strtoll(model_id, NULL, 10));
	insert_folder_files(conn, &job, model_id);
	verify_model(conn, job.model);
	soup_commit(conn);
	soup_disconnect(conn);
	if (!opts->quiet)
	{
		printf("imported \"%s\": %s, " UINT64_FORMAT " bytes in %.2f s\n",
			   job.model, path, job.data_bytes, soup_now() - start);
		if (job.folder)
			printf("and %d other file%s of the model folder\n", job.nother,
				   job.nother == 1 ? "" : "s");
	}
	return EXIT_OK;
}
