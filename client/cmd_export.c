/*
 * cmd_export.c - pg_soup export MODEL FILE|DIR/
 *
 * Writes the same file soup.export_safetensors would: the header comes from
 * soup.safetensors_header (the imported header bytes when they still
 * describe the model, the canonical form otherwise), the data from COPY
 * (SELECT ...) TO STDOUT (FORMAT binary) in file order.  One REPEATABLE READ
 * snapshot covers both.  Every chunk is checked against the header as it
 * arrives; the file is written beside its target and renamed into place only
 * when complete, so no reader ever sees half a file.
 *
 * A target that is a directory (or ends in "/") receives the model folder:
 * the files kept with the model (soup.model_files: config.json, tokenizer
 * files, ...) byte for byte, and the weights under the name they were
 * imported with (model.safetensors unless the folder used another).
 */
#include "client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "getopt_long.h"
#include "safetensors.h"
#include "tensor_wire.h"

static const char *const export_usage =
"Usage:\n"
"  pg_soup export MODEL FILE [OPTION]...\n"
"  pg_soup export MODEL DIR/ [OPTION]...\n"
"\n"
"Writes model MODEL as one safetensors file.  A model imported from a single\n"
"file comes back bit for bit.  Given a directory (or a path ending in \"/\",\n"
"created if missing), writes the model folder: the weights and every file\n"
"kept with the model (config.json, tokenizer files, ...), byte for byte.\n"
"\n"
"Options:\n"
"  -d, --dbname=CONNINFO database name or connection string\n"
"  -q, --quiet           no progress bar and no summary\n";

/* Where the rows land: the tensors of the header in file order. */
typedef struct ExportState
{
	const char *model;
	StHeader	header;
	int			ti;				/* tensor being written */
	int64		done;			/* its elements written so far */
	int32		next_chunk;
	int			fd;
	const char *tmp;
	Progress	progress;
} ExportState;

static pg_attribute_noreturn() void
damaged(const ExportState *st, const char *what)
{
	soup_fatal(EXIT_SERVER, "model \"%s\" is damaged: tensor \"%s\" %s", st->model,
			   st->ti < st->header.ntensors ? st->header.tensors[st->ti].name : "?", what);
}

static uint32
get_uint32(const unsigned char *p)
{
	return ((uint32) p[0] << 24) | ((uint32) p[1] << 16) | ((uint32) p[2] << 8) | p[3];
}

/* The header bytes and their parse; the data length they promise. */
static char *
fetch_header(PGconn *conn, ExportState *st, size_t *len)
{
	const char *values[1] = {st->model};
	PGresult   *res = soup_query(conn, "SELECT soup.safetensors_header($1)", 1, values, 1);
	char	   *bytes;
	char	   *msg = NULL;
	uint64		hdr_len;

	*len = PQgetlength(res, 0, 0);
	bytes = palloc(*len);
	memcpy(bytes, PQgetvalue(res, 0, 0), *len);
	PQclear(res);
	if (st_check_prefix((unsigned char *) bytes, *len, &hdr_len, &msg) != ST_OK ||
		hdr_len != *len - 8 ||
		st_parse_header(bytes + 8, hdr_len, &st->header, &msg) != ST_OK)
		soup_fatal(EXIT_SERVER, "the server sent an invalid header for \"%s\": %s",
				   st->model, msg ? msg : "wrong length");
	return bytes;
}

/*
 * One COPY row: ordinal int4, chunk int4, data soup.tensor.  The chunks come
 * in file order; each must continue its tensor with the right dtype.
 */
static void
write_row(ExportState *st, const unsigned char *row, int len)
{
	const unsigned char *p = row;
	const unsigned char *end = row + len;
	int32		ord,
				chunk,
				vlen;
	const StTensor *t;
	int64		numel;
	size_t		nbytes;

	if (len < 2 + 8 + 8 + 4 || ((p[0] << 8) | p[1]) != 3 ||
		get_uint32(p + 2) != 4 || get_uint32(p + 10) != 4)
		soup_fatal(EXIT_SERVER, "unexpected row in the COPY stream");
	ord = (int32) get_uint32(p + 6);
	chunk = (int32) get_uint32(p + 14);
	vlen = (int32) get_uint32(p + 18);
	p += 22;
	while (st->ti < st->header.ntensors && st->done == st->header.tensors[st->ti].numel &&
		   ord > st->ti)
		st->ti++, st->done = 0, st->next_chunk = 0;
	if (st->ti >= st->header.ntensors || ord != st->ti)
		damaged(st, "has chunks missing or out of place");
	t = &st->header.tensors[st->ti];
	if (vlen < SOUP_TENSOR_WIRE_1D_HEADER || p + vlen != end || chunk != st->next_chunk)
		damaged(st, psprintf("lacks chunk %d", st->next_chunk));
	numel = get_uint32(p + 3);
	nbytes = (size_t) numel * soup_dtype_size(t->dtype);
	if (p[0] != SOUP_TENSOR_SEND_VERSION || p[1] != t->dtype || p[2] != 1 || numel <= 0 ||
		st->done + numel > t->numel || nbytes != (size_t) (vlen - SOUP_TENSOR_WIRE_1D_HEADER))
		damaged(st, psprintf("has a chunk %d that does not fit its dtype or size", chunk));
	soup_write_all(st->fd, st->tmp, p + SOUP_TENSOR_WIRE_1D_HEADER, nbytes);
	st->done += numel;
	st->next_chunk++;
	progress_add(&st->progress, nbytes);
}

