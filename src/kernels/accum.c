/*
 * accum.c - float64 accumulation kernels.
 *
 * Inputs are converted to float64 a block at a time (soup_load_f64) so that
 * every dtype shares one vectorisable inner loop.  Work is split into whole
 * blocks across OpenMP threads; each element is computed by exactly one
 * thread in one fixed order, so results never depend on the thread count.
 */
#include "kernels/accum.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/dd.h"

#define BLOCK SOUP_ACCUM_BLOCK

void
soup_scale_load(SoupDtype dt, double w, const void *x, double *acc, size_t n,
				int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);
		double	   *a = acc + off;

		soup_load_f64(dt, (const char *) x + off * es, a, len);
		if (w != 1.0)
		{
#pragma omp simd
			for (size_t i = 0; i < len; i++)
				a[i] *= w;
		}
	}
}

void
soup_div_block(const double *a, double denom, double *out, size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		out[i] = a[i] / denom;
}

void
soup_div_store(SoupDtype dt, const double *acc, double denom, void *dst,
				 size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);
		soup_div_block(acc + off, denom, buf, len);
		soup_store_f64(dt, buf, (char *) dst + off * es, len);
	}
}

void
soup_lincomb2(SoupDtype dt, double wa, const void *a, double wb,
			  const void *b, void *dst, size_t n)
{
	size_t		es = (size_t) soup_dtype_size(dt);

	for (size_t off = 0; off < n; off += BLOCK)
	{
		double		x[BLOCK];
		double		y[BLOCK];
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, (const char *) a + off * es, x, len);
		soup_load_f64(dt, (const char *) b + off * es, y, len);
		for (size_t i = 0; i < len; i++)
			x[i] = wa * x[i] + wb * y[i];
		soup_store_f64(dt, x, (char *) dst + off * es, len);
	}
}

double
soup_dot(SoupDtype dt, const void *a, const void *b, size_t n)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	double		sum = 0.0;

	for (size_t off = 0; off < n; off += BLOCK)
	{
		double		x[BLOCK];
		double		y[BLOCK];
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, (const char *) a + off * es, x, len);
		soup_load_f64(dt, (const char *) b + off * es, y, len);
		for (size_t i = 0; i < len; i++)
			sum += x[i] * y[i];
	}
	return sum;
}

/* ---- double-double accumulation ---- */


/*
 * The elementwise double-double loops, each lane doing exactly the scalar
 * operations (no FMA: -ffp-contract=off), so the AVX2 clone gives the same
 * bits as the baseline one.
 */
SOUP_MULTIVERSION void
soup_dd_axpy_block(double w, const double *x, double *hi, double *lo, size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		dd_add1(&hi[i], &lo[i], w * x[i]);
}

SOUP_MULTIVERSION void
soup_dd_axpy_diff_block(double w, const double *x, const double *base, double *hi,
				   double *lo, size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		dd_add1(&hi[i], &lo[i], w * (x[i] - base[i]));
}

SOUP_MULTIVERSION void
soup_dd_fisher_block(double w, double floor, const double *x, const double *f,
				double *num_hi, double *num_lo, double *den_hi, double *den_lo,
				size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
	{
		/* the floor lifts small values; a NaN Fisher stays NaN */
		double		fi = f[i] < floor ? floor : f[i];
		double		wf = w * fi;

		dd_add1(&num_hi[i], &num_lo[i], wf * x[i]);
		dd_add1(&den_hi[i], &den_lo[i], wf);
	}
}

SOUP_MULTIVERSION static void
dd_add_block(double *hi, double *lo, const double *hi2, const double *lo2, size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
	{
		dd_add1(&hi[i], &lo[i], hi2[i]);
		lo[i] += lo2[i];
	}
}

void
soup_dd_axpy(SoupDtype dt, double w, const void *x, double *hi, double *lo,
			 size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);
		soup_load_f64(dt, (const char *) x + off * es, buf, len);
		soup_dd_axpy_block(w, buf, hi + off, lo + off, len);
	}
}

