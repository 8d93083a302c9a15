/*
 * pg_backend_stubs.c - the few PostgreSQL backend functions that
 * src/tensor.c and src/tensor_text.c call, re-implemented for running them
 * outside the server (test/fuzz/fuzz_tensor_text.c).
 *
 * Compiled with the server headers (no -DFRONTEND) so the prototypes are
 * checked against the real ones.  What the rest needs comes from
 * libpgcommon/libpgport (StringInfo, shortest-decimal float output,
 * pg_strncasecmp, pg_snprintf) and from fuzz_arena.c (palloc family).
 *
 * Error reporting: errstart() ignores levels below ERROR; for ERROR and up
 * the err*() calls format the message into a buffer and errfinish()
 * siglongjmp()s to fuzz_error_jmp, which the harness sets around each call
 * into the code under test, the way PG_TRY/PG_CATCH unwinds in the server.
 * Memory palloc'd before the error is freed by the per-input arena reset,
 * as an aborted transaction's memory context would be.
 *
 * Functions with faithful behaviour: hex_encode, hex_decode (PostgreSQL 15
 * src/backend/utils/adt/encode.c), pq_getmsgbyte, pq_getmsgint,
 * pq_copymsgbytes, pq_sendbytes, pq_begintypsend, pq_endtypsend
 * (src/backend/libpq/pqformat.c), pg_detoast_datum for plain (untoasted)
 * values.  The rest (arrays, text, slices) is not reached by the harness
 * and aborts if it ever is.
 */
#include "postgres.h"

#include <setjmp.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "fuzz_arena.h"
#include "pg_backend_stubs.h"

sigjmp_buf *fuzz_error_jmp = NULL;
bool		fuzz_error_fatal = false;
int			fuzz_error_sqlstate = 0;
char		fuzz_error_message[1024];
char		fuzz_error_detail[1024];

static int	cur_elevel;

static void
not_stubbed(const char *fn)
{
	fprintf(stderr, "pg_backend_stubs: %s is not available outside the server\n", fn);
	abort();
}

/* ---- elog.h ---- */

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false;
	cur_elevel = elevel;
	fuzz_error_sqlstate = 0;
	fuzz_error_message[0] = '\0';
	fuzz_error_detail[0] = '\0';
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	if (fuzz_error_fatal || fuzz_error_jmp == NULL)
	{
		fprintf(stderr, "unexpected ERROR at %s:%d (%s): %s [%s]\n",
				filename, lineno, funcname ? funcname : "?",
				fuzz_error_message, fuzz_error_detail);
		abort();
	}
	if (cur_elevel > ERROR)
	{
		fprintf(stderr, "FATAL/PANIC at %s:%d: %s\n", filename, lineno,
				fuzz_error_message);
		abort();
	}
	siglongjmp(*fuzz_error_jmp, 1);
}

int
errcode(int sqlerrcode)
{
	fuzz_error_sqlstate = sqlerrcode;
	return 0;
}

#define FORMAT_INTO(buf, fmt) \
	do { \
		va_list		ap; \
		va_start(ap, fmt); \
		vsnprintf(buf, sizeof(buf), fmt, ap); \
		va_end(ap); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	FORMAT_INTO(fuzz_error_message, fmt);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FORMAT_INTO(fuzz_error_message, fmt);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	FORMAT_INTO(fuzz_error_detail, fmt);
	return 0;
}

int
errhint(const char *fmt,...)
{
	char		hint[1024];

	FORMAT_INTO(hint, fmt);
	return 0;
}

/* ---- arena hook: the server refuses > MaxAllocSize with an ERROR ---- */

void
fuzz_alloc_too_large(size_t size)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg_internal("invalid memory alloc request size %zu", size)));
	abort();					/* not reached */
}

/* ---- encode.c (PostgreSQL 15) ---- */

static const char hextbl[] = "0123456789abcdef";

static const int8 hexlookup[128] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

