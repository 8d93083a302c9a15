/*
 * safetensors.c - parse, validate and write safetensors headers.
 *
 * The rules follow the reference Rust reader (huggingface/safetensors), plus
 * a few extras of ours: duplicate tensor names, duplicate metadata keys and
 * duplicate keys inside a tensor entry are errors (JSON leaves duplicates
 * undefined and the reference silently keeps the last one), and a tensor's
 * dtype must be spelled exactly as the reference writes it.
 *
 * Only PostgreSQL's common code is used (palloc, StringInfo, the JSON parser,
 * encoding checks), never ereport, so this file links into the server and
 * into standalone test and fuzz programs (-DFRONTEND) alike.
 *
 * PostgreSQL 15's JSON callbacks cannot stop the parser, so each parse keeps
 * the first error it sees and ignores every later event; the parse itself is
 * bounded by the (already length-checked) input.
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include "common/int.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "lib/stringinfo.h"
#include "safetensors.h"

/*
 * Largest value accepted for a dimension or an offset: 2^53, the largest
 * integer every JSON reader (including those that use doubles) reads exactly.
 */
#define ST_MAX_JSON_INT (INT64CONST(1) << 53)

/* The server's palloc limit (MaxAllocSize); arrays must stay below it. */
#define ST_MAX_ALLOC ((Size) 0x3fffffff)

/* Keys of a tensor entry, as bits of HdrParse.seen. */
#define SEEN_DTYPE		0x1
#define SEEN_SHAPE		0x2
#define SEEN_OFFSETS	0x4
#define SEEN_ALL		(SEEN_DTYPE | SEEN_SHAPE | SEEN_OFFSETS)

/* What the current top-level member of the header is. */
typedef enum HdrTop
{
	HT_NONE,
	HT_META,					/* "__metadata__" */
	HT_TENSOR					/* any other key */
} HdrTop;

/* What the current member of a tensor entry is. */
typedef enum HdrField
{
	HF_NONE,
	HF_DTYPE,
	HF_SHAPE,
	HF_OFFSETS,
	HF_OTHER					/* unknown key: its value is ignored */
} HdrField;

typedef struct HdrParse
{
	StError		err;			/* first error seen, or ST_OK */
	char	   *errmsg;
	int			depth;			/* containers open before this event */
	HdrTop		top;
	HdrField	field;
	StTensor   *cur;			/* entry being filled (HT_TENSOR) */
	int			seen;			/* SEEN_* bits of the current entry */
	int			nelem;			/* elements of the current shape/offsets */
	/* unknown keys of the current entry, kept to detect duplicates */
	char	  **others;
	int			nothers;
	int			maxothers;
	char	   *meta_key;		/* metadata key awaiting its value */
	/* results */
	StTensor   *tensors;
	int			ntensors;
	int			maxtensors;
	char	  **meta_keys;
	char	  **meta_values;
	int			nmeta;
	int			maxmeta;
	bool		has_metadata;
} HdrParse;

/* What the current top-level member of an index is. */
typedef enum IdxTop
{
	IT_NONE,
	IT_METADATA,
	IT_WEIGHT_MAP,
	IT_OTHER
} IdxTop;

typedef struct IdxParse
{
	StError		err;
	char	   *errmsg;
	JsonLexContext *lex;		/* to find the text of "metadata" */
	int			depth;
	IdxTop		top;
	const char *meta_start;		/* first byte of the "metadata" value */
	char	   *metadata_json;
	bool		has_weight_map;
	char	   *cur_name;		/* weight_map key awaiting its file */
	char	  **names;
	char	  **files;
	int			nentries;
	int			maxentries;
} IdxParse;


/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

/* Record an error unless one is already recorded (the first one wins). */
static void
set_error(StError *err, char **errmsg, StError code, char *msg)
{
	if (*err != ST_OK)
	{
		pfree(msg);
		return;
	}
	*err = code;
	*errmsg = msg;
}

/* Record an error in a parse state (HdrParse or IdxParse). */
#define ST_FAIL(st, code, ...) \
	set_error(&(st)->err, &(st)->errmsg, (code), psprintf(__VA_ARGS__))

/*
 * Make room for element n (0-based) of a palloc'd array of elsize-byte
 * elements with *max slots, doubling it.  Returns the array, perhaps moved,
 * or NULL (leaving it alone) when it would pass the server's palloc limit.
 */
static void *
grow_array(void *array, int *max, int n, Size elsize)
{
	Size		newmax;

	if (n < *max)
		return array;
	newmax = (*max > 0) ? (Size) *max * 2 : 16;
	if (newmax * elsize > ST_MAX_ALLOC)
		newmax = ST_MAX_ALLOC / elsize;
	if (newmax <= (Size) n || newmax > PG_INT32_MAX)
		return NULL;
	*max = (int) newmax;
	if (array == NULL)
		return palloc(newmax * elsize);
	return repalloc(array, newmax * elsize);
}

/*
 * A plain non-negative JSON integer no larger than ST_MAX_JSON_INT: digits
 * only, so fractions, exponents and signs (even "-0") are refused.  The JSON
 * lexer has already refused leading zeros.
 */
static bool
parse_json_uint(const char *tok, int64 *val)
{
	int64		v = 0;

	if (*tok == '\0')
		return false;
	for (const char *p = tok; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
		if (v > ST_MAX_JSON_INT)
			return false;
	}
	*val = v;
	return true;
}

