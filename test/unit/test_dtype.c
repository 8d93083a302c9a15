/*
 * test_dtype.c - standalone unit test of src/kernels/dtype.c.
 *
 * The reference is independent of the implementation: f16/bf16 values are
 * computed from their bit fields with ldexp(), and the correctly rounded
 * result of a double is found by bracketing it between adjacent
 * representable values (a table of every finite non-negative encoding, in
 * encoding order, checked to be increasing) and applying ties-to-even with
 * exact double arithmetic (every f16/bf16 value and every midpoint between
 * two adjacent ones is exactly representable in a double).
 *
 * Output: failures on stderr, a summary per group, and as the last line
 * "N passed, M failed"; exit status 1 if anything failed.
 */
#include "kernels/dtype.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long npass;
static long nfail;

#define MAX_REPORTED_FAILURES 60

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			npass++; \
		else \
		{ \
			nfail++; \
			if (nfail <= MAX_REPORTED_FAILURES) \
			{ \
				fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
				fprintf(stderr, __VA_ARGS__); \
				fputc('\n', stderr); \
			} \
		} \
	} while (0)

static void
group_done(const char *name, long pass_before, long fail_before)
{
	printf("%-44s %10ld passed, %ld failed\n", name,
		   npass - pass_before, nfail - fail_before);
}

/* ---------------------------------------------------------------- helpers */

static uint64_t
dbits(double d)
{
	uint64_t	u;

	memcpy(&u, &d, 8);
	return u;
}

static double
dfrom(uint64_t u)
{
	double		d;

	memcpy(&d, &u, 8);
	return d;
}

static uint32_t
fbits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return u;
}

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

/* xorshift64* with a fixed seed: reproducible */
static uint64_t
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

/* A narrow format: f16 (5, 10) or bf16 (8, 7). */
typedef struct Fmt
{
	const char *name;
	int			eb;
	int			mb;
	uint16_t	(*narrow) (double);
	float		(*widen) (uint16_t);
	double	   *tab;			/* tab[i] = value of encoding i, 0..inf_idx */
	int			inf_idx;		/* encoding of +inf; tab[inf_idx] = 2^emax+1 */
} Fmt;

/* Value of an encoding from its bit fields (independent reference). */
static double
ref_value(const Fmt *f, uint16_t h)
{
	int			bias = (1 << (f->eb - 1)) - 1;
	int			emax = (1 << f->eb) - 1;
	int			s = h >> (f->eb + f->mb);
	int			e = (h >> f->mb) & emax;
	int			m = h & ((1 << f->mb) - 1);
	double		v;

	if (e == emax)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp((double) m, 1 - bias - f->mb);
	else
		v = ldexp((double) ((1 << f->mb) + m), e - bias - f->mb);
	return copysign(v, s ? -1.0 : 1.0);
}

static int
is_nan_enc(const Fmt *f, uint16_t h)
{
	uint16_t	a = h & 0x7fff;

	return a > f->inf_idx;
}

static uint16_t
sign_bit(void)
{
	return 0x8000;
}

/*
 * Correctly rounded encoding of a non-NaN double, by bracketing |x| in the
 * table and ties-to-even (even = encoding's lowest bit 0).  Above the
 * largest finite value the next "value" is 2^(emax+1), encoded as inf.
 */
static uint16_t
ref_round(const Fmt *f, double x)
{
	double		ax = fabs(x);
	uint16_t	sign = signbit(x) ? sign_bit() : 0;
	int			lo,
				hi;
	double		mid;

	if (ax >= f->tab[f->inf_idx])
		return (uint16_t) f->inf_idx | sign;
	/* largest lo with tab[lo] <= ax; tab[0] = 0 <= ax */
	lo = 0;
	hi = f->inf_idx;			/* tab[hi] > ax */
	while (hi - lo > 1)
	{
		int			m = lo + (hi - lo) / 2;

		if (f->tab[m] <= ax)
			lo = m;
		else
			hi = m;
	}
	if (f->tab[lo] == ax)
		return (uint16_t) lo | sign;
	mid = (f->tab[lo] + f->tab[lo + 1]) / 2;	/* exact */
	if (ax < mid)
		return (uint16_t) lo | sign;
	if (ax > mid)
		return (uint16_t) (lo + 1) | sign;
	return (uint16_t) ((lo & 1) ? lo + 1 : lo) | sign;
}

/* Check narrow(x) against the reference; NaN by class (quiet, same sign). */
static int
narrow_ok(const Fmt *f, double x, uint16_t got, uint16_t *want)
{
	if (isnan(x))
	{
		uint16_t	quiet = (uint16_t) (1u << (f->mb - 1));

		*want = (uint16_t) (f->inf_idx | quiet | (signbit(x) ? sign_bit() : 0));
		return is_nan_enc(f, got) && (got & quiet) &&
			((got & 0x8000) != 0) == (signbit(x) != 0);
	}
	*want = ref_round(f, x);
	return got == *want;
}

