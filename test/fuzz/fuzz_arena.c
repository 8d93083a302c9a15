/*
 * fuzz_arena.c - palloc family for the fuzz harnesses; see fuzz_arena.h.
 *
 * Plain C: no PostgreSQL headers, so it links into both the -DFRONTEND
 * safetensors harness and the backend-header tensor harness.  The
 * signatures match utils/palloc.h and common/fe_memutils.h (Size is size_t).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_arena.h"

/* flags of palloc_extended, as in utils/palloc.h */
#define MCXT_ALLOC_HUGE		0x01
#define MCXT_ALLOC_NO_OOM	0x02
#define MCXT_ALLOC_ZERO		0x04

/* Open-addressing pointer set: EMPTY = NULL, TOMB = (void *) 1. */
#define TOMB ((void *) 1)

typedef struct Slot
{
	void	   *ptr;
	size_t		size;
} Slot;

static Slot *slots;
static size_t nslots;			/* power of two */
static size_t nused;			/* live + tombstones */
static size_t nlive;
static size_t live_bytes;

static size_t
hash_ptr(const void *p)
{
	uintptr_t	x = (uintptr_t) p;

	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return (size_t) x;
}

static void
die(const char *what, const void *p)
{
	fprintf(stderr, "fuzz_arena: %s (%p)\n", what, p);
	abort();
}

static void set_insert(void *p, size_t size);

static void
rehash(size_t newsize)
{
	Slot	   *old = slots;
	size_t		oldn = nslots;

	slots = calloc(newsize, sizeof(Slot));
	if (slots == NULL)
		die("out of memory for the arena table", NULL);
	nslots = newsize;
	nused = nlive = 0;
	live_bytes = 0;
	for (size_t i = 0; i < oldn; i++)
		if (old[i].ptr != NULL && old[i].ptr != TOMB)
			set_insert(old[i].ptr, old[i].size);
	free(old);
}

static void
set_insert(void *p, size_t size)
{
	size_t		i;

	if (nslots == 0 || (nused + 1) * 2 > nslots)
		rehash(nslots == 0 ? 1024 : (nlive + 1) * 4 > nslots ? nslots * 2 : nslots);
	i = hash_ptr(p) & (nslots - 1);
	while (slots[i].ptr != NULL && slots[i].ptr != TOMB)
		i = (i + 1) & (nslots - 1);
	if (slots[i].ptr == NULL)
		nused++;
	slots[i].ptr = p;
	slots[i].size = size;
	nlive++;
	live_bytes += size;
}

/* Remove p; returns its size.  Aborts when p is not live. */
static size_t
set_remove(void *p, const char *who)
{
	size_t		i;

	if (p == NULL)
		die(who, p);
	if (nslots != 0)
	{
		i = hash_ptr(p) & (nslots - 1);
		while (slots[i].ptr != NULL)
		{
			if (slots[i].ptr == p)
			{
				size_t		size = slots[i].size;

				slots[i].ptr = TOMB;
				nlive--;
				live_bytes -= size;
				return size;
			}
			i = (i + 1) & (nslots - 1);
		}
	}
	die(who, p);
	return 0;
}

static void *
arena_alloc(size_t size, int flags)
{
	void	   *p;

	if (size > FUZZ_MAX_ALLOC && !(flags & MCXT_ALLOC_HUGE))
		fuzz_alloc_too_large(size);
	/* malloc(0) may return NULL; palloc(0) returns a valid pointer */
	p = (flags & MCXT_ALLOC_ZERO) ? calloc(1, size ? size : 1) :
		malloc(size ? size : 1);
	if (p == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		die("out of memory", NULL);
	}
	set_insert(p, size);
	return p;
}

void	   *palloc(size_t size);
void	   *palloc0(size_t size);
void	   *palloc_extended(size_t size, int flags);
void	   *repalloc(void *pointer, size_t size);
void		pfree(void *pointer);
void	   *repalloc_huge(void *pointer, size_t size);
char	   *pstrdup(const char *in);
char	   *pnstrdup(const char *in, size_t len);

void *
palloc(size_t size)
{
	return arena_alloc(size, 0);
}

void *
palloc0(size_t size)
{
	return arena_alloc(size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(size_t size, int flags)
{
	return arena_alloc(size, flags);
}

void *
repalloc(void *pointer, size_t size)
{
	void	   *p;

	if (size > FUZZ_MAX_ALLOC)
		fuzz_alloc_too_large(size);
	set_remove(pointer, "repalloc of a pointer that is not live");
	p = realloc(pointer, size ? size : 1);
	if (p == NULL)
		die("out of memory", NULL);
	set_insert(p, size);
	return p;
}

/* MaxAllocHugeSize: no limit but half the address space */
void	   *repalloc_huge(void *pointer, size_t size);

void *
repalloc_huge(void *pointer, size_t size)
{
	void	   *p;

	if (size >= SIZE_MAX / 2)
		fuzz_alloc_too_large(size);
	set_remove(pointer, "repalloc_huge of a pointer that is not live");
	p = realloc(pointer, size ? size : 1);
	if (p == NULL)
		die("out of memory", NULL);
	set_insert(p, size);
	return p;
}

void
pfree(void *pointer)
{
	set_remove(pointer, "pfree of a pointer that is not live");
	free(pointer);
}

char *
pstrdup(const char *in)
{
	size_t		len = strlen(in);
	char	   *p = arena_alloc(len + 1, 0);

	memcpy(p, in, len + 1);
	return p;
}

char *
pnstrdup(const char *in, size_t len)
{
	char	   *p;

	len = strnlen(in, len);
	p = arena_alloc(len + 1, 0);
	memcpy(p, in, len);
	p[len] = '\0';
	return p;
}

void
fuzz_arena_reset(void)
{
	for (size_t i = 0; i < nslots; i++)
	{
		if (slots[i].ptr != NULL && slots[i].ptr != TOMB)
			free(slots[i].ptr);
		slots[i].ptr = NULL;
	}
	nused = nlive = 0;
	live_bytes = 0;
	/* a huge input may have grown the table: give it back */
	if (nslots > 65536)
	{
		free(slots);
		slots = NULL;
		nslots = 0;
	}
}

size_t
fuzz_arena_live_blocks(void)
{
	return nlive;
}

size_t
fuzz_arena_live_bytes(void)
{
	return live_bytes;
}
