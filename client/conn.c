/*
 * conn.c - connecting, running SQL, COPY and reporting errors for the
 * pg_soup client.
 *
 * Every error ends the program with a documented exit code.  The client
 * never commits after an error: leaving the process closes the connection
 * and the server rolls the transaction back, so a failed command leaves no
 * rows.  A file being written is registered here and removed on the way out.
 */
#include "client.h"

#include <signal.h>
#include <unistd.h>

const char *progname = "pg_soup";

/* A partial output file to remove if the program stops early. */
static char *partial_file = NULL;

/* Register (or, with NULL, forget) the file to remove on the way out. */
void
soup_set_cleanup_file(const char *path)
{
	char	   *old = partial_file;

	/* the signal handler sees the old name or the new one, never freed memory */
	partial_file = path ? strdup(path) : NULL;
	free(old);
}

/* Also run at exit: paths that leave through exit() (out of memory) included. */
static void
remove_partial_file(void)
{
	if (partial_file)
		unlink(partial_file);
}

void
soup_install_exit_cleanup(void)
{
	atexit(remove_partial_file);
}

/* A message must not land on the line of a progress bar. */
static void
end_progress_line(void)
{
	if (progress_on_screen)
	{
		fputc('\n', stderr);
		progress_on_screen = false;
	}
}

/* Ctrl-C or a kill during an export must not leave a temporary file. */
static void
on_signal(int signo)
{
	if (partial_file)
		unlink(partial_file);
	signal(signo, SIG_DFL);
	raise(signo);
}

/* Catch signo unless it is ignored (nohup: a hangup must not stop us). */
static void
catch_signal(int signo)
{
	if (signal(signo, on_signal) == SIG_IGN)
		signal(signo, SIG_IGN);
}

void
soup_fatal(int code, const char *fmt,...)
{
	va_list		ap;

	end_progress_line();
	fprintf(stderr, "%s: error: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	remove_partial_file();
	exit(code);
}

/* The server's message, detail, hint and SQLSTATE, as psql shows them. */
void
soup_server_fatal(PGconn *conn, PGresult *res, const char *what)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	end_progress_line();
	if (msg == NULL)
	{
		/* no error result: the connection itself failed */
		fprintf(stderr, "%s: error: %s: %s", progname, what, PQerrorMessage(conn));
	}
	else
	{
		fprintf(stderr, "%s: error: %s: %s", progname, what, msg);
		if (state)
			fprintf(stderr, " (SQLSTATE %s)", state);
		fputc('\n', stderr);
		if (detail)
			fprintf(stderr, "DETAIL:  %s\n", detail);
		if (hint)
			fprintf(stderr, "HINT:  %s\n", hint);
	}
	remove_partial_file();
	exit(EXIT_SERVER);
}

PGconn *
soup_connect(const ClientOptions *opts)
{
	const char *keywords[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *values[] = {opts->dbname, progname, "UTF8", NULL};
	PGconn	   *conn;
	PGresult   *res;

	catch_signal(SIGINT);
	catch_signal(SIGTERM);
	catch_signal(SIGHUP);
	conn = PQconnectdbParams(keywords, values, true);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		soup_fatal(EXIT_CONNECT, "could not connect: %s",
				   conn ? PQerrorMessage(conn) : "out of memory");
	/* every name the client uses is qualified; nothing else may resolve */
	soup_exec(conn, "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)");
	res = soup_query(conn, "SELECT extversion FROM pg_catalog.pg_extension "
					 "WHERE extname = 'pg_soup'", 0, NULL, 0);
	if (PQntuples(res) == 0)
		soup_fatal(EXIT_CONNECT, "database \"%s\" does not have the pg_soup extension",
				   PQdb(conn));
	PQclear(res);
	return conn;
}

void
soup_disconnect(PGconn *conn)
{
	PQfinish(conn);
}

void
soup_exec(PGconn *conn, const char *sql)
{
	PQclear(soup_query(conn, sql, 0, NULL, 0));
}

/* COMMIT, and make sure it was one: an aborted transaction answers ROLLBACK. */
void
soup_commit(PGconn *conn)
{
	PGresult   *res = soup_query(conn, "COMMIT", 0, NULL, 0);

	if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		soup_fatal(EXIT_SERVER, "the transaction was rolled back (%s)", PQcmdStatus(res));
	PQclear(res);
}

/* A statement's result, or the end of the program if it failed. */
PGresult *
soup_check(PGconn *conn, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		soup_server_fatal(conn, res, "query failed");
	return res;
}

/* Run one statement with text parameters; the caller frees the result. */
PGresult *
soup_query(PGconn *conn, const char *sql, int nparams, const char *const *values,
		   int result_format)
{
	return soup_check(conn, PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL,
										 result_format));
}

void
soup_copy_put(PGconn *conn, const void *data, size_t len)
{
	while (len > 0)
	{
		int			n = (int) Min(len, (size_t) (64 * 1024 * 1024));

		if (PQputCopyData(conn, data, n) != 1)
			soup_fatal(EXIT_SERVER, "COPY failed: %s", PQerrorMessage(conn));
		data = (const char *) data + n;
		len -= n;
	}
}

/* Start a COPY ... FROM STDIN. */
void
soup_copy_start(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COPY_IN)
		soup_server_fatal(conn, res, "could not start COPY");
	PQclear(res);
}

/* Finish a COPY FROM STDIN and check how the server took it. */
void
soup_copy_end(PGconn *conn, const char *what)
{
	PGresult   *res;

	if (PQputCopyEnd(conn, NULL) != 1)
		soup_fatal(EXIT_SERVER, "%s: %s", what, PQerrorMessage(conn));
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			soup_server_fatal(conn, res, what);
		PQclear(res);
	}
}

/* ---- text for the server ---- */

/* A field of COPY's text format. */
void
soup_append_copy_text(StringInfo buf, const char *s)
{
	for (const char *p = s; *p; p++)
	{
		switch (*p)
		{
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			default:
				appendStringInfoChar(buf, *p);
		}
	}
}

/* An element of an array literal, always quoted. */
void
soup_append_array_elem(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (const char *p = s; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}
