/*
 * tensor_text.c - text input and output of soup.tensor.
 *
 * Grammar (white space allowed between tokens):
 *
 *   tensor := [ dtype [ '(' dim { ',' dim } ')' ] ':' ] body
 *   body   := nested | number | '\x' hexdigits
 *   nested := '[' [ (nested | number) { ',' (nested | number) } ] ']'
 *
 * dtype defaults to f32.  A nested body gives the shape as in numpy
 * ([[1,2],[3,4]] is 2x2); a bare number is a 0-d tensor.  An explicit shape
 * is needed only where nesting cannot say it (a zero dimension before the
 * last) and for the \x form, which carries the packed little-endian bytes of
 * any dtype.  Output uses nesting for numbers and the \x form for the dtypes
 * without a decimal notation (f8 variants, c64), so every value round-trips:
 * floats print with the fewest digits that read back to the same bits, NaN
 * compared by class.
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "tensor.h"

PG_FUNCTION_INFO_V1(soup_tensor_in);
PG_FUNCTION_INFO_V1(soup_tensor_out);

typedef struct TextParser
{
	const char *input;			/* whole input, for messages */
	const char *p;				/* cursor */
	int			ndim;			/* deepest '[' level seen + 1 */
	int32		dims[SOUP_MAX_NDIM];
	bool		dim_set[SOUP_MAX_NDIM];
	int			leaf_depth;		/* level of the numbers, -1 before any */
	int			ntokens;
	int			maxtokens;
	const char **tokens;		/* start of each number */
} TextParser;

static void
syntax_error(TextParser *tp, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type soup.tensor: \"%s\"",
					tp->input),
			 errdetail("%s at character %d.", why,
					   (int) (tp->p - tp->input) + 1)));
}

static void
skip_space(TextParser *tp)
{
	while (isspace((unsigned char) *tp->p))
		tp->p++;
}

static bool
is_token_end(char c)
{
	return c == '\0' || c == ',' || c == ']' || isspace((unsigned char) c);
}

static void
add_token(TextParser *tp)
{
	if (tp->ntokens == tp->maxtokens)
	{
		if (tp->maxtokens >= (int) (SOUP_MAX_DATA_BYTES / 2))
			syntax_error(tp, "too many elements");
		tp->maxtokens *= 2;
		/* a tensor that prints to text reads back: past 2^27 elements the
		 * token array needs more than MaxAllocSize */
		tp->tokens = repalloc_huge(tp->tokens, sizeof(char *) * tp->maxtokens);
	}
	tp->tokens[tp->ntokens++] = tp->p;
	while (!is_token_end(*tp->p))
		tp->p++;
}

/*
 * Record that a '[' at level depth held count items: every array at one
 * level must hold the same count, which makes the nesting rectangular.
 */
static void
set_dim(TextParser *tp, int depth, int32 count)
{
	if (!tp->dim_set[depth])
	{
		tp->dim_set[depth] = true;
		tp->dims[depth] = count;
	}
	else if (tp->dims[depth] != count)
		syntax_error(tp, "sub-arrays have different lengths");
}

static void
parse_nested(TextParser *tp, int depth)
{
	int32		count = 0;

	if (depth >= SOUP_MAX_NDIM)
		syntax_error(tp, "too many dimensions");
	if (tp->leaf_depth >= 0 && depth > tp->leaf_depth)
		syntax_error(tp, "inconsistent nesting");
	tp->ndim = Max(tp->ndim, depth + 1);
	tp->p++;					/* '[' */
	skip_space(tp);
	if (*tp->p == ']')
	{
		tp->p++;
		set_dim(tp, depth, 0);
		return;
	}
	for (;;)
	{
		skip_space(tp);
		if (*tp->p == '[')
			parse_nested(tp, depth + 1);
		else
		{
			if (tp->leaf_depth < 0)
				tp->leaf_depth = depth;
			if (tp->leaf_depth != depth || depth + 1 < tp->ndim)
				syntax_error(tp, "inconsistent nesting");
			if (is_token_end(*tp->p))
				syntax_error(tp, "expected a number");
			add_token(tp);
		}
		count++;
		skip_space(tp);
		if (*tp->p == ']')
			break;
		if (*tp->p != ',')
			syntax_error(tp, "expected \",\" or \"]\"");
		tp->p++;
	}
	tp->p++;
	set_dim(tp, depth, count);
}

