/*
 * fuzz_check.h - how a harness reports a broken property: print the check
 * and abort, so libFuzzer keeps the input as a reproducer.  Define
 * FUZZ_NAME (the harness's name) before including it.
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void fail(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

static void
fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, FUZZ_NAME ": check failed: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define CHECK(cond, ...) \
	do { if (!(cond)) fail(__VA_ARGS__); } while (0)

#endif							/* FUZZ_CHECK_H */