static int
cmp_cstring_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Return a string that occurs twice in strs[0..n), or NULL.  Sorts a copy,
 * so the cost is O(n log n) even for hostile input.
 */
static const char *
find_duplicate(char **strs, int n)
{
	char	  **sorted;
	const char *dup = NULL;

	if (n < 2)
		return NULL;
	sorted = palloc(sizeof(char *) * n);
	memcpy(sorted, strs, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), cmp_cstring_ptr);
	for (int i = 1; i < n && dup == NULL; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			dup = sorted[i];
	pfree(sorted);
	return dup;
}

/*
 * Reject the deepest nesting before the JSON parser sees it: PostgreSQL's
 * parser recurses once per level and, outside the server, has no stack
 * check, so "[[[[..." could overflow the stack.  Brackets inside strings do
 * not count.  The count never drops below zero, so it is never less than the
 * parser's real depth for as long as the parser keeps going.
 */
static bool
nesting_ok(const char *json, size_t len)
{
	int			depth = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = json[i];

		if (in_string)
		{
			if (c == '\\')
				i++;			/* skip the escaped character */
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > ST_MAX_DEPTH)
				return false;
		}
		else if ((c == '}' || c == ']') && depth > 0)
			depth--;
	}
	return true;
}

/*
 * Checks done before parsing: size, UTF-8 (which also refuses NUL bytes,
 * since the encoding check stops at the first one) and nesting depth.
 */
StError
st_check_json_text(const char *json, size_t len, const char *what, char **errmsg)
{
	int			valid;

	if (len > ST_MAX_HEADER_LEN)
	{
		*errmsg = psprintf("%s is %zu bytes, more than the limit of %d",
						   what, len, ST_MAX_HEADER_LEN);
		return ST_ERR_HEADER_TOO_LARGE;
	}
	valid = pg_encoding_verifymbstr(PG_UTF8, json, (int) len);
	if (valid != (int) len)
	{
		*errmsg = psprintf("%s is not valid UTF-8 or holds a NUL byte (at byte %d)",
						   what, valid);
		return ST_ERR_UTF8;
	}
	if (!nesting_ok(json, len))
	{
		*errmsg = psprintf("%s nests JSON deeper than %d levels",
						   what, ST_MAX_DEPTH);
		return ST_ERR_JSON;
	}
	return ST_OK;
}

/*
 * What went wrong, for messages.  json_errdetail() would do, but the
 * frontend libpgcommon of PostgreSQL 15 does not export it.
 */
static const char *
json_error_text(JsonParseErrorType jerr)
{
	switch (jerr)
	{
		case JSON_ESCAPING_INVALID:
			return "invalid escape sequence";
		case JSON_ESCAPING_REQUIRED:
			return "unescaped control character in a string";
		case JSON_UNICODE_CODE_POINT_ZERO:
			return "\\u0000 is not allowed";
		case JSON_UNICODE_ESCAPE_FORMAT:
			return "\\u must be followed by four hex digits";
		case JSON_UNICODE_HIGH_ESCAPE:
		case JSON_UNICODE_HIGH_SURROGATE:
		case JSON_UNICODE_LOW_SURROGATE:
			return "invalid Unicode surrogate pair";
		case JSON_EXPECTED_END:
			return "unexpected text after the end";
		case JSON_EXPECTED_MORE:
			return "unexpected end of input";
		case JSON_INVALID_TOKEN:
			return "invalid token";
		default:
			return "syntax error";
	}
}

/*
 * Run the JSON parser over json; on a syntax error set *errmsg and return
 * false.  *lexp (when not NULL) points at the lexer while the callbacks run.
 * PostgreSQL 15 has no freeJsonLexContext, so free the lexer here: the
 * server may parse many headers in one memory context.  The lexer only
 * reads the text; its API just lacks a const.
 */
static bool
run_parser(const char *json, size_t len, JsonSemAction *sem,
		   JsonLexContext **lexp, const char *what, char **errmsg)
{
	JsonLexContext *lex;
	JsonParseErrorType jerr;

	lex = makeJsonLexContextCstringLen(unconstify(char *, json), (int) len,
									   PG_UTF8, true);
	if (lexp != NULL)
		*lexp = lex;
	jerr = pg_parse_json(lex, sem);
	if (jerr != JSON_SUCCESS)
	{
		/* at the end of the input the lexer has no token_start */
		const char *where = lex->token_start ? lex->token_start :
			lex->token_terminator;

		*errmsg = psprintf("%s is not valid JSON: %s near byte %d", what,
						   json_error_text(jerr),
						   where ? (int) (where - json) : 0);
	}
	if (lexp != NULL)
		*lexp = NULL;
	pfree(lex->strval->data);
	pfree(lex->strval);
	pfree(lex);
	return jerr == JSON_SUCCESS;
}


/* ------------------------------------------------------------------------
 * Header parsing: JSON callbacks
 * ------------------------------------------------------------------------ */