void
soup_dd_scale_load(SoupDtype dt, double w, const void *x, double *hi,
				   double *lo, size_t n, int nthreads)
{
	soup_scale_load(dt, w, x, hi, n, nthreads);
	memset(lo, 0, sizeof(double) * n);
}

void
soup_dd_add(double *hi, double *lo, const double *hi2, const double *lo2,
			size_t n, int nthreads)
{
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		size_t		off = (size_t) b * BLOCK;

		dd_add_block(hi + off, lo + off, hi2 + off, lo2 + off, soup_block_len(n, off));
	}
}

/* The exact error of a * b (Dekker's TwoProduct, no FMA needed). */
static inline double
two_prod_err(double a, double b, double p)
{
	const double split = 134217729.0;	/* 2^27 + 1 */
	double		ca = split * a;
	double		cb = split * b;
	double		ahi = ca - (ca - a);
	double		alo = a - ahi;
	double		bhi = cb - (cb - b);
	double		blo = b - bhi;

	return ((ahi * bhi - p) + ahi * blo + alo * bhi) + alo * blo;
}

static inline uint64_t
bits_of(double x)
{
	uint64_t	b;

	memcpy(&b, &x, sizeof(b));
	return b;
}

/* a where mask is all ones, b where it is zero */
static inline double
select_double(uint64_t mask, double a, double b)
{
	uint64_t	r = (bits_of(a) & mask) | (bits_of(b) & ~mask);
	double		x;

	memcpy(&x, &r, sizeof(x));
	return x;
}

/*
 * Above this magnitude Dekker's split (x * (2^27 + 1)) overflows and the
 * product's error comes out NaN (0.1.0 returned NaN for such finite
 * quotients).  A quotient or divisor that large is scaled by 2^-64 (exact)
 * before its product is split; the correction is then formed from the
 * scaled terms.  Below it nothing is scaled, every factor below is 1.0, and
 * the operations are the unscaled ones bit for bit.
 */
#define DD_SPLIT_SAFE 1.3e300

typedef struct DdRemainder
{
	double		r;				/* the remainder, at the scale of ds */
	double		ds;				/* the divisor, scaled when it is huge */
	double		ds_inv_scale;	/* 1 / (ds / d): 2^64 or 1 */
	double		q_unscale;		/* 2^64 when the quotient was scaled, else 1 */
} DdRemainder;

/*
 * r = hi + lo - q d exactly (TwoProduct), where q is hi / d rounded; where q
 * is not finite or zero (or hi is not finite) the remainder means nothing and
 * r = lo instead.  The choices are integer masks, not branches, so that the
 * loops over it vectorize.
 */
static inline DdRemainder
dd_div_remainder(double hi, double lo, double d, double q)
{
	const uint64_t safe = bits_of(DD_SPLIT_SAFE);
	uint64_t	qb = bits_of(q);
	uint64_t	hb = bits_of(hi);
	uint64_t	special = (uint64_t) 0 - (uint64_t) ((((qb >> 52) & 0x7ff) == 0x7ff) |
													 (((hb >> 52) & 0x7ff) == 0x7ff) |
													 ((qb << 1) == 0));
	uint64_t	big_q = ((uint64_t) 0 - (uint64_t) ((qb << 1 >> 1) > safe)) & ~special;
	uint64_t	big_d = ((uint64_t) 0 - (uint64_t) ((bits_of(d) << 1 >> 1) > safe)) & ~special;
	double		sq = select_double(big_q, 0x1p-64, 1.0);
	double		sd = select_double(big_d, 0x1p-64, 1.0);
	double		qs = q * sq;
	double		ds = d * sd;
	double		p = qs * ds;

	/*
	 * At most one of q and d is huge (their product is hi, finite), and
	 * either way qs ds = q d s: the remainder comes out scaled by s too.
	 */
	double		s = sq * sd;
	double		r = (hi * s - p) - two_prod_err(qs, ds, p) + lo * s;
	DdRemainder res;

	res.r = select_double(special, lo, r);
	res.ds = ds;
	res.ds_inv_scale = select_double(big_d, 0x1p64, 1.0);
	res.q_unscale = select_double(big_q, 0x1p64, 1.0);
	return res;
}

