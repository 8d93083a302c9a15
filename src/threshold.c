/*
 * threshold.c - soup._magnitude_threshold: TIES' threshold of one model's
 * tensor (the k-th largest |data - base|, k = floor(density n)) in bounded
 * memory, for the merge driver.
 *
 * The aggregate soup.magnitude_threshold holds every magnitude of a tensor
 * (8 bytes an element) and selects among them; a 537M-element embedding
 * would take 4 GB of one backend.  This function reads the tensor's chunks
 * again for each pass of a radix selection instead (radix_select.c): a
 * 512 KB histogram and at most 32 MB of collected values, whatever the size.
 * The magnitudes are computed exactly as the aggregate computes them, so
 * the threshold is the same value.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "kernels/radix_select.h"
#include "tau_stream.h"

PG_FUNCTION_INFO_V1(soup_magnitude_threshold_stream);
PG_FUNCTION_INFO_V1(soup_magnitude_rank_stream);

#define THRESHOLD_NAME "soup._magnitude_threshold"

/* Each chunk's data - base into the selection (which ranks magnitudes: |x|, NaN largest). */
static void
radix_consume(void *arg, const double *tau, int32 n)
{
	soup_radix_add((SoupRadixSelect *) arg, tau, n);
}

/*
 * soup._magnitude_threshold(model_id bigint, base_id bigint, tensor text,
 * density float8) RETURNS float8: the k-th largest |data - base| over the
 * chunks both models have, k = floor(density n); +Infinity (keep nothing)
 * when k is 0, NULL when the tensor has no such chunks.
 */
static Datum magnitude_rank(FunctionCallInfo fcinfo, double density, int64 rank);

Datum
soup_magnitude_threshold_stream(PG_FUNCTION_ARGS)
{
	return magnitude_rank(fcinfo, PG_GETARG_FLOAT8(3), -1);
}

/*
 * soup._magnitude_rank(model_id, base_id, tensor, k bigint) RETURNS float8:
 * the same selection for a rank given as a count (breadcrumbs cuts at two
 * ranks); +Infinity when k is 0.
 */
Datum
soup_magnitude_rank_stream(PG_FUNCTION_ARGS)
{
	int64		k = PG_GETARG_INT64(3);

	if (k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("soup._magnitude_rank: the rank must not be negative, not " INT64_FORMAT, k)));
	return magnitude_rank(fcinfo, 0.0, k);
}

/* The k-th largest |data - base|: k = rank, or floor(density n) when rank < 0. */
static Datum
magnitude_rank(FunctionCallInfo fcinfo, double density, int64 rank)
{
	Datum		args[3] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};
	SoupRadixSelect rs;
	uint64	   *hist = palloc(sizeof(uint64) * SOUP_RADIX_BUCKETS);
	uint64	   *keep = palloc_extended(sizeof(uint64) * SOUP_RADIX_COLLECT, MCXT_ALLOC_HUGE);
	SPIPlanPtr	plan;
	int			nest_level;
	int			status;
	double		result;
	bool		isnull = false;

	if (!(density >= 0.0 && density <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(THRESHOLD_NAME ": density must be between 0 and 1, not %g", density)));
	SPI_connect();
	nest_level = soup_pin_search_path();
	plan = soup_prepare_tau_stream(false, THRESHOLD_NAME);
	/* k is known once the first pass has counted the elements */
	soup_radix_begin(&rs, 1, hist, keep);
	soup_stream_tau(plan, args, THRESHOLD_NAME, radix_consume, &rs);
	if (rs.n == 0)
		isnull = true;
	else if ((rs.k = rank >= 0 ? (uint64) rank : (uint64) floor(density * (double) rs.n)) == 0)
		result = get_float8_infinity();
	else if (rs.k > rs.n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(THRESHOLD_NAME ": rank " UINT64_FORMAT " beyond the " UINT64_FORMAT " elements",
						rs.k, rs.n)));
	else
	{
		while ((status = soup_radix_end_pass(&rs)) == 0)
			soup_stream_tau(plan, args, THRESHOLD_NAME, radix_consume, &rs);
		if (status < 0)
			elog(ERROR, THRESHOLD_NAME ": rank beyond the elements");
		result = rs.result;
	}
	soup_restore_search_path(nest_level);
	SPI_finish();
	pfree(keep);
	pfree(hist);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(result);
}
