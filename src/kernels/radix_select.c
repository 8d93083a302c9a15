/*
 * radix_select.c - the exact k-th largest of a re-readable stream in
 * bounded memory (see radix_select.h).
 */
#include "kernels/radix_select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the bit pattern of |v|, every NaN as one (the largest) */
static inline uint64_t
order_key(double v)
{
	uint64_t	k;

	if (isnan(v))
		return UINT64_C(0x7ff8000000000000);
	v = fabs(v);
	memcpy(&k, &v, sizeof(k));
	return k;
}

static inline double
key_value(uint64_t k)
{
	double		v;

	memcpy(&v, &k, sizeof(v));
	return v;
}

void
soup_radix_begin(SoupRadixSelect *rs, uint64_t k, uint64_t *hist, uint64_t *keep)
{
	memset(rs, 0, sizeof(*rs));
	rs->k = k;
	rs->hist = hist;
	rs->keep = keep;
	memset(hist, 0, sizeof(uint64_t) * SOUP_RADIX_BUCKETS);
}

/* Does key share the bits fixed so far? */
static inline int
matches(const SoupRadixSelect *rs, uint64_t key)
{
	return rs->level == 0 || (key >> (64 - rs->level)) == (rs->prefix >> (64 - rs->level));
}

void
soup_radix_add(SoupRadixSelect *rs, const double *v, size_t n)
{
	int			shift = 64 - rs->level - SOUP_RADIX_BITS;

	if (rs->level == 0 && !rs->collecting)
	{
		rs->n += n;
		for (size_t i = 0; i < n; i++)
			rs->hist[order_key(v[i]) >> shift]++;
		return;
	}
	for (size_t i = 0; i < n; i++)
	{
		uint64_t	key = order_key(v[i]);

		if (!matches(rs, key))
			continue;
		if (rs->collecting)
			rs->keep[rs->nkeep++] = key;
		else
			rs->hist[(key >> shift) & (SOUP_RADIX_BUCKETS - 1)]++;
	}
}

static int
cmp_desc(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? 1 : x > y ? -1 : 0;
}

int
soup_radix_end_pass(SoupRadixSelect *rs)
{
	uint64_t	above = 0;		/* values in higher buckets */
	int			b;

	if (rs->level == 0 && !rs->collecting && rs->k > rs->n)
		return -1;
	if (rs->collecting)
	{
		qsort(rs->keep, rs->nkeep, sizeof(uint64_t), cmp_desc);
		rs->result = key_value(rs->keep[rs->k - 1]);
		return rs->done = 1;
	}
	/* the bucket that holds rank k, counting from the largest */
	for (b = SOUP_RADIX_BUCKETS - 1; b > 0; b--)
	{
		if (above + rs->hist[b] >= rs->k)
			break;
		above += rs->hist[b];
	}
	rs->k -= above;
	rs->prefix |= (uint64_t) b << (64 - rs->level - SOUP_RADIX_BITS);
	rs->level += SOUP_RADIX_BITS;
	if (rs->level == 64)
	{
		/* every bit is fixed: the bucket holds copies of one value */
		rs->result = key_value(rs->prefix);
		return rs->done = 1;
	}
	if (rs->hist[b] <= SOUP_RADIX_COLLECT)
		rs->collecting = 1;
	else
		memset(rs->hist, 0, sizeof(uint64_t) * SOUP_RADIX_BUCKETS);
	return 0;
}