/*
 * (hi + lo) / d, rounded to float64: the quotient corrected by the
 * remainder, q + r / d, or q + lo / d where the remainder means nothing
 * (dd_div_remainder chooses, without a branch).
 */
static inline double
dd_div(double hi, double lo, double d)
{
	double		q = hi / d;
	DdRemainder rm = dd_div_remainder(hi, lo, d, q);

	return q + (rm.r / rm.ds) * rm.q_unscale;
}

/*
 * dd_div where inv = 1 / d exactly (d a power of two): x / d and x * inv are
 * the same real number, so they round alike, and a multiplication is
 * several times cheaper than a division.
 */
static inline double
dd_div_pow2(double hi, double lo, double d, double inv)
{
	double		q = hi * inv;
	DdRemainder rm = dd_div_remainder(hi, lo, d, q);

	return q + (rm.r * (inv * rm.ds_inv_scale)) * rm.q_unscale;
}

/* 1 / d if d is a power of two whose reciprocal is a normal number, else 0. */
static double
pow2_reciprocal(double d)
{
	int			e;

	if (!isfinite(d) || fabs(frexp(d, &e)) != 0.5)
		return 0.0;
	return fabs(1.0 / d) >= DBL_MIN && isfinite(1.0 / d) ? 1.0 / d : 0.0;
}

/* |x| as ordered bits */
static inline uint64_t
abs_bits(double x)
{
	return bits_of(x) << 1 >> 1;
}

/*
 * Where dd_div_pow2(hi, lo, d, inv) is fl(hi + lo) * inv: hi * inv and lo *
 * inv are exact (zero, or normal and far from Dekker's underflow and
 * overflow: 2^-900 <= |hi inv| <= DD_SPLIT_SAFE), and so is the scaling of
 * the sum (its result f normal).  There q = hi inv exactly, q d = hi, the
 * remainder is lo, and dd_div_pow2 returns fl(hi inv + lo inv), which is
 * fl(hi + lo) inv because scaling by a power of two commutes with rounding
 * between normal numbers.  The caller checks that d lies in [2^-60, 2^60]
 * (then d's split is d itself and Dekker's partial products of q d are
 * exact).
 */
static inline int64_t
pow2_fast_bad(double hi, double lo, double inv, double f)
{
	/* magnitudes as signed integers (their sign bit is clear): AVX2 compares those */
	int64_t		hb = (int64_t) abs_bits(hi);
	int64_t		lb = (int64_t) abs_bits(lo);
	int64_t		h = (int64_t) abs_bits(hi * inv);
	int64_t		l = (int64_t) abs_bits(lo * inv);
	int64_t		a = (int64_t) abs_bits(f);
	const int64_t safe = (int64_t) abs_bits(DD_SPLIT_SAFE);

	/*
	 * hi within 2^1000 too: nearer DBL_MAX, Dekker's split of q d overflows
	 * in dd_div_pow2 (its result there, -inf or inf for a finite quotient,
	 * is kept as it is: these bits do not change here).  Bitwise operators,
	 * not && and ||, so that the loop vectorizes.
	 */
	return ((int64_t) (hb != 0) & ((int64_t) (h < (int64_t) abs_bits(0x1p-900)) | (int64_t) (h > safe))) |
		(int64_t) (hb > (int64_t) abs_bits(0x1p1000)) |
		((int64_t) (lb != 0) & ((int64_t) (l < (int64_t) abs_bits(0x1p-1022)) | (int64_t) (l > safe))) |
		(int64_t) (a < (int64_t) abs_bits(0x1p-1021)) | (int64_t) (a > safe);
}

