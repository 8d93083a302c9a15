/*
 * dd.h - error-free double-double addition shared by the kernels.
 */
#ifndef SOUP_DD_H
#define SOUP_DD_H

#include <math.h>

/*
 * Add p to (hi, lo) without losing a bit (Knuth's TwoSum); once the sum is
 * not finite the error term means nothing and is dropped.
 */
static inline void
dd_add1(double *hi, double *lo, double p)
{
	double		s = *hi + p;
	double		b = s - *hi;
	double		err = (*hi - (s - b)) + (p - b);

	*lo += isfinite(s) ? err : 0.0;
	*hi = s;
}

#endif							/* SOUP_DD_H */
