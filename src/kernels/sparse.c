/*
 * sparse.c - kernels of the sparsifying merges (TIES, DARE).
 */
#include "kernels/sparse.h"

#include <math.h>
#include <string.h>

#include "kernels/dd.h"

#define BLOCK 2048

/* ---- magnitude threshold ---- */

static inline int
gt(double a, double b)
{
	/* NaN sorts above every number, so it never hides a real magnitude */
	if (isnan(a))
		return !isnan(b);
	return a > b;
}

double
soup_kth_largest(double *v, size_t n, size_t k)
{
	size_t		lo = 0;
	size_t		hi = n - 1;
	size_t		target = k - 1;	/* index in descending order */

	while (lo < hi)
	{
		double		pivot = v[lo + (hi - lo) / 2];
		size_t		i = lo;
		size_t		j = hi;

		/* Hoare partition into [lo..j] >= pivot >= [i..hi] (descending) */
		while (i <= j)
		{
			while (gt(v[i], pivot))
				i++;
			while (gt(pivot, v[j]))
				j--;
			if (i <= j)
			{
				double		t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (target <= j)
			hi = j;
		else if (target >= i)
			lo = i;
		else
			return v[target];
	}
	return v[target];
}

/* ---- DARE's reproducible randomness ---- */

uint64_t
soup_fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t	h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static inline uint64_t
splitmix64(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

uint64_t
soup_dare_key(uint64_t seed, uint64_t model, uint64_t tensor)
{
	return splitmix64(splitmix64(splitmix64(seed) ^ model) ^ tensor);
}

double
soup_dare_uniform(uint64_t key, uint64_t index)
{
	/* the top 53 bits of a hash of the element's global position */
	return (double) (splitmix64(key ^ splitmix64(index)) >> 11) * 0x1.0p-53;
}


static void
load_delta(SoupDtype dt, const void *x, const void *base, size_t off,
		   size_t len, double *t, double *b)
{
	size_t		es = (size_t) soup_dtype_size(dt);

	soup_load_f64(dt, (const char *) x + off * es, t, len);
	if (base)
	{
		soup_load_f64(dt, (const char *) base + off * es, b, len);
		for (size_t i = 0; i < len; i++)
			t[i] -= b[i];
	}
}

void
soup_dare(SoupDtype dt, const void *x, const void *base, double density,
		  uint64_t key, uint64_t offset, double scale, double *out, size_t n,
		  double *sums)
{
	double		b[BLOCK];

	for (size_t off = 0; off < n; off += BLOCK)
	{
		size_t		len = (n - off < BLOCK) ? n - off : BLOCK;
		double	   *t = out + off;

		load_delta(dt, x, base, off, len, t, b);
		for (size_t i = 0; i < len; i++)
		{
			int			keep = soup_dare_uniform(key, offset + off + i) < density;

			if (sums)
			{
				dd_add1(&sums[0], &sums[1], fabs(t[i]));
				if (keep)
					dd_add1(&sums[2], &sums[3], fabs(t[i]));
			}
			t[i] = keep ? t[i] * scale : 0.0;
		}
	}
}

/* TIES' trim is the band with no upper cut (a NaN is kept: it counts as largest). */
void
soup_trim(SoupDtype dt, const void *x, const void *base, double threshold,
		  double *out, size_t n)
{
	soup_trim_band(dt, x, base, threshold, false, 0.0, out, n);
}

/*
 * Breadcrumbs' band: keep the entries whose magnitude is at least lo and,
 * when there is an upper cut, below hi; a NaN counts as larger than any
 * magnitude, as in soup_trim.
 */
void
soup_trim_band(SoupDtype dt, const void *x, const void *base, double lo,
			   bool upper, double hi, double *out, size_t n)
{
	double		b[BLOCK];

	for (size_t off = 0; off < n; off += BLOCK)
	{
		size_t		len = (n - off < BLOCK) ? n - off : BLOCK;
		double	   *t = out + off;

		load_delta(dt, x, base, off, len, t, b);
		for (size_t i = 0; i < len; i++)
		{
			double		mag = isnan(t[i]) ? INFINITY : fabs(t[i]);

			if (!(mag >= lo) || (upper && !(mag < hi)))
				t[i] = 0.0;
		}
	}
}

/* ---- TIES sign election ---- */

void
soup_ties_accum(const double *t, double w, double *acc, size_t n)
{
	double	   *p_hi = acc;
	double	   *p_lo = acc + n;
	double	   *q_hi = acc + 2 * n;
	double	   *q_lo = acc + 3 * n;
	double	   *wp_hi = acc + 4 * n;
	double	   *wp_lo = acc + 5 * n;
	double	   *wq_hi = acc + 6 * n;
	double	   *wq_lo = acc + 7 * n;

	for (size_t i = 0; i < n; i++)
	{
		double		p = w * t[i];

		if (p > 0)
		{
			dd_add1(&p_hi[i], &p_lo[i], p);
			dd_add1(&wp_hi[i], &wp_lo[i], w);
		}
		else if (p < 0)
		{
			dd_add1(&q_hi[i], &q_lo[i], p);
			dd_add1(&wq_hi[i], &wq_lo[i], w);
		}
		else if (isnan(p))
		{
			/* a NaN poisons the element, as IEEE arithmetic would */
			p_hi[i] = p;
		}
	}
}

void
soup_ties_store(SoupDtype dt, const void *base, const double *acc,
				double lambda, void *dst, size_t n)
{
	size_t		es = (size_t) soup_dtype_size(dt);
	double		buf[BLOCK];

	for (size_t off = 0; off < n; off += BLOCK)
	{
		size_t		len = (n - off < BLOCK) ? n - off : BLOCK;

		soup_load_f64(dt, (const char *) base + off * es, buf, len);
		for (size_t k = 0; k < len; k++)
		{
			size_t		i = off + k;
			double		p = acc[i] + acc[n + i];
			double		q = acc[2 * n + i] + acc[3 * n + i];
			double		s = (acc[i] + acc[2 * n + i]) + (acc[n + i] + acc[3 * n + i]);
			double		m = 0.0;

			if (isnan(p) || isnan(q))
				m = NAN;
			else if (s > 0)
			{
				double		wp = acc[4 * n + i] + acc[5 * n + i];

				m = p / (wp == 0.0 ? 1.0 : wp);
			}
			else if (s < 0)
			{
				double		wq = acc[6 * n + i] + acc[7 * n + i];

				m = q / (wq == 0.0 ? 1.0 : wq);
			}
			buf[k] += lambda * m;
		}
		soup_store_f64(dt, buf, (char *) dst + off * es, len);
	}
}