SOUP_MULTIVERSION void
soup_dd_div_block(const double *hi, const double *lo, double d, double *out,
				  size_t len)
{
	double		inv = pow2_reciprocal(d);

	/* two loops, so that each vectorizes with one kind of operation */
	if (inv != 0.0 && fabs(d) >= 0x1p-60 && fabs(d) <= 0x1p60)
	{
		int64_t		nbad = 0;

		/*
		 * The uniform average of 2, 4, 8... models: one addition and one
		 * multiplication an element, the same bits as dd_div_pow2 (see
		 * pow2_fast_bad); the few elements outside its conditions (zeros,
		 * tiny or huge values, NaN, infinities) are redone with it.
		 */
#pragma omp simd reduction(|:nbad)
		for (size_t i = 0; i < len; i++)
		{
			double		f = (hi[i] + lo[i]) * inv;

			out[i] = f;
			nbad |= pow2_fast_bad(hi[i], lo[i], inv, f);
		}
		if (nbad > 0)
		{
			for (size_t i = 0; i < len; i++)
				if (pow2_fast_bad(hi[i], lo[i], inv, out[i]))
					out[i] = dd_div_pow2(hi[i], lo[i], d, inv);
		}
	}
	else if (inv != 0.0)
	{
#pragma omp simd
		for (size_t i = 0; i < len; i++)
			out[i] = dd_div_pow2(hi[i], lo[i], d, inv);
	}
	else
	{
#pragma omp simd
		for (size_t i = 0; i < len; i++)
			out[i] = dd_div(hi[i], lo[i], d);
	}
}

SOUP_MULTIVERSION void
soup_dd_div2_block(const double *num_hi, const double *num_lo,
				   const double *den_hi, const double *den_lo, double *out,
				   size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		out[i] = dd_div(num_hi[i], num_lo[i], den_hi[i] + den_lo[i]);
}

void
soup_dd_div_store(SoupDtype dt, const double *hi, const double *lo,
				  double denom, void *dst, size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_dd_div_block(hi + off, lo + off, denom, buf, len);
		soup_store_f64(dt, buf, (char *) dst + off * es, len);
	}
}

/* ---- Fisher merging ---- */

void
soup_dd_fisher(SoupDtype dt, const void *x, SoupDtype fdt, const void *f,
			   double w, double floor, double *num_hi, double *num_lo,
			   double *den_hi, double *den_lo, size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	size_t		fes = (size_t) soup_dtype_size(fdt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		xb[BLOCK];
		double		fb[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, (const char *) x + off * es, xb, len);
		soup_load_f64(fdt, (const char *) f + off * fes, fb, len);
		soup_dd_fisher_block(w, floor, xb, fb, num_hi + off, num_lo + off,
						den_hi + off, den_lo + off, len);
	}
}

void
soup_dd_div2_store(SoupDtype dt, const double *num_hi, const double *num_lo,
				   const double *den_hi, const double *den_lo, void *dst,
				   size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_dd_div2_block(num_hi + off, num_lo + off, den_hi + off, den_lo + off,
						   buf, len);
		soup_store_f64(dt, buf, (char *) dst + off * es, len);
	}
}

/* ---- task arithmetic ---- */

/* base[i] += lambda * (hi[i] + lo[i]) */
void
soup_task_block(double *base, const double *hi, const double *lo, double lambda,
				size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		base[i] += lambda * (hi[i] + lo[i]);
}

void
soup_dd_axpy_diff(SoupDtype dt, double w, const void *x, const void *base,
				  double *hi, double *lo, size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		xb[BLOCK];
		double		bb[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, (const char *) x + off * es, xb, len);
		soup_load_f64(dt, (const char *) base + off * es, bb, len);
		soup_dd_axpy_diff_block(w, xb, bb, hi + off, lo + off, len);
	}
}

void
soup_task_store(SoupDtype dt, const void *base, const double *hi,
				const double *lo, double lambda, void *dst, size_t n,
				int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);

		soup_load_f64(dt, (const char *) base + off * es, buf, len);
		soup_task_block(buf, hi + off, lo + off, lambda, len);
		soup_store_f64(dt, buf, (char *) dst + off * es, len);
	}
}

/* ---- exponential moving average ---- */

