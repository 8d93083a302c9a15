/*
 * dtype.c - element types of pg_soup tensors and their conversions.
 *
 * Pure C (stdint, string.h, math.h): no PostgreSQL headers or calls, so this
 * file can be unit-tested (test/unit/test_dtype.c) and fuzzed without a
 * server, and is safe to call from OpenMP threads.
 *
 * Narrowing conversions (f64 -> f16 / bf16) work directly on the bits of the
 * double and round to nearest, ties to even, in one step.  They never go
 * through float: f64 -> f32 -> f16 rounds twice and is wrong near ties.
 * They use integer arithmetic only, so the result does not depend on the
 * floating-point environment (rounding mode, FTZ/DAZ).
 *
 * All packed data is little-endian (as in safetensors); the host must be
 * little-endian too, which is checked at compile time.
 */
#include "kernels/dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pg_soup assumes a little-endian host (packed tensor data is little-endian)"
#endif
#else
#error "pg_soup cannot determine the host byte order (__BYTE_ORDER__ undefined)"
#endif

/* ------------------------------------------------------------------------
 * The dtype table
 * ------------------------------------------------------------------------ */

typedef struct SoupDtypeInfo
{
	int			size;			/* bytes per element; 0 = no such dtype */
	const char *name;			/* SQL name, lower case */
	const char *st_name;		/* safetensors name, upper case */
} SoupDtypeInfo;

static const SoupDtypeInfo dtype_table[SOUP_DT_MAX_CODE + 1] = {
	[SOUP_DT_F32] = {4, "f32", "F32"},
	[SOUP_DT_F64] = {8, "f64", "F64"},
	[SOUP_DT_F16] = {2, "f16", "F16"},
	[SOUP_DT_BF16] = {2, "bf16", "BF16"},
	[SOUP_DT_BOOL] = {1, "bool", "BOOL"},
	[SOUP_DT_U8] = {1, "u8", "U8"},
	[SOUP_DT_I8] = {1, "i8", "I8"},
	[SOUP_DT_I16] = {2, "i16", "I16"},
	[SOUP_DT_U16] = {2, "u16", "U16"},
	[SOUP_DT_I32] = {4, "i32", "I32"},
	[SOUP_DT_U32] = {4, "u32", "U32"},
	[SOUP_DT_I64] = {8, "i64", "I64"},
	[SOUP_DT_U64] = {8, "u64", "U64"},
	[SOUP_DT_F8_E4M3] = {1, "f8_e4m3", "F8_E4M3"},
	[SOUP_DT_F8_E5M2] = {1, "f8_e5m2", "F8_E5M2"},
	[SOUP_DT_F8_E8M0] = {1, "f8_e8m0", "F8_E8M0"},
	[SOUP_DT_C64] = {8, "c64", "C64"},
};

bool
soup_dtype_valid(int code)
{
	return code > 0 && code <= SOUP_DT_MAX_CODE && dtype_table[code].size != 0;
}

int
soup_dtype_size(SoupDtype dt)
{
	return soup_dtype_valid((int) dt) ? dtype_table[dt].size : 0;
}

bool
soup_dtype_is_float(SoupDtype dt)
{
	return dt == SOUP_DT_F32 || dt == SOUP_DT_F64 ||
		dt == SOUP_DT_F16 || dt == SOUP_DT_BF16;
}

bool
soup_dtype_is_integer(SoupDtype dt)
{
	switch (dt)
	{
		case SOUP_DT_BOOL:
		case SOUP_DT_U8:
		case SOUP_DT_I8:
		case SOUP_DT_I16:
		case SOUP_DT_U16:
		case SOUP_DT_I32:
		case SOUP_DT_U32:
		case SOUP_DT_I64:
		case SOUP_DT_U64:
			return true;
		default:
			return false;
	}
}

/* NULL for an invalid code. */
const char *
soup_dtype_name(SoupDtype dt)
{
	return soup_dtype_valid((int) dt) ? dtype_table[dt].name : NULL;
}

/* NULL for an invalid code. */
const char *
soup_dtype_st_name(SoupDtype dt)
{
	return soup_dtype_valid((int) dt) ? dtype_table[dt].st_name : NULL;
}

/* ASCII-only lower-casing: independent of the locale. */
static inline unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c - 'A' + 'a') : c;
}

SoupDtype
soup_dtype_from_name(const char *name, size_t len)
{
	if (name == NULL || len == 0)
		return SOUP_DT_INVALID;

	for (int code = 1; code <= SOUP_DT_MAX_CODE; code++)
	{
		const char *lower = dtype_table[code].name;
		size_t		i;

		if (lower == NULL || strlen(lower) != len)
			continue;
		for (i = 0; i < len; i++)
			if (ascii_lower((unsigned char) name[i]) != (unsigned char) lower[i])
				break;
		if (i == len)
			return (SoupDtype) code;
	}
	return SOUP_DT_INVALID;
}

/* ------------------------------------------------------------------------
 * Scalar conversions
 * ------------------------------------------------------------------------ */

