/*
 * client.h - the pg_soup command-line client.
 *
 * The client talks to a server that has the pg_soup extension over libpq
 * only: checkpoints stream through COPY ... (FORMAT binary), so the server
 * needs no access to the client's files and the user no privilege beyond
 * the catalog tables.  Each command runs in one transaction: a failure
 * leaves nothing behind.
 */
#ifndef PG_SOUP_CLIENT_H
#define PG_SOUP_CLIENT_H

#include "postgres_fe.h"

#include "lib/stringinfo.h"
#include "libpq-fe.h"

/* Exit codes (documented in --help and docs/client.md). */
#define EXIT_OK			0
#define EXIT_SERVER		1		/* the server refused or failed the command */
#define EXIT_USAGE		2		/* bad command line */
#define EXIT_CONNECT	3		/* could not connect, or no pg_soup there */
#define EXIT_FILE		4		/* a local file is unreadable, unwritable or invalid */

/* Limits the server applies to what its own functions write. */
#define SOUP_MAX_MODEL_NAME 1024
#define SOUP_MAX_CHUNK_ELEMS (32 * 1024 * 1024)

/* Options every command shares. */
typedef struct ClientOptions
{
	const char *dbname;			/* conninfo string or database name, or NULL */
	bool		quiet;			/* no progress bar even on a terminal */
} ClientOptions;

/* ---- conn.c: connection, queries, errors ---- */
extern const char *progname;
extern PGconn *soup_connect(const ClientOptions *opts);
extern void soup_disconnect(PGconn *conn);
extern pg_attribute_noreturn() void soup_fatal(int code, const char *fmt,...)
			pg_attribute_printf(2, 3);
extern pg_attribute_noreturn() void soup_server_fatal(PGconn *conn, PGresult *res,
													  const char *what);
extern void soup_exec(PGconn *conn, const char *sql);
extern void soup_commit(PGconn *conn);
extern void soup_install_exit_cleanup(void);
extern PGresult *soup_check(PGconn *conn, PGresult *res);
extern PGresult *soup_query(PGconn *conn, const char *sql, int nparams,
							const char *const *values, int result_format);
extern void soup_copy_start(PGconn *conn, const char *sql);
extern void soup_copy_put(PGconn *conn, const void *data, size_t len);
extern void soup_copy_end(PGconn *conn, const char *what);
extern void soup_set_cleanup_file(const char *path);

/* ---- files.c: local files ---- */
extern int	soup_open_file(const char *path, uint64 *size);
extern void soup_pread_exact(int fd, const char *path, void *buf, size_t len, uint64 offset);
extern void soup_write_all(int fd, const char *path, const void *buf, size_t len);
extern char *soup_read_whole(const char *path, uint64 max, size_t *len);

/* yaml_json.c */
extern char *soup_yaml_file_to_json(const char *path);

/* ---- text helpers (conn.c) ---- */
extern void soup_append_copy_text(StringInfo buf, const char *s);
extern void soup_append_array_elem(StringInfo buf, const char *s);

/* ---- progress.c: a progress bar on stderr when it is a terminal ---- */
typedef struct Progress
{
	bool		enabled;
	const char *label;
	uint64		total;
	uint64		done;
	double		start;
	double		last_draw;
} Progress;

extern bool progress_on_screen;	/* a bar is drawn and its line not ended */
extern void progress_start(Progress *p, const ClientOptions *opts, const char *label,
						   uint64 total);
extern void progress_add(Progress *p, uint64 bytes);
extern void progress_finish(Progress *p);
extern double soup_now(void);

/* ---- main.c: options every command takes (-d, -q, -h) ---- */
#define COMMON_LONG_OPTIONS \
	{"dbname", required_argument, NULL, 'd'}, \
	{"quiet", no_argument, NULL, 'q'}, \
	{"help", no_argument, NULL, 'h'}
#define COMMON_SHORT_OPTIONS "d:qh"
extern bool common_option(int c, ClientOptions *opts, const char *usage);
extern pg_attribute_noreturn() void usage_error(const char *command, const char *fmt,...)
			pg_attribute_printf(2, 3);

/*
 * The commands: argv[0] is the command's name; each parses its own options
 * with getopt_long and returns an exit code (errors exit through soup_fatal).
 */
extern int	cmd_import(ClientOptions *opts, int argc, char **argv);
extern int	cmd_export(ClientOptions *opts, int argc, char **argv);
extern int	cmd_ls(ClientOptions *opts, int argc, char **argv);
extern int	cmd_merge(ClientOptions *opts, int argc, char **argv);
extern int	cmd_log_metrics(ClientOptions *opts, int argc, char **argv);
extern int	cmd_greedy_soup(ClientOptions *opts, int argc, char **argv);
extern int	cmd_methods(ClientOptions *opts, int argc, char **argv);
extern void soup_print_table(PGresult *res);

/* cmd_export.c: write a model to a file (or a folder, for a DIR/) */
extern void soup_export(const ClientOptions *opts, const char *model, const char *path);

#endif							/* PG_SOUP_CLIENT_H */
