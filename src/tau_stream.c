/*
 * tau_stream.c - read one model's task vector (data - base) of one tensor
 * chunk by chunk, through an SPI cursor, a few chunks in memory at a time:
 * TIES' and breadcrumbs' radix selections (threshold.c) and DELLA's masks
 * (della.c) stream it so.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "kernels/sparse.h"
#include "tau_stream.h"
#include "tensor.h"

SPIPlanPtr
soup_prepare_tau_stream(bool ordered, const char *fname)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, TEXTOID};
	SPIPlanPtr	plan = SPI_prepare(ordered
								   ? "SELECT c.data, b.data FROM soup.chunks c "
								   "JOIN soup.chunks b ON b.model_id = $2 AND b.tensor = c.tensor "
								   "AND b.chunk = c.chunk WHERE c.model_id = $1 AND c.tensor = $3 "
								   "ORDER BY c.chunk"
								   : "SELECT c.data, b.data FROM soup.chunks c "
								   "JOIN soup.chunks b ON b.model_id = $2 AND b.tensor = c.tensor "
								   "AND b.chunk = c.chunk WHERE c.model_id = $1 AND c.tensor = $3",
								   3, argtypes);

	if (plan == NULL)
		elog(ERROR, "%s: could not prepare: %s", fname, SPI_result_code_string(SPI_result));
	return plan;
}

void
soup_stream_tau(SPIPlanPtr plan, Datum *args, const char *fname,
				SoupTauConsumer fn, void *arg)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "soup task vector chunk",
											  ALLOCSET_DEFAULT_SIZES);
	Portal		portal = SPI_cursor_open(NULL, plan, args, NULL, true);

	for (;;)
	{
		SPI_cursor_fetch(portal, true, 4);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		xnull,
						bnull;
			Datum		xd = SPI_getbinval(tup, desc, 1, &xnull);
			Datum		bd = SPI_getbinval(tup, desc, 2, &bnull);
			MemoryContext old = MemoryContextSwitchTo(tmp);
			SoupTensor *x = DatumGetSoupTensorP(xd);
			SoupTensor *base = DatumGetSoupTensorP(bd);
			double	   *tau;

			CHECK_FOR_INTERRUPTS();
			soup_require_float((SoupDtype) x->dtype, fname);
			soup_check_same_layout(x, base, fname);
			tau = palloc(sizeof(double) * Max(x->numel, 1));
			/* data - base as the aggregates form it (a zero threshold keeps all) */
			soup_trim((SoupDtype) x->dtype, SOUP_TENSOR_DATA(x), SOUP_TENSOR_DATA(base),
					  0.0, tau, x->numel);
			fn(arg, tau, x->numel);
			MemoryContextSwitchTo(old);
			MemoryContextReset(tmp);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(tmp);
}