/* A new top-level member: "__metadata__" or a tensor entry. */
static void
hdr_top_field(HdrParse *st, char *fname)
{
	StTensor   *grown;

	if (strcmp(fname, "__metadata__") == 0)
	{
		if (st->has_metadata)
			ST_FAIL(st, ST_ERR_DUPLICATE, "duplicate \"__metadata__\" in header");
		st->has_metadata = true;
		st->top = HT_META;
		pfree(fname);
		return;
	}
	if (fname[0] == '\0')
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor with an empty name in header");
		pfree(fname);
		return;
	}
	grown = grow_array(st->tensors, &st->maxtensors, st->ntensors,
					   sizeof(StTensor));
	if (grown == NULL)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "too many tensors in header");
		pfree(fname);
		return;
	}
	st->tensors = grown;
	st->cur = &st->tensors[st->ntensors++];
	memset(st->cur, 0, sizeof(StTensor));
	st->cur->name = fname;		/* kept */
	st->top = HT_TENSOR;
	st->field = HF_NONE;
	st->seen = 0;
	st->nothers = 0;
}

/* A member of a tensor entry. */
static void
hdr_entry_field(HdrParse *st, char *fname)
{
	int			bit = 0;
	char	  **others;

	if (strcmp(fname, "dtype") == 0)
		st->field = HF_DTYPE, bit = SEEN_DTYPE;
	else if (strcmp(fname, "shape") == 0)
		st->field = HF_SHAPE, bit = SEEN_SHAPE;
	else if (strcmp(fname, "data_offsets") == 0)
		st->field = HF_OFFSETS, bit = SEEN_OFFSETS;
	else
		st->field = HF_OTHER;

	if (bit != 0)
	{
		if (st->seen & bit)
			ST_FAIL(st, ST_ERR_DUPLICATE,
					 "tensor \"%s\": duplicate key \"%s\"", st->cur->name, fname);
		st->seen |= bit;
		pfree(fname);
		return;
	}
	/* unknown keys are ignored, but kept until the entry ends to spot twins */
	others = grow_array(st->others, &st->maxothers, st->nothers,
						sizeof(char *));
	if (others == NULL)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\": too many keys", st->cur->name);
		pfree(fname);
		return;
	}
	st->others = others;
	st->others[st->nothers++] = fname;
}

static void
hdr_field_start(void *state, char *fname, bool isnull)
{
	HdrParse   *st = (HdrParse *) state;

	if (st->err != ST_OK)
		pfree(fname);
	else if (st->depth == 1)
		hdr_top_field(st, fname);
	else if (st->depth == 2 && st->top == HT_TENSOR)
		hdr_entry_field(st, fname);
	else if (st->depth == 2 && st->top == HT_META)
		st->meta_key = fname;	/* its value must follow as a string */
	else
		pfree(fname);			/* inside an ignored value */
}

/*
 * A value at depth 1 or 2 that is not what the schema wants there.  Called
 * for containers and scalars alike; "kind" names what was found.
 */
static void
hdr_check_value(HdrParse *st, const char *kind)
{
	if (st->depth == 0)
		ST_FAIL(st, ST_ERR_SCHEMA, "safetensors header is a JSON %s, not an object", kind);
	else if (st->depth == 1 && st->top == HT_META)
		ST_FAIL(st, ST_ERR_SCHEMA, "\"__metadata__\" is a JSON %s, not an object",
				 kind);
	else if (st->depth == 1)
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\" is a JSON %s, not an object",
				 st->cur->name, kind);
	else if (st->depth == 2 && st->top == HT_META)
		ST_FAIL(st, ST_ERR_SCHEMA,
				 "\"__metadata__\" value of key \"%s\" is a JSON %s, not a string",
				 st->meta_key, kind);
	else if (st->depth == 2 && st->field == HF_DTYPE)
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\": dtype is a JSON %s, not a string",
				 st->cur->name, kind);
	else if (st->depth == 2 && st->field == HF_SHAPE)
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\": shape is a JSON %s, not an array",
				 st->cur->name, kind);
	else if (st->depth == 2 && st->field == HF_OFFSETS)
		ST_FAIL(st, ST_ERR_SCHEMA,
				 "tensor \"%s\": data_offsets is a JSON %s, not an array",
				 st->cur->name, kind);
	else if (st->depth == 3 && st->top == HT_TENSOR &&
			 (st->field == HF_SHAPE || st->field == HF_OFFSETS))
		ST_FAIL(st, ST_ERR_SCHEMA,
				 "tensor \"%s\": %s holds a JSON %s, not an integer",
				 st->cur->name,
				 st->field == HF_SHAPE ? "shape" : "data_offsets", kind);
}

static void
hdr_object_start(void *state)
{
	HdrParse   *st = (HdrParse *) state;

	/* the top-level object, tensor entries and __metadata__ are objects */
	if (st->err == ST_OK && st->depth != 0 && st->depth != 1)
		hdr_check_value(st, "object");
	st->depth++;
}

static void
hdr_array_start(void *state)
{
	HdrParse   *st = (HdrParse *) state;

	if (st->err == ST_OK)
	{
		if (st->depth == 2 && st->top == HT_TENSOR &&
			(st->field == HF_SHAPE || st->field == HF_OFFSETS))
			st->nelem = 0;
		else
			hdr_check_value(st, "array");
	}
	st->depth++;
}

