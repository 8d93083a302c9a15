/*
 * cmd_greedy.c - pg_soup greedy-soup --metric NAME --eval CMD --out M MODEL...
 *
 * The greedy soup of Wortsman et al. (2022): candidates ordered by a
 * held-out score (soup.greedy_soup_order: the metric at each model's run and
 * step, or --scores), the soup started from the best, and each next
 * candidate added only if the soup's score does not drop.  The score of a
 * candidate soup comes from the user's evaluation, which lives outside the
 * database: each trial soup is merged on the server (soup.merge avg),
 * exported to a temporary file, and CMD runs with the file's path in place
 * of {} (or after it); the last number CMD prints is the score.  The final
 * soup is written by soup.greedy_soup with every score in its recipe.
 * Trial models are deleted as soon as they are evaluated, and at exit if
 * something fails.
 */
#include "client.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "getopt_long.h"
#include "safetensors.h"

#define EXIT_EVAL 5				/* the evaluation command failed or printed no number */
#define EVAL_MAX_OUTPUT (1024 * 1024)

static const char *const greedy_usage =
"Usage:\n"
"  pg_soup greedy-soup --metric NAME --eval CMD --out M [OPTION]... MODEL...\n"
"\n"
"Makes a greedy soup of the candidate MODELs: ordered by their score (the\n"
"metric NAME at each model's run and step in soup.metrics, or --scores),\n"
"started from the best, each next candidate kept only if the soup's score\n"
"does not drop.  A soup's score is the last number CMD prints when run with\n"
"the path of the soup's safetensors file in place of {} (appended when CMD\n"
"has no {}).  The final soup M records every trial in its recipe.\n"
"\n"
"Options:\n"
"  -o, --out=M             name of the final soup (required)\n"
"      --metric=NAME       the held-out metric that orders the candidates\n"
"      --scores=S,...      the candidates' scores instead of a metric\n"
"      --eval=CMD          the evaluation command (required; run by /bin/sh)\n"
"      --lower-is-better   smaller scores are better (a loss)\n"
"  -d, --dbname=CONNINFO   database name or connection string\n"
"  -q, --quiet             no progress lines\n";

/* The trial model that exists now, deleted at exit if the run fails. */
static const ClientOptions *cleanup_opts;
static char *trial_model;
static char *trial_dir;

static void
drop_trial_model(PGconn *conn)
{
	const char *values[1] = {trial_model};

	if (trial_model == NULL)
		return;
	PQclear(soup_query(conn, "DELETE FROM soup.models WHERE name = $1", 1, values, 0));
	trial_model = NULL;
}

static void
cleanup_at_exit(void)
{
	if (trial_model)
	{
		const char *keywords[] = {"dbname", NULL};
		const char *params[] = {cleanup_opts->dbname, NULL};
		PGconn	   *conn = PQconnectdbParams(keywords, params, 1);
		const char *values[1] = {trial_model};

		if (PQstatus(conn) == CONNECTION_OK)
			PQclear(PQexecParams(conn, "DELETE FROM soup.models WHERE name = $1",
								 1, NULL, values, NULL, NULL, 0));
		PQfinish(conn);
	}
	if (trial_dir)
		(void) rmdir(trial_dir);
}

