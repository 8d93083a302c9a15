/*
 * accum.h - float64 accumulation kernels behind the merge aggregates.
 *
 * Pure C with OpenMP: no PostgreSQL calls, safe to run on worker threads.
 * Inputs are packed little-endian buffers of a float dtype; accumulators
 * are float64 so that the order of a handful of additions barely matters
 * and the result rounds once, into the output dtype.
 */
/*
 * Weighted sums are kept as double-double pairs (hi + lo): each product
 * w * x is rounded to float64 once, and the sum of those products is carried
 * exactly (error-free TwoSum), so the result does not depend on the order in
 * which rows arrive: a parallel plan, another sort order or another chunking
 * gives the same bits.  The quotient by the weight sum is rounded once to
 * float64 and then to the output dtype.
 */
#ifndef SOUP_ACCUM_H
#define SOUP_ACCUM_H

#include <stddef.h>

#include "kernels/dtype.h"

/* Elements converted to float64 at a time; kernels split work in blocks. */
#define SOUP_ACCUM_BLOCK 2048

/* Blocks of n elements. */
static inline size_t
soup_nblocks(size_t n)
{
	return (n + SOUP_ACCUM_BLOCK - 1) / SOUP_ACCUM_BLOCK;
}

/* Elements in the block that starts at off: a whole block, or what is left. */
static inline size_t
soup_block_len(size_t n, size_t off)
{
	return (n - off < SOUP_ACCUM_BLOCK) ? n - off : SOUP_ACCUM_BLOCK;
}

/* acc[i] = w * x[i] */
extern void soup_scale_load(SoupDtype dt, double w, const void *x, double *acc,
							size_t n, int nthreads);

/* dst[i] = dtype(acc[i] / denom), rounding to nearest even */
extern void soup_div_store(SoupDtype dt, const double *acc, double denom,
							 void *dst, size_t n, int nthreads);

/* dst = wa * a + wb * b, all of dtype dt, computed in float64 */
extern void soup_lincomb2(SoupDtype dt, double wa, const void *a,
						  double wb, const void *b, void *dst, size_t n);

/* sum a[i] * b[i] in float64 */
extern double soup_dot(SoupDtype dt, const void *a, const void *b, size_t n);

/* (hi, lo) += w * x[i] */
extern void soup_dd_axpy(SoupDtype dt, double w, const void *x, double *hi,
						 double *lo, size_t n, int nthreads);

/* (hi, lo) = w * x[i] */
extern void soup_dd_scale_load(SoupDtype dt, double w, const void *x,
							   double *hi, double *lo, size_t n, int nthreads);

/* (hi, lo) += (hi2, lo2) */
extern void soup_dd_add(double *hi, double *lo, const double *hi2,
						const double *lo2, size_t n, int nthreads);

/* dst[i] = dtype((hi + lo) / denom), the quotient rounded to float64 once */
extern void soup_dd_div_store(SoupDtype dt, const double *hi, const double *lo,
							  double denom, void *dst, size_t n, int nthreads);

/*
 * Fisher merging: num += (w f') x, den += w f' with f' = max(f, floor)
 * (a NaN f stays NaN); x and f may have different float dtypes.
 */
extern void soup_dd_fisher(SoupDtype dt, const void *x, SoupDtype fdt,
						   const void *f, double w, double floor,
						   double *num_hi, double *num_lo, double *den_hi,
						   double *den_lo, size_t n, int nthreads);

/* dst[i] = dtype(num[i] / den[i]) */
extern void soup_dd_div2_store(SoupDtype dt, const double *num_hi,
							   const double *num_lo, const double *den_hi,
							   const double *den_lo, void *dst, size_t n,
							   int nthreads);

/* (hi, lo) += w * (x[i] - base[i]) */
extern void soup_dd_axpy_diff(SoupDtype dt, double w, const void *x,
							  const void *base, double *hi, double *lo,
							  size_t n, int nthreads);

/* dst[i] = dtype(base[i] + lambda * (hi[i] + lo[i])) */
extern void soup_task_store(SoupDtype dt, const void *base, const double *hi,
							const double *lo, double lambda, void *dst,
							size_t n, int nthreads);

/* e[i] = decay * e[i] + (1 - decay) * x[i] */
extern void soup_ema_update(SoupDtype dt, double decay, const void *x,
							double *e, size_t n, int nthreads);

/*
 * Gram matrix of t_i = x_i - base (base may be NULL): g holds n x n
 * double-double pairs (hi, lo), of which the upper triangle i <= j is
 * accumulated.  work holds SOUP_GRAM_WORK(n) doubles of scratch space.
 */
#define SOUP_GRAM_WORK(n) ((size_t) SOUP_ACCUM_BLOCK * ((n) + 1))
extern void soup_dd_gram(SoupDtype dt, const void *const *xs, int n,
						 const void *base, size_t numel, double *g,
						 double *work);

/* a += b for npairs interleaved double-double pairs */
extern void soup_dd_add_pairs(double *a, const double *b, size_t npairs);

/*
 * The loops above, one block of float64 values at a time (len at most
 * SOUP_ACCUM_BLOCK), for kernels that walk several inputs block by block
 * (fused.c).  Each element takes exactly the same operations as above.
 */
extern void soup_dd_axpy_block(double w, const double *x, double *hi,
							   double *lo, size_t len);
extern void soup_dd_axpy_diff_block(double w, const double *x,
									const double *base, double *hi,
									double *lo, size_t len);
extern void soup_dd_fisher_block(double w, double floor, const double *x,
								 const double *f, double *num_hi,
								 double *num_lo, double *den_hi,
								 double *den_lo, size_t len);
/* out[i] = a[i] / denom (the aggregates' final step; / 1.0 quiets a signalling NaN) */
extern void soup_div_block(const double *a, double denom, double *out, size_t len);
/* out[i] = (hi[i] + lo[i]) / d rounded to float64 */
extern void soup_dd_div_block(const double *hi, const double *lo, double d,
							  double *out, size_t len);
/* out[i] = (num_hi[i] + num_lo[i]) / (den_hi[i] + den_lo[i]) */
extern void soup_dd_div2_block(const double *num_hi, const double *num_lo,
							   const double *den_hi, const double *den_lo,
							   double *out, size_t len);
extern void soup_task_block(double *base, const double *hi, const double *lo,
							double lambda, size_t len);
extern void soup_ema_block(double decay, const double *x, double *e,
						   size_t len);

/*
 * The sum of k weights as the merge aggregates keep it (double-double,
 * added in order) and round it for the final division.
 */
extern double soup_weight_sum(const double *w, int k);

#endif							/* SOUP_ACCUM_H */