/* numel and the byte size of the current entry, once it is complete. */
static void
hdr_finish_entry(HdrParse *st)
{
	StTensor   *t = st->cur;
	const char *dup;
	int64		numel = 1;
	int64		nbytes;

	if ((st->seen & SEEN_ALL) != SEEN_ALL)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\": missing \"%s\"", t->name,
				 !(st->seen & SEEN_DTYPE) ? "dtype" :
				 !(st->seen & SEEN_SHAPE) ? "shape" : "data_offsets");
		return;
	}
	if ((dup = find_duplicate(st->others, st->nothers)) != NULL)
	{
		ST_FAIL(st, ST_ERR_DUPLICATE, "tensor \"%s\": duplicate key \"%s\"",
				 t->name, dup);
		return;
	}
	for (int i = 0; i < st->nothers; i++)
		pfree(st->others[i]);
	st->nothers = 0;

	/* the reference multiplies left to right with overflow checks, too */
	for (int i = 0; i < t->ndim; i++)
	{
		if (pg_mul_s64_overflow(numel, t->shape[i], &numel))
		{
			ST_FAIL(st, ST_ERR_SHAPE,
					 "tensor \"%s\": number of elements overflows", t->name);
			return;
		}
	}
	t->numel = numel;
	if (t->begin > t->end)
	{
		ST_FAIL(st, ST_ERR_OFFSETS,
				 "tensor \"%s\": data_offsets begin %lld > end %lld", t->name,
				 (long long) t->begin, (long long) t->end);
		return;
	}
	if (pg_mul_s64_overflow(numel, soup_dtype_size(t->dtype), &nbytes))
		nbytes = -1;			/* more than any offsets can span */
	if (nbytes != t->end - t->begin)
		ST_FAIL(st, ST_ERR_OFFSETS,
				 "tensor \"%s\": data_offsets span %lld bytes, but %lld elements of %s take %lld",
				 t->name, (long long) (t->end - t->begin), (long long) numel,
				 soup_dtype_st_name(t->dtype), (long long) nbytes);
}

static void
hdr_object_end(void *state)
{
	HdrParse   *st = (HdrParse *) state;

	st->depth--;
	if (st->err == ST_OK && st->depth == 1 && st->top == HT_TENSOR)
		hdr_finish_entry(st);
}

static void
hdr_array_end(void *state)
{
	HdrParse   *st = (HdrParse *) state;

	st->depth--;
	if (st->err == ST_OK && st->depth == 2 && st->top == HT_TENSOR &&
		st->field == HF_OFFSETS && st->nelem != 2)
		ST_FAIL(st, ST_ERR_SCHEMA,
				 "tensor \"%s\": data_offsets has %d elements, not 2",
				 st->cur->name, st->nelem);
}

static void
hdr_dtype(HdrParse *st, const char *token)
{
	SoupDtype	dt = soup_dtype_from_name(token, strlen(token));

	/*
	 * soup_dtype_from_name also takes our SQL spellings and any case; a
	 * header must use the reference's exact name ("F32", "BF16", ...).
	 */
	if (dt == SOUP_DT_INVALID || strcmp(soup_dtype_st_name(dt), token) != 0)
	{
		ST_FAIL(st, ST_ERR_DTYPE, "tensor \"%s\": unknown or unsupported dtype \"%s\"",
				 st->cur->name, token);
		return;
	}
	st->cur->dtype = dt;
}

/* One element of a shape or data_offsets array. */
static void
hdr_array_int(HdrParse *st, const char *token, JsonTokenType type)
{
	bool		is_shape = (st->field == HF_SHAPE);
	const char *what = is_shape ? "shape" : "data_offsets";
	int64		v;

	if (type != JSON_TOKEN_NUMBER)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "tensor \"%s\": %s holds a non-number",
				 st->cur->name, what);
		return;
	}
	if (!parse_json_uint(token, &v))
	{
		ST_FAIL(st, is_shape ? ST_ERR_SHAPE : ST_ERR_OFFSETS,
				 "tensor \"%s\": %s holds %s, not an integer from 0 to 2^53",
				 st->cur->name, what, token);
		return;
	}
	if (is_shape)
	{
		if (st->nelem >= ST_MAX_NDIM)
		{
			ST_FAIL(st, ST_ERR_SHAPE, "tensor \"%s\": more than %d dimensions",
					 st->cur->name, ST_MAX_NDIM);
			return;
		}
		st->cur->shape[st->nelem] = v;
		st->cur->ndim = st->nelem + 1;
	}
	else if (st->nelem == 0)
		st->cur->begin = v;
	else if (st->nelem == 1)
		st->cur->end = v;
	st->nelem++;
}

/* A "__metadata__" value: both strings are kept, in header order. */
static void
hdr_meta_value(HdrParse *st, char *value)
{
	char	  **keys;

	keys = grow_array(st->meta_keys, &st->maxmeta, st->nmeta, sizeof(char *));
	if (keys == NULL)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "too many \"__metadata__\" entries");
		pfree(value);
		return;
	}
	st->meta_keys = keys;
	/* meta_values always has the capacity of meta_keys */
	st->meta_values = st->meta_values ?
		repalloc(st->meta_values, sizeof(char *) * st->maxmeta) :
		palloc(sizeof(char *) * st->maxmeta);
	st->meta_keys[st->nmeta] = st->meta_key;
	st->meta_values[st->nmeta++] = value;
	st->meta_key = NULL;
}

