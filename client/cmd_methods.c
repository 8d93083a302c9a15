/*
 * cmd_methods.c - pg_soup methods [METHOD] [--markdown]: the merge methods
 * the server's pg_soup knows, from its catalog (soup.merge_method_list,
 * soup.merge_method_params), so the help never drifts from the server.
 */
#include "client.h"

#include "getopt_long.h"

static const char *const methods_usage =
"Usage:\n"
"  pg_soup methods [OPTION]... [METHOD]\n"
"\n"
"Lists the merge methods of the server's pg_soup: whether soup.merge\n"
"(pg_soup merge METHOD) and soup.merge_config (pg_soup merge --config)\n"
"run them, their base model, how many models they merge and their\n"
"parameters.  With METHOD: its parameters, one a line.\n"
"\n"
"Options:\n"
"  -m, --markdown        the list as a Markdown table (docs/merges.md)\n"
"  -d, --dbname=CONNINFO database name or connection string\n";

/* A Markdown cell: pipes escaped. */
static void
print_cell(const char *s)
{
	putchar(' ');
	for (; *s; s++)
	{
		if (*s == '|')
			putchar('\\');
		putchar(*s);
	}
	fputs(" |", stdout);
}

static void
print_markdown(PGconn *conn)
{
	PGresult   *res = soup_query(conn,
								 "SELECT method, CASE WHEN in_merge THEN coalesce(NULLIF(merge_params, ''), 'none') ELSE '-' END, "
								 "CASE WHEN in_config THEN config_params ELSE '-' END, "
								 "base, models, summary FROM soup.merge_method_list",
								 0, NULL, 0);

	puts("| method | `soup.merge` params | `merge_config` parameters | base | models | what it does |");
	puts("| --- | --- | --- | --- | --- | --- |");
	for (int r = 0; r < PQntuples(res); r++)
	{
		putchar('|');
		for (int c = 0; c < PQnfields(res); c++)
			print_cell(c == 0 ? psprintf("`%s`", PQgetvalue(res, r, c)) : PQgetvalue(res, r, c));
		putchar('\n');
	}
	PQclear(res);
}

int
cmd_methods(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		{"markdown", no_argument, NULL, 'm'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	bool		markdown = false;
	const char *method = NULL;
	int			c;
	PGconn	   *conn;
	PGresult   *res;

	while ((c = getopt_long(argc, argv, "m" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, methods_usage))
			continue;
		if (c == 'm')
			markdown = true;
		else
			usage_error("methods", "bad option");
	}
	if (optind + 1 < argc)
		usage_error("methods", "methods takes at most one METHOD");
	if (optind < argc)
		method = argv[optind];
	if (markdown && method != NULL)
		usage_error("methods", "--markdown lists every method: give no METHOD");
	conn = soup_connect(opts);
	if (markdown && method == NULL)
		print_markdown(conn);
	else if (method == NULL)
	{
		res = soup_query(conn,
						 "SELECT method, CASE WHEN in_merge THEN 'yes' ELSE 'no' END AS merge, "
						 "CASE WHEN in_config THEN 'yes' ELSE 'no' END AS config, base, models, summary "
						 "FROM soup.merge_method_list", 0, NULL, 0);
		soup_print_table(res);
		PQclear(res);
		printf("\n\"%s methods METHOD\" lists a method's parameters.\n", progname);
	}
	else
	{
		res = soup_query(conn, "SELECT 1 FROM soup.merge_methods WHERE name = $1", 1, &method, 0);
		if (PQntuples(res) == 0)
			soup_fatal(EXIT_SERVER, "unknown method \"%s\" (\"%s methods\" lists them)", method, progname);
		PQclear(res);
		res = soup_query(conn,
						 "SELECT CASE p.face WHEN 'merge' THEN 'soup.merge' ELSE 'merge_config' END AS \"in\", "
						 "p.name AS parameter, p.kind, replace(p.scope, '_', ' ') AS scope, "
						 "CASE WHEN p.required THEN 'required' ELSE coalesce(p.default_value #>> '{}', '') END AS \"default\", "
						 "CASE WHEN p.min_value IS NULL OR p.max_value > 1e15 "
						 "  OR (p.min_value = '-Infinity' AND p.max_value = 'Infinity') THEN '' "
						 "  ELSE CASE WHEN p.min_exclusive THEN '(' ELSE '[' END || p.min_value || ', ' "
						 "  || p.max_value || ']' END AS range, "
						 "coalesce(p.allowed::text, '') AS only, p.summary "
						 "FROM soup.merge_method_params p WHERE p.method = $1 ORDER BY p.face DESC, p.ord",
						 1, &method, 0);
		soup_print_table(res);
		PQclear(res);
	}
	soup_disconnect(conn);
	return EXIT_OK;
}