/* CMD with each {} replaced by the quoted path, or the path appended. */
static char *
eval_command(const char *cmd, const char *path)
{
	StringInfoData buf;
	char	   *quoted = psprintf("'%s'", path);	/* checked: the path holds no quote */
	const char *p = cmd;
	bool		placed = false;

	initStringInfo(&buf);
	while (*p)
	{
		if (p[0] == '{' && p[1] == '}')
		{
			appendStringInfoString(&buf, quoted);
			placed = true;
			p += 2;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	if (!placed)
		appendStringInfo(&buf, " %s", quoted);
	return buf.data;
}

/* Run the evaluation; its score is the last number it prints. */
static double
evaluate(const char *cmd, const char *path)
{
	char	   *full = eval_command(cmd, path);
	FILE	   *f = popen(full, "r");
	StringInfoData out;
	char		buf[4096];
	size_t		n;
	int			status;
	double		score = NAN;
	char	   *save = NULL;

	if (f == NULL)
		soup_fatal(EXIT_EVAL, "could not run the evaluation command: %m");
	initStringInfo(&out);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		if (out.len < EVAL_MAX_OUTPUT)
			appendBinaryStringInfo(&out, buf, (int) n);
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		soup_fatal(EXIT_EVAL, "the evaluation command failed (%s): %s", full,
				   WIFEXITED(status) ? psprintf("exit status %d", WEXITSTATUS(status)) : "killed");
	for (char *tok = strtok_r(out.data, " \t\r\n,;:=", &save); tok; tok = strtok_r(NULL, " \t\r\n,;:=", &save))
	{
		char	   *end;
		double		d;

		errno = 0;
		d = strtod(tok, &end);
		if (*end == '\0' && end != tok && errno == 0 && isfinite(d))
			score = d;
	}
	if (isnan(score))
		soup_fatal(EXIT_EVAL, "the evaluation command printed no number (%s)", full);
	return score;
}

typedef struct Candidate
{
	char	   *model;
	double		score;
} Candidate;

static Candidate *
order_candidates(PGconn *conn, const char *models, const char *metric, bool higher,
				 const char *scores, int *n)
{
	const char *values[4] = {models, metric, higher ? "true" : "false", scores};
	PGresult   *res = soup_query(conn, "SELECT model, score FROM soup.greedy_soup_order($1::text[], $2, $3::boolean, $4::float8[])",
								 4, values, 0);
	Candidate  *c = palloc(sizeof(Candidate) * Max(PQntuples(res), 1));

	*n = PQntuples(res);
	for (int i = 0; i < *n; i++)
	{
		c[i].model = pstrdup(PQgetvalue(res, i, 0));
		c[i].score = strtod(PQgetvalue(res, i, 1), NULL);
	}
	PQclear(res);
	return c;
}

static void
append_names(StringInfo json, StringInfo arr, char **names, int n)
{
	appendStringInfoChar(json, '[');
	appendStringInfoChar(arr, '{');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
		{
			appendStringInfoChar(json, ',');
			appendStringInfoChar(arr, ',');
		}
		st_write_json_string(json, names[i]);
		soup_append_array_elem(arr, names[i]);
	}
	appendStringInfoChar(json, ']');
	appendStringInfoChar(arr, '}');
}

int
cmd_greedy_soup(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		{"out", required_argument, NULL, 'o'},
		{"metric", required_argument, NULL, 'M'},
		{"scores", required_argument, NULL, 'S'},
		{"eval", required_argument, NULL, 'E'},
		{"lower-is-better", no_argument, NULL, 'L'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *out = NULL;
	const char *metric = NULL;
	const char *eval = NULL;
	char	   *scores = NULL;
	bool		higher = true;
	int			c;
	StringInfoData models;
	StringInfoData search;
	PGconn	   *conn;
	Candidate  *cand;
	int			ncand;
	char	  **chosen;
	int			nchosen = 0;
	double		best = 0;
	const char *tmp = getenv("TMPDIR");
	char	   *dir_template = psprintf("%s/pg_soup-greedy.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");

	while ((c = getopt_long(argc, argv, "o:" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, greedy_usage))
			continue;
		switch (c)
		{
			case 'o':
				out = optarg;
				break;
			case 'M':
				metric = optarg;
				break;
			case 'S':
				scores = psprintf("{%s}", optarg);
				break;
			case 'E':
				eval = optarg;
				break;
			case 'L':
				higher = false;
				break;
			default:
				usage_error("greedy-soup", "bad option");
		}
	}
	if (out == NULL || eval == NULL)
		usage_error("greedy-soup", "--out and --eval are required");
	if ((metric == NULL) == (scores == NULL))
		usage_error("greedy-soup", "give --metric or --scores");
	if (optind >= argc)
		usage_error("greedy-soup", "no candidate MODEL");
	initStringInfo(&models);
	appendStringInfoChar(&models, '{');
	for (int i = optind; i < argc; i++)
	{
		if (i > optind)
			appendStringInfoChar(&models, ',');
		soup_append_array_elem(&models, argv[i]);
	}
	appendStringInfoChar(&models, '}');

	conn = soup_connect(opts);
	cand = order_candidates(conn, models.data, metric, higher, scores, &ncand);
	if (strchr(dir_template, '\'') != NULL)
		soup_fatal(EXIT_FILE, "TMPDIR holds a quote: the evaluation command could not be given the path");
	if (mkdtemp(dir_template) == NULL)
		soup_fatal(EXIT_FILE, "could not create a temporary directory in %s: %m", tmp && tmp[0] ? tmp : "/tmp");
	trial_dir = dir_template;
	cleanup_opts = opts;
	atexit(cleanup_at_exit);

	initStringInfo(&search);
	appendStringInfoString(&search, "{\"metric\":");
	if (metric)
		st_write_json_string(&search, metric);
	else
		appendStringInfoString(&search, "null");
	appendStringInfo(&search, ",\"higher_is_better\":%s,\"eval\":", higher ? "true" : "false");
	st_write_json_string(&search, eval);
	appendStringInfoString(&search, ",\"candidates\":[");
	for (int i = 0; i < ncand; i++)
	{
		appendStringInfoString(&search, i ? ",{\"model\":" : "{\"model\":");
		st_write_json_string(&search, cand[i].model);
		appendStringInfo(&search, ",\"score\":%.17g}", cand[i].score);
	}
	appendStringInfoString(&search, "],\"trials\":[");

	chosen = palloc(sizeof(char *) * ncand);
	for (int k = 0; k < ncand; k++)
	{
		ClientOptions quiet = *opts;
		char	   *path = psprintf("%s/trial-%d.safetensors", trial_dir, k);
		const char *evaluated = cand[k].model;
		StringInfoData json;
		StringInfoData arr;
		double		score;
		bool		kept;

		chosen[nchosen] = cand[k].model;
		initStringInfo(&json);
		initStringInfo(&arr);
		append_names(&json, &arr, chosen, nchosen + 1);
		if (k > 0)
		{
			/* the trial soup: the chosen ingredients and this candidate */
			const char *values[2] = {psprintf("pg_soup greedy-soup %d: trial %d", (int) getpid(), k), arr.data};

			trial_model = pstrdup(values[0]);
			PQclear(soup_query(conn, "SELECT soup.merge($1, 'avg', $2::text[], params => '{\"replace\": true}')",
							   2, values, 0));
			evaluated = trial_model;
		}
		quiet.quiet = true;
		soup_export(&quiet, evaluated, path);
		score = evaluate(eval, path);
		unlink(path);
		drop_trial_model(conn);
		kept = k == 0 || (higher ? score >= best : score <= best);
		if (kept)
		{
			best = score;
			nchosen++;
		}
		appendStringInfo(&search, "%s{\"trial\":%d,\"candidate\":", k ? "," : "", k);
		st_write_json_string(&search, cand[k].model);
		appendStringInfo(&search, ",\"ingredients\":%s,\"score\":%.17g,\"kept\":%s}",
						 json.data, score, kept ? "true" : "false");
		if (!opts->quiet)
			printf("trial %d: %s + %s: score %.6g, %s\n", k, k ? "soup" : "start", cand[k].model,
				   score, kept ? "kept" : "dropped");
	}
	appendStringInfo(&search, "],\"final_score\":%.17g}", best);

	{
		StringInfoData json;
		StringInfoData arr;
		const char *values[3];
		PGresult   *res;

		initStringInfo(&json);
		initStringInfo(&arr);
		append_names(&json, &arr, chosen, nchosen);
		values[0] = out;
		values[1] = arr.data;
		values[2] = search.data;
		res = soup_query(conn, "SELECT soup.greedy_soup($1, $2::text[], $3::jsonb)", 3, values, 0);
		if (!opts->quiet)
			printf("greedy soup \"%s\": %d of %d candidates, score %.6g (model id %s)\n",
				   out, nchosen, ncand, best, PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	soup_disconnect(conn);
	return EXIT_OK;
}