static void
check_narrow(const Fmt *f, double x)
{
	uint16_t	got = f->narrow(x);
	uint16_t	want;

	CHECK(narrow_ok(f, x, got, &want),
		  "%s(%.17g = 0x%016llx) = 0x%04x, want 0x%04x", f->name, x,
		  (unsigned long long) dbits(x), got, want);
}

static void
build_table(Fmt *f)
{
	long		pb = npass,
				fb = nfail;
	int			bias = (1 << (f->eb - 1)) - 1;
	int			ok = 1;

	f->inf_idx = ((1 << f->eb) - 1) << f->mb;
	f->tab = malloc(sizeof(double) * (f->inf_idx + 1));
	for (int i = 0; i < f->inf_idx; i++)
		f->tab[i] = ref_value(f, (uint16_t) i);
	f->tab[f->inf_idx] = ldexp(1.0, bias + 1);
	for (int i = 0; i < f->inf_idx; i++)
		if (!(f->tab[i] < f->tab[i + 1]))
			ok = 0;
	CHECK(ok, "%s reference table not strictly increasing", f->name);
	CHECK(isinf(ref_value(f, (uint16_t) f->inf_idx)), "%s inf encoding", f->name);
	/* sanity of the reference itself against well-known constants */
	if (f->eb == 5)
	{
		CHECK(f->tab[0x7bff] == 65504.0, "f16 max");
		CHECK(f->tab[0x0001] == ldexp(1, -24), "f16 min subnormal");
		CHECK(f->tab[0x0400] == ldexp(1, -14), "f16 min normal");
		CHECK(f->tab[0x3c00] == 1.0, "f16 one");
		CHECK(f->tab[0x3555] == 0.333251953125, "f16 1/3");
	}
	else
	{
		CHECK(f->tab[0x7f7f] == 3.3895313892515355e38, "bf16 max");
		CHECK(f->tab[0x0001] == ldexp(1, -133), "bf16 min subnormal");
		CHECK(f->tab[0x0080] == (double) FLT_MIN, "bf16 min normal");
		CHECK(f->tab[0x3f80] == 1.0, "bf16 one");
		CHECK(f->tab[0x4049] == 3.140625, "bf16 pi");
	}
	group_done(f->eb == 5 ? "reference table f16" : "reference table bf16", pb, fb);
}

/* ------------------------------------------------------- exhaustive widen */

static void
test_widen_exhaustive(const Fmt *f)
{
	long		pb = npass,
				fb = nfail;
	int			shift = 23 - f->mb;	/* mantissa position in an f32 */

	for (uint32_t i = 0; i < 65536; i++)
	{
		uint16_t	h = (uint16_t) i;
		float		got = f->widen(h);
		double		ref = ref_value(f, h);

		if (isnan(ref))
		{
			uint32_t	b = fbits(got);

			/* NaN stays NaN, same sign, whole payload kept */
			CHECK(isnan(got) && (signbit(got) != 0) == (signbit(ref) != 0) &&
				  ((b >> shift) & ((1u << f->mb) - 1)) == (h & ((1u << f->mb) - 1)) &&
				  (b & ((1u << shift) - 1)) == 0,
				  "%s->f32(0x%04x) = 0x%08x: NaN payload/sign lost", f->name, h, b);
		}
		else
			CHECK((double) got == ref && (signbit(got) != 0) == (signbit(ref) != 0),
				  "%s->f32(0x%04x) = %.9g, want %.9g", f->name, h, (double) got, ref);
	}
	group_done(f->eb == 5 ? "exhaustive f16 -> f32" : "exhaustive bf16 -> f32", pb, fb);
}

/* Round trips: enc -> f32 -> f64 -> enc, and ref value -> enc. */
static void
test_round_trip(const Fmt *f)
{
	long		pb = npass,
				fb = nfail;

	for (uint32_t i = 0; i < 65536; i++)
	{
		uint16_t	h = (uint16_t) i;
		double		d = (double) f->widen(h);
		uint16_t	back = f->narrow(d);
		uint16_t	back2 = f->narrow(ref_value(f, h));

		if (is_nan_enc(f, h))
		{
			CHECK(is_nan_enc(f, back) && (back & 0x8000) == (h & 0x8000),
				  "%s NaN round trip 0x%04x -> 0x%04x", f->name, h, back);
			CHECK(is_nan_enc(f, back2) && (back2 & 0x8000) == (h & 0x8000),
				  "%s NaN round trip (ref) 0x%04x -> 0x%04x", f->name, h, back2);
		}
		else
		{
			CHECK(back == h, "%s round trip 0x%04x -> 0x%04x", f->name, h, back);
			CHECK(back2 == h, "%s round trip (ref) 0x%04x -> 0x%04x", f->name, h, back2);
		}
	}
	group_done(f->eb == 5 ? "round trip f16 -> f64 -> f16" : "round trip bf16 -> f64 -> bf16",
			   pb, fb);
}

/* --------------------------------------------------------------- rounding */

