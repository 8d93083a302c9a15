/*
 * pg_soup.h - settings and helpers shared by the PostgreSQL glue.
 */
#ifndef PG_SOUP_H
#define PG_SOUP_H

#include "postgres.h"

/* soup.chunk_elems: elements per stored chunk of a tensor. */
extern int	soup_chunk_elems;

/* soup.threads: OpenMP threads inside kernels (0 = one per core). */
extern int	soup_threads;

/* soup.pause_after_chunks: test-only pause point (progress.c). */
extern int	soup_pause_after_chunks;

#define SOUP_DEFAULT_CHUNK_ELEMS (256 * 1024)
#define SOUP_MAX_CHUNK_ELEMS (32 * 1024 * 1024)

/* Threads a kernel call should use for n elements. */
extern int	soup_kernel_threads(size_t n);

#endif							/* PG_SOUP_H */
