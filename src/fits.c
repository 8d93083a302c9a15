/*
 * fits.c - aggregates over training-run metadata: critical batch size,
 * gradient noise scale, power laws and Chinchilla scaling laws (DESIGN.md
 * sections 3 and 4).  The numerics are in kernels/fit.c; this file gathers
 * the points, calls the kernels and turns their results into SQL values.
 *
 * The fits collect their points (rows with a NULL are skipped) and sort
 * them before fitting, so a result does not depend on row order or on a
 * parallel plan.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/float.h"

#include "kernels/fit.h"
#include "mstate.h"
#include "pg_soup.h"

PG_FUNCTION_INFO_V1(soup_points_transfn);
PG_FUNCTION_INFO_V1(soup_points_combinefn);
PG_FUNCTION_INFO_V1(soup_points_serialfn);
PG_FUNCTION_INFO_V1(soup_points_deserialfn);
PG_FUNCTION_INFO_V1(soup_fit_power_law_final);
PG_FUNCTION_INFO_V1(soup_fit_power_law_offset_final);
PG_FUNCTION_INFO_V1(soup_critical_batch_final);
PG_FUNCTION_INFO_V1(soup_fit_chinchilla_final);
PG_FUNCTION_INFO_V1(soup_cbs_sql);
PG_FUNCTION_INFO_V1(soup_chinchilla_loss_sql);
PG_FUNCTION_INFO_V1(soup_compute_optimal_sql);
PG_FUNCTION_INFO_V1(soup_gns_transfn);
PG_FUNCTION_INFO_V1(soup_gns_finalfn);

/* Rows of ncols float8 values. */
typedef struct Points
{
	int			ncols;
	int64		n;
	int64		cap;
	double	   *v;
} Points;

