/*
 * cmd_log_metrics.c - pg_soup log-metrics FILE.jsonl --run R
 *
 * A training loop's log, one JSON object a line, e.g.
 *   {"step": 100, "tokens": 409600, "loss": 3.21, "lr": 0.0006}
 * becomes rows of soup.metrics: "step" (required) and "tokens" (optional)
 * are integers, every other member is a metric whose value must be a number
 * (null means not logged at that step).  Lines are checked here with
 * PostgreSQL's JSON parser, so errors name the line; then the rows go in
 * with one COPY and one upsert, as soup.log_metrics does: logging a step
 * again replaces its values, and within the file the last line wins.
 */
#include "client.h"

#include <math.h>

#include "common/jsonapi.h"
#include "getopt_long.h"
#include "mb/pg_wchar.h"

static const char *const metrics_usage =
"Usage:\n"
"  pg_soup log-metrics FILE.jsonl --run R [OPTION]...\n"
"\n"
"Stores metrics from a JSON-lines file: one object a line with an integer\n"
"\"step\", an optional integer \"tokens\", and numbers for the metrics.\n"
"The run is created if it does not exist.  \"-\" reads standard input.\n"
"\n"
"Options:\n"
"  -r, --run=R             the training run (required)\n"
"      --skip-non-numeric  ignore string, boolean, array and object members\n"
"                          instead of refusing the line\n"
"  -d, --dbname=CONNINFO   database name or connection string\n"
"  -q, --quiet             no summary\n";

/* One line being parsed. */
typedef struct LineParse
{
	long		lineno;
	bool		skip_non_numeric;
	int			depth;
	char	   *field;			/* member being read (depth 1) */
	bool		top_is_object;
	char	   *step;
	char	   *tokens;
	int			nnames;
	char	  **names;
	char	  **values;
	char	   *error;			/* first problem found */
} LineParse;

static void
line_error(LineParse *lp, char *msg)
{
	if (lp->error == NULL)
		lp->error = msg;
}

static void
on_object_start(void *state)
{
	LineParse  *lp = state;

	if (lp->depth == 0)
		lp->top_is_object = true;
	else if (lp->depth == 1 && !lp->skip_non_numeric)
		line_error(lp, psprintf("\"%s\" is not a number", lp->field));
	lp->depth++;
}

static void
on_array_start(void *state)
{
	LineParse  *lp = state;

	if (lp->depth == 1 && !lp->skip_non_numeric)
		line_error(lp, psprintf("\"%s\" is not a number", lp->field));
	lp->depth++;
}

static void
on_end(void *state)
{
	((LineParse *) state)->depth--;
}

static void
on_field_start(void *state, char *fname, bool isnull)
{
	LineParse  *lp = state;

	if (lp->depth != 1)
		return;
	lp->field = fname;
	for (int i = 0; i < lp->nnames; i++)
		if (strcmp(lp->names[i], fname) == 0)
			line_error(lp, psprintf("\"%s\" appears twice", fname));
}

/* A JSON integer that fits bigint, >= 0: digits only. */
static bool
plain_integer(const char *tok)
{
	char	   *end;

	if (*tok == '\0' || strspn(tok, "0123456789") != strlen(tok))
		return false;
	errno = 0;
	(void) strtoll(tok, &end, 10);
	return errno == 0;
}

static void
add_metric(LineParse *lp, char *name, char *value)
{
	lp->names = lp->nnames ? repalloc(lp->names, sizeof(char *) * (lp->nnames + 1))
		: palloc(sizeof(char *));
	lp->values = lp->nnames ? repalloc(lp->values, sizeof(char *) * (lp->nnames + 1))
		: palloc(sizeof(char *));
	lp->names[lp->nnames] = name;
	lp->values[lp->nnames++] = value;
}

static void
on_scalar(void *state, char *token, JsonTokenType type)
{
	LineParse  *lp = state;
	const char *f = lp->field;

	if (lp->depth != 1)
		return;
	if (strcmp(f, "step") == 0 || strcmp(f, "tokens") == 0)
	{
		if (type == JSON_TOKEN_NULL && strcmp(f, "tokens") == 0)
			return;
		if (type != JSON_TOKEN_NUMBER || !plain_integer(token))
			line_error(lp, psprintf("\"%s\" must be a non-negative integer", f));
		else if (strcmp(f, "step") == 0)
			lp->step = token;
		else
			lp->tokens = token;
		add_metric(lp, pstrdup(f), NULL);	/* only to catch duplicates */
		return;
	}
	if (type == JSON_TOKEN_NULL)
		return;
	if (type != JSON_TOKEN_NUMBER)
	{
		if (!lp->skip_non_numeric)
			line_error(lp, psprintf("\"%s\" is not a number", f));
		return;
	}
	if (!isfinite(strtod(token, NULL)))
		line_error(lp, psprintf("\"%s\" is out of range for float8", f));
	add_metric(lp, pstrdup(f), token);
}