void
soup_ema_block(double decay, const double *x, double *e, size_t len)
{
#pragma omp simd
	for (size_t i = 0; i < len; i++)
		e[i] = decay * e[i] + (1.0 - decay) * x[i];
}

void
soup_ema_update(SoupDtype dt, double decay, const void *x, double *e,
				size_t n, int nthreads)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	long		nb = (long) soup_nblocks(n);

#pragma omp parallel for num_threads(nthreads) schedule(static) if(nthreads > 1)
	for (long b = 0; b < nb; b++)
	{
		double		buf[BLOCK];
		size_t		off = (size_t) b * BLOCK;
		size_t		len = soup_block_len(n, off);
		double	   *a = e + off;

		soup_load_f64(dt, (const char *) x + off * es, buf, len);
		soup_ema_block(decay, buf, a, len);
	}
}

/* ---- Gram matrices for angle-based merges ---- */

/*
 * g[0..1] += the double-double sum of a[k] * b[k] over one block.  One
 * running sum would be a chain of dependent additions; GRAM_LANES sums, each
 * over every GRAM_LANES-th element, run side by side (and vectorize), then
 * fold into g in lane order.
 */
#define GRAM_LANES 8

SOUP_MULTIVERSION static void
gram_pair_block(const double *a, const double *b, size_t len, double *g)
{
	double		hi[GRAM_LANES] = {0};
	double		lo[GRAM_LANES] = {0};
	size_t		whole = len - len % GRAM_LANES;

	for (size_t k = 0; k < whole; k += GRAM_LANES)
	{
#pragma omp simd
		for (int l = 0; l < GRAM_LANES; l++)
			dd_add1(&hi[l], &lo[l], a[k + l] * b[k + l]);
	}
	for (size_t k = whole; k < len; k++)
		dd_add1(&hi[k - whole], &lo[k - whole], a[k] * b[k]);
	for (int l = 0; l < GRAM_LANES; l++)
	{
		dd_add1(&g[0], &g[1], hi[l]);
		g[1] += lo[l];
	}
}

/*
 * g[(i * n + j) * 2 + {0,1}] += the double-double sum over elements of
 * t_i * t_j for i <= j, where t_i = x_i - base (or x_i without a base).
 * Each product is rounded once and summed without error but for the
 * rounding of the low parts (a relative error near n 2^-106), so the totals
 * rounded to float64 do not depend on how a tensor is cut into chunks, nor
 * on the lanes below (the determinism suite checks both).
 */
void
soup_dd_gram(SoupDtype dt, const void *const *xs, int n, const void *base,
			 size_t numel, double *g, double *work)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	double	   *b = work;
	double	   *t = work + BLOCK;

	for (size_t off = 0; off < numel; off += BLOCK)
	{
		size_t		len = soup_block_len(numel, off);

		if (base)
			soup_load_f64(dt, (const char *) base + off * es, b, len);
		for (int i = 0; i < n; i++)
		{
			double	   *ti = t + (size_t) i * BLOCK;

			soup_load_f64(dt, (const char *) xs[i] + off * es, ti, len);
			if (base)
				for (size_t k = 0; k < len; k++)
					ti[k] -= b[k];
		}
		for (int i = 0; i < n; i++)
			for (int j = i; j < n; j++)
				gram_pair_block(t + (size_t) i * BLOCK, t + (size_t) j * BLOCK, len,
								&g[(i * n + j) * 2]);
	}
}

/* a[k] += b[k] for double-double pairs stored (hi, lo) interleaved. */
void
soup_dd_add_pairs(double *a, const double *b, size_t npairs)
{
	for (size_t k = 0; k < npairs; k++)
	{
		dd_add1(&a[2 * k], &a[2 * k + 1], b[2 * k]);
		a[2 * k + 1] += b[2 * k + 1];
	}
}

double
soup_weight_sum(const double *w, int k)
{
	double		hi = 0.0;
	double		lo = 0.0;

	for (int i = 0; i < k; i++)
		dd_add_pair(&hi, &lo, w[i], 0.0);
	return hi + lo;
}