/* Parse an optional "dtype[(dims)]:" prefix. */
static SoupDtype
parse_prefix(TextParser *tp, int *ndim, int32 *dims)
{
	const char *start = tp->p;
	SoupDtype	dt;

	*ndim = -1;
	while (isalnum((unsigned char) *tp->p) || *tp->p == '_')
		tp->p++;
	if (tp->p == start || (*tp->p != ':' && *tp->p != '('))
	{
		tp->p = start;			/* no prefix: "NaN", "1.5", "[...]" */
		return SOUP_DT_F32;
	}
	dt = soup_dtype_from_name(start, tp->p - start);
	if (dt == SOUP_DT_INVALID)
		syntax_error(tp, "unknown dtype");
	if (*tp->p == '(')
	{
		tp->p++;
		*ndim = 0;
		skip_space(tp);
		while (*tp->p != ')')
		{
			char	   *end;
			long		d;

			if (*ndim >= SOUP_MAX_NDIM)
				syntax_error(tp, "too many dimensions");
			errno = 0;
			d = strtol(tp->p, &end, 10);
			if (end == tp->p || errno != 0 || d < 0 || d > PG_INT32_MAX)
				syntax_error(tp, "invalid dimension");
			dims[(*ndim)++] = (int32) d;
			tp->p = end;
			skip_space(tp);
			if (*tp->p == ',')
				tp->p++;
			else if (*tp->p != ')')
				syntax_error(tp, "expected \",\" or \")\"");
			skip_space(tp);
		}
		tp->p++;
	}
	if (*tp->p != ':')
		syntax_error(tp, "expected \":\" after the dtype");
	tp->p++;
	return dt;
}

static double
parse_float(TextParser *tp, const char *tok, bool single, float *fout)
{
	char	   *end;
	double		d = 0;
	float		f = 0;

	errno = 0;
	if (single)
		f = strtof(tok, &end);
	else
		d = strtod(tok, &end);
	if (end == tok || !is_token_end(*end))
	{
		tp->p = tok;
		syntax_error(tp, "invalid number");
	}
	/* overflow is an error; underflow to zero or a subnormal is not */
	if (errno == ERANGE && (single ? isinf(f) : isinf(d)))
	{
		tp->p = tok;
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range in soup.tensor input: \"%s\"",
						pnstrdup(tok, end - tok))));
	}
	*fout = f;
	return d;
}

static void
int_out_of_range(TextParser *tp, const char *tok, SoupDtype dt)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value \"%s\" is out of range for dtype %s",
					pnstrdup(tok, strcspn(tok, ", \t\n\r]")),
					soup_dtype_name(dt))));
}

static void
store_integer(TextParser *tp, const char *tok, SoupDtype dt, char *dst)
{
	int			size = soup_dtype_size(dt);
	bool		is_unsigned = (dt == SOUP_DT_U8 || dt == SOUP_DT_U16 ||
							   dt == SOUP_DT_U32 || dt == SOUP_DT_U64 ||
							   dt == SOUP_DT_BOOL);
	char	   *end;
	uint64		u;

	errno = 0;
	if (dt == SOUP_DT_BOOL && pg_strncasecmp(tok, "true", 4) == 0 && is_token_end(tok[4]))
		u = 1, end = (char *) tok + 4;
	else if (dt == SOUP_DT_BOOL && pg_strncasecmp(tok, "false", 5) == 0 && is_token_end(tok[5]))
		u = 0, end = (char *) tok + 5;
	else if (is_unsigned)
	{
		if (*tok == '-')
			int_out_of_range(tp, tok, dt);
		u = strtoull(tok, &end, 10);
	}
	else
	{
		int64		s = strtoll(tok, &end, 10);
		int			bits = size * 8;

		if (bits < 64 && (s < -((int64) 1 << (bits - 1)) ||
						  s >= ((int64) 1 << (bits - 1))))
			int_out_of_range(tp, tok, dt);
		u = (uint64) s;
	}
	if (end == tok || !is_token_end(*end))
	{
		tp->p = tok;
		syntax_error(tp, "invalid integer");
	}
	if (errno == ERANGE ||
		(is_unsigned && size < 8 && u >= ((uint64) 1 << (size * 8))))
		int_out_of_range(tp, tok, dt);
	/* little-endian host (checked in dtype.c): the low bytes come first */
	memcpy(dst, &u, size);
}

