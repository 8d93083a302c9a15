/*
 * della.c - DELLA's rank-dependent drop (see della.h).
 */
#include "kernels/della.h"

#include <math.h>
#include <string.h>

#include "kernels/dd.h"
#include "kernels/sparse.h"

/*
 * Sort a row's entries by (key, position), stably.  Short rows by insertion;
 * longer ones by a least-significant-digit radix sort over the key's bytes
 * (stable, so equal magnitudes stay in position order), skipping the bytes
 * every key shares: several times faster than qsort's comparator calls on
 * the rows of a weight matrix.  tmp holds n entries.
 */
static void
sort_row(SoupDellaOrder *a, SoupDellaOrder *tmp, size_t n)
{
	SoupDellaOrder *src = a;
	SoupDellaOrder *dst = tmp;
	size_t		count[256];

	if (n <= 32)
	{
		for (size_t i = 1; i < n; i++)
		{
			SoupDellaOrder x = a[i];
			size_t		j = i;

			/* positions arrive ascending: a strict test keeps ties in order */
			while (j > 0 && a[j - 1].key > x.key)
			{
				a[j] = a[j - 1];
				j--;
			}
			a[j] = x;
		}
		return;
	}
	for (int shift = 0; shift < 64; shift += 8)
	{
		size_t		sum = 0;

		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[(src[i].key >> shift) & 0xff]++;
		if (count[(src[0].key >> shift) & 0xff] == n)
			continue;			/* one byte value: the order stands */
		for (int b = 0; b < 256; b++)
		{
			size_t		c = count[b];

			count[b] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i].key >> shift) & 0xff]++] = src[i];
		{
			SoupDellaOrder *t = src;

			src = dst;
			dst = t;
		}
	}
	if (src != a)
		memcpy(a, src, n * sizeof(SoupDellaOrder));
}

/* |v| as ordered bits: positive doubles order as their bit patterns. */
static inline uint64_t
magnitude_key(double v)
{
	uint64_t	bits;
	double		m = fabs(v);

	memcpy(&bits, &m, sizeof(bits));
	/* every NaN alike, above infinity: NaNs rank among themselves by position */
	return bits > UINT64_C(0x7ff0000000000000) ? UINT64_C(0x7ff8000000000000) : bits;
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
		sort_row(order, order + d1, d1);
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