static void
fit_error(int status, const char *fname)
{
	ereport(ERROR,
			(errcode(status == FIT_ERR_NO_CONVERGENCE ? ERRCODE_DATA_EXCEPTION :
					 status == FIT_ERR_OUT_OF_MEMORY ? ERRCODE_OUT_OF_MEMORY :
					 ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s: %s", fname, soup_fit_strerror(status))));
}

static Points *
points_new(MemoryContext ctx, int ncols)
{
	Points	   *p = MemoryContextAllocZero(ctx, sizeof(Points));

	p->ncols = ncols;
	return p;
}

static void
points_add(MemoryContext ctx, Points *p, const double *row)
{
	if (p->n == p->cap)
	{
		int64		cap = Max(64, p->cap * 2);
		Size		bytes = sizeof(double) * p->ncols * cap;

		p->v = p->v ? repalloc_huge(p->v, bytes) : MemoryContextAllocHuge(ctx, bytes);
		p->cap = cap;
	}
	memcpy(p->v + p->n * p->ncols, row, sizeof(double) * p->ncols);
	p->n++;
}

/* transfn(state, v1, v2 [, v3]): one point per row, NULLs skipped */
Datum
soup_points_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup fit");
	Points	   *p = PG_ARGISNULL(0) ? NULL : (Points *) PG_GETARG_POINTER(0);
	int			ncols = PG_NARGS() - 1;
	double		row[3];

	for (int i = 0; i < ncols; i++)
	{
		if (PG_ARGISNULL(i + 1))
			PG_RETURN_POINTER(p);
		row[i] = PG_GETARG_FLOAT8(i + 1);
	}
	if (p == NULL)
		p = points_new(ctx, ncols);
	points_add(ctx, p, row);
	PG_RETURN_POINTER(p);
}

Datum
soup_points_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup fit");
	Points	   *a = PG_ARGISNULL(0) ? NULL : (Points *) PG_GETARG_POINTER(0);
	Points	   *b = PG_ARGISNULL(1) ? NULL : (Points *) PG_GETARG_POINTER(1);

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = points_new(ctx, b->ncols);
	for (int64 i = 0; i < b->n; i++)
		points_add(ctx, a, b->v + i * b->ncols);
	PG_RETURN_POINTER(a);
}

Datum
soup_points_serialfn(PG_FUNCTION_ARGS)
{
	Points	   *p = (Points *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, p->ncols);
	pq_sendint64(&buf, p->n);
	pq_sendbytes(&buf, (char *) p->v, sizeof(double) * p->ncols * p->n);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
soup_points_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	Points	   *p;
	int			ncols;
	int64		n;

	mstate_context(fcinfo, "soup fit");
	mstate_reader(b, &buf);
	ncols = pq_getmsgint(&buf, 4);
	n = pq_getmsgint64(&buf);
	if (ncols < 1 || ncols > 3 || n < 0 ||
		buf.len - buf.cursor != (int64) sizeof(double) * ncols * n)
		elog(ERROR, "invalid soup fit state");
	p = points_new(CurrentMemoryContext, ncols);
	p->n = p->cap = n;
	p->v = palloc_extended(sizeof(double) * ncols * Max(n, 1), MCXT_ALLOC_HUGE);
	pq_copymsgbytes(&buf, (char *) p->v, sizeof(double) * ncols * n);
	PG_RETURN_POINTER(p);
}

static int	sort_ncols;

static int
row_cmp(const void *a, const void *b)
{
	const double *x = a;
	const double *y = b;

	for (int i = 0; i < sort_ncols; i++)
	{
		int			c = float8_cmp_internal(x[i], y[i]);

		if (c != 0)
			return c;
	}
	return 0;
}

/* The points sorted into columns, so the fit sees one canonical order. */
static double **
points_columns(Points *p, const char *fname)
{
	double	  **cols = palloc(sizeof(double *) * p->ncols);
	double	   *rows = palloc_extended(sizeof(double) * p->ncols * Max(p->n, 1), MCXT_ALLOC_HUGE);

	if (p->n > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: too many points", fname)));
	memcpy(rows, p->v, sizeof(double) * p->ncols * p->n);
	sort_ncols = p->ncols;
	qsort(rows, p->n, sizeof(double) * p->ncols, row_cmp);
	for (int c = 0; c < p->ncols; c++)
	{
		cols[c] = palloc_extended(sizeof(double) * Max(p->n, 1), MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < p->n; i++)
			cols[c][i] = rows[i * p->ncols + c];
	}
	return cols;
}

static Datum
make_tuple(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* NaN fields (r2 of constant y) become NULL rather than a silent NaN. */
static Datum
float_or_null(double v, bool *isnull)
{
	*isnull = isnan(v);
	return Float8GetDatum(v);
}

static Datum
power_law_final(FunctionCallInfo fcinfo, bool offset)
{
	const char *fname = offset ? "soup.fit_power_law_offset" : "soup.fit_power_law";
	Points	   *p = PG_ARGISNULL(0) ? NULL : (Points *) PG_GETARG_POINTER(0);
	SoupPowerLawFit fit;
	double	  **cols;
	int			status;
	Datum		values[6];
	bool		nulls[6] = {0};

	if (p == NULL)
		PG_RETURN_NULL();
	cols = points_columns(p, fname);
	status = offset ? soup_fit_power_law_offset(cols[0], cols[1], (int) p->n, &fit)
		: soup_fit_power_law(cols[0], cols[1], (int) p->n, &fit);
	if (status != FIT_OK)
		fit_error(status, fname);
	values[0] = float_or_null(fit.a, &nulls[0]);
	values[1] = float_or_null(fit.b, &nulls[1]);
	values[2] = float_or_null(fit.c, &nulls[2]);
	values[3] = float_or_null(fit.r2, &nulls[3]);
	values[4] = float_or_null(fit.rmse, &nulls[4]);
	values[5] = Int32GetDatum(fit.n);
	PG_RETURN_DATUM(make_tuple(fcinfo, values, nulls));
}

Datum
soup_fit_power_law_final(PG_FUNCTION_ARGS)
{
	return power_law_final(fcinfo, false);
}

Datum
soup_fit_power_law_offset_final(PG_FUNCTION_ARGS)
{
	return power_law_final(fcinfo, true);
}

Datum
soup_critical_batch_final(PG_FUNCTION_ARGS)
{
	Points	   *p = PG_ARGISNULL(0) ? NULL : (Points *) PG_GETARG_POINTER(0);
	SoupCbsFit	fit;
	double	  **cols;
	int			status;
	Datum		values[5];
	bool		nulls[5] = {0};

	if (p == NULL)
		PG_RETURN_NULL();
	cols = points_columns(p, "soup.critical_batch_size");
	status = soup_fit_critical_batch(cols[0], cols[1], (int) p->n, &fit);
	if (status != FIT_OK)
		fit_error(status, "soup.critical_batch_size");
	values[0] = Float8GetDatum(fit.s_min);
	values[1] = Float8GetDatum(fit.e_min);
	values[2] = Float8GetDatum(fit.b_crit);
	values[3] = Float8GetDatum(fit.objective);
	values[4] = Int32GetDatum(fit.n);
	PG_RETURN_DATUM(make_tuple(fcinfo, values, nulls));
}

Datum
soup_fit_chinchilla_final(PG_FUNCTION_ARGS)
{
	Points	   *p = PG_ARGISNULL(0) ? NULL : (Points *) PG_GETARG_POINTER(0);
	SoupChinchillaFit fit;
	SoupChinchillaOptions opts;
	double	  **cols;
	int			status;
	Datum		values[9];
	bool		nulls[9] = {0};

	if (p == NULL)
		PG_RETURN_NULL();
	cols = points_columns(p, "soup.fit_chinchilla");
	soup_chinchilla_default_options(&opts);
	opts.n_threads = soup_threads;
	/* the kernel's OpenMP threads make no PostgreSQL calls */
	status = soup_fit_chinchilla(cols[0], cols[1], cols[2], (int) p->n, &opts, &fit);
	if (status != FIT_OK)
		fit_error(status, "soup.fit_chinchilla");
	values[0] = Float8GetDatum(fit.E);
	values[1] = Float8GetDatum(fit.A);
	values[2] = Float8GetDatum(fit.B);
	values[3] = Float8GetDatum(fit.alpha);
	values[4] = Float8GetDatum(fit.beta);
	values[5] = Float8GetDatum(fit.objective);
	values[6] = Int32GetDatum(fit.n);
	values[7] = Int32GetDatum(fit.n_starts);
	values[8] = Int32GetDatum(fit.n_converged);
	PG_RETURN_DATUM(make_tuple(fcinfo, values, nulls));
}

/* soup.cbs(s_min, e_min, b0, overhead) */
Datum
soup_cbs_sql(PG_FUNCTION_ARGS)
{
	double		cbs;
	int			status = soup_cbs(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1),
								  PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(3), &cbs);

	if (status != FIT_OK)
		fit_error(status, "soup.cbs");
	PG_RETURN_FLOAT8(cbs);
}

/* The E, A, B, alpha, beta fields of a soup.chinchilla_fit value. */
static void
fit_from_record(HeapTupleHeader rec, SoupChinchillaFit *fit)
{
	const char *names[5] = {"e", "a", "b", "alpha", "beta"};
	double	   *dst[5] = {&fit->E, &fit->A, &fit->B, &fit->alpha, &fit->beta};

	memset(fit, 0, sizeof(*fit));
	for (int i = 0; i < 5; i++)
	{
		bool		isnull;
		Datum		d = GetAttributeByName(rec, names[i], &isnull);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the fit's field %s is null", names[i])));
		*dst[i] = DatumGetFloat8(d);
	}
}

Datum
soup_chinchilla_loss_sql(PG_FUNCTION_ARGS)
{
	SoupChinchillaFit fit;
	double		loss;
	int			status;

	fit_from_record(PG_GETARG_HEAPTUPLEHEADER(0), &fit);
	status = soup_chinchilla_loss(&fit, PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2), &loss);
	if (status != FIT_OK)
		fit_error(status, "soup.chinchilla_loss");
	PG_RETURN_FLOAT8(loss);
}

Datum
soup_compute_optimal_sql(PG_FUNCTION_ARGS)
{
	SoupChinchillaFit fit;
	double		n_opt,
				d_opt;
	int			status;
	Datum		values[2];
	bool		nulls[2] = {0};

	fit_from_record(PG_GETARG_HEAPTUPLEHEADER(0), &fit);
	status = soup_compute_optimal(&fit, PG_GETARG_FLOAT8(1), &n_opt, &d_opt);
	if (status != FIT_OK)
		fit_error(status, "soup.compute_optimal");
	values[0] = Float8GetDatum(n_opt);
	values[1] = Float8GetDatum(d_opt);
	PG_RETURN_DATUM(make_tuple(fcinfo, values, nulls));
}

/* ---- gradient noise scale, in step order ---- */

/* transfn(state, g_small_sq, g_big_sq, b_small, b_big [, beta]) */
Datum
soup_gns_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = mstate_context(fcinfo, "soup.gradient_noise_scale");
	SoupGnsState *st = PG_ARGISNULL(0) ? NULL : (SoupGnsState *) PG_GETARG_POINTER(0);
	double		beta = 0.99;
	int			status;

	for (int i = 1; i <= 4; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_POINTER(st);	/* a step without measurements */
	if (PG_NARGS() > 5)
	{
		if (PG_ARGISNULL(5))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("soup.gradient_noise_scale: beta must not be null")));
		beta = PG_GETARG_FLOAT8(5);
	}
	if (st == NULL)
	{
		st = MemoryContextAlloc(ctx, sizeof(SoupGnsState));
		soup_gns_init(st);
	}
	status = soup_gns_update(st, PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
							 PG_GETARG_FLOAT8(3), PG_GETARG_FLOAT8(4), beta);
	if (status != FIT_OK)
		fit_error(status, "soup.gradient_noise_scale");
	PG_RETURN_POINTER(st);
}

/* B_simple; NULL while the |G|^2 estimate is not positive (noise dominates) */
Datum
soup_gns_finalfn(PG_FUNCTION_ARGS)
{
	SoupGnsState *st = PG_ARGISNULL(0) ? NULL : (SoupGnsState *) PG_GETARG_POINTER(0);
	SoupGnsResult res;
	int			status;

	if (st == NULL)
		PG_RETURN_NULL();
	status = soup_gns_result(st, &res);
	if (status == FIT_ERR_NONPOSITIVE)
		PG_RETURN_NULL();
	if (status != FIT_OK)
		fit_error(status, "soup.gradient_noise_scale");
	PG_RETURN_FLOAT8(res.b_simple);
}
