/*
 * sparse.h - kernels of the sparsifying merges (TIES, DARE).
 *
 * Pure C, no PostgreSQL calls.  Every decision depends only on an element's
 * value and its global position in the tensor, never on how the tensor is
 * chunked or on the thread count.
 */
#ifndef SOUP_SPARSE_H
#define SOUP_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"

/*
 * The k-th largest of v[0..n-1] (1 <= k <= n), by quickselect; v is
 * reordered.  NaNs are treated as larger than any number.
 */
extern double soup_kth_largest(double *v, size_t n, size_t k);

/* 64-bit FNV-1a of a byte string: the tensor's part of a DARE seed. */
extern uint64_t soup_fnv1a(const void *data, size_t len);

/* The stream key of (seed, model key, tensor hash). */
extern uint64_t soup_dare_key(uint64_t seed, uint64_t model, uint64_t tensor);

/* Uniform double in [0, 1) for element index of a stream. */
extern double soup_dare_uniform(uint64_t key, uint64_t index);

/*
 * out[i] = (x[i] - base[i]) * scale where the DARE draw keeps element
 * offset + i (u < density), else 0.  base may be NULL (then x itself).
 * Returns nothing; kept/total magnitudes are added to sums[0..3] as
 * double-double pairs (|tau| of all, |tau| of kept) when sums is not NULL.
 */
extern void soup_dare(SoupDtype dt, const void *x, const void *base,
					  double density, uint64_t key, uint64_t offset,
					  double scale, double *out, size_t n, double *sums);

/* out[i] = tau[i] if |tau[i]| >= threshold else 0, tau = x - base. */
extern void soup_trim(SoupDtype dt, const void *x, const void *base,
					  double threshold, double *out, size_t n);

/*
 * Breadcrumbs: out = tau where lo <= |tau| (and |tau| < hi when upper), else
 * 0; a NaN tau counts as the largest magnitude.
 */
extern void soup_trim_band(SoupDtype dt, const void *x, const void *base,
						   double lo, bool upper, double hi, double *out,
						   size_t n);

/*
 * TIES accumulation of one model's sparsified task vector t (float64):
 * with p = w * t[i], P/Q += p where p > 0 / p < 0, WP/WQ += w likewise.
 * acc holds four double-double arrays: P, Q, WP, WQ (hi then lo each).
 */
extern void soup_ties_accum(const double *t, double w, double *acc, size_t n);

/*
 * dst[i] = dtype(base[i] + lambda * m) with m the TIES merge of element i:
 * the elected sign is that of P + Q; m is the sum of the agreeing side
 * divided by its weights (1 when they sum to 0), 0 when P + Q = 0.
 */
extern void soup_ties_store(SoupDtype dt, const void *base, const double *acc,
							double lambda, void *dst, size_t n);

#endif							/* SOUP_SPARSE_H */
