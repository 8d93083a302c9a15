/*
 * order.h - the order the sparsifying kernels select in, for unit tests:
 * descending, NaN above every number (as soup_kth_largest has it).
 */
#ifndef SOUP_TEST_ORDER_H
#define SOUP_TEST_ORDER_H

#include <math.h>

/* qsort comparator: descending, NaNs first */
static inline int
cmp_desc_nan_first(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	if (isnan(x))
		return isnan(y) ? 0 : -1;
	if (isnan(y))
		return 1;
	return x > y ? -1 : x < y ? 1 : 0;
}

#endif							/* SOUP_TEST_ORDER_H */
