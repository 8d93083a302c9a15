/*
 * cmd_merge.c - pg_soup merge METHOD --out M MODEL... : one call of the
 * soup.merge driver, which writes the new model and its recipe in one
 * transaction on the server; pg_soup merge --config FILE.yml --out M: a
 * mergekit configuration, read from YAML and run by soup.merge_config.
 */
#include "client.h"

#include "getopt_long.h"
#include "safetensors.h"

static const char *const merge_usage =
"Usage:\n"
"  pg_soup merge METHOD --out M [OPTION]... MODEL...\n"
"  pg_soup merge --config FILE.yml --out M [OPTION]...\n"
"\n"
"Merges the models into a new model M with soup.merge.  \"pg_soup methods\"\n"
"lists the server's methods, \"pg_soup methods METHOD\" one method's\n"
"parameters (docs/merges.md explains each).  With --config, runs a\n"
"mergekit configuration (YAML, models named by their pg_soup names) with\n"
"soup.merge_config.\n"
"\n"
"Options:\n"
"  -o, --out=M           name of the merged model (required)\n"
"  -c, --config=FILE     a mergekit YAML configuration\n"
"  -w, --weights=W,...   one weight per model\n"
"  -b, --base=B          base model (task arithmetic, TIES, DARE, Model Stock)\n"
"  -p, --param=KEY=VALUE a method parameter (repeatable); numbers and\n"
"                        true/false stay numbers and booleans, else strings\n"
"      --params=JSON     all parameters as one JSON object\n"
"  -d, --dbname=CONNINFO database name or connection string\n"
"  -q, --quiet           no summary\n";

/* A number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
json_number(const char *v)
{
	const char *p = v;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p += strspn(p, "0123456789");
	else
		return false;
	if (*p == '.')
	{
		size_t		n = strspn(p + 1, "0123456789");

		if (n == 0)
			return false;
		p += 1 + n;
	}
	if (*p == 'e' || *p == 'E')
	{
		size_t		n;

		p++;
		if (*p == '+' || *p == '-')
			p++;
		n = strspn(p, "0123456789");
		if (n == 0)
			return false;
		p += n;
	}
	return *p == '\0';
}

/* A parameter value as JSON: numbers, booleans and null as they are. */
static void
append_param_value(StringInfo buf, const char *v)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "null") == 0 ||
		json_number(v))
		appendStringInfoString(buf, v);
	else
		st_write_json_string(buf, v);
}

static void
add_param(StringInfo params, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char	   *key;

	if (eq == NULL || eq == kv)
		usage_error("merge", "--param takes KEY=VALUE, not \"%s\"", kv);
	key = pnstrdup(kv, eq - kv);
	appendStringInfoChar(params, params->len > 1 ? ',' : ' ');
	st_write_json_string(params, key);
	appendStringInfoChar(params, ':');
	append_param_value(params, eq + 1);
}

/* "0.5,0.25" checked and turned into the float8[] literal {0.5,0.25}. */
static char *
weights_literal(const char *list)
{
	StringInfoData buf;
	char	   *copy = pstrdup(list);
	char	   *save = NULL;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
	{
		char	   *end;

		errno = 0;
		(void) strtod(w, &end);
		if (end == w || *end || errno)
			usage_error("merge", "--weights takes numbers separated by commas, not \"%s\"", w);
		appendStringInfo(&buf, "%s%s", buf.len > 1 ? "," : "", w);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* A mergekit configuration: YAML read here, run by soup.merge_config. */
static int
merge_config(ClientOptions *opts, const char *target, const char *path, double start)
{
	const char *values[2] = {target, soup_yaml_file_to_json(path)};
	PGconn	   *conn = soup_connect(opts);
	PGresult   *res = soup_query(conn, "SELECT soup.merge_config($1, $2::jsonb)", 2, values, 0);

	if (!opts->quiet)
		printf("merged \"%s\" as %s configures it (model id %s) in %.2f s\n",
			   target, path, PQgetvalue(res, 0, 0), soup_now() - start);
	PQclear(res);
	soup_disconnect(conn);
	return EXIT_OK;
}

int
cmd_merge(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		{"out", required_argument, NULL, 'o'},
		{"weights", required_argument, NULL, 'w'},
		{"base", required_argument, NULL, 'b'},
		{"param", required_argument, NULL, 'p'},
		{"params", required_argument, NULL, 'P'},
		{"config", required_argument, NULL, 'c'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *values[6] = {NULL};
	StringInfoData params;
	StringInfoData models;
	const char *raw_params = NULL;
	const char *config = NULL;
	int			c;
	PGconn	   *conn;
	PGresult   *res;
	double		start = soup_now();

	initStringInfo(&params);
	appendStringInfoChar(&params, '{');
	while ((c = getopt_long(argc, argv, "o:w:b:p:c:" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, merge_usage))
			continue;
		switch (c)
		{
			case 'o':
				values[0] = optarg;
				break;
			case 'w':
				values[3] = weights_literal(optarg);
				break;
			case 'b':
				values[4] = optarg;
				break;
			case 'p':
				add_param(&params, optarg);
				break;
			case 'P':
				raw_params = optarg;
				break;
			case 'c':
				config = optarg;
				break;
			default:
				usage_error("merge", "bad option");
		}
	}
	appendStringInfoChar(&params, '}');
	if (raw_params && params.len > 2)
		usage_error("merge", "give --param or --params, not both");
	if (values[0] == NULL)
		usage_error("merge", "--out is required");
	if (config)
	{
		if (optind != argc || values[3] || values[4] || raw_params || params.len > 2)
			usage_error("merge", "--config takes the whole merge from the file: no METHOD, MODEL, "
						"--weights, --base or --param");
		return merge_config(opts, values[0], config, start);
	}
	if (argc - optind < 2)
		usage_error("merge", "merge takes a METHOD and at least one MODEL");
	values[1] = argv[optind];
	initStringInfo(&models);
	appendStringInfoChar(&models, '{');
	for (int i = optind + 1; i < argc; i++)
	{
		if (i > optind + 1)
			appendStringInfoChar(&models, ',');
		soup_append_array_elem(&models, argv[i]);
	}
	appendStringInfoChar(&models, '}');
	values[2] = models.data;
	values[5] = raw_params ? raw_params : params.data;

	conn = soup_connect(opts);
	res = soup_query(conn, "SELECT soup.merge($1, $2, $3::text[], $4::float8[], $5, $6::jsonb)",
					 6, values, 0);
	if (!opts->quiet)
		printf("merged %d models into \"%s\" with %s (model id %s) in %.2f s\n",
			   argc - optind - 1, values[0], values[1], PQgetvalue(res, 0, 0),
			   soup_now() - start);
	PQclear(res);
	soup_disconnect(conn);
	return EXIT_OK;
}