static inline uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float
f32_from_bits(uint32_t u)
{
	float		f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/*
 * f16 -> f32, exact.  Branch-free (the selects become blends), so the bulk
 * loop vectorizes.  Subnormal halves are normalised by an exact float
 * subtraction whose operands are both normal (no denormal inputs, so the
 * result is right even under DAZ/FTZ).  NaN keeps its sign and its whole
 * 10-bit payload (shifted into the top of the f32 mantissa).
 */
static inline float
f16_to_f32_inline(uint16_t h)
{
	const uint32_t shifted_exp = 0x7c00u << 13; /* f16 exponent field, where
												 * it sits in an f32 */
	uint32_t	o = ((uint32_t) h & 0x7fffu) << 13;	/* exponent + mantissa */
	uint32_t	exp = o & shifted_exp;
	uint32_t	sign = ((uint32_t) h & 0x8000u) << 16;
	uint32_t	m_spec = 0u - (uint32_t) (exp == shifted_exp);	/* all ones or 0 */
	uint32_t	m_sub = 0u - (uint32_t) (exp == 0);
	uint32_t	normal;
	uint32_t	sub;

	/* rebias; inf / NaN get the rebias twice, giving exponent 255 */
	normal = o + ((127u - 15u) << 23) + (m_spec & ((128u - 16u) << 23));
	/* zero / subnormal: (2^-14 * (1 + m/1024)) - 2^-14 = m * 2^-24, exact */
	sub = f32_bits(f32_from_bits(o + (113u << 23)) - f32_from_bits(113u << 23));

	/* mask arithmetic rather than ?: so that the loop has no control flow */
	o = (normal & ~m_sub) | (sub & m_sub);
	return f32_from_bits(o | sign);
}

/* bf16 -> f32, exact: bf16 is the top half of an f32. */
static inline float
bf16_to_f32_inline(uint16_t b)
{
	return f32_from_bits((uint32_t) b << 16);
}

/*
 * f64 -> a binary format with EB exponent bits and MB mantissa bits (f16:
 * 5/10, bf16: 8/7; EB + MB = 15), rounding to nearest, ties to even,
 * directly from the bits of the double.  Branch-free integer code; EB/MB are
 * compile-time constants at each call site so everything folds.
 *
 * It works on 32-bit words so that it vectorizes twice as wide: the high
 * word of the double holds the sign, the exponent and the top 20 mantissa
 * bits, which is more than either target keeps (10 or 7) plus the round bit;
 * the low word only matters as a sticky bit, which is OR-ed into bit 0 of
 * the high word (bit 0 is always below the round bit).
 *
 * - Normal results: rebias the exponent, then add (half - 1 + lsb) below the
 *   cut and shift: a carry out of the mantissa bumps the exponent, and a carry
 *   out of the largest finite value gives exactly the inf encoding; anything
 *   larger is clamped to inf (so values >= max + ulp/2 become inf, and a tie
 *   at max + ulp/2 goes to inf, whose mantissa is even).
 * - Subnormal results: the significand with its implicit bit, shifted right
 *   by a variable amount, keeping a round bit and a sticky bit, then RNE.  A
 *   carry into 2^MB yields the smallest normal encoding, which is correct.
 *   The shift is clamped to 31: past 21 the 21-bit significand rounds to 0
 *   anyway.  Double subnormals land there too (they round to 0 in any case).
 * - Signed zero keeps its sign; inf -> inf; NaN -> a quiet NaN of the same
 *   sign that keeps the top payload bits.
 */
static inline uint16_t
f64bits_to_narrow(uint64_t x, const int EB, const int MB)
{
	const uint32_t bias = (1u << (EB - 1)) - 1;
	const uint32_t cut = 20 - MB;	/* bits of the high word dropped */
	const uint32_t inf_enc = ((1u << EB) - 1) << MB;
	const uint32_t quiet = 1u << (MB - 1);
	const uint32_t man_mask = (1u << MB) - 1;
	/* high word of the double 2^(1 - bias), the target's smallest normal */
	const uint32_t min_normal_hi = (1023u + 1u - bias) << 20;
	/* subnormal k = sig53 >> (s0 + 32 - ef); in high-word terms s0 - ef */
	const uint32_t s0 = 1075u - (bias - 1u) - (uint32_t) MB - 32u;
	uint32_t	hi = (uint32_t) (x >> 32);
	uint32_t	lo = (uint32_t) x;
	uint32_t	sign = (hi >> 16) & 0x8000u;
	uint32_t	ahi = hi & 0x7fffffffu;
	uint32_t	ahs = ahi | (uint32_t) (lo != 0);	/* with the sticky bit */
	uint32_t	t;
	uint32_t	r_norm;
	uint32_t	r_sub;
	uint32_t	r_nan;
	uint32_t	ef;
	uint32_t	sig;
	uint32_t	s;
	uint32_t	rb;
	uint32_t	sticky;
	uint32_t	r;

	/* normal path (garbage, and unused, when ahs < min_normal_hi) */
	t = ahs - ((1023u - bias) << 20);
	t += ((1u << (cut - 1)) - 1) + ((t >> cut) & 1);
	r_norm = t >> cut;
	r_norm = r_norm > inf_enc ? inf_enc : r_norm;

	/* subnormal path: s >= 53 - MB - 32 = cut + 1 when used, 31 otherwise */
	ef = ahi >> 20;
	sig = (ahs & 0x000fffffu) | 0x00100000u;
	s = s0 - ef;				/* wraps when ef > s0: then unused */
	s = (ef + cut + 1 <= s0 && s < 31) ? s : 31;	/* keep both shifts < 32 */
	rb = sig >> (s - 1);		/* kept bits and the round bit */
	sticky = (sig << (33 - s)) != 0;	/* any bit below the round bit */
	r_sub = (rb >> 1) + (rb & 1 & (sticky | (rb >> 1)));

	r_nan = inf_enc | quiet | ((ahi >> cut) & man_mask);

	r = ahs < min_normal_hi ? r_sub : r_norm;
	r = ahs > 0x7ff00000u ? r_nan : r;
	return (uint16_t) (r | sign);
}

static inline uint64_t
f64_bits(double d)
{
	uint64_t	x;

	memcpy(&x, &d, sizeof x);
	return x;
}

float
soup_f16_to_f32(uint16_t h)
{
	return f16_to_f32_inline(h);
}

float
soup_bf16_to_f32(uint16_t b)
{
	return bf16_to_f32_inline(b);
}

uint16_t
soup_f64_to_f16(double d)
{
	return f64bits_to_narrow(f64_bits(d), 5, 10);
}

uint16_t
soup_f64_to_bf16(double d)
{
	return f64bits_to_narrow(f64_bits(d), 8, 7);
}

/* ------------------------------------------------------------------------
 * Bulk conversions
 *
 * Only the float dtypes (F32, F64, F16, BF16) are meaningful here; callers
 * check soup_dtype_is_float() first.  For any other dtype these functions
 * do nothing (and assert in a debug build).  Buffers may be unaligned:
 * every multi-byte access, on the packed side and (defensively) on the
 * double side too, goes through memcpy, which compiles to a plain
 * (unaligned) move.  Simple counted loops so the compiler can vectorize.
 * ------------------------------------------------------------------------ */



#ifdef SOUP_DTYPE_DEBUG
#include <assert.h>
#define SOUP_NOT_FLOAT(dt) assert(!"soup dtype bulk conversion on a non-float dtype")
#else
#define SOUP_NOT_FLOAT(dt) ((void) (dt))
#endif

SOUP_MULTIVERSION void
soup_load_f64(SoupDtype dt, const void *src, double *dst, size_t n)
{
	const unsigned char *s = (const unsigned char *) src;
	unsigned char *d = (unsigned char *) dst;

	switch (dt)
	{
		case SOUP_DT_F64:
			if (n > 0)
				memmove(d, s, n * sizeof(double));
			break;
		case SOUP_DT_F32:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				float		f;
				double		v;

				memcpy(&f, s + i * 4, 4);
				v = (double) f;
				memcpy(d + i * 8, &v, 8);
			}
			break;
		case SOUP_DT_F16:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				uint16_t	h;
				double		v;

				memcpy(&h, s + i * 2, 2);
				v = (double) f16_to_f32_inline(h);
				memcpy(d + i * 8, &v, 8);
			}
			break;
		case SOUP_DT_BF16:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				uint16_t	b;
				double		v;

				memcpy(&b, s + i * 2, 2);
				v = (double) bf16_to_f32_inline(b);
				memcpy(d + i * 8, &v, 8);
			}
			break;
		default:
			SOUP_NOT_FLOAT(dt);
			break;
	}
}

