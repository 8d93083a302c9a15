/*
 * della.c - DELLA's rank-dependent drop (see della.h).
 */
#include "kernels/della.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dd.h"
#include "kernels/sparse.h"

static int
order_cmp(const void *a, const void *b)
{
	const SoupDellaOrder *x = a;
	const SoupDellaOrder *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* |v| as ordered bits: positive doubles order as their bit patterns. */
static inline uint64_t
magnitude_key(double v)
{
	uint64_t	bits;
	double		m = fabs(v);

	memcpy(&bits, &m, sizeof(bits));
	return bits;
}

void
soup_della_slab(const double *tau, size_t d1, size_t inner, uint64_t first,
				double density, double epsilon, uint64_t key,
				unsigned char *mask, double *l1, SoupDellaOrder *order)
{
	for (size_t r = 0; r < inner; r++)
	{
		for (size_t i = 0; i < d1; i++)
		{
			order[i].key = magnitude_key(tau[i * inner + r]);
			order[i].pos = i;
		}
		qsort(order, d1, sizeof(SoupDellaOrder), order_cmp);
		for (size_t j = 0; j < d1; j++)
		{
			uint64_t	e = first + order[j].pos * inner + r;
			double		p;

			if (density >= 1.0)
				p = 2.0;		/* keep everything */
			else if (density <= 0.0)
				p = 0.0;		/* keep nothing */
			else if (d1 == 1)
				p = density;
			else
				p = (density - epsilon) + (double) j / (double) (d1 - 1) * (2.0 * epsilon);
			if (soup_dare_uniform(key, e) < p)
				mask[e / 8] |= (unsigned char) (1u << (e % 8));
		}
	}
	/* the L1 sums in position order, so they never depend on the ranks' order */
	for (size_t i = 0; i < d1 * inner; i++)
	{
		uint64_t	e = first + i;

		dd_add1(&l1[0], &l1[1], fabs(tau[i]));
		if (mask[e / 8] & (1u << (e % 8)))
			dd_add1(&l1[2], &l1[3], fabs(tau[i]));
	}
}

void
soup_della_apply(const double *tau, const unsigned char *mask, uint64_t offset,
				 double scale, double *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		uint64_t	e = offset + i;

		out[i] = (mask[e / 8] & (1u << (e % 8))) ? tau[i] * scale : 0.0;
	}
}