/*
 * Every midpoint between adjacent non-negative values (the last one being
 * max finite / 2^(emax+1), i.e. the overflow threshold), both signs: the tie
 * goes to the even encoding; one double ulp either side goes down / up.
 * Expected results come straight from the indices, not from ref_round.
 */
static void
test_midpoints(const Fmt *f)
{
	long		pb = npass,
				fb = nfail;

	for (int i = 0; i < f->inf_idx; i++)
	{
		double		lo = f->tab[i];
		double		hi = f->tab[i + 1];
		double		m = (lo + hi) / 2;
		double		up = nextafter(m, INFINITY);
		double		down = nextafter(m, 0.0);
		uint16_t	even = (uint16_t) ((i & 1) ? i + 1 : i);

		CHECK(lo < m && m < hi && m - lo == hi - m, "%s midpoint %d not exact", f->name, i);
		CHECK(f->narrow(m) == even, "%s tie %.17g -> 0x%04x want 0x%04x",
			  f->name, m, f->narrow(m), even);
		CHECK(f->narrow(-m) == (even | 0x8000), "%s tie %.17g -> 0x%04x want 0x%04x",
			  f->name, -m, f->narrow(-m), even | 0x8000);
		CHECK(f->narrow(up) == i + 1, "%s above tie %.17g -> 0x%04x want 0x%04x",
			  f->name, up, f->narrow(up), i + 1);
		CHECK(f->narrow(-up) == ((i + 1) | 0x8000), "%s above tie %.17g", f->name, -up);
		CHECK(f->narrow(down) == i, "%s below tie %.17g -> 0x%04x want 0x%04x",
			  f->name, down, f->narrow(down), i);
		CHECK(f->narrow(-down) == (i | 0x8000), "%s below tie %.17g", f->name, -down);
		/* and the reference agrees */
		CHECK(ref_round(f, m) == even && ref_round(f, up) == i + 1 &&
			  ref_round(f, down) == i, "%s reference disagrees at midpoint %d", f->name, i);
	}
	group_done(f->eb == 5 ? "f16 midpoints (ties, +-1 ulp)" : "bf16 midpoints (ties, +-1 ulp)",
			   pb, fb);
}

