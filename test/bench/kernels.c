/*
 * kernels.c - the merge kernels alone (no PostgreSQL), against the machine's
 * copy bandwidth and against OpenBLAS doing the same arithmetic its way.
 *
 * Inputs are K float32 "models" of M elements in memory, processed chunk by
 * chunk as the aggregates do (a state of double-double pairs per chunk,
 * rows folded in one after another, the result stored as float32).  Rates
 * count the bytes a merge must touch: K inputs read and one output written.
 * Timings are the best of BENCH_REPS (default 3) runs.  Prints one line per
 * measurement; test/bench/run.sh puts them in its report.
 *
 * Usage: kernels.bin [M] [K]   (defaults 33554432 and 4)
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "kernels/accum.h"
#include "kernels/dtype.h"
#include "kernels/fused.h"

#define CHUNK 262144			/* pg_soup's default soup.chunk_elems */

extern void openblas_set_num_threads(int);

static int	reps = 3;

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef void (*BenchFn) (void *arg);

static double
best_of(BenchFn fn, void *arg)
{
	double		best = INFINITY;

	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		fn(arg);
		best = fmin(best, now() - t0);
	}
	return best;
}

typedef struct Job
{
	float	  **x;				/* K inputs */
	float	  **f;				/* K Fishers */
	float	   *out;
	float	   *src;			/* for the copy */
	size_t		m;
	int			k;
	int			threads;
	double	   *hi,
			   *lo,
			   *hi2,
			   *lo2;
} Job;

/* The ceiling: copy the K inputs' bytes once (threads split the range). */
static void
run_copy(void *arg)
{
	Job		   *j = arg;
	size_t		total = j->m * j->k;

#pragma omp parallel for num_threads(j->threads) schedule(static)
	for (int t = 0; t < j->threads; t++)
	{
		size_t		a = total * t / j->threads,
					b = total * (t + 1) / j->threads;

		memcpy(j->src + total + a, j->src + a, (b - a) * sizeof(float));
	}
}

/* pg_soup's average: first row scale-loads, the rest accumulate, then store. */
static void
run_avg(void *arg)
{
	Job		   *j = arg;

	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		size_t		n = j->m - off < CHUNK ? j->m - off : CHUNK;

		soup_dd_scale_load(SOUP_DT_F32, 1.0, j->x[0] + off, j->hi, j->lo, n, j->threads);
		for (int i = 1; i < j->k; i++)
			soup_dd_axpy(SOUP_DT_F32, 1.0, j->x[i] + off, j->hi, j->lo, n, j->threads);
		soup_dd_div_store(SOUP_DT_F32, j->hi, j->lo, j->k, j->out + off, n, j->threads);
	}
}

/* The driver's average: all K chunks at hand, one fused pass (fused.c). */
static void
run_fused_avg(void *arg)
{
	Job		   *j = arg;
	double		w[64];
	const void *xs[64];

	for (int i = 0; i < j->k; i++)
		w[i] = 1.0;
	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		size_t		n = j->m - off < CHUNK ? j->m - off : CHUNK;

		for (int i = 0; i < j->k; i++)
			xs[i] = j->x[i] + off;
		soup_fused_avg(SOUP_DT_F32, j->k, xs, w, j->k, j->out + off, n, j->threads);
	}
}

/* The same average with OpenBLAS: float32 saxpy into the output, then sscal. */
static void
run_blas_avg(void *arg)
{
	Job		   *j = arg;

	openblas_set_num_threads(j->threads);
	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		int			n = (int) (j->m - off < CHUNK ? j->m - off : CHUNK);

		cblas_scopy(n, j->x[0] + off, 1, j->out + off, 1);
		for (int i = 1; i < j->k; i++)
			cblas_saxpy(n, 1.0f, j->x[i] + off, 1, j->out + off, 1);
		cblas_sscal(n, 1.0f / j->k, j->out + off, 1);
	}
}

/* EMA over the K inputs in order, as soup.ema folds rows. */
static void
run_ema(void *arg)
{
	Job		   *j = arg;

	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		size_t		n = j->m - off < CHUNK ? j->m - off : CHUNK;

		soup_scale_load(SOUP_DT_F32, 1.0, j->x[0] + off, j->hi, n, j->threads);
		for (int i = 1; i < j->k; i++)
			soup_ema_update(SOUP_DT_F32, 0.9, j->x[i] + off, j->hi, n, j->threads);
		soup_div_store(SOUP_DT_F32, j->hi, 1.0, j->out + off, n, j->threads);
	}
}