static void
copy_data(PGconn *conn, ExportState *st, int64 model_id)
{
	char	   *sql = psprintf("COPY (SELECT t.ordinal, c.chunk, c.data FROM soup.chunks c "
							   "JOIN soup.tensors t ON t.model_id = c.model_id AND t.name = c.tensor "
							   "WHERE c.model_id = " INT64_FORMAT " ORDER BY t.ordinal, c.chunk) "
							   "TO STDOUT (FORMAT binary)", model_id);
	PGresult   *res = PQexec(conn, sql);
	char	   *buf;
	int			n;
	bool		first = true;

	if (PQresultStatus(res) != PGRES_COPY_OUT)
		soup_server_fatal(conn, res, "could not read the chunks");
	PQclear(res);
	while ((n = PQgetCopyData(conn, &buf, 0)) > 0)
	{
		unsigned char *row = (unsigned char *) buf;

		/* the 19-byte file header arrives in front of the first message */
		if (first)
		{
			if (n < 19 || memcmp(row, "PGCOPY\n\377\r\n\0", 11) != 0 || get_uint32(row + 15) != 0)
				soup_fatal(EXIT_SERVER, "unexpected COPY header");
			row += 19, n -= 19;
			first = false;
		}
		/* the server sends each row, and the trailer (-1), as one message */
		if (!(n == 2 && row[0] == 0xff && row[1] == 0xff))
			write_row(st, row, n);
		PQfreemem(buf);
	}
	if (n == -2)
		soup_fatal(EXIT_SERVER, "could not read the chunks: %s", PQerrorMessage(conn));
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			soup_server_fatal(conn, res, "could not read the chunks");
		PQclear(res);
	}
	/* every remaining tensor must be complete (zero-size ones have no chunks) */
	for (; st->ti < st->header.ntensors; st->ti++, st->done = 0)
		if (st->done != st->header.tensors[st->ti].numel)
			damaged(st, "has chunks missing");
}

/* Make the rename durable, as the server's durable_rename does. */
static void
sync_directory(const char *path)
{
	char	   *dir = pstrdup(path);
	int			fd;

	get_parent_directory(dir);
	fd = open(dir[0] ? dir : ".", O_RDONLY | PG_BINARY, 0);
	if (fd < 0 || fsync(fd) != 0)
		soup_fatal(EXIT_FILE, "could not fsync directory \"%s\": %m", dir[0] ? dir : ".");
	close(fd);
}

static int64
lookup_model(PGconn *conn, const char *model)
{
	const char *values[1] = {model};
	PGresult   *res = soup_query(conn, "SELECT id FROM soup.models WHERE name = $1", 1, values, 0);
	int64		id;

	if (PQntuples(res) == 0)
		soup_fatal(EXIT_SERVER, "model \"%s\" does not exist", model);
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return id;
}

/* Write one whole file beside its target, then rename it into place. */
static void
write_file_atomic(const char *path, const char *data, size_t len)
{
	char	   *tmp = psprintf("%s.pg_soup-tmp.%d", path, (int) getpid());
	int			fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, 0644);

	if (fd < 0)
		soup_fatal(EXIT_FILE, "could not create file \"%s\": %m", tmp);
	soup_set_cleanup_file(tmp);
	soup_write_all(fd, tmp, data, len);
	if (fsync(fd) != 0 || close(fd) != 0)
		soup_fatal(EXIT_FILE, "could not write file \"%s\": %m", tmp);
	if (rename(tmp, path) != 0)
		soup_fatal(EXIT_FILE, "could not rename \"%s\" to \"%s\": %m", tmp, path);
	soup_set_cleanup_file(NULL);
}

static bool
plain_file_name(const char *name)
{
	return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
		strchr(name, '/') == NULL;
}