static void
store_tokens(TextParser *tp, SoupDtype dt, SoupTensor *t)
{
	char	   *data = SOUP_TENSOR_DATA(t);
	int			size = soup_dtype_size(dt);

	if (!soup_dtype_is_float(dt) && !soup_dtype_is_integer(dt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("dtype %s has no decimal notation", soup_dtype_name(dt)),
				 errhint("Write its packed little-endian bytes: %s(dims):\\x....",
						 soup_dtype_name(dt))));
	for (int i = 0; i < tp->ntokens; i++)
	{
		const char *tok = tp->tokens[i];
		char	   *dst = data + (Size) i * size;
		float		f;
		double		d;

		if (soup_dtype_is_integer(dt))
		{
			store_integer(tp, tok, dt, dst);
			continue;
		}
		d = parse_float(tp, tok, dt == SOUP_DT_F32, &f);
		if (dt == SOUP_DT_F32)
			memcpy(dst, &f, sizeof(float));
		else
			soup_store_f64(dt, &d, dst, 1);
	}
}

static SoupTensor *
parse_hex_body(TextParser *tp, SoupDtype dt, int ndim, int32 *dims)
{
	const char *hex = tp->p + 2;
	size_t		len = strcspn(hex, " \t\n\r");
	SoupTensor *t;

	if (len % 2 != 0)
		syntax_error(tp, "odd number of hex digits");
	if (ndim < 0)
	{
		ndim = 1;
		dims[0] = (int32) Min(len / 2 / soup_dtype_size(dt), PG_INT32_MAX);
	}
	/* compare before allocating: a short input cannot claim a huge shape */
	if ((int64) soup_shape_numel(ndim, dims) * soup_dtype_size(dt) != (int64) (len / 2))
		syntax_error(tp, "number of bytes does not match the shape");
	t = soup_tensor_new(dt, ndim, dims);
	hex_decode(hex, len, SOUP_TENSOR_DATA(t));
	tp->p = hex + len;
	return t;
}

static SoupTensor *
parse_tensor(TextParser *tp)
{
	int32		dims[SOUP_MAX_NDIM];
	int			ndim;
	SoupDtype	dt;
	SoupTensor *t;

	skip_space(tp);
	dt = parse_prefix(tp, &ndim, dims);
	skip_space(tp);
	if (tp->p[0] == '\\' && tp->p[1] == 'x')
	{
		t = parse_hex_body(tp, dt, ndim, dims);
		skip_space(tp);
		if (*tp->p != '\0')
			syntax_error(tp, "junk after the value");
		return t;
	}

	tp->maxtokens = 64;
	tp->tokens = palloc(sizeof(char *) * tp->maxtokens);
	if (*tp->p == '[')
		parse_nested(tp, 0);
	else if (!is_token_end(*tp->p))
		add_token(tp);			/* a 0-d tensor */
	else
		syntax_error(tp, "expected a value");
	skip_space(tp);
	if (*tp->p != '\0')
		syntax_error(tp, "junk after the value");

	if (ndim < 0)
		t = soup_tensor_new(dt, tp->ndim, tp->dims);
	else
	{
		/* an explicit shape takes a flat or an exactly nested body; checked
		 * before allocating, so a short input cannot claim a huge shape */
		if (soup_shape_numel(ndim, dims) != tp->ntokens ||
			(tp->ndim > 1 && (tp->ndim != ndim ||
							  memcmp(tp->dims, dims, sizeof(int32) * ndim) != 0)))
			syntax_error(tp, "values do not match the shape");
		t = soup_tensor_new(dt, ndim, dims);
	}
	if (t->numel != tp->ntokens)
		syntax_error(tp, "values do not match the shape");
	store_tokens(tp, dt, t);
	return t;
}

Datum
soup_tensor_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	TextParser	tp = {0};

	tp.input = str;
	tp.p = str;
	tp.leaf_depth = -1;
	PG_RETURN_SOUP_TENSOR_P(parse_tensor(&tp));
}

/* ---- output ---- */

/*
 * The fewest significant digits that read back to the same f16 or bf16 bits
 * (NaN by class).  Printing the double nearest that short decimal with
 * PostgreSQL's shortest-form routine keeps the notation of float8 output.
 */
static void
append_half(char *buf, size_t size, SoupDtype dt, const char *src)
{
	double		d;

	soup_load_f64(dt, src, &d, 1);
	if (isnan(d) || isinf(d))
	{
		double_to_shortest_decimal_buf(d, buf);
		return;
	}
	for (int digits = 1; digits <= 17; digits++)
	{
		double		back;
		uint16		bits;

		snprintf(buf, size, "%.*g", digits, d);
		back = strtod(buf, NULL);
		soup_store_f64(dt, &back, &bits, 1);
		if (memcmp(&bits, src, sizeof(bits)) == 0)
		{
			double_to_shortest_decimal_buf(back, buf);
			return;
		}
	}
	double_to_shortest_decimal_buf(d, buf);
}

