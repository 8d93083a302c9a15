/*
 * progress.h - how far an import, export or merge has got, for other
 * sessions to see (the view soup.progress).
 *
 * PostgreSQL 15 lets an extension publish progress only through the
 * built-in command types, so a pg_soup operation reports as a COPY (which is
 * what it is, row for row: chunks into or out of soup.chunks) and marks its
 * slots so that soup.progress can tell it from a user's COPY.  Nothing is
 * reported while the backend already reports another command (a pg_soup
 * function called inside a COPY, or inside another pg_soup operation).
 */
#ifndef SOUP_PROGRESS_H
#define SOUP_PROGRESS_H

#include "postgres.h"

typedef enum SoupProgressOp
{
	SOUP_PROGRESS_IMPORT = 1,
	SOUP_PROGRESS_EXPORT = 2,
	SOUP_PROGRESS_MERGE = 3
} SoupProgressOp;

/*
 * Start reporting op on model_id with the totals known up front.  Returns
 * false (and reports nothing) when the backend reports another command.
 */
extern bool soup_progress_begin(SoupProgressOp op, int64 model_id,
								int64 chunks_total, int64 bytes_total);

/* Is a pg_soup operation being reported by this backend? */
extern bool soup_progress_active(void);

/*
 * One more chunk of nbytes data bytes done.  This is also where
 * soup.pause_after_chunks holds an operation (see progress.c).
 */
extern void soup_progress_chunk(int64 nbytes);

/* Stop reporting, if this backend reports a pg_soup operation. */
extern void soup_progress_end(void);

#endif							/* SOUP_PROGRESS_H */