static void
test_specials(const Fmt *f16, const Fmt *bf16)
{
	long		pb = npass,
				fb = nfail;
	const double nan_values[] = {
		NAN, -NAN,
		dfrom(UINT64_C(0x7ff0000000000001)),	/* signalling, low payload only */
		dfrom(UINT64_C(0xfff0000000000001)),
		dfrom(UINT64_C(0x7ff8000000000000)),
		dfrom(UINT64_C(0x7fffffffffffffff)),
		dfrom(UINT64_C(0xfff4000000000000)),	/* signalling, high payload */
	};

	/* signed zero, inf */
	CHECK(soup_f64_to_f16(0.0) == 0x0000, "f16(+0)");
	CHECK(soup_f64_to_f16(-0.0) == 0x8000, "f16(-0)");
	CHECK(soup_f64_to_bf16(0.0) == 0x0000, "bf16(+0)");
	CHECK(soup_f64_to_bf16(-0.0) == 0x8000, "bf16(-0)");
	CHECK(soup_f64_to_f16(INFINITY) == 0x7c00, "f16(inf)");
	CHECK(soup_f64_to_f16(-INFINITY) == 0xfc00, "f16(-inf)");
	CHECK(soup_f64_to_bf16(INFINITY) == 0x7f80, "bf16(inf)");
	CHECK(soup_f64_to_bf16(-INFINITY) == 0xff80, "bf16(-inf)");

	/* NaN -> quiet NaN of the same sign */
	for (size_t i = 0; i < sizeof nan_values / sizeof nan_values[0]; i++)
	{
		check_narrow(f16, nan_values[i]);
		check_narrow(bf16, nan_values[i]);
	}

	/* f16 overflow boundary */
	CHECK(soup_f64_to_f16(65504.0) == 0x7bff, "f16(65504)");
	CHECK(soup_f64_to_f16(65519.99) == 0x7bff, "f16(65519.99) = 0x%04x", soup_f64_to_f16(65519.99));
	CHECK(soup_f64_to_f16(nextafter(65520.0, 0)) == 0x7bff, "f16(65520-)");
	CHECK(soup_f64_to_f16(65520.0) == 0x7c00, "f16(65520) = 0x%04x", soup_f64_to_f16(65520.0));
	CHECK(soup_f64_to_f16(-65520.0) == 0xfc00, "f16(-65520)");
	CHECK(soup_f64_to_f16(65536.0) == 0x7c00, "f16(65536)");
	CHECK(soup_f64_to_f16(1e5) == 0x7c00, "f16(1e5)");
	CHECK(soup_f64_to_f16(DBL_MAX) == 0x7c00, "f16(DBL_MAX)");
	CHECK(soup_f64_to_f16(-DBL_MAX) == 0xfc00, "f16(-DBL_MAX)");

	/* bf16 overflow boundary */
	{
		double		bmax = 3.3895313892515355e38;	/* 0x7f7f */
		double		bmid = (bmax + ldexp(1, 128)) / 2;

		CHECK(soup_f64_to_bf16(bmax) == 0x7f7f, "bf16(max)");
		CHECK(soup_f64_to_bf16(nextafter(bmid, 0)) == 0x7f7f, "bf16(mid-)");
		CHECK(soup_f64_to_bf16(bmid) == 0x7f80, "bf16(mid) -> inf");
		CHECK(soup_f64_to_bf16((double) FLT_MAX) == 0x7f80, "bf16(FLT_MAX) -> inf");
		CHECK(soup_f64_to_bf16(-(double) FLT_MAX) == 0xff80, "bf16(-FLT_MAX) -> -inf");
		CHECK(soup_f64_to_bf16(DBL_MAX) == 0x7f80, "bf16(DBL_MAX)");
	}

	/* underflow and the subnormal range */
	CHECK(soup_f64_to_f16(ldexp(1, -24)) == 0x0001, "f16 min subnormal");
	CHECK(soup_f64_to_f16(ldexp(1, -25)) == 0x0000, "f16(2^-25) tie -> 0");
	CHECK(soup_f64_to_f16(-ldexp(1, -25)) == 0x8000, "f16(-2^-25) tie -> -0");
	CHECK(soup_f64_to_f16(nextafter(ldexp(1, -25), 1)) == 0x0001, "f16(2^-25+)");
	CHECK(soup_f64_to_f16(ldexp(3, -25)) == 0x0002, "f16(1.5*2^-24) tie -> 2");
	CHECK(soup_f64_to_f16(ldexp(1, -14)) == 0x0400, "f16 min normal");
	CHECK(soup_f64_to_f16(ldexp(1, -14) - ldexp(1, -25)) == 0x0400,
		  "f16 tie 0x3ff/0x400 -> 0x400");
	CHECK(soup_f64_to_f16(ldexp(1, -14) - ldexp(3, -25)) == 0x03fe,
		  "f16 tie 0x3fe/0x3ff -> 0x3fe");
	CHECK(soup_f64_to_f16(ldexp(1, -30)) == 0x0000, "f16(2^-30)");
	CHECK(soup_f64_to_f16(DBL_MIN) == 0x0000, "f16(DBL_MIN)");
	CHECK(soup_f64_to_f16(dfrom(1)) == 0x0000, "f16(min double subnormal)");
	CHECK(soup_f64_to_f16(-dfrom(1)) == 0x8000, "f16(-min double subnormal)");
	CHECK(soup_f64_to_f16(dfrom(UINT64_C(0x000fffffffffffff))) == 0x0000, "f16(max double subnormal)");
	CHECK(soup_f64_to_bf16(ldexp(1, -133)) == 0x0001, "bf16 min subnormal");
	CHECK(soup_f64_to_bf16(ldexp(1, -134)) == 0x0000, "bf16(2^-134) tie -> 0");
	CHECK(soup_f64_to_bf16(nextafter(ldexp(1, -134), 1)) == 0x0001, "bf16(2^-134+)");
	CHECK(soup_f64_to_bf16((double) FLT_MIN) == 0x0080, "bf16(FLT_MIN)");
	CHECK(soup_f64_to_bf16(-dfrom(1)) == 0x8000, "bf16(-min double subnormal)");
	CHECK(soup_f64_to_bf16(DBL_MIN) == 0x0000, "bf16(DBL_MIN)");

	/* ordinary values */
	CHECK(soup_f64_to_f16(1.0) == 0x3c00, "f16(1)");
	CHECK(soup_f64_to_f16(-2.0) == 0xc000, "f16(-2)");
	CHECK(soup_f64_to_f16(0.1) == 0x2e66, "f16(0.1) = 0x%04x", soup_f64_to_f16(0.1));
	CHECK(soup_f64_to_f16(1.0 / 3) == 0x3555, "f16(1/3)");
	CHECK(soup_f64_to_bf16(1.0) == 0x3f80, "bf16(1)");
	CHECK(soup_f64_to_bf16(M_PI) == 0x4049, "bf16(pi) = 0x%04x", soup_f64_to_bf16(M_PI));
	CHECK(soup_f64_to_bf16(0.1) == 0x3dcd, "bf16(0.1) = 0x%04x", soup_f64_to_bf16(0.1));

	group_done("specials: zero, inf, NaN, overflow, underflow", pb, fb);
}

/*
 * Double-rounding traps: values where f64 -> f32 -> narrow differs from the
 * correctly rounded f64 -> narrow.  The check that the float path really is
 * wrong keeps the test honest.
 */
