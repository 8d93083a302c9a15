/*
 * dd.h - error-free double-double addition shared by the kernels.
 */
#ifndef SOUP_DD_H
#define SOUP_DD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

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

	uint64_t	sbits;
	uint64_t	ebits;

	/*
	 * Drop err when s is not finite with integer masking, not a branch or a
	 * floating-point compare, so that loops over dd_add1 vectorize.
	 */
	memcpy(&sbits, &s, sizeof(s));
	memcpy(&ebits, &err, sizeof(err));
	ebits &= (uint64_t) 0 - (uint64_t) (((sbits >> 52) & 0x7ff) != 0x7ff);
	memcpy(&err, &ebits, sizeof(err));
	*lo += err;
	*hi = s;
}

/*
 * (hi, lo) += (hi2, lo2) for finite values: TwoSum of the high parts, the
 * low parts and the error added.  Weight sums are kept this way.
 */
static inline void
dd_add_pair(double *hi, double *lo, double hi2, double lo2)
{
	double		s = *hi + hi2;
	double		b = s - *hi;

	*lo += (*hi - (s - b)) + (hi2 - b) + lo2;
	*hi = s;
}

#endif							/* SOUP_DD_H */