uint64
hex_encode(const char *src, size_t len, char *dst)
{
	const char *end = src + len;

	while (src < end)
	{
		*dst++ = hextbl[(*src >> 4) & 0xF];
		*dst++ = hextbl[*src & 0xF];
		src++;
	}
	return (uint64) len * 2;
}

static inline char
get_hex(const char *cp)
{
	unsigned char c = (unsigned char) *cp;
	int			res = -1;

	if (c < 127)
		res = hexlookup[c];

	if (res < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid hexadecimal digit: \"%.*s\"",
						pg_utf_mblen((const unsigned char *) cp), cp)));

	return (char) res;
}

uint64
hex_decode(const char *src, size_t len, char *dst)
{
	const char *s,
			   *srcend;
	char		v1,
				v2,
			   *p;

	srcend = src + len;
	s = src;
	p = dst;
	while (s < srcend)
	{
		if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		{
			s++;
			continue;
		}
		v1 = get_hex(s) << 4;
		s++;
		if (s >= srcend)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid hexadecimal data: odd number of digits")));

		v2 = get_hex(s);
		s++;
		*p++ = v1 | v2;
	}

	return p - dst;
}

/* ---- pqformat.c (PostgreSQL 15) ---- */

void
pq_sendbytes(StringInfo buf, const char *data, int datalen)
{
	appendBinaryStringInfo(buf, data, datalen);
}

void
pq_begintypsend(StringInfo buf)
{
	initStringInfo(buf);
	/* Reserve four bytes for the bytea length word */
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
}

bytea *
pq_endtypsend(StringInfo buf)
{
	bytea	   *result = (bytea *) buf->data;

	/* Insert correct length into bytea length word */
	Assert(buf->len >= VARHDRSZ);
	SET_VARSIZE(result, buf->len);

	return result;
}

int
pq_getmsgbyte(StringInfo msg)
{
	if (msg->cursor >= msg->len)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("no data left in message")));
	return (unsigned char) msg->data[msg->cursor++];
}

unsigned int
pq_getmsgint(StringInfo msg, int b)
{
	unsigned int result;
	unsigned char n8;
	uint16		n16;
	uint32		n32;

	switch (b)
	{
		case 1:
			pq_copymsgbytes(msg, (char *) &n8, 1);
			result = n8;
			break;
		case 2:
			pq_copymsgbytes(msg, (char *) &n16, 2);
			result = pg_ntoh16(n16);
			break;
		case 4:
			pq_copymsgbytes(msg, (char *) &n32, 4);
			result = pg_ntoh32(n32);
			break;
		default:
			elog(ERROR, "unsupported integer size %d", b);
			result = 0;			/* keep compiler quiet */
			break;
	}
	return result;
}

void
pq_copymsgbytes(StringInfo msg, char *buf, int datalen)
{
	if (datalen < 0 || datalen > (msg->len - msg->cursor))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("insufficient data left in message")));
	memcpy(buf, &msg->data[msg->cursor], datalen);
	msg->cursor += datalen;
}

/* ---- fmgr.c: values here are never toasted or short-header ---- */

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	if (VARATT_IS_EXTENDED(datum))
		not_stubbed("pg_detoast_datum of a toasted or packed value");
	return datum;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	return datum;
}

struct varlena *
pg_detoast_datum_slice(struct varlena *datum, int32 first, int32 count)
{
	not_stubbed("pg_detoast_datum_slice");
	return NULL;
}

/* ---- not reached by the harness ---- */

ArrayType *
construct_array(Datum *elems, int nelems, Oid elmtype, int elmlen,
				bool elmbyval, char elmalign)
{
	not_stubbed("construct_array");
	return NULL;
}

void
deconstruct_array(ArrayType *array, Oid elmtype, int elmlen, bool elmbyval,
				  char elmalign, Datum **elemsp, bool **nullsp, int *nelemsp)
{
	not_stubbed("deconstruct_array");
}

text *
cstring_to_text(const char *s)
{
	not_stubbed("cstring_to_text");
	return NULL;
}

char *
text_to_cstring(const text *t)
{
	not_stubbed("text_to_cstring");
	return NULL;
}
