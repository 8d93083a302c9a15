/*
 * progress.c - progress of imports, exports and merges (soup.progress), and
 * the pause point that lets a test stop an operation half-way.
 *
 * The slots of a COPY's progress report are used as pg_stat_progress_copy
 * reads them (bytes, tuples = chunks, command, type), so a pg_soup operation
 * also looks right there; pg_soup's own slots sit at the end of the array.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/progress.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"
#include "utils/lsyscache.h"

#include "pg_soup.h"
#include "progress.h"
#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_progress_begin_sql);
PG_FUNCTION_INFO_V1(soup_progress_end_sql);
PG_FUNCTION_INFO_V1(soup_chunk_written);

/* pg_soup's slots (0-based; soup.progress reads them 1-based) */
#define SOUP_PROGRESS_CHUNKS_TOTAL	16
#define SOUP_PROGRESS_MODEL_ID		17
#define SOUP_PROGRESS_OP			18
#define SOUP_PROGRESS_MAGIC			19

/* 'soup' in ASCII: marks a report as pg_soup's, and is the pause lock's key */
#define SOUP_PROGRESS_MAGIC_VALUE	INT64CONST(0x736f7570)

bool
soup_progress_active(void)
{
	volatile PgBackendStatus *be = MyBEEntry;

	return be != NULL && be->st_progress_command == PROGRESS_COMMAND_COPY &&
		be->st_progress_param[SOUP_PROGRESS_MAGIC] == SOUP_PROGRESS_MAGIC_VALUE;
}

bool
soup_progress_begin(SoupProgressOp op, int64 model_id, int64 chunks_total,
					int64 bytes_total)
{
	volatile PgBackendStatus *be = MyBEEntry;
	const int	index[] = {PROGRESS_COPY_BYTES_TOTAL, PROGRESS_COPY_COMMAND,
		PROGRESS_COPY_TYPE, SOUP_PROGRESS_CHUNKS_TOTAL, SOUP_PROGRESS_MODEL_ID,
	SOUP_PROGRESS_OP, SOUP_PROGRESS_MAGIC};
	int64		val[7];
	Oid			chunks;

	if (be == NULL || be->st_progress_command != PROGRESS_COMMAND_INVALID)
		return false;
	chunks = get_relname_relid("chunks", get_namespace_oid("soup", false));
	val[0] = bytes_total;
	val[1] = op == SOUP_PROGRESS_EXPORT ? PROGRESS_COPY_COMMAND_TO
		: PROGRESS_COPY_COMMAND_FROM;
	val[2] = op == SOUP_PROGRESS_MERGE ? PROGRESS_COPY_TYPE_CALLBACK
		: PROGRESS_COPY_TYPE_FILE;
	val[3] = chunks_total;
	val[4] = model_id;
	val[5] = op;
	val[6] = SOUP_PROGRESS_MAGIC_VALUE;
	pgstat_progress_start_command(PROGRESS_COMMAND_COPY, chunks);
	pgstat_progress_update_multi_param(lengthof(index), index, val);
	return true;
}

/*
 * Hold the operation until the advisory lock SOUP_PROGRESS_MAGIC_VALUE is
 * free: a test takes pg_advisory_lock(1936684400), sets
 * soup.pause_after_chunks, and so knows for certain that the operation it
 * kills has written some chunks and has not committed.
 */
static void
pause_here(void)
{
	LOCKTAG		tag;

	/* the tag pg_advisory_lock(bigint) uses for this key */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId,
						 (uint32) (SOUP_PROGRESS_MAGIC_VALUE >> 32),
						 (uint32) SOUP_PROGRESS_MAGIC_VALUE, 1);
	(void) LockAcquire(&tag, ShareLock, false, false);
	LockRelease(&tag, ShareLock, false);
}

void
soup_progress_chunk(int64 nbytes)
{
	volatile PgBackendStatus *be = MyBEEntry;
	int64		done;

	if (!soup_progress_active())
		return;
	done = be->st_progress_param[PROGRESS_COPY_TUPLES_PROCESSED] + 1;
	pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, done);
	pgstat_progress_update_param(PROGRESS_COPY_BYTES_PROCESSED,
								 be->st_progress_param[PROGRESS_COPY_BYTES_PROCESSED] + nbytes);
	if (soup_pause_after_chunks > 0 && done == soup_pause_after_chunks)
		pause_here();
}

void
soup_progress_end(void)
{
	if (soup_progress_active())
		pgstat_progress_end_command();
}

/*
 * soup._progress_begin(op int, model_id bigint, chunks_total bigint,
 * bytes_total bigint) RETURNS boolean: for the SQL merge driver.
 */
Datum
soup_progress_begin_sql(PG_FUNCTION_ARGS)
{
	int32		op = PG_GETARG_INT32(0);

	if (op < SOUP_PROGRESS_IMPORT || op > SOUP_PROGRESS_MERGE)
		elog(ERROR, "unknown pg_soup progress operation %d", op);
	PG_RETURN_BOOL(soup_progress_begin((SoupProgressOp) op, PG_GETARG_INT64(1),
									   PG_GETARG_INT64(2), PG_GETARG_INT64(3)));
}

/* soup._progress_end() RETURNS void */
Datum
soup_progress_end_sql(PG_FUNCTION_ARGS)
{
	soup_progress_end();
	PG_RETURN_VOID();
}

/* Data bytes of a stored chunk, without reading more than its header. */
static int64
chunk_data_bytes(Datum d)
{
	SoupTensor *t = (SoupTensor *) PG_DETOAST_DATUM_SLICE(d, 0, sizeof(SoupTensor));

	return (int64) SOUP_TENSOR_NBYTES(t);
}

/*
 * BEFORE INSERT trigger on soup.chunks: every writer of chunks (import,
 * merges, EMA updates) counts its progress here, in one place.
 */
Datum
soup_chunk_written(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	HeapTuple	tup;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || !TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		elog(ERROR, "soup._chunk_written must be a BEFORE INSERT row trigger");
	tup = trig->tg_trigtuple;
	if (soup_progress_active())
	{
		bool		isnull;
		Datum		d;
		TupleDesc	desc = trig->tg_relation->rd_att;

		d = heap_getattr(tup, SPI_fnumber(desc, "data"), desc, &isnull);
		soup_progress_chunk(isnull ? 0 : chunk_data_bytes(d));
	}
	return PointerGetDatum(tup);
}