/* Fisher merging: reads K inputs and K Fishers. */
static void
run_fisher(void *arg)
{
	Job		   *j = arg;

	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		size_t		n = j->m - off < CHUNK ? j->m - off : CHUNK;

		memset(j->hi, 0, n * sizeof(double));
		memset(j->lo, 0, n * sizeof(double));
		memset(j->hi2, 0, n * sizeof(double));
		memset(j->lo2, 0, n * sizeof(double));
		for (int i = 0; i < j->k; i++)
			soup_dd_fisher(SOUP_DT_F32, j->x[i] + off, SOUP_DT_F32, j->f[i] + off, 1.0, 1e-6,
						   j->hi, j->lo, j->hi2, j->lo2, n, j->threads);
		soup_dd_div2_store(SOUP_DT_F32, j->hi, j->lo, j->hi2, j->lo2, j->out + off, n,
						   j->threads);
	}
}

/* Model Stock's pass 1: the Gram matrix of the K inputs, exactly. */
static double gram_result[64 * 64 * 2];

static void
run_gram(void *arg)
{
	Job		   *j = arg;
	const void *xs[64];

	memset(gram_result, 0, sizeof(double) * j->k * j->k * 2);
	for (size_t off = 0; off < j->m; off += CHUNK)
	{
		size_t		n = j->m - off < CHUNK ? j->m - off : CHUNK;
		double		g[64 * 64 * 2] = {0};

		for (int i = 0; i < j->k; i++)
			xs[i] = j->x[i] + off;
		soup_dd_gram(SOUP_DT_F32, xs, j->k, NULL, n, g, j->hi);
		soup_dd_add_pairs(gram_result, g, (size_t) j->k * j->k);
	}
}

/* The same Gram matrix with OpenBLAS: sdsdot pairs (float32 in, float64 sum). */
static double blas_gram_result[64 * 64];

static void
run_blas_gram(void *arg)
{
	Job		   *j = arg;

	openblas_set_num_threads(j->threads);
	for (int a = 0; a < j->k; a++)
		for (int b = a; b < j->k; b++)
		{
			double		s = 0;

			for (size_t off = 0; off < j->m; off += CHUNK)
			{
				int			n = (int) (j->m - off < CHUNK ? j->m - off : CHUNK);

				s += cblas_dsdot(n, j->x[a] + off, 1, j->x[b] + off, 1);
			}
			blas_gram_result[a * j->k + b] = s;
		}
}

static void
report(const char *what, double secs, double bytes, double copy_rate)
{
	double		rate = bytes / secs / 1e9;

	printf("%-58s %7.3f s %6.2f GB/s %5.0f%% of copy\n", what, secs, rate,
		   100.0 * rate / copy_rate);
}