static void
append_element(StringInfo out, SoupDtype dt, const char *src)
{
	char		buf[64];

	switch (dt)
	{
		case SOUP_DT_F64:
			{
				double		d;

				memcpy(&d, src, sizeof(d));
				double_to_shortest_decimal_buf(d, buf);
				break;
			}
		case SOUP_DT_F32:
			{
				float		f;

				memcpy(&f, src, sizeof(f));
				float_to_shortest_decimal_buf(f, buf);
				break;
			}
		case SOUP_DT_F16:
		case SOUP_DT_BF16:
			append_half(buf, sizeof(buf), dt, src);
			break;
		case SOUP_DT_I8:
			snprintf(buf, sizeof(buf), "%d", (int) *(const int8 *) src);
			break;
		case SOUP_DT_I16:
			{
				int16		v;

				memcpy(&v, src, 2);
				snprintf(buf, sizeof(buf), "%d", (int) v);
				break;
			}
		case SOUP_DT_I32:
			{
				int32		v;

				memcpy(&v, src, 4);
				snprintf(buf, sizeof(buf), "%d", v);
				break;
			}
		case SOUP_DT_I64:
			{
				int64		v;

				memcpy(&v, src, 8);
				snprintf(buf, sizeof(buf), INT64_FORMAT, v);
				break;
			}
		default:
			{
				/*
				 * unsigned and bool: zero-extend the little-endian bytes (a
				 * bool byte other than 0 or 1 prints as it is, so it reads
				 * back unchanged)
				 */
				uint64		v = 0;

				memcpy(&v, src, soup_dtype_size(dt));
				snprintf(buf, sizeof(buf), UINT64_FORMAT, v);
				break;
			}
	}
	appendStringInfoString(out, buf);
}

static void
append_nested(StringInfo out, const SoupTensor *t, int depth, const char **src)
{
	int			size = soup_dtype_size((SoupDtype) t->dtype);

	appendStringInfoChar(out, '[');
	for (int32 i = 0; i < t->dims[depth]; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		if (depth + 1 < t->ndim)
			append_nested(out, t, depth + 1, src);
		else
		{
			append_element(out, (SoupDtype) t->dtype, *src);
			*src += size;
		}
	}
	appendStringInfoChar(out, ']');
}

static void
append_shape(StringInfo out, const SoupTensor *t)
{
	appendStringInfoChar(out, '(');
	for (int i = 0; i < t->ndim; i++)
		appendStringInfo(out, i > 0 ? ",%d" : "%d", t->dims[i]);
	appendStringInfoChar(out, ')');
}

static void
append_hex(StringInfo out, const SoupTensor *t)
{
	Size		n = SOUP_TENSOR_NBYTES(t);

	appendStringInfoString(out, ":\\x");
	enlargeStringInfo(out, (int) (2 * n + 1));
	out->len += hex_encode(SOUP_TENSOR_DATA(t), n, out->data + out->len);
	out->data[out->len] = '\0';
}

Datum
soup_tensor_out(PG_FUNCTION_ARGS)
{
	SoupTensor *t = PG_GETARG_SOUP_TENSOR_P(0);
	SoupDtype	dt = (SoupDtype) t->dtype;
	const char *src = SOUP_TENSOR_DATA(t);
	StringInfoData out;
	bool		zero_dim = false;

	initStringInfo(&out);
	appendStringInfoString(&out, soup_dtype_name(dt));
	if (!soup_dtype_is_float(dt) && !soup_dtype_is_integer(dt))
	{
		append_shape(&out, t);
		append_hex(&out, t);
		PG_RETURN_CSTRING(out.data);
	}
	/* an empty tensor of 2+ dimensions: nesting could not say its shape */
	zero_dim = t->numel == 0 && t->ndim > 1;
	if (zero_dim)
		append_shape(&out, t);
	appendStringInfoChar(&out, ':');
	if (t->ndim == 0)
		append_element(&out, dt, src);
	else if (zero_dim)
		appendStringInfoString(&out, "[]");
	else
		append_nested(&out, t, 0, &src);
	PG_RETURN_CSTRING(out.data);
}
