/*
 * test_radix.c - the streaming radix selection against a full sort.
 *
 * Streams of magnitudes with many equal values, zeros, subnormals,
 * infinities and NaNs are fed in pieces of random sizes, pass after pass,
 * and every k-th largest asked for must be the value soup_kth_largest
 * (quickselect over all values) and a descending qsort give: the same bits,
 * NaN by class.  Streams large enough to force each path: collection after
 * one level, after several, and a bucket of more than SOUP_RADIX_COLLECT
 * equal values (all 64 bits fixed by histograms).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/radix_select.h"
#include "kernels/sparse.h"
#include "order.h"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { if (cond) passed++; else { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static uint64_t state = 42;

static uint64_t
rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

/* The selection over v, fed in random pieces; passes counted. */
static double
radix(const double *v, size_t n, uint64_t k, int *passes)
{
	static uint64_t hist[SOUP_RADIX_BUCKETS];
	static uint64_t *keep;
	SoupRadixSelect rs;
	int			status;

	if (!keep)
		keep = malloc(sizeof(uint64_t) * SOUP_RADIX_COLLECT);
	soup_radix_begin(&rs, k, hist, keep);
	*passes = 0;
	do
	{
		for (size_t off = 0; off < n;)
		{
			size_t		len = 1 + rnd() % 5000;

			if (len > n - off)
				len = n - off;
			soup_radix_add(&rs, v + off, len);
			off += len;
		}
		(*passes)++;
	} while ((status = soup_radix_end_pass(&rs)) == 0);
	return status < 0 ? -1.0 : rs.result;
}

static int
same(double a, double b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(double)) == 0;
}

static double
value(int kind)
{
	switch (kind)
	{
		case 0:					/* many equal magnitudes */
			return (double) (rnd() % 7) * 0.125 * (rnd() % 2 ? -1 : 1);
		case 1:					/* spread over exponents, some subnormal */
			return ldexp((double) (rnd() % 1000), (int) (rnd() % 2200) - 1140);
		case 2:					/* specials among ordinary values */
			switch (rnd() % 12)
			{
				case 0:
					return NAN;
				case 1:
					return INFINITY;
				case 2:
					return -INFINITY;
				case 3:
					return -0.0;
				default:
					return (double) (rnd() % 100000) / 7.0 - 5000.0;
			}
		default:				/* float32-like weights */
			return (double) (float) (((double) (rnd() >> 11) / 9007199254740992.0 - 0.5) * 0.1);
	}
}

static void
check_stream(const char *what, double *v, size_t n, int trials)
{
	double	   *sorted = malloc(sizeof(double) * n);
	double	   *work = malloc(sizeof(double) * n);
	int			worst_passes = 0;
	int			bad = 0;

	for (size_t i = 0; i < n; i++)
		sorted[i] = fabs(v[i]);
	qsort(sorted, n, sizeof(double), cmp_desc_nan_first);
	for (int t = 0; t < trials; t++)
	{
		uint64_t	k = t == 0 ? 1 : t == 1 ? n : 1 + rnd() % n;
		int			passes;
		double		got = radix(v, n, k, &passes);

		for (size_t i = 0; i < n; i++)
			work[i] = fabs(v[i]);
		if (!same(got, sorted[k - 1]) || !same(got, soup_kth_largest(work, n, k)))
		{
			if (bad++ < 3)
				printf("  %s n=%zu k=%llu: %a, sort says %a\n", what, n,
					   (unsigned long long) k, got, sorted[k - 1]);
		}
		if (passes > worst_passes)
			worst_passes = passes;
	}
	CHECK(bad == 0, "%s: %d of %d selections differ from the sort", what, bad, trials);
	printf("  %-44s n=%-9zu up to %d passes\n", what, n, worst_passes);
	free(sorted);
	free(work);
}

int
main(void)
{
	static const char *const kinds[] = {"many equal magnitudes", "exponent spread, subnormals",
	"NaN, infinities, signed zeros", "float32-like weights"};
	size_t		big = SOUP_RADIX_COLLECT + 1000;
	double	   *v = malloc(sizeof(double) * big);
	int			passes;

	for (int kind = 0; kind < 4; kind++)
		for (int size = 0; size < 3; size++)
		{
			size_t		n = size == 0 ? 1 + rnd() % 20 : size == 1 ? 1 + rnd() % 20000 : 300000;
			char		what[80];

			for (size_t i = 0; i < n; i++)
				v[i] = value(kind);
			snprintf(what, sizeof(what), "%s", kinds[kind]);
			check_stream(what, v, n, size == 2 ? 12 : 60);
		}

	/* more values than can be collected in one top-16-bit bucket, distinct
	 * below it: one more level is counted before collecting */
	for (size_t i = 0; i < big; i++)
		v[i] = 0.5 + ldexp((double) (rnd() >> 11) / 9007199254740992.0, -6);
	check_stream("one crowded bucket, distinct below", v, big, 3);
	CHECK(radix(v, big, big / 2, &passes) >= 0.5 && passes == 3,
		  "a crowded bucket takes 3 passes, not %d", passes);

	/* one value more than can be collected, all equal: every level counted */
	for (size_t i = 0; i < big; i++)
		v[i] = i % 2 ? 0.75 : -0.75;
	v[7] = 2.0;
	CHECK(radix(v, big, 1, &passes) == 2.0, "largest of a huge tie");
	CHECK(radix(v, big, 2, &passes) == 0.75 && passes == 4,
		  "second largest of a huge tie: %d passes (want 4: all 64 bits by histogram)", passes);
	CHECK(radix(v, big, big, &passes) == 0.75, "smallest of a huge tie");
	/* a rank beyond the stream is refused */
	CHECK(radix(v, 10, 11, &passes) == -1.0, "k > n is refused");

	printf("%d passed, %d failed\n", passed, failed);
	free(v);
	return failed > 0;
}
