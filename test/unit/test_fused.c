/*
 * test_fused.c - unit tests of the fused merge kernels (no server needed).
 *
 * 1. The vectorized double-double quotient gives the bits of the scalar,
 *    branching form 0.1.0 used (written out again here), on random values,
 *    zeros, subnormals, infinities, NaNs, and power-of-two divisors (which
 *    take the multiply-by-reciprocal path).
 * 2. Each fused kernel gives the bits of its aggregate's kernels, folded
 *    row by row as the aggregate does, for every float dtype, on random
 *    data and on adversarial data (cancellation, ties at rounding midpoints,
 *    exponents 2^+-100 apart, subnormals, infinities, NaN), for 1 and 2
 *    threads and lengths that do not fill a block.
 * 3. Averages whose correctly rounded value is known by hand: midpoints
 *    rounding to even, cancellation a float32 sum loses, exponent spread,
 *    subnormal halves.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/accum.h"
#include "kernels/dtype.h"
#include "kernels/fused.h"

static int	passed;
static int	failed;

#define CHECK(cond, ...) \
	do { if (cond) passed++; else { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

#define MAXK 6
#define MAXN 5000

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
uniform(void)
{
	return (double) (rng() >> 11) / 9007199254740992.0;
}

/* ---- 1. the quotient against 0.1.0's scalar form ---- */

static double
ref_two_prod_err(double a, double b, double p)
{
	const double split = 134217729.0;
	double		ca = split * a;
	double		cb = split * b;
	double		ahi = ca - (ca - a);
	double		alo = a - ahi;
	double		bhi = cb - (cb - b);
	double		blo = b - bhi;

	return ((ahi * bhi - p) + ahi * blo + alo * bhi) + alo * blo;
}

static double
ref_dd_div(double hi, double lo, double d)
{
	double		q = hi / d;
	double		p;
	double		r;

	if (!isfinite(q) || !isfinite(hi) || q == 0.0)
		return q + lo / d;
	p = q * d;
	r = (hi - p) - ref_two_prod_err(q, d, p) + lo;
	return q + r / d;
}

static int
same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof(double)) == 0;
}

static double
signalling_nan(void)
{
	uint64_t	b = UINT64_C(0x7ff0000000000001);
	double		x;

	memcpy(&x, &b, sizeof(x));
	return x;
}

static double
special_value(void)
{
	static const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, DBL_MIN,
	5e-324, -5e-324, DBL_MAX, -DBL_MAX, 1.0, -1.0, 1e300, -4e307};

	if (rng() % 16 == 0)
		return signalling_nan();
	return specials[rng() % (sizeof(specials) / sizeof(specials[0]))];
}

static double
random_double(void)
{
	switch (rng() % 4)
	{
		case 0:
			return special_value();
		case 1:
			return ldexp(uniform() - 0.5, (int) (rng() % 2100) - 1075);
		default:
			return (uniform() - 0.5) * 1000.0;
	}
}