int
main(int argc, char **argv)
{
	Job			j = {0};
	size_t		diff = 0;
	double		copy1,
				copy2,
				t;
	float	   *exact;
	double		worst = 0;

	j.m = argc > 1 ? strtoull(argv[1], NULL, 10) : 33554432;
	j.k = argc > 2 ? atoi(argv[2]) : 4;
	if (getenv("BENCH_REPS"))
		reps = atoi(getenv("BENCH_REPS"));
	if (j.k < 2 || j.k > 64)
		return 2;
	j.x = malloc(sizeof(float *) * j.k);
	j.f = malloc(sizeof(float *) * j.k);
	for (int i = 0; i < j.k; i++)
	{
		j.x[i] = malloc(j.m * sizeof(float));
		j.f[i] = malloc(j.m * sizeof(float));
		for (size_t e = 0; e < j.m; e++)
		{
			/* deterministic values of mixed sign and magnitude */
			uint32_t	h = (uint32_t) (e * 2654435761u) ^ (uint32_t) (i * 40503u);

			j.x[i][e] = ((float) (h % 20001) - 10000.0f) * 1e-4f * (float) (i + 1);
			j.f[i][e] = (float) (h % 997) * 1e-3f + 1e-4f;
		}
	}
	j.out = malloc(j.m * sizeof(float));
	exact = malloc(j.m * sizeof(float));
	j.src = malloc(2 * j.m * j.k * sizeof(float));
	memset(j.src, 1, 2 * j.m * j.k * sizeof(float));
	j.hi = malloc(sizeof(double) * SOUP_GRAM_WORK(64) > sizeof(double) * CHUNK
				  ? sizeof(double) * SOUP_GRAM_WORK(64) : sizeof(double) * CHUNK);
	j.lo = malloc(sizeof(double) * CHUNK);
	j.hi2 = malloc(sizeof(double) * CHUNK);
	j.lo2 = malloc(sizeof(double) * CHUNK);

	printf("kernels: K = %d float32 inputs of %zu elements (%.0f MB each), chunks of %d, best of %d\n",
		   j.k, j.m, j.m * 4 / 1e6, CHUNK, reps);
	j.threads = 1;
	copy1 = j.m * j.k * 4.0 / best_of(run_copy, &j) / 1e9;
	j.threads = 2;
	copy2 = j.m * j.k * 4.0 / best_of(run_copy, &j) / 1e9;
	printf("%-58s %6.2f GB/s (1 thread), %.2f GB/s (2 threads)\n", "memory copy (ceiling)",
		   copy1, copy2);

	for (int th = 1; th <= 2; th++)
	{
		char		label[128];
		double		bytes = (j.k + 1) * 4.0 * j.m;

		j.threads = th;
		t = best_of(run_avg, &j);
		snprintf(label, sizeof(label), "pg_soup avg (double-double, exact), %d thread%s", th, th > 1 ? "s" : "");
		report(label, t, bytes, th == 1 ? copy1 : copy2);
		if (th == 1)
			memcpy(exact, j.out, j.m * sizeof(float));
		else if (memcmp(exact, j.out, j.m * sizeof(float)) != 0)
			printf("  MISMATCH: 2 threads gave other bits than 1 thread\n");
		t = best_of(run_fused_avg, &j);
		snprintf(label, sizeof(label), "pg_soup fused avg (the driver's), %d thread%s", th, th > 1 ? "s" : "");
		report(label, t, bytes, th == 1 ? copy1 : copy2);
		if (memcmp(exact, j.out, j.m * sizeof(float)) != 0)
			printf("  MISMATCH: the fused average gave other bits than the aggregate's\n");
		t = best_of(run_blas_avg, &j);
		snprintf(label, sizeof(label), "OpenBLAS saxpy+sscal (float32), %d thread%s", th, th > 1 ? "s" : "");
		report(label, t, bytes, th == 1 ? copy1 : copy2);
		t = best_of(run_ema, &j);
		snprintf(label, sizeof(label), "pg_soup ema (float64 state), %d thread%s", th, th > 1 ? "s" : "");
		report(label, t, bytes, th == 1 ? copy1 : copy2);
		t = best_of(run_fisher, &j);
		snprintf(label, sizeof(label), "pg_soup fisher (K inputs + K Fishers), %d thread%s", th, th > 1 ? "s" : "");
		report(label, t, (2 * j.k + 1) * 4.0 * j.m, th == 1 ? copy1 : copy2);
	}
	/* how far the float32 BLAS average is from the correctly rounded one */
	j.threads = 1;
	run_blas_avg(&j);
	for (size_t e = 0; e < j.m; e++)
		diff += j.out[e] != exact[e];
	printf("  OpenBLAS float32 average: %zu of %zu elements (%.2f%%) differ from the exact average\n",
		   diff, j.m, 100.0 * diff / j.m);

	t = best_of(run_gram, &j);
	report("pg_soup Gram matrix (double-double, exact), 1 thread", t, j.k * 4.0 * j.m, copy1);
	t = best_of(run_blas_gram, &j);
	report("OpenBLAS dsdot pairs (float64 sums), 1 thread", t, j.k * 4.0 * j.m, copy1);
	for (int a = 0; a < j.k; a++)
		for (int b = a; b < j.k; b++)
		{
			double		ex = gram_result[2 * (a * j.k + b)] + gram_result[2 * (a * j.k + b) + 1];
			double		rel = fabs(blas_gram_result[a * j.k + b] - ex) / fabs(ex);

			worst = fmax(worst, rel);
		}
	printf("  OpenBLAS Gram: worst relative difference from the exact one %.3g\n", worst);
	return 0;
}