/*
 * The folder's other files, written into dir; returns the path the weights
 * go to (their imported name, or that of the model a merge took its files
 * from, or model.safetensors).
 */
static char *
write_folder_files(PGconn *conn, const char *dir, int64 model_id, int *nfiles)
{
	char		idbuf[32];
	const char *values[1] = {idbuf};
	PGresult   *res;
	char	   *weights;

	snprintf(idbuf, sizeof(idbuf), INT64_FORMAT, model_id);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		soup_fatal(EXIT_FILE, "could not create directory \"%s\": %m", dir);
	res = soup_check(conn, PQexecParams(conn,
										"SELECT coalesce(m.source ->> 'weights_file', f.source ->> 'weights_file', "
										"'model.safetensors') FROM soup.models m "
										"LEFT JOIN soup.models f ON f.name = m.recipe ->> 'files_from' "
										"WHERE m.id = $1",
										1, NULL, values, NULL, NULL, 0));
	weights = pstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!plain_file_name(weights))
		soup_fatal(EXIT_SERVER, "the model's weights file name \"%s\" is not a plain name", weights);
	/* binary results: the bytes as stored */
	res = soup_check(conn, PQexecParams(conn,
										"SELECT name, bytes FROM soup.model_files WHERE model_id = $1 ORDER BY name",
										1, NULL, values, NULL, NULL, 1));
	*nfiles = PQntuples(res);
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *name = PQgetvalue(res, i, 0);

		if (!plain_file_name(name) || strcmp(name, weights) == 0)
			soup_fatal(EXIT_SERVER, "the model keeps a file named \"%s\", which cannot be written beside its weights",
					   name);
		write_file_atomic(psprintf("%s/%s", dir, name), PQgetvalue(res, i, 1),
						  PQgetlength(res, i, 1));
	}
	PQclear(res);
	return psprintf("%s/%s", dir, weights);
}

static bool
is_folder_target(const char *path)
{
	struct stat st;
	size_t		len = strlen(path);

	return (len > 0 && path[len - 1] == '/') || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

static void
parse_export_options(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
		if (!common_option(c, opts, export_usage))
			usage_error("export", "bad option");
	if (optind != argc - 2)
		usage_error("export", "export takes a MODEL and a FILE or DIR/");
}

int
cmd_export(ClientOptions *opts, int argc, char **argv)
{
	parse_export_options(opts, argc, argv);
	soup_export(opts, argv[optind], argv[optind + 1]);
	return EXIT_OK;
}

/* Write model `model` to path (a file, or a folder: see above). */
void
soup_export(const ClientOptions *opts, const char *model, const char *path)
{
	ExportState st = {0};
	PGconn	   *conn;
	char	   *header;
	size_t		header_len;
	double		start = soup_now();
	int64		model_id;
	int			nfiles = -1;

	st.model = model;
	conn = soup_connect(opts);
	soup_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	header = fetch_header(conn, &st, &header_len);
	model_id = lookup_model(conn, st.model);
	if (is_folder_target(path))
	{
		char	   *dir = pstrdup(path);
		size_t		len = strlen(dir);

		while (len > 1 && dir[len - 1] == '/')
			dir[--len] = '\0';
		path = write_folder_files(conn, dir, model_id, &nfiles);
	}

	st.tmp = psprintf("%s.pg_soup-tmp.%d", path, (int) getpid());
	st.fd = open(st.tmp, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, 0644);
	if (st.fd < 0)
		soup_fatal(EXIT_FILE, "could not create file \"%s\": %m", st.tmp);
	/* only a file this process created is ever removed */
	soup_set_cleanup_file(st.tmp);
	soup_write_all(st.fd, st.tmp, header, header_len);
	progress_start(&st.progress, opts, st.model, st.header.data_len);
	copy_data(conn, &st, model_id);
	progress_finish(&st.progress);
	soup_commit(conn);
	soup_disconnect(conn);

	if (fsync(st.fd) != 0 || close(st.fd) != 0)
		soup_fatal(EXIT_FILE, "could not write file \"%s\": %m", st.tmp);
	if (rename(st.tmp, path) != 0)
		soup_fatal(EXIT_FILE, "could not rename \"%s\" to \"%s\": %m", st.tmp, path);
	soup_set_cleanup_file(NULL);
	sync_directory(path);
	if (!opts->quiet)
	{
		printf("exported \"%s\": %s, " UINT64_FORMAT " bytes in %.2f s\n",
			   st.model, path, (uint64) (header_len + st.header.data_len), soup_now() - start);
		if (nfiles >= 0)
			printf("and %d other file%s of the model folder\n", nfiles, nfiles == 1 ? "" : "s");
	}
}
