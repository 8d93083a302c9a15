/*
 * cmd_log_metrics.c - pg_soup log-metrics FILE.jsonl --run R
 *
 * A training loop's log, one JSON object a line, e.g.
 *   {"step": 100, "tokens": 409600, "loss": 3.21, "lr": 0.0006}
 * becomes rows of soup.metrics: "step" (required) and "tokens" (optional)
 * are integers, every other member is a metric whose value must be a number
 * (null means not logged at that step).  Lines are checked here with
 * PostgreSQL's JSON parser, so errors name the line, and streamed in one
 * COPY into a temporary table as they are read (memory stays small for any
 * file size); one upsert then stores them as soup.log_metrics does: logging
 * a step again replaces its values, and within the file the last line wins.
 */
#include "client.h"

#include <math.h>

#include "common/jsonapi.h"
#include "getopt_long.h"
#include "mb/pg_wchar.h"
#include "safetensors.h"

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
	else if (lp->depth == 1 && lp->top_is_object && !lp->skip_non_numeric)
		line_error(lp, psprintf("\"%s\" is not a number", lp->field));
	lp->depth++;
}

static void
on_array_start(void *state)
{
	LineParse  *lp = state;

	if (lp->depth == 1 && lp->top_is_object && !lp->skip_non_numeric)
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

	if (lp->depth != 1 || !lp->top_is_object)
	{
		pfree(fname);
		return;
	}
	if (lp->field)
		pfree(lp->field);
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
	double		v;

	/* only members of the top-level object count ("[1]" is not an object) */
	if (lp->depth != 1 || !lp->top_is_object || f == NULL)
	{
		pfree(token);
		return;
	}
	if (strcmp(f, "step") == 0 || strcmp(f, "tokens") == 0)
	{
		add_metric(lp, pstrdup(f), NULL);	/* only to catch duplicates */
		if (type == JSON_TOKEN_NULL && strcmp(f, "tokens") == 0)
			pfree(token);
		else if (type != JSON_TOKEN_NUMBER || !plain_integer(token))
		{
			line_error(lp, psprintf("\"%s\" must be a non-negative integer", f));
			pfree(token);
		}
		else if (strcmp(f, "step") == 0 && lp->step == NULL)
			lp->step = token;
		else if (strcmp(f, "tokens") == 0 && lp->tokens == NULL)
			lp->tokens = token;
		else
			pfree(token);		/* a duplicate, already reported */
		return;
	}
	if (type != JSON_TOKEN_NUMBER)
	{
		if (type != JSON_TOKEN_NULL && !lp->skip_non_numeric)
			line_error(lp, psprintf("\"%s\" is not a number", f));
		pfree(token);
		return;
	}
	/* as float8in: overflow, and underflow to zero, are out of range */
	errno = 0;
	v = strtod(token, NULL);
	if (!isfinite(v) || (errno == ERANGE && v == 0.0))
		line_error(lp, psprintf("\"%s\" is out of range for float8", f));
	add_metric(lp, pstrdup(f), token);
}

/* Everything a parsed line holds. */
static void
free_line(LineParse *lp)
{
	for (int i = 0; i < lp->nnames; i++)
	{
		pfree(lp->names[i]);
		if (lp->values[i])
			pfree(lp->values[i]);
	}
	if (lp->nnames > 0)
	{
		pfree(lp->names);
		pfree(lp->values);
	}
	if (lp->field)
		pfree(lp->field);
	if (lp->step)
		pfree(lp->step);
	if (lp->tokens)
		pfree(lp->tokens);
}

/* Parse one line; its metrics land in lp, or lp->error says why not. */
static void
parse_line(LineParse *lp, char *text, int len)
{
	JsonSemAction sem = {0};
	JsonLexContext *lex;
	JsonParseErrorType jerr;
	char	   *msg = NULL;

	/* UTF-8, no NUL, shallow nesting: the parser recurses without a check */
	if (st_check_json_text(text, len, "the line", &msg) != ST_OK)
	{
		line_error(lp, msg);
		return;
	}
	lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);

	sem.semstate = lp;
	sem.object_start = on_object_start;
	sem.object_end = on_end;
	sem.array_start = on_array_start;
	sem.array_end = on_end;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;
	jerr = pg_parse_json(lex, &sem);
	/* PostgreSQL 15 has no freeJsonLexContext */
	pfree(lex->strval->data);
	pfree(lex->strval);
	pfree(lex);
	if (jerr != JSON_SUCCESS)
		line_error(lp, pstrdup("not valid JSON"));
	else if (!lp->top_is_object)
		line_error(lp, pstrdup("not a JSON object"));
	else if (lp->step == NULL)
		line_error(lp, pstrdup("no \"step\""));
}

/* One line's rows for COPY, in text format: line, step, tokens, name, value. */
static long
line_to_rows(const LineParse *lp, StringInfo rows)
{
	long		n = 0;

	for (int i = 0; i < lp->nnames; i++)
	{
		if (lp->values[i] == NULL)
			continue;
		appendStringInfo(rows, "%ld\t%s\t%s\t", lp->lineno, lp->step,
						 lp->tokens ? lp->tokens : "\\N");
		soup_append_copy_text(rows, lp->names[i]);
		appendStringInfo(rows, "\t%s\n", lp->values[i]);
		n++;
	}
	return n;
}

/*
 * Read the file a line at a time and stream its rows into the COPY that is
 * open on conn, sending every 8 MB.  Returns the number of rows.
 */
static long
stream_rows(PGconn *conn, const char *path, FILE *in, bool skip)
{
	StringInfoData rows;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	long		lineno = 0;
	long		nrows = 0;

	initStringInfo(&rows);
	while ((len = getline(&line, &cap, in)) >= 0)
	{
		LineParse	lp = {.lineno = ++lineno, .skip_non_numeric = skip};

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (strspn(line, " \t") == (size_t) len)
			continue;			/* blank lines are allowed */
		if (len > ST_MAX_HEADER_LEN)
			soup_fatal(EXIT_FILE, "%s:%ld: line longer than %d bytes", path, lineno,
					   ST_MAX_HEADER_LEN);
		parse_line(&lp, line, (int) len);
		if (lp.error)
			soup_fatal(EXIT_FILE, "%s:%ld: %s", path, lineno, lp.error);
		nrows += line_to_rows(&lp, &rows);
		free_line(&lp);
		if (rows.len >= 8 * 1024 * 1024)
		{
			soup_copy_put(conn, rows.data, rows.len);
			resetStringInfo(&rows);
		}
	}
	if (ferror(in))
		soup_fatal(EXIT_FILE, "could not read \"%s\": %m", path);
	soup_copy_put(conn, rows.data, rows.len);
	free(line);
	return nrows;
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
	FILE	   *in;
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
	in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (in == NULL)
		soup_fatal(EXIT_FILE, "could not open file \"%s\": %m", path);

	conn = soup_connect(opts);
	soup_exec(conn, "BEGIN");
	soup_exec(conn, "CREATE TEMP TABLE pg_soup_metrics (line bigint, step bigint, tokens bigint, "
			  "name text, value float8) ON COMMIT DROP");
	soup_copy_start(conn, "COPY pg_temp.pg_soup_metrics FROM STDIN");
	nrows = stream_rows(conn, path, in, skip);
	soup_copy_end(conn, "could not send the metrics");
	if (in != stdin)
		fclose(in);
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
	soup_commit(conn);
	soup_disconnect(conn);
	return EXIT_OK;
}
