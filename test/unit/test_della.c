/*
 * test_della.c - unit tests of DELLA's kernel (no server needed).
 *
 * The mask is checked against its definition recomputed here without
 * sorting: an entry's rank is the number of entries of its group (same i0
 * and trailing index) with a smaller magnitude, or an equal one at a lower
 * i1 (NaN counting as the largest); the probability is (density - eps) +
 * rank / (d1 - 1) * 2 eps (density when d1 = 1, everything at density 1,
 * nothing at 0); an entry is kept when DARE's uniform draw of its position
 * is below it.  The L1 sums against plain sums of values chosen so that
 * every sum is exact, and the apply step against the mask.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/della.h"
#include "kernels/sparse.h"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { if (cond) passed++; else { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static double
mag(double v)
{
	return isnan(v) ? INFINITY : fabs(v);
}

/* below(a, b): a ranks below b (smaller magnitude; NaN above infinity; ties by position) */
static int
below(double a, size_t ia, double b, size_t ib)
{
	if (isnan(a) != isnan(b))
		return isnan(b);
	if (mag(a) != mag(b))
		return mag(a) < mag(b);
	return ia < ib;
}

static void
test_mask(void)
{
	srand(777);
	for (int trial = 0; trial < 3000; trial++)
	{
		size_t		d0 = 1 + rand() % 4;
		size_t		d1 = 1 + (trial % 3 == 0 ? rand() % 200 : rand() % 12);
		size_t		inner = 1 + rand() % 3;
		size_t		slab = d1 * inner;
		size_t		n = d0 * slab;
		double	   *tau = malloc(n * sizeof(double));
		unsigned char *mask = calloc((n + 7) / 8 + 1, 1);
		SoupDellaOrder *order = malloc(2 * d1 * sizeof(SoupDellaOrder));
		double		l1[4] = {0, 0, 0, 0};
		double		density = (trial % 10 == 0) ? (trial % 20 == 0 ? 1.0 : 0.0) : 0.2 + 0.6 * (rand() / (double) RAND_MAX);
		double		eps = 0.15 * (rand() / (double) RAND_MAX);
		uint64_t	key = soup_dare_key((uint64_t) trial, 1 + trial % 3, 99);
		double		all = 0,
					kept = 0;
		int			ok = 1;
		double	   *out = malloc(n * sizeof(double));

		if (density > 0 && density < 1 && (density - eps <= 0 || density + eps >= 1))
			eps = 0.0;
		for (size_t i = 0; i < n; i++)
		{
			int			r = rand() % 20;

			/* multiples of 2^-10 below 2^10: every sum here is exact in a double */
			tau[i] = r == 0 ? NAN : r < 4 ? 0.5 * ((rand() % 2) ? 1 : -1) : ldexp((double) (rand() % 2000000 - 1000000), -10);
		}
		for (size_t i0 = 0; i0 < d0; i0++)
			soup_della_slab(tau + i0 * slab, d1, inner, i0 * slab, density, eps, key, mask, l1, order);
		for (size_t e = 0; e < n; e++)
		{
			size_t		i0 = e / slab;
			size_t		i1 = (e % slab) / inner;
			size_t		r = e % inner;
			size_t		rank = 0;
			double		p;
			int			want,
						got;

			for (size_t j = 0; j < d1; j++)
			{
				size_t		f = i0 * slab + j * inner + r;

				if (j != i1 && below(tau[f], j, tau[e], i1))
					rank++;
			}
			if (density >= 1)
				p = 2;
			else if (density <= 0)
				p = 0;
			else if (d1 == 1)
				p = density;
			else
				p = (density - eps) + (double) rank / (double) (d1 - 1) * (2.0 * eps);
			want = soup_dare_uniform(key, e) < p;
			got = (mask[e / 8] >> (e % 8)) & 1;
			ok &= want == got;
			all += fabs(tau[e]);
			if (want)
				kept += fabs(tau[e]);
		}
		CHECK(ok, "trial %d: mask differs from the definition (d0 %zu d1 %zu inner %zu)", trial, d0, d1, inner);
		CHECK((isnan(all) && isnan(l1[0] + l1[1])) || all == l1[0] + l1[1],
			  "trial %d: L1 of all %.17g, want %.17g", trial, l1[0] + l1[1], all);
		CHECK((isnan(kept) && isnan(l1[2] + l1[3])) || kept == l1[2] + l1[3],
			  "trial %d: L1 of kept %.17g, want %.17g", trial, l1[2] + l1[3], kept);
		soup_della_apply(tau, mask, 0, 2.0, out, n);
		ok = 1;
		for (size_t e = 0; e < n; e++)
		{
			double		want = ((mask[e / 8] >> (e % 8)) & 1) ? tau[e] * 2.0 : 0.0;

			ok &= memcmp(&want, &out[e], sizeof(double)) == 0;
		}
		CHECK(ok, "trial %d: apply differs from the mask", trial);
		free(tau);
		free(mask);
		free(order);
		free(out);
	}
}

/* A long row: the keep rate of each tenth of the ranks follows p. */
static void
test_rates(void)
{
	enum
	{
	N = 100000};
	double	   *tau = malloc(N * sizeof(double));
	unsigned char *mask = calloc(N / 8 + 1, 1);
	SoupDellaOrder *order = malloc(2 * N * sizeof(SoupDellaOrder));
	double		l1[4] = {0, 0, 0, 0};
	int			kept_low = 0,
				kept_high = 0;

	/* magnitudes increasing with the index: rank = index */
	for (int i = 0; i < N; i++)
		tau[i] = (i % 2 ? -1.0 : 1.0) * (1.0 + i);
	soup_della_slab(tau, N, 1, 0, 0.5, 0.3, soup_dare_key(5, 1, 7), mask, l1, order);
	for (int i = 0; i < N / 10; i++)
	{
		kept_low += (mask[i / 8] >> (i % 8)) & 1;
		kept_high += (mask[(N - 1 - i) / 8] >> ((N - 1 - i) % 8)) & 1;
	}
	/* expected 2300 and 7700 of 10000; sd about 42: 6 sd */
	CHECK(abs(kept_low - 2300) < 250, "lowest tenth kept %d of 10000, want about 2300", kept_low);
	CHECK(abs(kept_high - 7700) < 250, "highest tenth kept %d of 10000, want about 7700", kept_high);
	free(tau);
	free(mask);
	free(order);
}

int
main(void)
{
	test_mask();
	test_rates();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