/* Parse one line; its metrics land in lp, or lp->error says why not. */
static void
parse_line(LineParse *lp, char *text, int len)
{
	JsonSemAction sem = {0};
	JsonLexContext *lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);

	sem.semstate = lp;
	sem.object_start = on_object_start;
	sem.object_end = on_end;
	sem.array_start = on_array_start;
	sem.array_end = on_end;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		line_error(lp, pstrdup("not valid JSON"));
	else if (!lp->top_is_object)
		line_error(lp, pstrdup("not a JSON object"));
	else if (lp->step == NULL)
		line_error(lp, pstrdup("no \"step\""));
}

/* Turn the file into COPY text rows: line, step, tokens, name, value. */
static long
file_to_rows(const char *path, const char *text, size_t len, bool skip, StringInfo rows)
{
	long		lineno = 0;
	long		nrows = 0;

	for (const char *p = text; p < text + len;)
	{
		const char *nl = memchr(p, '\n', text + len - p);
		const char *eol = nl ? nl : text + len;
		LineParse	lp = {.lineno = ++lineno, .skip_non_numeric = skip};
		char	   *line = pnstrdup(p, eol - p);

		p = nl ? nl + 1 : text + len;
		if (strspn(line, " \t\r") == strlen(line))
			continue;			/* blank lines are allowed */
		parse_line(&lp, line, (int) strlen(line));
		if (lp.error)
			soup_fatal(EXIT_FILE, "%s:%ld: %s", path, lineno, lp.error);
		for (int i = 0; i < lp.nnames; i++)
		{
			if (lp.values[i] == NULL)
				continue;
			appendStringInfo(rows, "%ld\t%s\t%s\t", lineno, lp.step, lp.tokens ? lp.tokens : "\\N");
			soup_append_copy_text(rows, lp.names[i]);
			appendStringInfo(rows, "\t%s\n", lp.values[i]);
			nrows++;
		}
	}
	return nrows;
}

static char *
read_input(const char *path, size_t *len)
{
	StringInfoData buf;
	char		block[65536];
	size_t		n;

	if (strcmp(path, "-") != 0)
		return soup_read_whole(path, (uint64) 1 << 30, len);
	initStringInfo(&buf);
	while ((n = fread(block, 1, sizeof(block), stdin)) > 0)
		appendBinaryStringInfo(&buf, block, (int) n);
	if (ferror(stdin))
		soup_fatal(EXIT_FILE, "could not read standard input: %m");
	*len = buf.len;
	return buf.data;
}

int
cmd_log_metrics(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		{"run", required_argument, NULL, 'r'},
		{"skip-non-numeric", no_argument, NULL, 'S'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *run = NULL;
	bool		skip = false;
	int			c;
	const char *path;
	char	   *text;
	size_t		len;
	StringInfoData rows;
	long		nrows;
	PGconn	   *conn;
	PGresult   *res;

	while ((c = getopt_long(argc, argv, "r:" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, metrics_usage))
			continue;
		if (c == 'r')
			run = optarg;
		else if (c == 'S')
			skip = true;
		else
			usage_error("log-metrics", "bad option");
	}
	if (optind != argc - 1)
		usage_error("log-metrics", "log-metrics takes one FILE");
	if (run == NULL || run[0] == '\0')
		usage_error("log-metrics", "--run is required");
	path = argv[optind];
	text = read_input(path, &len);
	initStringInfo(&rows);
	nrows = file_to_rows(path, text, len, skip, &rows);

	conn = soup_connect(opts);
	soup_exec(conn, "BEGIN");
	soup_exec(conn, "CREATE TEMP TABLE pg_soup_metrics (line bigint, step bigint, tokens bigint, "
			  "name text, value float8) ON COMMIT DROP");
	soup_copy_start(conn, "COPY pg_temp.pg_soup_metrics FROM STDIN");
	soup_copy_put(conn, rows.data, rows.len);
	soup_copy_end(conn, "could not send the metrics");
	PQclear(soup_query(conn, "INSERT INTO soup.runs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
					   1, &run, 0));
	res = soup_query(conn,
					 "INSERT INTO soup.metrics (run, step, tokens, name, value) "
					 "SELECT DISTINCT ON (step, name) $1, step, tokens, name, value "
					 "FROM pg_temp.pg_soup_metrics ORDER BY step, name, line DESC "
					 "ON CONFLICT ON CONSTRAINT metrics_pkey DO UPDATE "
					 "SET value = excluded.value, tokens = excluded.tokens, time = excluded.time",
					 1, &run, 0);
	if (!opts->quiet)
		printf("logged %s values (%ld in the file) for run \"%s\"\n", PQcmdTuples(res), nrows, run);
	PQclear(res);
	soup_exec(conn, "COMMIT");
	soup_disconnect(conn);
	return EXIT_OK;
}
