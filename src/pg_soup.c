/*
 * pg_soup.c - module entry point and settings.
 */
#include "postgres.h"

#include <malloc.h>
#include <omp.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "pg_soup.h"

PG_MODULE_MAGIC;

int			soup_chunk_elems = SOUP_DEFAULT_CHUNK_ELEMS;
int			soup_threads = 1;
int			soup_pause_after_chunks = 0;

/* Below this many elements a kernel runs on one thread: forking costs more. */
#define SOUP_PARALLEL_MIN_ELEMS (1 << 16)

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("soup.chunk_elems",
							"Elements per stored chunk when tensors are imported or merged.",
							"Chunking never changes a merge's result; it trades "
							"per-row overhead against memory per aggregate state.",
							&soup_chunk_elems,
							SOUP_DEFAULT_CHUNK_ELEMS, 1, SOUP_MAX_CHUNK_ELEMS,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("soup.threads",
							"OpenMP threads used inside pg_soup kernels (0 means one per core).",
							"One by default: on small machines the threads wait at "
							"barriers more than they work (see docs/performance.md).",
							&soup_threads,
							1, 0, 1024,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("soup.pause_after_chunks",
							"For tests: hold an import or merge after it has written "
							"this many chunks (0, the default, never).",
							"The operation waits until it can take "
							"pg_advisory_lock(1936684400) in share mode, so a test that "
							"holds that lock knows the operation is half-way.",
							&soup_pause_after_chunks,
							0, 0, PG_INT32_MAX,
							PGC_SUSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);

	/*
	 * Merge states and detoasted chunks are a few megabytes each and are
	 * allocated and freed once per group.  glibc would hand each one back to
	 * the kernel and fault its pages in again for the next group; keeping
	 * them on the heap measured up to 25% faster merges (docs/performance.md).
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);

	MarkGUCPrefixReserved("soup");
}

int
soup_kernel_threads(size_t n)
{
	if (n < SOUP_PARALLEL_MIN_ELEMS)
		return 1;
	if (soup_threads > 0)
		return soup_threads;
	return omp_get_num_procs();
}
