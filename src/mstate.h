/*
 * mstate.h - the state shared by the elementwise merge aggregates.
 *
 * A MergeState holds nacc double-double accumulators over the elements of one
 * chunk, the sum of the weights, and optionally a copy of a base tensor (task
 * arithmetic).  States are built in the aggregate's memory context, updated
 * in place, combined and serialised by one set of functions, so every merge
 * aggregate is parallel-safe in the same way.
 */
#ifndef SOUP_MSTATE_H
#define SOUP_MSTATE_H

#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"

#include "tensor.h"

typedef struct MergeState
{
	SoupDtype	dtype;
	int			ndim;
	int32		dims[SOUP_MAX_NDIM];
	int32		numel;
	int64		count;			/* rows folded in */
	double		wsum_hi;		/* sum of the weights, double-double */
	double		wsum_lo;
	double		param;			/* a per-merge constant (lambda), NaN if unset */
	int			nacc;			/* number of accumulators */
	double	   *acc;			/* nacc x (hi[numel], lo[numel]) */
	char	   *base;			/* packed base tensor data, or NULL */
} MergeState;

#define MSTATE_HI(st, k) ((st)->acc + (size_t) (2 * (k)) * (st)->numel)
#define MSTATE_LO(st, k) ((st)->acc + (size_t) (2 * (k) + 1) * (st)->numel)

/* The aggregate's memory context; errors outside an aggregate. */
extern MemoryContext mstate_context(FunctionCallInfo fcinfo, const char *fname);

/* A state shaped like x, with nacc accumulators (zeroed if zero). */
extern MergeState *mstate_new(MemoryContext ctx, const SoupTensor *x, int nacc,
							  bool zero);

/* Error unless x has the state's dtype and shape. */
extern void mstate_check(const MergeState *st, const SoupTensor *x,
						 const char *fname, const char *what);

/* Keep (a copy of) the base tensor, or check that it is the same one. */
extern void mstate_set_base(MemoryContext ctx, MergeState *st,
							const SoupTensor *base, const char *fname);

/* Record the per-merge constant, checking that every row gives the same. */
extern void mstate_set_param(MergeState *st, double value, const char *fname,
							 const char *what);

/* Add a weight (as a double-double) to the weight sum. */
extern void mstate_add_weight(MergeState *st, double hi, double lo);

/* Error unless w is finite. */
extern double mstate_check_weight(double w, const char *fname);

/* The weight sum rounded to float64. */
extern double mstate_weight_sum(const MergeState *st);

/* Read a serialised aggregate state: buf walks b's bytes (no copy). */
extern void mstate_reader(bytea *b, StringInfo buf);

/* A new value shaped like the state. */
extern SoupTensor *mstate_result(const MergeState *st);

#endif							/* SOUP_MSTATE_H */
