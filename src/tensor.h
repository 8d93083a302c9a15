/*
 * tensor.h - the soup.tensor type.
 *
 * A varlena: a 12-byte header (dtype, ndim, flags, element count), ndim
 * int32 dimensions, padding to 8 bytes, then the elements packed
 * little-endian exactly as in a safetensors file.  A chunk of a stored
 * tensor is a 1-D value; a whole small tensor keeps its shape.
 */
#ifndef SOUP_TENSOR_H
#define SOUP_TENSOR_H

#include "postgres.h"
#include "fmgr.h"
#include "kernels/dtype.h"

/* Dimensions a soup.tensor value may carry. */
#define SOUP_MAX_NDIM 32

/* Bytes of element data a value may carry: well under the 1 GB limit. */
#define SOUP_MAX_DATA_BYTES ((Size) 512 * 1024 * 1024)

typedef struct SoupTensor
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	uint8		dtype;			/* SoupDtype code */
	uint8		ndim;
	uint16		flags;			/* reserved, always 0 */
	int32		numel;
	int32		dims[FLEXIBLE_ARRAY_MEMBER];
} SoupTensor;

#define SOUP_TENSOR_HDRSZ(ndim) \
	MAXALIGN(offsetof(SoupTensor, dims) + sizeof(int32) * (ndim))
#define SOUP_TENSOR_DATA(t) \
	((void *) ((char *) (t) + SOUP_TENSOR_HDRSZ((t)->ndim)))
#define SOUP_TENSOR_NBYTES(t) \
	((Size) (t)->numel * soup_dtype_size((SoupDtype) (t)->dtype))

#define DatumGetSoupTensorP(x)	((SoupTensor *) PG_DETOAST_DATUM(x))
#define PG_GETARG_SOUP_TENSOR_P(n)	DatumGetSoupTensorP(PG_GETARG_DATUM(n))
#define PG_RETURN_SOUP_TENSOR_P(x)	PG_RETURN_POINTER(x)

/* A zero-filled value of this dtype and shape (dims may be NULL if ndim 0). */
extern SoupTensor *soup_tensor_new(SoupDtype dt, int ndim, const int32 *dims);

/* A value of this dtype and shape whose data the caller fills (not zeroed). */
extern SoupTensor *soup_tensor_new_shaped(SoupDtype dt, int ndim, const int32 *dims);

/* A 1-D value of numel elements, data uninitialised. */
extern SoupTensor *soup_tensor_new_1d(SoupDtype dt, int32 numel);

/* Check a value built from untrusted bytes; ereports on any problem. */
extern void soup_tensor_check(const SoupTensor *t);

/* Element count of a shape; ereports when it is too large for a value. */
extern int32 soup_shape_numel(int ndim, const int32 *dims);

/* Ereport unless a and b have the same dtype and shape; what names the caller. */
extern void soup_check_same_layout(const SoupTensor *a, const SoupTensor *b,
								   const char *what);

/* Ereport unless dt is a float dtype; what names the caller. */
extern void soup_require_float(SoupDtype dt, const char *what);

#endif							/* SOUP_TENSOR_H */
