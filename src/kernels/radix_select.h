/*
 * radix_select.h - the exact k-th largest of a stream of non-negative
 * doubles, in bounded memory, over several passes of the same stream.
 *
 * Non-negative doubles order as their bit patterns do (NaN, whose pattern
 * is above every infinity, counts as the largest, as soup_kth_largest has
 * it).  Each pass histograms the next 16 bits of the values that share the
 * bits chosen so far and keeps the bucket that holds rank k; once that
 * bucket is small enough, one more pass collects its values and a selection
 * finishes.  Memory is a 65536-entry histogram plus at most
 * SOUP_RADIX_COLLECT values, whatever the stream's length; a stream whose
 * values are all distinct typically needs two or three passes.
 *
 * Pure C, no PostgreSQL calls.  The result is the value a full sort gives.
 */
#ifndef SOUP_RADIX_SELECT_H
#define SOUP_RADIX_SELECT_H

#include <stddef.h>
#include <stdint.h>

#define SOUP_RADIX_BITS 16
#define SOUP_RADIX_BUCKETS (1 << SOUP_RADIX_BITS)
/* values collected for the final selection: 32 MB */
#define SOUP_RADIX_COLLECT ((size_t) 1 << 22)

typedef struct SoupRadixSelect
{
	uint64_t	k;				/* rank wanted among the values left (1 = largest) */
	uint64_t	n;				/* values seen in the first pass */
	int			level;			/* bits fixed so far: 0, 16, 32, 48 */
	uint64_t	prefix;			/* their value (in the top bits) */
	int			collecting;		/* this pass collects instead of counting */
	uint64_t   *hist;			/* SOUP_RADIX_BUCKETS counters */
	uint64_t   *keep;			/* collected values' bit patterns */
	size_t		nkeep;
	int			done;
	double		result;
} SoupRadixSelect;

/*
 * Start a selection of the k-th largest (k >= 1).  hist and keep are the
 * caller's buffers: SOUP_RADIX_BUCKETS and SOUP_RADIX_COLLECT entries.
 */
extern void soup_radix_begin(SoupRadixSelect *rs, uint64_t k, uint64_t *hist,
							 uint64_t *keep);

/* Feed n values (|x|, >= 0 or NaN) of the current pass. */
extern void soup_radix_add(SoupRadixSelect *rs, const double *v, size_t n);

/*
 * End a pass.  Returns 1 when the result is known (rs->result), 0 when the
 * caller must feed the whole stream again.  Returns -1 if k exceeds the
 * number of values the first pass saw.
 */
extern int	soup_radix_end_pass(SoupRadixSelect *rs);

#endif							/* SOUP_RADIX_SELECT_H */
