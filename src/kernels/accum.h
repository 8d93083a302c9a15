/*
 * accum.h - float64 accumulation kernels behind the merge aggregates.
 *
 * Pure C with OpenMP: no PostgreSQL calls, safe to run on worker threads.
 * Inputs are packed little-endian buffers of a float dtype; accumulators
 * are float64 so that the order of a handful of additions barely matters
 * and the result rounds once, into the output dtype.
 */
#ifndef SOUP_ACCUM_H
#define SOUP_ACCUM_H

#include <stddef.h>

#include "kernels/dtype.h"

/* acc[i] += w * x[i] */
extern void soup_axpy(SoupDtype dt, double w, const void *x, double *acc,
					  size_t n, int nthreads);

/* acc[i] = w * x[i] */
extern void soup_scale_load(SoupDtype dt, double w, const void *x, double *acc,
							size_t n, int nthreads);

/* dst[i] = dtype(acc[i] / denom), rounding to nearest even */
extern void soup_div_store(SoupDtype dt, const double *acc, double denom,
							 void *dst, size_t n, int nthreads);

/* a[i] += b[i] */
extern void soup_vec_add(double *a, const double *b, size_t n, int nthreads);

/* dst = wa * a + wb * b, all of dtype dt, computed in float64 */
extern void soup_lincomb2(SoupDtype dt, double wa, const void *a,
						  double wb, const void *b, void *dst, size_t n);

/* sum a[i] * b[i] in float64 */
extern double soup_dot(SoupDtype dt, const void *a, const void *b, size_t n);

#endif							/* SOUP_ACCUM_H */
