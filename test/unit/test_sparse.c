/*
 * test_sparse.c - unit tests of the sparsifying kernels (no server needed).
 *
 * The selection is checked against qsort on random arrays with duplicates
 * and NaNs; the DARE draw against its documented definition recomputed here
 * (splitmix64 of the element's global index), its keep rate, and its
 * independence from how a tensor is cut into pieces.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/sparse.h"
#include "order.h"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { if (cond) passed++; else { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static void
test_kth_largest(void)
{
	srand(12345);
	for (int trial = 0; trial < 20000; trial++)
	{
		size_t		n = 1 + rand() % 60;
		double	   *v = malloc(n * sizeof(double));
		double	   *s = malloc(n * sizeof(double));
		size_t		k = 1 + rand() % n;
		double		got;

		for (size_t i = 0; i < n; i++)
			v[i] = s[i] = (rand() % 11 == 0) ? NAN : (double) (rand() % (1 + trial % 9));
		qsort(s, n, sizeof(double), cmp_desc_nan_first);
		got = soup_kth_largest(v, n, k);
		CHECK(got == s[k - 1] || (isnan(got) && isnan(s[k - 1])),
			  "kth_largest n=%zu k=%zu: %g, want %g", n, k, got, s[k - 1]);
		free(v);
		free(s);
	}
}

/* The documented draw, written out again. */
static uint64_t
sm64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

static void
test_dare(void)
{
	enum {N = 100000};
	static float x[N];
	static float zero[N];
	static double whole[N];
	static double part[N];
	uint64_t	key = soup_dare_key(42, 3, soup_fnv1a("layer.0.weight", 14));
	uint64_t	want_key = sm64(sm64(sm64(42) ^ 3) ^ soup_fnv1a("layer.0.weight", 14));
	int			kept = 0;
	int			same = 1;

	CHECK(key == want_key, "dare key");
	CHECK(soup_fnv1a("a", 1) == 0xaf63dc4c8601ec8cULL, "FNV-1a of \"a\"");
	for (int i = 0; i < N; i++)
		x[i] = 1.0f + (float) i;
	soup_dare(SOUP_DT_F32, x, zero, 0.3, key, 0, 1.0 / 0.3, whole, N, NULL);
	/* the same tensor in pieces of 7 elements, with their global offsets */
	for (int off = 0; off < N; off += 7)
	{
		int			len = N - off < 7 ? N - off : 7;

		soup_dare(SOUP_DT_F32, x + off, zero + off, 0.3, key, off, 1.0 / 0.3,
				  part + off, len, NULL);
	}
	for (int i = 0; i < N; i++)
	{
		double		u = (double) (sm64(key ^ sm64((uint64_t) i)) >> 11) * 0x1.0p-53;
		double		want = u < 0.3 ? (double) x[i] * (1.0 / 0.3) : 0.0;

		kept += whole[i] != 0.0;
		same &= memcmp(&whole[i], &part[i], sizeof(double)) == 0;
		if (whole[i] != want)
		{
			CHECK(0, "dare element %d: %g, want %g", i, whole[i], want);
			break;
		}
	}
	CHECK(same, "dare does not depend on chunking");
	/* 30000 expected; 5 standard deviations is about 725 */
	CHECK(abs(kept - 30000) < 725, "dare kept %d of %d at density 0.3", kept, N);
}

int
main(void)
{
	test_kth_largest();
	test_dare();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