static void
test_dd_div(void)
{
	static double hi[MAXN],
				lo[MAXN],
				out[MAXN];
	/*
	 * Powers of two take the fast path of soup_dd_div_block inside [2^-60,
	 * 2^60] (and its edges); the others the full division.
	 */
	static const double divisors[] = {4.0, 3.0, 0.5, 1.0, 8.0, 7.0, 0.1, 1e-300, 1e300,
		0x1p-1022, 0x1p1023, 0x1p-1074, -2.0, -6.0, 2.0, 16.0, 0.25, 0x1p-60, 0x1p60,
	0x1p-61, 0x1p61, -0x1p-60};
	int			bad = 0;
	int			big = 0;

	for (size_t di = 0; di < sizeof(divisors) / sizeof(divisors[0]); di++)
	{
		double		d = divisors[di];

		for (int trial = 0; trial < 200; trial++)
		{
			size_t		n = 1 + rng() % MAXN;

			for (size_t i = 0; i < n; i++)
			{
				int			kind = (int) (rng() % 8);

				/* near the fast path's limits: 2^-900 d, subnormal quotients */
				hi[i] = kind == 2 ? ldexp(uniform() - 0.5, -880 - (int) (rng() % 200)) * fabs(d)
					: random_double();
				/* a low part below half an ulp of hi, as a double-double has */
				lo[i] = isfinite(hi[i]) ? hi[i] * ldexp(uniform() - 0.5, -53) : 0.0;
				if (kind == 0)
					lo[i] = random_double();
				else if (kind == 1 && isfinite(hi[i]))
					lo[i] = hi[i] * ldexp(uniform() - 0.5, -49);	/* an accumulator's few ulps */
				else if (kind == 3)
					lo[i] = ldexp(uniform() - 0.5, -1000 - (int) (rng() % 74));
			}
			soup_dd_div_block(hi, lo, d, out, n);
			for (size_t i = 0; i < n; i++)
			{
				double		want = ref_dd_div(hi[i], lo[i], d);

				/*
				 * 0.1.0's form gave NaN where Dekker's split overflowed (a
				 * finite quotient or divisor above 1.3e300): there the right
				 * answer is the same computation scaled by 2^-64 (exact).
				 */
				if (isnan(want) && isfinite(hi[i]) && isfinite(d) && hi[i] / d != 0 &&
					isfinite(hi[i] / d) && (fabs(hi[i] / d) > 1.3e300 || fabs(d) > 1.3e300))
				{
					big++;
					want = fabs(hi[i] / d) > 1.3e300
						? ref_dd_div(ldexp(hi[i], -64), ldexp(lo[i], -64), d) * 0x1p64
						: ref_dd_div(ldexp(hi[i], -64), ldexp(lo[i], -64), ldexp(d, -64));
				}

				if (!same_bits(out[i], want) && !(isnan(out[i]) && isnan(want)))
				{
					if (bad++ < 5)
						printf("  dd_div(%a, %a, %a) = %a, want %a\n", hi[i], lo[i], d, out[i], want);
				}
			}
		}
	}
	CHECK(bad == 0, "vectorized dd_div differs from the scalar form in %d elements", bad);
	CHECK(big > 0, "no quotient or divisor above 1.3e300 was tried");
	printf("  dd_div: %d quotients where the scalar form overflowed, checked scaled\n", big);
}

/* Quotients of huge finite values are finite (0.1.0 returned NaN). */
static void
test_dd_div_huge(void)
{
	static const double cases[][4] = {
		/* hi, lo, d, the quotient */
		{4e307, 0, 2, 2e307},
		{2e300, 0, 2e300, 1},
		{-1.5e308, 0, 3, -5e307},
		{1e308, 0, 1e-10, INFINITY},
		{6e307, 0, 0.5, 1.2e308},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		double		out;

		soup_dd_div_block(&cases[i][0], &cases[i][1], cases[i][2], &out, 1);
		CHECK(out == cases[i][3], "dd_div(%g, %g, %g) = %g, want %g", cases[i][0],
			  cases[i][1], cases[i][2], out, cases[i][3]);
	}
}

/* ---- 2. fused kernels against the aggregates' kernels ---- */

static const SoupDtype dtypes[] = {SOUP_DT_F32, SOUP_DT_F64, SOUP_DT_F16, SOUP_DT_BF16};

/* One element of input m at position i: random or adversarial. */
static double
input_value(int kind, int m, size_t i)
{
	switch (kind)
	{
		case 0:
			return (uniform() - 0.5) * 4.0;
		case 1:					/* cancellation: big values that cancel, small ones that stay */
			return (m % 2 == 0 ? 1.0 : -1.0) * 0x1p40 * (1.0 + (double) (i % 7)) +
				(m < 2 ? 0.0 : ldexp(uniform(), -10));
		case 2:					/* ties: values one or three ulps of float32 apart */
			return 1.0 + (double) ((i + m) % 4) * 0x1p-23;
		case 3:					/* huge exponent spread */
			return ldexp(uniform() + 0.5, (m % 2 == 0 ? 100 : -100)) * (i % 2 ? -1 : 1);
		case 4:					/* subnormals of every dtype */
			return ldexp((double) (rng() % 8), -149 - (int) (rng() % 3)) *
				(rng() % 2 ? -1 : 1);
		default:				/* infinities, NaN, zeros among ordinary values */
			return rng() % 5 == 0 ? special_value() : (uniform() - 0.5);
	}
}

typedef struct Inputs
{
	SoupDtype	dt;
	int			k;
	size_t		n;
	void	   *x[MAXK];
	void	   *f[MAXK];		/* Fishers, float32 */
	void	   *base;
	double		w[MAXK];
} Inputs;

