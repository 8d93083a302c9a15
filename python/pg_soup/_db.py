"""Transactions, server errors and small queries shared by the package."""
import contextlib

import psycopg2
import psycopg2.extensions as ext

from .errors import SoupError, UNDEFINED_OBJECT


@contextlib.contextmanager
def transaction(conn, commit=True):
    """Run a block as one unit of work on conn.

    commit=True: the block ends with COMMIT (of the connection's transaction,
    so any work the caller left pending on it is committed too), and any
    error rolls it back.  commit=False: the block runs inside the caller's
    transaction under a savepoint; an error rolls back to the savepoint and
    the caller decides.  Either way a failed call leaves no rows behind, and
    server errors come out as SoupError with their SQLSTATE.
    """
    if commit:
        try:
            with conn.cursor() as cur:
                if conn.autocommit:
                    cur.execute("BEGIN")
                yield cur
                if conn.autocommit:
                    cur.execute("COMMIT")
            if not conn.autocommit:
                conn.commit()
        except psycopg2.Error as e:
            _rollback(conn)
            raise SoupError.from_psycopg2(e) from None
        except BaseException:
            _rollback(conn)
            raise
    else:
        if conn.autocommit:
            raise SoupError("commit=False needs a connection in a transaction "
                            "(autocommit is on)", "25000")
        with conn.cursor() as cur:
            cur.execute("SAVEPOINT pg_soup_call")
            try:
                yield cur
                cur.execute("RELEASE SAVEPOINT pg_soup_call")
            except psycopg2.Error as e:
                _rollback_to_savepoint(conn)
                raise SoupError.from_psycopg2(e) from None
            except BaseException:
                _rollback_to_savepoint(conn)
                raise


def _rollback(conn):
    if conn.closed:
        return
    if conn.autocommit:
        if conn.info.transaction_status != ext.TRANSACTION_STATUS_IDLE:
            with conn.cursor() as cur:
                cur.execute("ROLLBACK")
    else:
        conn.rollback()


def _rollback_to_savepoint(conn):
    if conn.closed:
        return
    with conn.cursor() as cur:
        cur.execute("ROLLBACK TO SAVEPOINT pg_soup_call")
        cur.execute("RELEASE SAVEPOINT pg_soup_call")


@contextlib.contextmanager
def reading(conn):
    """A read-only block: server errors become SoupError; a transaction the
    block opened itself is closed again so the connection is left idle."""
    was_idle = conn.info.transaction_status == ext.TRANSACTION_STATUS_IDLE
    try:
        with conn.cursor() as cur:
            yield cur
    except psycopg2.Error as e:
        if was_idle:
            _rollback(conn)
        raise SoupError.from_psycopg2(e) from None
    if was_idle and not conn.autocommit:
        conn.rollback()


def server_chunk_elems(cur):
    """soup.chunk_elems of the server (reading a tensor loads the library,
    which defines the setting)."""
    cur.execute("SELECT 'f32:[]'::soup.tensor IS NOT NULL, "
                "pg_catalog.current_setting('soup.chunk_elems')::int")
    return cur.fetchone()[1]


def model_id(cur, model):
    cur.execute("SELECT id FROM soup.models WHERE name = %s", (model,))
    row = cur.fetchone()
    if row is None:
        raise SoupError('model "%s" does not exist' % model, UNDEFINED_OBJECT)
    return row[0]
