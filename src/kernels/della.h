/*
 * della.h - DELLA's rank-dependent drop (MagPrune), the kernel.
 *
 * Pure C, no PostgreSQL calls.  mergekit ranks the magnitudes of a task
 * vector along dimension 1 (a 1-D tensor is one row): entry (i0, i1, rest)
 * competes with the entries that differ only in i1.  The entry of rank j
 * (0-based, ascending |tau|, ties by position) among d1 is kept with
 * probability p = (density - epsilon) + j / (d1 - 1) * 2 * epsilon (density
 * when d1 = 1), by the reproducible draw of DARE.  Every decision depends
 * only on the values and positions of the tensor, never on its chunking.
 */
#ifndef SOUP_DELLA_H
#define SOUP_DELLA_H

#include <stddef.h>
#include <stdint.h>

/*
 * One slab: the d1 * inner entries sharing i0, tau[i1 * inner + r], whose
 * first entry is element `first` of the tensor.  Sets the bits of the kept
 * entries in mask (bit e of byte e / 8, least significant first, e the
 * element's index in the tensor) and adds |tau| of every entry and of the
 * kept ones, in position order, to the double-double pairs l1[0..1] and
 * l1[2..3].  order is scratch space for 2 * d1 entries.
 */
typedef struct SoupDellaOrder
{
	uint64_t	key;			/* bits of |tau|: NaN above infinity */
	uint64_t	pos;			/* i1 */
} SoupDellaOrder;

extern void soup_della_slab(const double *tau, size_t d1, size_t inner,
							uint64_t first, double density, double epsilon,
							uint64_t key, unsigned char *mask, double *l1,
							SoupDellaOrder *order);

/*
 * out[i] = tau[i] * scale where bit (offset + i) of mask is set, else 0;
 * tau = x - base loaded from the dtype (kernels/dtype.h).
 */
extern void soup_della_apply(const double *tau, const unsigned char *mask,
							 uint64_t offset, double scale, double *out,
							 size_t n);

#endif							/* SOUP_DELLA_H */