static void
test_double_rounding(const Fmt *f16, const Fmt *bf16)
{
	long		pb = npass,
				fb = nfail;
	struct
	{
		const Fmt  *f;
		double		x;
		uint16_t	want;
	}			cases[] = {
		/* just above the 1 / 1+2^-10 midpoint: f32 rounds onto the tie */
		{f16, 1.0 + ldexp(1, -11) + ldexp(1, -40), 0x3c01},
		/* just below the 1+2^-10 / 1+2^-9 midpoint */
		{f16, 1.0 + ldexp(3, -11) - ldexp(1, -40), 0x3c01},
		{f16, -(1.0 + ldexp(1, -11) + ldexp(1, -40)), 0xbc01},
		/* in the f16 subnormal range: just above 0.5 * 2^-24 */
		{f16, ldexp(1, -25) + ldexp(1, -60), 0x0001},
		{bf16, 1.0 + ldexp(1, -8) + ldexp(1, -30), 0x3f81},
		{bf16, 1.0 + ldexp(3, -8) - ldexp(1, -30), 0x3f81},
		{bf16, -(1.0 + ldexp(1, -8) + ldexp(1, -30)), 0xbf81},
		/* bf16 subnormal: f32 is subnormal here, even coarser */
		{bf16, ldexp(1, -134) + ldexp(1, -170), 0x0001},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
	{
		const Fmt  *f = cases[i].f;
		double		x = cases[i].x;
		uint16_t	via_float = f->narrow((double) (float) x);

		CHECK(f->narrow(x) == cases[i].want, "%s double-rounding trap %.17g -> 0x%04x want 0x%04x",
			  f->name, x, f->narrow(x), cases[i].want);
		CHECK(ref_round(f, x) == cases[i].want, "%s reference at trap %zu", f->name, i);
		CHECK(via_float != cases[i].want, "%s trap %zu is not a trap (float path gives 0x%04x)",
			  f->name, i, via_float);
	}
	group_done("double-rounding traps", pb, fb);
}

/* A random double whose exponent lies in [lo, hi], random mantissa and sign. */
static double
rnd_in_exp_range(int lo, int hi)
{
	uint64_t	r = rnd();
	int			e = lo + (int) (rnd() % (uint64_t) (hi - lo + 1));
	double		m = 1.0 + (double) (r >> 12) * ldexp(1, -52);	/* [1, 2) */
	double		v = ldexp(m, e);

	return (r & 1) ? -v : v;
}

static void
test_random(const Fmt *f, long n)
{
	long		pb = npass,
				fb = nfail;
	int			bias = (1 << (f->eb - 1)) - 1;

	for (long k = 0; k < n; k++)
	{
		double		x;

		switch (k % 4)
		{
			case 0:				/* any bit pattern: NaN, huge, tiny, ... */
				x = dfrom(rnd());
				break;
			case 1:				/* the target's whole range and a bit beyond */
				x = rnd_in_exp_range(1 - bias - f->mb - 3, bias + 2);
				break;
			case 2:				/* the subnormal range */
				x = rnd_in_exp_range(1 - bias - f->mb - 2, 1 - bias);
				break;
			default:			/* within a few double ulps of a midpoint */
				{
					int			i = (int) (rnd() % (uint64_t) f->inf_idx);
					double		m = (f->tab[i] + f->tab[i + 1]) / 2;
					int64_t		off = (int64_t) (rnd() % 9) - 4;

					x = dfrom(dbits(m) + (uint64_t) off);
					if (rnd() & 1)
						x = -x;
				}
				break;
		}
		check_narrow(f, x);
	}
	group_done(f->eb == 5 ? "random doubles -> f16" : "random doubles -> bf16", pb, fb);
}

/* ------------------------------------------------------------------ bulk */

#define BULK_N 1037
#define GUARD 0xA5

static int
guards_intact(const unsigned char *buf, size_t total, size_t off, size_t len)
{
	for (size_t i = 0; i < total; i++)
		if ((i < off || i >= off + len) && buf[i] != GUARD)
			return 0;
	return 1;
}

static double
interesting_double(long k)
{
	static const double specials[] = {
		0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 65519.99, 1e-8, -1e-40, 3.0e38, 4.0e38,
		1e300, -1e300, INFINITY, -INFINITY, NAN, -NAN, 5e-324, 0.1, M_PI
	};
	size_t		ns = sizeof specials / sizeof specials[0];

	if ((size_t) k < ns)
		return specials[k];
	switch (k % 3)
	{
		case 0:
			return rnd_in_exp_range(-30, 17);
		case 1:
			return rnd_in_exp_range(-140, 130);
		default:
			return dfrom(rnd());
	}
}

static void
test_bulk(void)
{
	long		pb = npass,
				fb = nfail;
	const SoupDtype dts[] = {SOUP_DT_F32, SOUP_DT_F64, SOUP_DT_F16, SOUP_DT_BF16};

	for (size_t t = 0; t < 4; t++)
	{
		SoupDtype	dt = dts[t];
		size_t		sz = (size_t) soup_dtype_size(dt);
		size_t		total = BULK_N * 8 + 16;
		unsigned char *packed = malloc(total);
		unsigned char *wide = malloc(total);
		double	   *dst;
		const unsigned char *p;

		/* ---- load: packed (offset 1) -> doubles (offset 1 and aligned) */
		memset(packed, GUARD, total);
		for (size_t i = 0; i < BULK_N * sz; i++)
			packed[1 + i] = (unsigned char) rnd();
		for (int doff = 0; doff <= 1; doff++)
		{
			memset(wide, GUARD, total);
			dst = (double *) (wide + (doff ? 1 : 8));
			soup_load_f64(dt, packed + 1, dst, BULK_N);
			CHECK(guards_intact(wide, total, doff ? 1 : 8, BULK_N * 8),
				  "load %s wrote outside its output", soup_dtype_name(dt));
			p = packed + 1;
			for (size_t i = 0; i < BULK_N; i++)
			{
				double		got;
				double		want;

				memcpy(&got, wide + (doff ? 1 : 8) + i * 8, 8);
				if (dt == SOUP_DT_F64)
				{
					CHECK(memcmp(&got, p + i * 8, 8) == 0, "load f64 elt %zu", i);
					continue;
				}
				if (dt == SOUP_DT_F32)
				{
					float		fv;

					memcpy(&fv, p + i * 4, 4);
					want = (double) fv;
				}
				else
				{
					uint16_t	h;

					memcpy(&h, p + i * 2, 2);
					want = (double) (dt == SOUP_DT_F16 ? soup_f16_to_f32(h) : soup_bf16_to_f32(h));
				}
				if (isnan(want))
					CHECK(isnan(got) && signbit(got) == signbit(want),
						  "load %s elt %zu: NaN class", soup_dtype_name(dt), i);
				else
					CHECK(dbits(got) == dbits(want), "load %s elt %zu: %.17g want %.17g",
						  soup_dtype_name(dt), i, got, want);
			}
		}

		/* ---- store: doubles (offset 1) -> packed (offset 1) */
		memset(wide, GUARD, total);
		for (long i = 0; i < BULK_N; i++)
		{
			double		v = interesting_double(i);

			memcpy(wide + 1 + i * 8, &v, 8);
		}
		memset(packed, GUARD, total);
		soup_store_f64(dt, (const double *) (wide + 1), packed + 1, BULK_N);
		CHECK(guards_intact(packed, total, 1, BULK_N * sz),
			  "store %s wrote outside its output", soup_dtype_name(dt));
		for (size_t i = 0; i < BULK_N; i++)
		{
			double		v;

			memcpy(&v, wide + 1 + i * 8, 8);
			if (dt == SOUP_DT_F64)
				CHECK(memcmp(packed + 1 + i * 8, &v, 8) == 0, "store f64 elt %zu", i);
			else if (dt == SOUP_DT_F32)
			{
				float		got;
				float		want = (float) v;

				memcpy(&got, packed + 1 + i * 4, 4);
				if (isnan(want))
					CHECK(isnan(got) && signbit(got) == signbit(want), "store f32 elt %zu NaN", i);
				else
					CHECK(fbits(got) == fbits(want), "store f32 elt %zu: %.9g want %.9g",
						  i, (double) got, (double) want);
			}
			else
			{
				uint16_t	got;
				uint16_t	want = dt == SOUP_DT_F16 ? soup_f64_to_f16(v) : soup_f64_to_bf16(v);

				memcpy(&got, packed + 1 + i * 2, 2);
				CHECK(got == want, "store %s elt %zu (%.17g): 0x%04x want 0x%04x",
					  soup_dtype_name(dt), i, v, got, want);
			}
		}

		/* ---- n = 0 touches nothing */
		memset(packed, GUARD, total);
		memset(wide, GUARD, total);
		soup_load_f64(dt, packed + 1, (double *) (wide + 8), 0);
		soup_store_f64(dt, (const double *) (wide + 8), packed + 1, 0);
		CHECK(guards_intact(packed, total, 0, 0) && guards_intact(wide, total, 0, 0),
			  "%s n=0 wrote something", soup_dtype_name(dt));

		free(packed);
		free(wide);
	}

	/*
	 * F32 store rounds to nearest even: ties and +-1 double ulp around the
	 * midpoint of random adjacent floats (expected results from the float
	 * bit patterns, not from a cast).
	 */
	for (int k = 0; k < 4096; k++)
	{
		uint32_t	fb = (uint32_t) (rnd() % 0x7f7fffffu);	/* finite, below max */
		float		lo_f,
					hi_f;
		double		in[3];
		unsigned char out[1 + 3 * 4];
		uint32_t	got[3];
		uint32_t	even;

		memcpy(&lo_f, &fb, 4);
		fb++;
		memcpy(&hi_f, &fb, 4);
		in[1] = ((double) lo_f + (double) hi_f) / 2;	/* exact */
		in[0] = nextafter(in[1], 0.0);
		in[2] = nextafter(in[1], INFINITY);
		even = (fb & 1) ? fb - 1 : fb;
		soup_store_f64(SOUP_DT_F32, in, out + 1, 3);
		memcpy(got, out + 1, 12);
		CHECK(got[0] == fb - 1 && got[1] == even && got[2] == fb,
			  "f32 store around the midpoint of 0x%08x/0x%08x: 0x%08x 0x%08x 0x%08x",
			  fb - 1, fb, got[0], got[1], got[2]);
	}

	/* non-float dtypes: documented as a no-op (an assertion failure in a
	 * SOUP_DTYPE_DEBUG build, so skipped there) */
#ifndef SOUP_DTYPE_DEBUG
	{
		unsigned char packed[64];
		double		wide[8];
		unsigned char wcopy[sizeof wide];

		memset(packed, GUARD, sizeof packed);
		memset(wide, GUARD, sizeof wide);
		memcpy(wcopy, wide, sizeof wide);
		soup_load_f64(SOUP_DT_I32, packed, wide, 8);
		soup_store_f64(SOUP_DT_U8, wide, packed, 8);
		CHECK(memcmp(wcopy, wide, sizeof wide) == 0 && guards_intact(packed, sizeof packed, 0, 0),
			  "non-float bulk conversion is not a no-op");
	}
#endif

	group_done("bulk load/store, unaligned", pb, fb);
}

static int
fmt4(double v, const char *want)
{
	char		buf[64];

	snprintf(buf, sizeof buf, "%.4g", v);
	return strcmp(buf, want) == 0;
}

/* Decoded samples quoted in ../shared/fixtures/safetensors/README.md */
static void
test_fixture_values(void)
{
	long		pb = npass,
				fb = nfail;
	const unsigned char bf16_raw[] = {0x53, 0xbf, 0xbf, 0xbe, 0x58, 0x3f};
	const unsigned char f16_raw[] = {0xec, 0x2f, 0x93, 0x3e, 0x47, 0x37};
	const char *bf16_want[] = {"-0.8242", "-0.373", "0.8438"};
	const char *f16_want[] = {"0.1238", "1.644", "0.4548"};
	unsigned char buf[1 + 6];
	double		out[3];

	/* unaligned source */
	memcpy(buf + 1, bf16_raw, 6);
	soup_load_f64(SOUP_DT_BF16, buf + 1, out, 3);
	for (int i = 0; i < 3; i++)
		CHECK(fmt4(out[i], bf16_want[i]), "fixture bf16[%d] = %.4g want %s", i, out[i], bf16_want[i]);
	CHECK(soup_bf16_to_f32(0xbf53) == -0.82421875f, "bf16 0xbf53");

	memcpy(buf + 1, f16_raw, 6);
	soup_load_f64(SOUP_DT_F16, buf + 1, out, 3);
	for (int i = 0; i < 3; i++)
		CHECK(fmt4(out[i], f16_want[i]), "fixture f16[%d] = %.4g want %s", i, out[i], f16_want[i]);
	CHECK(soup_f16_to_f32(0x3e93) == 1.6435546875f, "f16 0x3e93");

	/* and they store back to the same bytes */
	{
		unsigned char back[1 + 6];

		soup_store_f64(SOUP_DT_F16, out, back + 1, 3);
		CHECK(memcmp(back + 1, f16_raw, 6) == 0, "fixture f16 store back");
		soup_load_f64(SOUP_DT_BF16, bf16_raw, out, 3);
		soup_store_f64(SOUP_DT_BF16, out, back + 1, 3);
		CHECK(memcmp(back + 1, bf16_raw, 6) == 0, "fixture bf16 store back");
	}
	group_done("fixture README known values", pb, fb);
}

/* ------------------------------------------------------------------ names */

static void
test_names(void)
{
	long		pb = npass,
				fb = nfail;
	static const struct
	{
		int			code;
		int			size;
		const char *name;
		const char *st;
		int			is_float;
		int			is_int;
	}			want[] = {
		{SOUP_DT_F32, 4, "f32", "F32", 1, 0},
		{SOUP_DT_F64, 8, "f64", "F64", 1, 0},
		{SOUP_DT_F16, 2, "f16", "F16", 1, 0},
		{SOUP_DT_BF16, 2, "bf16", "BF16", 1, 0},
		{SOUP_DT_BOOL, 1, "bool", "BOOL", 0, 1},
		{SOUP_DT_U8, 1, "u8", "U8", 0, 1},
		{SOUP_DT_I8, 1, "i8", "I8", 0, 1},
		{SOUP_DT_I16, 2, "i16", "I16", 0, 1},
		{SOUP_DT_U16, 2, "u16", "U16", 0, 1},
		{SOUP_DT_I32, 4, "i32", "I32", 0, 1},
		{SOUP_DT_U32, 4, "u32", "U32", 0, 1},
		{SOUP_DT_I64, 8, "i64", "I64", 0, 1},
		{SOUP_DT_U64, 8, "u64", "U64", 0, 1},
		{SOUP_DT_F8_E4M3, 1, "f8_e4m3", "F8_E4M3", 0, 0},
		{SOUP_DT_F8_E5M2, 1, "f8_e5m2", "F8_E5M2", 0, 0},
		{SOUP_DT_F8_E8M0, 1, "f8_e8m0", "F8_E8M0", 0, 0},
		{SOUP_DT_C64, 8, "c64", "C64", 0, 0},
	};
	size_t		nw = sizeof want / sizeof want[0];
	static const char *bad[] = {
		"F4", "f33", "", "f", "f3", "f320", "bf", "bf1", "bf16x", "f32 ", " f32",
		"float32", "F8_E4M3FN", "f8-e4m3", "invalid", "c128", "u128", "f8_e4m", "boo"
	};

	/* codes: valid exactly for the enum's members */
	for (int code = -3; code <= SOUP_DT_MAX_CODE + 5; code++)
	{
		int			expect = 0;
		int			idx = -1;

		for (size_t i = 0; i < nw; i++)
			if (want[i].code == code)
				expect = 1, idx = (int) i;
		CHECK(soup_dtype_valid(code) == (expect != 0), "soup_dtype_valid(%d)", code);
		if (!expect)
		{
			CHECK(soup_dtype_size((SoupDtype) code) == 0, "size of invalid code %d", code);
			CHECK(!soup_dtype_is_float((SoupDtype) code) && !soup_dtype_is_integer((SoupDtype) code),
				  "class of invalid code %d", code);
			CHECK(soup_dtype_name((SoupDtype) code) == NULL &&
				  soup_dtype_st_name((SoupDtype) code) == NULL, "name of invalid code %d", code);
			continue;
		}
		CHECK(soup_dtype_size((SoupDtype) code) == want[idx].size, "size of %s", want[idx].name);
		CHECK(soup_dtype_is_float((SoupDtype) code) == want[idx].is_float, "is_float %s", want[idx].name);
		CHECK(soup_dtype_is_integer((SoupDtype) code) == want[idx].is_int, "is_integer %s", want[idx].name);
		CHECK(soup_dtype_name((SoupDtype) code) &&
			  strcmp(soup_dtype_name((SoupDtype) code), want[idx].name) == 0, "name of %d", code);
		CHECK(soup_dtype_st_name((SoupDtype) code) &&
			  strcmp(soup_dtype_st_name((SoupDtype) code), want[idx].st) == 0, "st_name of %d", code);
		/* round trips, both spellings */
		CHECK((int) soup_dtype_from_name(want[idx].name, strlen(want[idx].name)) == code,
			  "from_name(%s)", want[idx].name);
		CHECK((int) soup_dtype_from_name(want[idx].st, strlen(want[idx].st)) == code,
			  "from_name(%s)", want[idx].st);
		/* mixed case: alternate upper/lower */
		{
			char		mixed[32];
			size_t		len = strlen(want[idx].name);

			for (size_t i = 0; i < len; i++)
				mixed[i] = (i % 2) ? want[idx].st[i] : want[idx].name[i];
			mixed[len] = '\0';
			CHECK((int) soup_dtype_from_name(mixed, len) == code, "from_name(%s)", mixed);
			/* not NUL-terminated: followed by junk */
			mixed[len] = 'X';
			CHECK((int) soup_dtype_from_name(mixed, len) == code, "from_name(%.*s + junk)", (int) len, mixed);
			/* one character short */
			CHECK(soup_dtype_from_name(want[idx].name, len - 1) == SOUP_DT_INVALID,
				  "from_name prefix of %s", want[idx].name);
		}
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(soup_dtype_from_name(bad[i], strlen(bad[i])) == SOUP_DT_INVALID,
			  "from_name(\"%s\") should be invalid", bad[i]);
	CHECK(soup_dtype_from_name("f32", 0) == SOUP_DT_INVALID, "from_name len 0");
	CHECK(soup_dtype_from_name("f32\0", 4) == SOUP_DT_INVALID, "from_name with NUL inside");
	CHECK(soup_dtype_from_name("f16", 2) == SOUP_DT_INVALID, "from_name(\"f1\")");
	CHECK(soup_dtype_from_name("Bf16", 4) == SOUP_DT_BF16, "from_name(Bf16)");
	CHECK(soup_dtype_from_name("f8_E4m3", 7) == SOUP_DT_F8_E4M3, "from_name(f8_E4m3)");
	CHECK(soup_dtype_from_name("bOoL", 4) == SOUP_DT_BOOL, "from_name(bOoL)");
	group_done("dtype table and names", pb, fb);
}

int
main(void)
{
	Fmt			f16 = {"f16", 5, 10, soup_f64_to_f16, soup_f16_to_f32, NULL, 0};
	Fmt			bf16 = {"bf16", 8, 7, soup_f64_to_bf16, soup_bf16_to_f32, NULL, 0};

	build_table(&f16);
	build_table(&bf16);

	test_names();
	test_widen_exhaustive(&f16);
	test_widen_exhaustive(&bf16);
	test_round_trip(&f16);
	test_round_trip(&bf16);
	test_midpoints(&f16);
	test_midpoints(&bf16);
	test_specials(&f16, &bf16);
	test_double_rounding(&f16, &bf16);
	test_random(&f16, 2000000);
	test_random(&bf16, 2000000);
	test_bulk();
	test_fixture_values();

	free(f16.tab);
	free(bf16.tab);

	printf("%ld passed, %ld failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