static void
fill(Inputs *in, int kind)
{
	double		buf[MAXN];
	size_t		es = soup_dtype_size(in->dt);

	for (int m = 0; m < in->k; m++)
	{
		for (size_t i = 0; i < in->n; i++)
			buf[i] = input_value(kind, m, i);
		soup_store_f64(in->dt, buf, in->x[m], in->n);
		for (size_t i = 0; i < in->n; i++)
			buf[i] = rng() % 9 == 0 ? 0.0 : uniform() * ldexp(1.0, -(int) (rng() % 30));
		soup_store_f64(SOUP_DT_F32, buf, in->f[m], in->n);
	}
	for (size_t i = 0; i < in->n; i++)
		buf[i] = input_value(kind, in->k, i);
	soup_store_f64(in->dt, buf, in->base, in->n);
	(void) es;
}

/* soup.avg_weights: the first row scale-loads, the rest accumulate. */
static void
agg_avg(const Inputs *in, double *hi, double *lo, void *dst)
{
	double		wsum = soup_weight_sum(in->w, in->k);

	soup_dd_scale_load(in->dt, in->w[0], in->x[0], hi, lo, in->n, 1);
	for (int m = 1; m < in->k; m++)
		soup_dd_axpy(in->dt, in->w[m], in->x[m], hi, lo, in->n, 1);
	soup_dd_div_store(in->dt, hi, lo, wsum, dst, in->n, 1);
}

static void
agg_ema(const Inputs *in, double decay, double *e, void *dst)
{
	soup_scale_load(in->dt, 1.0, in->x[0], e, in->n, 1);
	for (int m = 1; m < in->k; m++)
		soup_ema_update(in->dt, decay, in->x[m], e, in->n, 1);
	soup_div_store(in->dt, e, 1.0, dst, in->n, 1);
}

static void
agg_fisher(const Inputs *in, double floor, double *acc, void *dst)
{
	double	   *nh = acc,
			   *nl = acc + MAXN,
			   *dh = acc + 2 * MAXN,
			   *dl = acc + 3 * MAXN;

	memset(acc, 0, sizeof(double) * 4 * MAXN);
	for (int m = 0; m < in->k; m++)
		soup_dd_fisher(in->dt, in->x[m], SOUP_DT_F32, in->f[m], in->w[m], floor,
					   nh, nl, dh, dl, in->n, 1);
	soup_dd_div2_store(in->dt, nh, nl, dh, dl, dst, in->n, 1);
}

static void
agg_task(const Inputs *in, double lambda, double *hi, double *lo, void *dst)
{
	memset(hi, 0, sizeof(double) * in->n);
	memset(lo, 0, sizeof(double) * in->n);
	for (int m = 0; m < in->k; m++)
		soup_dd_axpy_diff(in->dt, in->w[m], in->x[m], in->base, hi, lo, in->n, 1);
	soup_task_store(in->dt, in->base, hi, lo, lambda, dst, in->n, 1);
}

