/*
 * fused.h - one-pass merges of K inputs that are all at hand.
 *
 * The merge driver reads the K chunks of one (tensor, chunk) together, so it
 * need not fold them into an aggregate state one row at a time and write
 * 16 bytes an element back K times.  These kernels walk the K inputs a block
 * at a time with the accumulators in a small stack buffer, and round each
 * block into the output dtype straight away.
 *
 * They compute exactly what the aggregates compute (the same double-double
 * operations, models taken in the order given), so a merge by the driver and
 * the same merge by hand with GROUP BY give the same bits; the determinism
 * and reference suites check it.  Pure C, no PostgreSQL calls.
 */
#ifndef SOUP_FUSED_H
#define SOUP_FUSED_H

#include <stddef.h>

#include "kernels/dtype.h"

/* dst = dtype(sum_i w[i] x_i / denom), as soup.avg_weights */
extern void soup_fused_avg(SoupDtype dt, int k, const void *const *xs,
						   const double *w, double denom, void *dst, size_t n,
						   int nthreads);

/* dst = dtype(e) with e = x_0, then e = d e + (1 - d) x_i, as soup.ema */
extern void soup_fused_ema(SoupDtype dt, int k, const void *const *xs,
						   double decay, void *dst, size_t n, int nthreads);

/*
 * dst = dtype(sum_i w_i f_i' x_i / sum_i w_i f_i') with f' = max(f, floor),
 * as soup.fisher_merge; fisher i has dtype fdts[i].
 */
extern void soup_fused_fisher(SoupDtype dt, int k, const void *const *xs,
							  const SoupDtype *fdts, const void *const *fs,
							  const double *w, double floor, void *dst,
							  size_t n, int nthreads);

/* dst = dtype(base + lambda sum_i w_i (x_i - base)), as soup.task_arithmetic */
extern void soup_fused_task(SoupDtype dt, int k, const void *const *xs,
							const void *base, const double *w, double lambda,
							void *dst, size_t n, int nthreads);

#endif							/* SOUP_FUSED_H */
