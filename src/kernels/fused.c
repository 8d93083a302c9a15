/*
 * fused.c - one-pass merges of K inputs (see fused.h).
 *
 * Each block of SOUP_ACCUM_BLOCK elements is loaded from every input in
 * turn, accumulated in stack buffers with accum.c's block loops (the same
 * operations, in the same order, as the aggregates' transition functions),
 * rounded and stored.  The working set is a few blocks, so it stays in the
 * L1/L2 cache whatever the chunk length; blocks are split across OpenMP
 * threads as in accum.c, each element computed by one thread.
 */
#include "kernels/fused.h"

#include <string.h>

#include "kernels/accum.h"

#define BLOCK SOUP_ACCUM_BLOCK

static inline const char *
at(const void *p, size_t off, size_t es)
{
	return (const char *) p + off * es;
}

void
soup_fused_avg(SoupDtype dt, int k, const void *const *xs, const double *w,
			   double denom, void *dst, size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		hi[BLOCK];
		double		lo[BLOCK];
		double		x[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		/* the first input starts the sum, as soup.avg_weights' first row */
		soup_dd_scale_load(dt, w[0], at(xs[0], off, es), hi, lo, len, 1);
		for (int m = 1; m < k; m++)
		{
			soup_load_f64(dt, at(xs[m], off, es), x, len);
			soup_dd_axpy_block(w[m], x, hi, lo, len);
		}
		soup_dd_div_block(hi, lo, denom, x, len);
		soup_store_f64(dt, x, (char *) dst + off * es, len);
	}
}

void
soup_fused_ema(SoupDtype dt, int k, const void *const *xs, double decay,
			   void *dst, size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		e[BLOCK];
		double		x[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, at(xs[0], off, es), e, len);
		for (int m = 1; m < k; m++)
		{
			soup_load_f64(dt, at(xs[m], off, es), x, len);
			soup_ema_block(decay, x, e, len);
		}
		/* soup.ema's final function divides by 1: so does this */
		soup_div_block(e, 1.0, x, len);
		soup_store_f64(dt, x, (char *) dst + off * es, len);
	}
}

void
soup_fused_fisher(SoupDtype dt, int k, const void *const *xs,
				  const SoupDtype *fdts, const void *const *fs,
				  const double *w, double floor, void *dst, size_t n,
				  int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		num_hi[BLOCK];
		double		num_lo[BLOCK];
		double		den_hi[BLOCK];
		double		den_lo[BLOCK];
		double		x[BLOCK];
		double		f[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		/* soup.fisher_merge starts from zeroed sums */
		memset(num_hi, 0, sizeof(double) * len);
		memset(num_lo, 0, sizeof(double) * len);
		memset(den_hi, 0, sizeof(double) * len);
		memset(den_lo, 0, sizeof(double) * len);
		for (int m = 0; m < k; m++)
		{
			soup_load_f64(dt, at(xs[m], off, es), x, len);
			soup_load_f64(fdts[m], at(fs[m], off, soup_dtype_size(fdts[m])), f, len);
			soup_dd_fisher_block(w[m], floor, x, f, num_hi, num_lo, den_hi, den_lo, len);
		}
		soup_dd_div2_block(num_hi, num_lo, den_hi, den_lo, x, len);
		soup_store_f64(dt, x, (char *) dst + off * es, len);
	}
}

void
soup_fused_task(SoupDtype dt, int k, const void *const *xs, const void *base,
				const double *w, double lambda, void *dst, size_t n,
				int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		hi[BLOCK];
		double		lo[BLOCK];
		double		x[BLOCK];
		double		bb[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		memset(hi, 0, sizeof(double) * len);
		memset(lo, 0, sizeof(double) * len);
		soup_load_f64(dt, at(base, off, es), bb, len);
		for (int m = 0; m < k; m++)
		{
			soup_load_f64(dt, at(xs[m], off, es), x, len);
			soup_dd_axpy_diff_block(w[m], x, bb, hi, lo, len);
		}
		soup_task_block(bb, hi, lo, lambda, len);
		soup_store_f64(dt, bb, (char *) dst + off * es, len);
	}
}