static const char *
scalar_kind(JsonTokenType type)
{
	switch (type)
	{
		case JSON_TOKEN_STRING:
			return "string";
		case JSON_TOKEN_NUMBER:
			return "number";
		case JSON_TOKEN_NULL:
			return "null";
		default:
			return "boolean";
	}
}

static void
hdr_scalar(void *state, char *token, JsonTokenType type)
{
	HdrParse   *st = (HdrParse *) state;

	if (st->err == ST_OK)
	{
		if (st->depth == 2 && st->top == HT_META && type == JSON_TOKEN_STRING)
		{
			hdr_meta_value(st, token);
			return;				/* token kept */
		}
		if (st->depth == 2 && st->top == HT_TENSOR && st->field == HF_DTYPE &&
			type == JSON_TOKEN_STRING)
			hdr_dtype(st, token);
		else if (st->depth == 3 && st->top == HT_TENSOR &&
				 (st->field == HF_SHAPE || st->field == HF_OFFSETS))
			hdr_array_int(st, token, type);
		else
			hdr_check_value(st, scalar_kind(type));
	}
	pfree(token);
}


/* ------------------------------------------------------------------------
 * Header parsing: checks on the whole header
 * ------------------------------------------------------------------------ */

/* Order tensors by (begin, end); ties keep header order, for determinism. */
static int
cmp_tensor_order(const void *a, const void *b, void *arg)
{
	const StTensor *tensors = (const StTensor *) arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	const StTensor *ta = &tensors[ia];
	const StTensor *tb = &tensors[ib];

	if (ta->begin != tb->begin)
		return ta->begin < tb->begin ? -1 : 1;
	if (ta->end != tb->end)
		return ta->end < tb->end ? -1 : 1;
	return ia < ib ? -1 : (ia > ib ? 1 : 0);
}

/* Sort the tensors into file order; returns a new palloc'd array. */
static StTensor *
sort_tensors(StTensor *tensors, int n)
{
	int		   *order = palloc(sizeof(int) * n);
	StTensor   *sorted = palloc(sizeof(StTensor) * n);

	for (int i = 0; i < n; i++)
		order[i] = i;
	qsort_arg(order, n, sizeof(int), cmp_tensor_order, tensors);
	for (int i = 0; i < n; i++)
		sorted[i] = tensors[order[i]];
	pfree(order);
	return sorted;
}

/*
 * Duplicate names, then contiguity: in offset order each tensor must begin
 * where the previous one ended, starting at 0, as the reference requires.
 * On success *sorted is the tensors in file order and *data_len their end.
 */
static StError
hdr_validate(HdrParse *st, StTensor **sorted, int64 *data_len, char **errmsg)
{
	char	  **names;
	const char *dup;
	int64		expect = 0;

	names = palloc(sizeof(char *) * Max(st->ntensors, 1));
	for (int i = 0; i < st->ntensors; i++)
		names[i] = st->tensors[i].name;
	dup = find_duplicate(names, st->ntensors);
	pfree(names);
	if (dup != NULL)
	{
		*errmsg = psprintf("duplicate tensor name \"%s\" in header", dup);
		return ST_ERR_DUPLICATE;
	}
	if ((dup = find_duplicate(st->meta_keys, st->nmeta)) != NULL)
	{
		*errmsg = psprintf("duplicate \"__metadata__\" key \"%s\"", dup);
		return ST_ERR_DUPLICATE;
	}

	*sorted = NULL;
	if (st->ntensors == 0)
	{
		*data_len = 0;
		return ST_OK;
	}
	*sorted = sort_tensors(st->tensors, st->ntensors);
	for (int i = 0; i < st->ntensors; i++)
	{
		StTensor   *t = &(*sorted)[i];

		if (t->begin != expect)
		{
			*errmsg = psprintf("tensor \"%s\": data_offsets begin at %lld, but the previous tensor ends at %lld (%s)",
							   t->name, (long long) t->begin,
							   (long long) expect,
							   t->begin > expect ? "gap" : "overlap");
			pfree(*sorted);
			*sorted = NULL;
			return ST_ERR_OFFSETS;
		}
		expect = t->end;
	}
	*data_len = expect;
	return ST_OK;
}

StError
st_parse_header(const char *json, size_t len, StHeader *out, char **errmsg)
{
	HdrParse	st;
	JsonSemAction sem;
	StError		err;

	memset(out, 0, sizeof(StHeader));
	*errmsg = NULL;
	if ((err = st_check_json_text(json, len, "safetensors header", errmsg)) != ST_OK)
		return err;

	memset(&st, 0, sizeof(st));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = hdr_object_start;
	sem.object_end = hdr_object_end;
	sem.array_start = hdr_array_start;
	sem.array_end = hdr_array_end;
	sem.object_field_start = hdr_field_start;
	sem.scalar = hdr_scalar;

	if (!run_parser(json, len, &sem, NULL, "safetensors header", errmsg))
		return ST_ERR_JSON;
	if (st.err != ST_OK)
	{
		*errmsg = st.errmsg;
		return st.err;
	}
	if ((err = hdr_validate(&st, &out->tensors, &out->data_len,
							errmsg)) != ST_OK)
		return err;

	if (st.tensors != NULL)
		pfree(st.tensors);
	if (st.others != NULL)
		pfree(st.others);
	out->ntensors = st.ntensors;
	out->nmeta = st.nmeta;
	out->meta_keys = st.meta_keys;
	out->meta_values = st.meta_values;
	out->has_metadata = st.has_metadata;
	return ST_OK;
}


