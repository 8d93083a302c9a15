/*
 * dtype.h - element types of pg_soup tensors and their conversions.
 *
 * Pure C: no PostgreSQL calls, so the kernels can be unit-tested and fuzzed
 * without a server.  The numeric codes below are stored on disk inside every
 * soup.tensor value: never renumber them, only add.
 */
#ifndef SOUP_DTYPE_H
#define SOUP_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum SoupDtype
{
	SOUP_DT_INVALID = 0,
	/* numeric dtypes: merges compute on these */
	SOUP_DT_F32 = 1,
	SOUP_DT_F64 = 2,
	SOUP_DT_F16 = 3,
	SOUP_DT_BF16 = 4,
	/* raw dtypes: kept losslessly as bytes */
	SOUP_DT_BOOL = 10,
	SOUP_DT_U8 = 11,
	SOUP_DT_I8 = 12,
	SOUP_DT_I16 = 13,
	SOUP_DT_U16 = 14,
	SOUP_DT_I32 = 15,
	SOUP_DT_U32 = 16,
	SOUP_DT_I64 = 17,
	SOUP_DT_U64 = 18,
	SOUP_DT_F8_E4M3 = 20,
	SOUP_DT_F8_E5M2 = 21,
	SOUP_DT_F8_E8M0 = 22,
	SOUP_DT_C64 = 23
} SoupDtype;

#define SOUP_DT_MAX_CODE 23

/* True for a code that names a dtype pg_soup knows. */
extern bool soup_dtype_valid(int code);

/* Size of one element in bytes (0 for an invalid code). */
extern int	soup_dtype_size(SoupDtype dt);

/* True for f32, f64, f16 and bf16: the dtypes merges compute on. */
extern bool soup_dtype_is_float(SoupDtype dt);

/* True for the integer and bool dtypes (printed as integers in text form). */
extern bool soup_dtype_is_integer(SoupDtype dt);

/* Lower-case name used in SQL ("f32", "bf16", "f8_e4m3", ...). */
extern const char *soup_dtype_name(SoupDtype dt);

/* Upper-case name used in safetensors headers ("F32", "BF16", ...). */
extern const char *soup_dtype_st_name(SoupDtype dt);

/*
 * Look a dtype up by name, case-insensitively; accepts both spellings.
 * len is the name's length (the name need not be NUL-terminated).
 * Returns SOUP_DT_INVALID when unknown.
 */
extern SoupDtype soup_dtype_from_name(const char *name, size_t len);

/* Scalar conversions; narrowing rounds to nearest, ties to even. */
extern float soup_f16_to_f32(uint16_t h);
extern float soup_bf16_to_f32(uint16_t b);
extern uint16_t soup_f64_to_f16(double d);
extern uint16_t soup_f64_to_bf16(double d);

/*
 * Bulk conversions between a packed little-endian buffer of a float dtype
 * and float64.  src/dst need no particular alignment.
 */
extern void soup_load_f64(SoupDtype dt, const void *src, double *dst, size_t n);
extern void soup_store_f64(SoupDtype dt, const double *src, void *dst, size_t n);

/*
 * PGXS builds for baseline x86-64 (SSE2), which has no per-lane variable
 * shifts, so the f64 -> f16/bf16 loops stay scalar there.  With GCC on
 * x86-64 Linux we also compile an AVX2 clone of the bulk functions and let
 * the dynamic loader pick one (ifunc), about twice as fast for those
 * stores (about 0.85 against 1.7 ns per element on the development machine);
 * the double-double loops of accum.c need it to vectorize at all (64-bit
 * integer compares).
 * -DSOUP_NO_MULTIVERSION turns this off (e.g. to test the baseline clone).
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
	!defined(SOUP_NO_MULTIVERSION)
#define SOUP_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define SOUP_MULTIVERSION
#endif

#endif							/* SOUP_DTYPE_H */