SOUP_MULTIVERSION void
soup_store_f64(SoupDtype dt, const double *src, void *dst, size_t n)
{
	const unsigned char *s = (const unsigned char *) src;
	unsigned char *o = (unsigned char *) dst;

	switch (dt)
	{
		case SOUP_DT_F64:
			if (n > 0)
				memmove(o, s, n * sizeof(double));
			break;
		case SOUP_DT_F32:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				double		v;
				float		f;

				memcpy(&v, s + i * 8, 8);
				f = (float) v;	/* IEEE cast: RNE, overflow -> inf */
				memcpy(o + i * 4, &f, 4);
			}
			break;
		case SOUP_DT_F16:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				uint64_t	x;
				uint16_t	h;

				memcpy(&x, s + i * 8, 8);
				h = f64bits_to_narrow(x, 5, 10);
				memcpy(o + i * 2, &h, 2);
			}
			break;
		case SOUP_DT_BF16:
#pragma omp simd
			for (size_t i = 0; i < n; i++)
			{
				uint64_t	x;
				uint16_t	b;

				memcpy(&x, s + i * 8, 8);
				b = f64bits_to_narrow(x, 8, 7);
				memcpy(o + i * 2, &b, 2);
			}
			break;
		default:
			SOUP_NOT_FLOAT(dt);
			break;
	}
}