/* ------------------------------------------------------------------------
 * Index parsing
 * ------------------------------------------------------------------------ */

/*
 * A shard must be a plain file name in the index's folder.  NUL cannot occur:
 * raw NULs fail the UTF-8 check and the JSON lexer refuses "\u0000".
 */
static bool
shard_name_ok(const char *name)
{
	return name[0] != '\0' &&
		strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
		strchr(name, '/') == NULL && strchr(name, '\\') == NULL;
}

static void
idx_field_start(void *state, char *fname, bool isnull)
{
	IdxParse   *st = (IdxParse *) state;

	/* fname is freed in idx_field_end, which receives the same pointer */
	if (st->err != ST_OK)
		return;
	if (st->depth == 1)
	{
		if (strcmp(fname, "metadata") == 0)
		{
			if (st->meta_start != NULL)
				ST_FAIL(st, ST_ERR_DUPLICATE, "duplicate \"metadata\" in index");
			st->top = IT_METADATA;
			st->meta_start = st->lex->token_start;
		}
		else if (strcmp(fname, "weight_map") == 0)
		{
			if (st->has_weight_map)
				ST_FAIL(st, ST_ERR_DUPLICATE, "duplicate \"weight_map\" in index");
			st->top = IT_WEIGHT_MAP;
			st->has_weight_map = true;
		}
		else
			st->top = IT_OTHER;
	}
	else if (st->depth == 2 && st->top == IT_WEIGHT_MAP)
	{
		if (fname[0] == '\0')
			ST_FAIL(st, ST_ERR_SCHEMA, "tensor with an empty name in index");
		st->cur_name = pstrdup(fname);
	}
}

static void
idx_field_end(void *state, char *fname, bool isnull)
{
	IdxParse   *st = (IdxParse *) state;

	/* the value's last token ends where the lexer's previous token ended */
	if (st->err == ST_OK && st->depth == 1 && st->top == IT_METADATA)
		st->metadata_json = pnstrdup(st->meta_start,
									 st->lex->prev_token_terminator -
									 st->meta_start);
	pfree(fname);
}

/* A value where weight_map or one of its files should be, of the wrong kind. */
static void
idx_check_value(IdxParse *st, const char *kind)
{
	if (st->depth == 0)
		ST_FAIL(st, ST_ERR_SCHEMA, "safetensors index is a JSON %s, not an object", kind);
	else if (st->depth == 1 && st->top == IT_WEIGHT_MAP)
		ST_FAIL(st, ST_ERR_SCHEMA, "\"weight_map\" is a JSON %s, not an object",
				 kind);
	else if (st->depth == 2 && st->top == IT_WEIGHT_MAP)
		ST_FAIL(st, ST_ERR_SCHEMA,
				 "index: file of tensor \"%s\" is a JSON %s, not a string",
				 st->cur_name, kind);
}

static void
idx_object_start(void *state)
{
	IdxParse   *st = (IdxParse *) state;

	if (st->err == ST_OK && st->depth != 0 &&
		!(st->depth == 1 && st->top == IT_WEIGHT_MAP))
		idx_check_value(st, "object");
	st->depth++;
}

static void
idx_array_start(void *state)
{
	IdxParse   *st = (IdxParse *) state;

	if (st->err == ST_OK)
		idx_check_value(st, "array");
	st->depth++;
}

static void
idx_container_end(void *state)
{
	IdxParse   *st = (IdxParse *) state;

	st->depth--;
}

/* A weight_map value: the shard file of tensor cur_name. */
static void
idx_entry(IdxParse *st, char *file)
{
	char	  **names;

	if (!shard_name_ok(file))
	{
		ST_FAIL(st, ST_ERR_PATH,
				 "index: tensor \"%s\" names shard \"%s\", which is not a plain file name",
				 st->cur_name, file);
		pfree(file);
		return;
	}
	names = grow_array(st->names, &st->maxentries, st->nentries,
					   sizeof(char *));
	if (names == NULL)
	{
		ST_FAIL(st, ST_ERR_SCHEMA, "too many tensors in index");
		pfree(file);
		return;
	}
	st->names = names;
	/* files always has the capacity of names */
	st->files = st->files ?
		repalloc(st->files, sizeof(char *) * st->maxentries) :
		palloc(sizeof(char *) * st->maxentries);
	st->names[st->nentries] = st->cur_name;
	st->files[st->nentries++] = file;
	st->cur_name = NULL;
}

static void
idx_scalar(void *state, char *token, JsonTokenType type)
{
	IdxParse   *st = (IdxParse *) state;

	if (st->err == ST_OK)
	{
		if (st->depth == 2 && st->top == IT_WEIGHT_MAP &&
			type == JSON_TOKEN_STRING)
		{
			idx_entry(st, token);
			return;				/* token kept or freed there */
		}
		idx_check_value(st, scalar_kind(type));
	}
	pfree(token);
}

/* Pair of a file name and where it first occurs, for distinct_files. */
typedef struct FileFirst
{
	const char *name;
	int			pos;
} FileFirst;