static void
test_fused_against_aggregates(void)
{
	static double acc[4 * MAXN];
	static char want[MAXN * 8],
				got[MAXN * 8];
	static const char *const kinds[] = {"random", "cancellation", "ties", "exponent spread",
	"subnormals", "specials"};
	Inputs		in = {0};
	SoupDtype	fdts[MAXK];

	for (int m = 0; m < MAXK; m++)
	{
		in.x[m] = malloc(MAXN * 8);
		in.f[m] = malloc(MAXN * 8);
		fdts[m] = SOUP_DT_F32;
	}
	in.base = malloc(MAXN * 8);

	for (size_t di = 0; di < sizeof(dtypes) / sizeof(dtypes[0]); di++)
		for (int kind = 0; kind < 6; kind++)
			for (int trial = 0; trial < 12; trial++)
			{
				size_t		bytes;
				int			threads = 1 + trial % 2;
				double		decay = trial % 3 == 0 ? 0.999 : uniform();
				double		lambda = trial % 2 ? 1.0 : uniform() * 3 - 1;
				double		floor = trial % 2 ? 1e-6 : 0.0;
				const void *const *xs = (const void *const *) in.x;
				const void *const *fs = (const void *const *) in.f;

				in.dt = dtypes[di];
				in.k = 1 + trial % MAXK;
				in.n = trial < 4 ? 1 + rng() % 7 : 1 + rng() % MAXN;
				bytes = in.n * soup_dtype_size(in.dt);
				for (int m = 0; m < in.k; m++)
					in.w[m] = trial % 4 == 0 ? 1.0 : trial % 4 == 1 ? 0.25 * (m + 1)
						: (uniform() - 0.2) * 3;
				if (soup_weight_sum(in.w, in.k) == 0.0)
					in.w[0] += 1.0;
				fill(&in, kind);

				agg_avg(&in, acc, acc + MAXN, want);
				soup_fused_avg(in.dt, in.k, xs, in.w, soup_weight_sum(in.w, in.k), got, in.n,
							   threads);
				CHECK(memcmp(want, got, bytes) == 0, "avg %s %s k=%d n=%zu: fused differs",
					  soup_dtype_name(in.dt), kinds[kind], in.k, in.n);

				agg_ema(&in, decay, acc, want);
				soup_fused_ema(in.dt, in.k, xs, decay, got, in.n, threads);
				CHECK(memcmp(want, got, bytes) == 0, "ema %s %s k=%d n=%zu: fused differs",
					  soup_dtype_name(in.dt), kinds[kind], in.k, in.n);

				agg_fisher(&in, floor, acc, want);
				soup_fused_fisher(in.dt, in.k, xs, fdts, fs, in.w, floor, got, in.n, threads);
				CHECK(memcmp(want, got, bytes) == 0, "fisher %s %s k=%d n=%zu: fused differs",
					  soup_dtype_name(in.dt), kinds[kind], in.k, in.n);

				agg_task(&in, lambda, acc, acc + MAXN, want);
				soup_fused_task(in.dt, in.k, xs, in.base, in.w, lambda, got, in.n, threads);
				CHECK(memcmp(want, got, bytes) == 0, "task %s %s k=%d n=%zu: fused differs",
					  soup_dtype_name(in.dt), kinds[kind], in.k, in.n);
			}
	for (int m = 0; m < MAXK; m++)
	{
		free(in.x[m]);
		free(in.f[m]);
	}
	free(in.base);
}

/* ---- 3. averages known by hand ---- */

static void
check_avg4(const char *what, float a, float b, float c, float d, float want)
{
	float		x[4] = {a, b, c, d};
	const void *xs[4] = {&x[0], &x[1], &x[2], &x[3]};
	double		w[4] = {1, 1, 1, 1};
	float		got;

	soup_fused_avg(SOUP_DT_F32, 4, xs, w, 4.0, &got, 1, 1);
	CHECK(memcmp(&got, &want, sizeof(float)) == 0, "%s: got %a, want %a", what, got, want);
}

static void
test_known_averages(void)
{
	/* (1 + 2^-23 + 1 + 1 + 1 + 2^-23) / 4 = 1 + 2^-24: a tie, to the even 1 */
	check_avg4("midpoint to even (down)", 1 + 0x1p-23f, 1, 1, 1 + 0x1p-23f, 1.0f);
	/* 1 + 1.5 * 2^-23: a tie between 1 + 2^-23 (odd) and 1 + 2^-22 (even) */
	check_avg4("midpoint to even (up)", 1 + 3 * 0x1p-23f, 1, 1, 1 + 3 * 0x1p-23f, 1 + 0x1p-22f);
	/* a float32 running sum gives 0 here; the exact average is 0.5 */
	check_avg4("cancellation", 0x1p100f, 1, -0x1p100f, 1, 0.5f);
	/* the huge terms cancel, the tiny ones survive */
	check_avg4("exponent spread", 0x1p-100f, 0x1p100f, -0x1p100f, 0x1p-100f, 0x1p-101f);
	/* half the smallest subnormal: a tie between 0 and 2^-149, to 0 */
	check_avg4("subnormal tie", 0x1p-149f, 0x1p-149f, 0, 0, 0.0f);
	/* three quarters of the smallest subnormal round up to it */
	check_avg4("subnormal round", 3 * 0x1p-149f, 0, 0, 0, 0x1p-149f);
	check_avg4("infinity", INFINITY, 1, 2, 3, INFINITY);
	/* an exact zero sum is +0 (its low part is +0), as in 0.1.0 */
	check_avg4("negative zeros", -0.0f, -0.0f, -0.0f, -0.0f, 0.0f);
}

int
main(void)
{
	test_dd_div();
	test_dd_div_huge();
	test_fused_against_aggregates();
	test_known_averages();
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0;
}
