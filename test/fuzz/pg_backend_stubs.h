/*
 * pg_backend_stubs.h - error-handling hooks of pg_backend_stubs.c.
 */
#ifndef PG_BACKEND_STUBS_H
#define PG_BACKEND_STUBS_H

#include <setjmp.h>

/* Where errfinish() jumps on ERROR; NULL means abort instead. */
extern sigjmp_buf *fuzz_error_jmp;

/* When true, any ERROR aborts (with its message): the call must succeed. */
extern bool fuzz_error_fatal;

/* The last ERROR's SQLSTATE (as errcode() got it), message and detail. */
extern int	fuzz_error_sqlstate;
extern char fuzz_error_message[1024];
extern char fuzz_error_detail[1024];

#endif							/* PG_BACKEND_STUBS_H */