static int
cmp_file_name_pos(const void *a, const void *b)
{
	const FileFirst *fa = (const FileFirst *) a;
	const FileFirst *fb = (const FileFirst *) b;
	int			c = strcmp(fa->name, fb->name);

	if (c != 0)
		return c;
	return fa->pos < fb->pos ? -1 : (fa->pos > fb->pos ? 1 : 0);
}

static int
cmp_file_pos(const void *a, const void *b)
{
	const FileFirst *fa = (const FileFirst *) a;
	const FileFirst *fb = (const FileFirst *) b;

	return fa->pos < fb->pos ? -1 : (fa->pos > fb->pos ? 1 : 0);
}

/*
 * The distinct shard names in first-seen order.  Sorting keeps this
 * O(n log n) however many shards a hostile index names.
 */
static void
distinct_files(StIndex *out)
{
	int			n = out->nentries;
	FileFirst  *ff = palloc(sizeof(FileFirst) * Max(n, 1));
	int			nfirst = 0;

	for (int i = 0; i < n; i++)
	{
		ff[i].name = out->tensor_files[i];
		ff[i].pos = i;
	}
	qsort(ff, n, sizeof(FileFirst), cmp_file_name_pos);
	for (int i = 0; i < n; i++)
		if (i == 0 || strcmp(ff[i - 1].name, ff[i].name) != 0)
			ff[nfirst++] = ff[i];
	qsort(ff, nfirst, sizeof(FileFirst), cmp_file_pos);

	out->nfiles = nfirst;
	out->files = palloc(sizeof(char *) * Max(nfirst, 1));
	for (int i = 0; i < nfirst; i++)
		out->files[i] = out->tensor_files[ff[i].pos];
	pfree(ff);
}

StError
st_parse_index(const char *json, size_t len, StIndex *out, char **errmsg)
{
	IdxParse	st;
	JsonSemAction sem;
	const char *dup;
	StError		err;

	memset(out, 0, sizeof(StIndex));
	*errmsg = NULL;
	if ((err = st_check_json_text(json, len, "safetensors index", errmsg)) != ST_OK)
		return err;

	memset(&st, 0, sizeof(st));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = idx_object_start;
	sem.object_end = idx_container_end;
	sem.array_start = idx_array_start;
	sem.array_end = idx_container_end;
	sem.object_field_start = idx_field_start;
	sem.object_field_end = idx_field_end;
	sem.scalar = idx_scalar;

	if (!run_parser(json, len, &sem, &st.lex, "safetensors index", errmsg))
		return ST_ERR_JSON;
	if (st.err != ST_OK)
	{
		*errmsg = st.errmsg;
		return st.err;
	}
	if (!st.has_weight_map)
	{
		*errmsg = psprintf("safetensors index has no \"weight_map\"");
		return ST_ERR_SCHEMA;
	}
	if ((dup = find_duplicate(st.names, st.nentries)) != NULL)
	{
		*errmsg = psprintf("tensor \"%s\" appears twice in the index", dup);
		return ST_ERR_DUPLICATE;
	}

	out->nentries = st.nentries;
	out->tensor_names = st.names;
	out->tensor_files = st.files;
	out->metadata_json = st.metadata_json;
	distinct_files(out);
	return ST_OK;
}


/* ------------------------------------------------------------------------
 * Files and shards
 * ------------------------------------------------------------------------ */

bool
st_is_index_path(const char *path)
{
	const char *suffix = ".index.json";
	size_t		n = strlen(path);
	size_t		m = strlen(suffix);

	return n >= m && strcmp(path + n - m, suffix) == 0;
}

StError
st_check_prefix(const unsigned char lenbuf[8], uint64 file_size, uint64 *hdr_len,
				char **errmsg)
{
	uint64		n = 0;

	if (file_size < 8)
	{
		*errmsg = pstrdup("shorter than 8 bytes");
		return ST_ERR_TRUNCATED;
	}
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | lenbuf[i];
	if (n > ST_MAX_HEADER_LEN)
	{
		*errmsg = psprintf("header length " UINT64_FORMAT " exceeds %d bytes",
						   n, ST_MAX_HEADER_LEN);
		return ST_ERR_HEADER_TOO_LARGE;
	}
	if (n > file_size - 8)
	{
		*errmsg = psprintf("header length " UINT64_FORMAT " runs past the end of the file", n);
		return ST_ERR_TRUNCATED;
	}
	*hdr_len = n;
	return ST_OK;
}

StError
st_check_extent(const StHeader *h, uint64 file_size, uint64 hdr_len, char **errmsg)
{
	uint64		avail = file_size - 8 - hdr_len;

	if ((uint64) h->data_len == avail)
		return ST_OK;
	*errmsg = psprintf("the tensors cover " INT64_FORMAT " data bytes but the file holds " UINT64_FORMAT,
					   h->data_len, avail);
	return (uint64) h->data_len > avail ? ST_ERR_TRUNCATED : ST_ERR_TRAILING;
}

typedef struct ShardEntry
{
	const char *name;
	int			file;			/* position in idx->files */
	bool		seen;
} ShardEntry;

static int
cmp_shard_entry(const void *a, const void *b)
{
	return strcmp(((const ShardEntry *) a)->name, ((const ShardEntry *) b)->name);
}

