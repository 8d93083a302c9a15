/*
 * main.c - pg_soup, the command-line client of the pg_soup extension.
 *
 *   pg_soup [-d CONNINFO] [-q] COMMAND [ARG]...
 *
 * Connection settings come from -d (a database name or a conninfo string /
 * URI) and libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
 * PGSERVICE, ~/.pgpass ...), as for psql.
 */
#include "client.h"

#include "getopt_long.h"

/* the release, from the Makefile's EXTVERSION (one place for it) */
#ifndef PG_SOUP_VERSION
#error "build the client with make: it defines PG_SOUP_VERSION"
#endif

static const char *const main_usage =
"pg_soup streams neural-network checkpoints to and from a PostgreSQL database\n"
"that has the pg_soup extension, and merges them there.\n"
"\n"
"Usage:\n"
"  pg_soup [OPTION]... COMMAND [ARG]...\n"
"\n"
"Commands:\n"
"  import FILE|INDEX|DIR --model M [--run R --step S] [--chunk-elems N]\n"
"                        store a safetensors file (or a sharded set through its\n"
"                        model.safetensors.index.json) as model M\n"
"  export MODEL FILE|DIR/\n"
"                        write model MODEL as one safetensors file (or its folder)\n"
"  ls [--run R]          list the models\n"
"  merge METHOD --out M [--weights W,...] [--base B] [--param K=V]...\n"
"        MODEL...        merge models into a new model M (soup.merge)\n"
"  methods [METHOD]      the merge methods and their parameters (the server's)\n"
"  merge --config FILE.yml --out M\n"
"                        run a mergekit configuration (soup.merge_config)\n"
"  log-metrics FILE.jsonl --run R [--skip-non-numeric]\n"
"                        store training metrics, one JSON object a line\n"
"  greedy-soup --metric NAME --eval CMD --out M MODEL...\n"
"                        a greedy soup: candidates by score, each kept only\n"
"                        if CMD's evaluation of the soup does not drop\n"
"\n"
"Options:\n"
"  -d, --dbname=CONNINFO database name or connection string\n"
"  -q, --quiet           no progress bar (it is drawn only on a terminal)\n"
"  -h, --help            show this help (or a command's: COMMAND --help)\n"
"  -V, --version         show the version\n"
"\n"
"libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...)\n"
"applies as for psql.\n"
"\n"
"Exit status: 0 success, 1 the server refused or failed the command,\n"
"2 bad command line, 3 could not connect (or no pg_soup extension there),\n"
"4 a local file could not be read or written, or is not valid safetensors\n"
"(or, for log-metrics, not valid JSON lines).\n";

bool
common_option(int c, ClientOptions *opts, const char *usage)
{
	switch (c)
	{
		case 'd':
			opts->dbname = optarg;
			return true;
		case 'q':
			opts->quiet = true;
			return true;
		case 'h':
			fputs(usage, stdout);
			exit(EXIT_OK);
		default:
			return false;
	}
}

void
usage_error(const char *command, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"%s%s%s --help\" for more information.\n",
			progname, command ? " " : "", command ? command : "");
	exit(EXIT_USAGE);
}

typedef struct Command
{
	const char *name;
	int			(*run) (ClientOptions *opts, int argc, char **argv);
} Command;

static const Command commands[] = {
	{"import", cmd_import},
	{"export", cmd_export},
	{"ls", cmd_ls},
	{"merge", cmd_merge},
	{"log-metrics", cmd_log_metrics},
	{"greedy-soup", cmd_greedy_soup},
	{"methods", cmd_methods},
};

int
main(int argc, char **argv)
{
	ClientOptions opts = {0};
	int			i;

	soup_install_exit_cleanup();

	/* options before the command; the command parses the rest */
	for (i = 1; i < argc && argv[i][0] == '-'; i++)
	{
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			fputs(main_usage, stdout);
			return EXIT_OK;
		}
		else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)
		{
			printf("pg_soup " PG_SOUP_VERSION "\n");
			return EXIT_OK;
		}
		else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
			opts.quiet = true;
		else if ((strcmp(a, "-d") == 0 || strcmp(a, "--dbname") == 0) && i + 1 < argc)
			opts.dbname = argv[++i];
		else if (strncmp(a, "--dbname=", 9) == 0)
			opts.dbname = a + 9;
		else if (strncmp(a, "-d", 2) == 0 && a[2] != '\0')
			opts.dbname = a + 2;
		else
			usage_error(NULL, "unknown option \"%s\"", a);
	}
	if (i >= argc)
		usage_error(NULL, "no command given");
	for (size_t c = 0; c < lengthof(commands); c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].run(&opts, argc - i, argv + i);
	usage_error(NULL, "unknown command \"%s\"", argv[i]);
}
