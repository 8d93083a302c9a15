/*
 * cmd_ls.c - pg_soup ls [--run R]: the models, oldest first, from
 * soup.model_info, as an aligned table.
 */
#include "client.h"

#include "getopt_long.h"

static const char *const ls_usage =
"Usage:\n"
"  pg_soup ls [OPTION]...\n"
"\n"
"Lists the stored models: name, kind, run, step, tensors, elements, data\n"
"bytes and creation time.\n"
"\n"
"Options:\n"
"  -r, --run=R           only the models of run R\n"
"  -d, --dbname=CONNINFO database name or connection string\n";

/* A query result as an aligned table with a header line (ls, methods). */
void
soup_print_table(PGresult *res)
{
	int			ncols = PQnfields(res);
	int			nrows = PQntuples(res);
	int		   *width = palloc0(sizeof(int) * ncols);

	for (int c = 0; c < ncols; c++)
	{
		width[c] = (int) strlen(PQfname(res, c));
		for (int r = 0; r < nrows; r++)
			width[c] = Max(width[c], PQgetlength(res, r, c));
	}
	for (int r = -1; r < nrows; r++)
	{
		for (int c = 0; c < ncols; c++)
			printf("%-*s%s", c + 1 < ncols ? width[c] : 0,
				   r < 0 ? PQfname(res, c) : PQgetvalue(res, r, c),
				   c + 1 < ncols ? "  " : "\n");
	}
}

int
cmd_ls(ClientOptions *opts, int argc, char **argv)
{
	static const struct option long_options[] = {
		{"run", required_argument, NULL, 'r'},
		COMMON_LONG_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	const char *run = NULL;
	int			c;
	PGconn	   *conn;
	PGresult   *res;

	while ((c = getopt_long(argc, argv, "r:" COMMON_SHORT_OPTIONS, long_options, NULL)) != -1)
	{
		if (common_option(c, opts, ls_usage))
			continue;
		if (c == 'r')
			run = optarg;
		else
			usage_error("ls", "bad option");
	}
	if (optind != argc)
		usage_error("ls", "ls takes no arguments");
	conn = soup_connect(opts);
	res = soup_query(conn,
					 "SELECT name, kind, coalesce(run, '') AS run, coalesce(step::text, '') AS step, "
					 "tensors, elements, data_bytes AS bytes, "
					 "to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created "
					 "FROM soup.model_info WHERE $1::text IS NULL OR run = $1 "
					 "ORDER BY created_at, id",
					 1, &run, 0);
	soup_print_table(res);
	PQclear(res);
	soup_disconnect(conn);
	return EXIT_OK;
}
