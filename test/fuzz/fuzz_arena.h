/*
 * fuzz_arena.h - per-input allocation arena for the pg_soup fuzz harnesses.
 *
 * fuzz_arena.c defines palloc, palloc0, palloc_extended, repalloc,
 * repalloc_huge, pfree, pstrdup and pnstrdup itself, so the linker never
 * pulls fe_memutils.o out of libpgcommon.a.  Each block is a separate
 * malloc() (so ASan still sees exact bounds, use after pfree and double
 * pfree); the arena only remembers
 * live blocks in a pointer set so that fuzz_arena_reset() can free whatever
 * the code under test left behind when one input is done, the way the
 * server resets a memory context.  LeakSanitizer stays on and meaningful
 * for everything that does not go through palloc.
 *
 * pfree/repalloc of a pointer the arena did not hand out (including NULL,
 * which would crash the server's pfree) aborts.
 */
#ifndef FUZZ_ARENA_H
#define FUZZ_ARENA_H

#include <stddef.h>

/* The server's MaxAllocSize: larger non-huge requests are an ERROR there. */
#define FUZZ_MAX_ALLOC ((size_t) 0x3fffffff)

/* Free every block still live. */
extern void fuzz_arena_reset(void);

/* Live blocks and their bytes (for statistics and leak checks in tests). */
extern size_t fuzz_arena_live_blocks(void);
extern size_t fuzz_arena_live_bytes(void);

/*
 * Defined by each harness: called for a request above FUZZ_MAX_ALLOC without
 * MCXT_ALLOC_HUGE.  The backend harness raises the server's ERROR (longjmp);
 * the frontend one aborts, since the code promises to stay below the limit.
 * Must not return.
 */
extern void fuzz_alloc_too_large(size_t size) __attribute__((noreturn));

#endif							/* FUZZ_ARENA_H */