static int
file_position(const StIndex *idx, const char *file)
{
	for (int f = 0; f < idx->nfiles; f++)
		if (strcmp(idx->files[f], file) == 0)
			return f;
	return -1;
}

StError
st_check_shards(const StIndex *idx, const StHeader *headers, int *bad_file,
				char **errmsg)
{
	ShardEntry *entries = palloc(sizeof(ShardEntry) * Max(idx->nentries, 1));
	StError		err = ST_OK;

	for (int i = 0; i < idx->nentries; i++)
	{
		entries[i].name = idx->tensor_names[i];
		entries[i].file = file_position(idx, idx->tensor_files[i]);
		entries[i].seen = false;
	}
	qsort(entries, idx->nentries, sizeof(ShardEntry), cmp_shard_entry);
	for (int f = 0; f < idx->nfiles && err == ST_OK; f++)
	{
		for (int t = 0; t < headers[f].ntensors && err == ST_OK; t++)
		{
			ShardEntry	key = {.name = headers[f].tensors[t].name};
			ShardEntry *e = bsearch(&key, entries, idx->nentries,
									sizeof(ShardEntry), cmp_shard_entry);

			if (e == NULL || e->file != f)
			{
				*bad_file = f;
				*errmsg = psprintf("tensor \"%s\" is not mapped to this shard by the index",
								   key.name);
				err = ST_ERR_SCHEMA;
			}
			else
				e->seen = true;
		}
	}
	for (int i = 0; i < idx->nentries && err == ST_OK; i++)
	{
		if (!entries[i].seen)
		{
			*bad_file = -1;
			*errmsg = psprintf("tensor \"%s\" is missing from shard \"%s\"",
							   entries[i].name, idx->files[entries[i].file]);
			err = ST_ERR_SCHEMA;
		}
	}
	pfree(entries);
	return err;
}

void
st_merge_metadata(const StHeader *headers, int n, StHeader *out)
{
	int			cap = 0;

	out->has_metadata = false;
	out->nmeta = 0;
	for (int f = 0; f < n; f++)
	{
		out->has_metadata |= headers[f].has_metadata;
		cap += headers[f].nmeta;
	}
	out->meta_keys = palloc(sizeof(char *) * Max(cap, 1));
	out->meta_values = palloc(sizeof(char *) * Max(cap, 1));
	for (int f = 0; f < n; f++)
	{
		for (int i = 0; i < headers[f].nmeta; i++)
		{
			bool		dup = false;

			for (int j = 0; j < out->nmeta && !dup; j++)
				dup = strcmp(out->meta_keys[j], headers[f].meta_keys[i]) == 0;
			if (dup)
				continue;
			out->meta_keys[out->nmeta] = headers[f].meta_keys[i];
			out->meta_values[out->nmeta++] = headers[f].meta_values[i];
		}
	}
}


/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/*
 * A JSON string escaped exactly as serde_json does, so headers match the
 * reference writer byte for byte: only '"', '\\' and control characters are
 * escaped, with short forms where JSON has them and lower-case \u00xx
 * otherwise; '/', DEL and non-ASCII UTF-8 are written as they are.
 */
void
st_write_json_string(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		switch (*p)
		{
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			default:
				if (*p < 0x20)
					appendStringInfo(buf, "\\u%04x", *p);
				else
					appendStringInfoCharMacro(buf, (char) *p);
				break;
		}
	}
	appendStringInfoChar(buf, '"');
}

static void
write_tensor(StringInfo buf, const StTensor *t)
{
	st_write_json_string(buf, t->name);
	appendStringInfoString(buf, ":{\"dtype\":");
	st_write_json_string(buf, soup_dtype_st_name(t->dtype));
	appendStringInfoString(buf, ",\"shape\":[");
	for (int i = 0; i < t->ndim; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		appendStringInfo(buf, "%lld", (long long) t->shape[i]);
	}
	appendStringInfo(buf, "],\"data_offsets\":[%lld,%lld]}",
					 (long long) t->begin, (long long) t->end);
}

/* {"key":"value",...} of h's metadata, in header order. */
static void
write_metadata_object(StringInfo buf, const StHeader *h)
{
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < h->nmeta; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		st_write_json_string(buf, h->meta_keys[i]);
		appendStringInfoChar(buf, ':');
		st_write_json_string(buf, h->meta_values[i]);
	}
	appendStringInfoChar(buf, '}');
}

char *
st_metadata_json(const StHeader *h)
{
	StringInfoData buf;

	if (!h->has_metadata)
		return NULL;
	initStringInfo(&buf);
	write_metadata_object(&buf, h);
	return buf.data;
}

void
st_write_header(const StHeader *h, StringInfo buf)
{
	int			start = buf->len;

	appendStringInfoChar(buf, '{');
	if (h->has_metadata)
	{
		appendStringInfoString(buf, "\"__metadata__\":");
		write_metadata_object(buf, h);
	}
	for (int i = 0; i < h->ntensors; i++)
	{
		if (i > 0 || h->has_metadata)
			appendStringInfoChar(buf, ',');
		write_tensor(buf, &h->tensors[i]);
	}
	appendStringInfoChar(buf, '}');

	/* the reference pads with spaces so the data buffer starts 8-aligned */
	while ((buf->len - start) % 8 != 0)
		appendStringInfoChar(buf, ' ');
}
