/*
 * test_safetensors.c - unit test of src/safetensors.c, without a server.
 *
 * 1. Every .safetensors fixture under the fixture folder (argv[1], default
 *    ../shared/fixtures/safetensors) parses, its data section ends exactly at
 *    the end of the file, the facts its README states hold, and
 *    st_write_header gives back the original header bytes.
 * 2. The sharded index.json fixture parses and agrees with the shards.
 * 3. Hand-made malformed headers and indexes fail with the expected code.
 * 4. Edge cases that must pass (empty header, zero-size tensors, escaping).
 *
 * Every parse gets a private malloc'd copy of exactly len bytes with no NUL
 * after it, so valgrind catches any read past the header.
 *
 * Prints "N passed, M failed" last; exits non-zero on any failure.
 */
#include "postgres_fe.h"

#include <dirent.h>
#include <sys/stat.h>

#include "lib/stringinfo.h"
#include "safetensors.h"

static bool verbose = false;	/* ST_VERBOSE=1: print every error message */
static int	npassed = 0;
static int	nfailed = 0;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			npassed++; \
		else \
		{ \
			nfailed++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static const char *const err_names[] = {
	"ST_OK", "ST_ERR_TRUNCATED", "ST_ERR_HEADER_TOO_LARGE", "ST_ERR_UTF8",
	"ST_ERR_JSON", "ST_ERR_SCHEMA", "ST_ERR_DTYPE", "ST_ERR_SHAPE",
	"ST_ERR_DUPLICATE", "ST_ERR_OFFSETS", "ST_ERR_TRAILING", "ST_ERR_PATH"
};

static const char *
err_name(StError e)
{
	if ((int) e >= 0 && (int) e < (int) lengthof(err_names))
		return err_names[e];
	return "?";
}

/* An exact-size copy (no terminator), so overreads show under valgrind. */
static char *
exact_copy(const char *s, size_t len)
{
	char	   *p = pg_malloc(len > 0 ? len : 1);

	memcpy(p, s, len);
	return p;
}

static StError
parse_header_n(const char *s, size_t len, StHeader *h, char **errmsg)
{
	char	   *copy = exact_copy(s, len);
	StError		e = st_parse_header(copy, len, h, errmsg);

	free(copy);
	return e;
}

static StError
parse_index_n(const char *s, size_t len, StIndex *ix, char **errmsg)
{
	char	   *copy = exact_copy(s, len);
	StError		e = st_parse_index(copy, len, ix, errmsg);

	/* metadata_json must be a copy, not a pointer into the input */
	free(copy);
	return e;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	struct stat sb;
	char	   *buf;

	if (f == NULL || fstat(fileno(f), &sb) != 0)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	buf = pg_malloc(sb.st_size > 0 ? sb.st_size : 1);
	if (fread(buf, 1, sb.st_size, f) != (size_t) sb.st_size)
	{
		fprintf(stderr, "short read on %s\n", path);
		exit(2);
	}
	fclose(f);
	*len = sb.st_size;
	return buf;
}

static const StTensor *
find_tensor(const StHeader *h, const char *name)
{
	for (int i = 0; i < h->ntensors; i++)
		if (strcmp(h->tensors[i].name, name) == 0)
			return &h->tensors[i];
	return NULL;
}

/* Tensor name has this dtype and shape (shape given as ndim, dims...). */
static bool
tensor_is(const StHeader *h, const char *name, SoupDtype dt, int ndim, ...)
{
	const StTensor *t = find_tensor(h, name);
	va_list		ap;
	bool		ok;

	if (t == NULL || t->dtype != dt || t->ndim != ndim)
		return false;
	ok = true;
	va_start(ap, ndim);
	for (int i = 0; i < ndim; i++)
		if (t->shape[i] != va_arg(ap, int64))
			ok = false;
	va_end(ap);
	return ok;
}

static const char *
meta_get(const StHeader *h, const char *key)
{
	for (int i = 0; i < h->nmeta; i++)
		if (strcmp(h->meta_keys[i], key) == 0)
			return h->meta_values[i];
	return NULL;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t		ls = strlen(s);
	size_t		lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int
count_dtypes(const StHeader *h)
{
	bool		seen[SOUP_DT_MAX_CODE + 1] = {0};
	int			n = 0;

	for (int i = 0; i < h->ntensors; i++)
		if (!seen[h->tensors[i].dtype])
			seen[h->tensors[i].dtype] = true, n++;
	return n;
}

/* ------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------ */

typedef struct FixtureList
{
	char	  **paths;
	int			n;
	int			max;
} FixtureList;

static void
collect(const char *dir, const char *suffix, FixtureList *fl)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
	{
		fprintf(stderr, "cannot open fixture folder %s\n", dir);
		exit(2);
	}
	while ((de = readdir(d)) != NULL)
	{
		char	   *path;
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		path = psprintf("%s/%s", dir, de->d_name);
		if (stat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			collect(path, suffix, fl);
		else if (ends_with(de->d_name, suffix))
		{
			if (fl->n == fl->max)
			{
				fl->max = fl->max ? fl->max * 2 : 16;
				fl->paths = pg_realloc(fl->paths, sizeof(char *) * fl->max);
			}
			fl->paths[fl->n++] = path;
		}
	}
	closedir(d);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sums over the six shards, checked against the index and model.safetensors */
static int	shard_tensors = 0;
static int64 shard_data = 0;
static StHeader model_hdr;		/* non_sharded/model.safetensors */
static StHeader shard_hdr[6];

static void
check_model(const StHeader *h, size_t hlen)
{
	CHECK(h->ntensors == 36, "model: %d tensors", h->ntensors);
	CHECK(count_dtypes(h) == 12, "model: %d dtypes", count_dtypes(h));
	CHECK(h->data_len == 4305, "model: data %lld", (long long) h->data_len);
	CHECK(tensor_is(h, "bfloat16_357", SOUP_DT_BF16, 3,
					(int64) 3, (int64) 5, (int64) 7), "model: bfloat16_357");
	CHECK(tensor_is(h, "float8_e4m3fn_3", SOUP_DT_F8_E4M3, 1, (int64) 3),
		  "model: float8_e4m3fn_3");
	CHECK(tensor_is(h, "float8_e5m2_35", SOUP_DT_F8_E5M2, 2,
					(int64) 3, (int64) 5), "model: float8_e5m2_35");
	CHECK(tensor_is(h, "bool_3", SOUP_DT_BOOL, 1, (int64) 3), "model: bool_3");
}

/* Raw bytes of a tensor, as the README quotes them. */
static bool
data_is(const char *file, size_t hlen, const StHeader *h, const char *name,
		const unsigned char *want, int n)
{
	const StTensor *t = find_tensor(h, name);

	if (t == NULL || t->end - t->begin != n)
		return false;
	return memcmp(file + 8 + hlen + t->begin, want, n) == 0;
}

static void
check_facts(const char *rel, const char *file, size_t hlen, const StHeader *h)
{
	static const unsigned char bf16_3[] = {0x53, 0xbf, 0xbf, 0xbe, 0x58, 0x3f};
	static const unsigned char f16_3[] = {0xec, 0x2f, 0x93, 0x3e, 0x47, 0x37};
	static const unsigned char e4m3_3[] = {0xae, 0xa9, 0xb8};
	static const unsigned char e5m2_3[] = {0xba, 0xb2, 0xba};

	if (ends_with(rel, "non_sharded/model.safetensors"))
	{
		check_model(h, hlen);
		CHECK(hlen == 2528 && !h->has_metadata, "model: header %zu", hlen);
		CHECK(data_is(file, hlen, h, "bfloat16_3", bf16_3, 6), "bfloat16_3 data");
		CHECK(data_is(file, hlen, h, "float16_3", f16_3, 6), "float16_3 data");
		CHECK(data_is(file, hlen, h, "float8_e4m3fn_3", e4m3_3, 3), "e4m3 data");
		CHECK(data_is(file, hlen, h, "float8_e5m2_3", e5m2_3, 3), "e5m2 data");
		model_hdr = *h;
	}
	else if (ends_with(rel, "model.with_metadata.safetensors"))
	{
		check_model(h, hlen);
		CHECK(hlen == 2576 && h->has_metadata && h->nmeta == 2,
			  "with_metadata: header %zu, %d meta", hlen, h->nmeta);
		CHECK(h->nmeta == 2 && strcmp(h->meta_keys[0], "test") == 0 &&
			  strcmp(h->meta_values[0], "metadata") == 0 &&
			  strcmp(h->meta_keys[1], "version") == 0 &&
			  strcmp(h->meta_values[1], "2.2") == 0,
			  "with_metadata: metadata in header order");
		CHECK(data_is(file, hlen, h, "bfloat16_3", bf16_3, 6), "bfloat16_3 data");
	}
	else if (ends_with(rel, "model.numpy.safetensors"))
	{
		CHECK(h->ntensors == 27 && count_dtypes(h) == 9,
			  "numpy: %d tensors, %d dtypes", h->ntensors, count_dtypes(h));
		CHECK(!h->has_metadata, "numpy: no metadata");
		CHECK(tensor_is(h, "int64_357", SOUP_DT_I64, 3,
						(int64) 3, (int64) 5, (int64) 7), "numpy: int64_357");
	}
	else if (strstr(rel, "sharded/model-0000") != NULL)
	{
		int			k = atoi(strstr(rel, "model-0000") + 10);

		CHECK(h->has_metadata && h->nmeta == 1 &&
			  strcmp(meta_get(h, "format"), "pt") == 0, "%s: format=pt", rel);
		shard_tensors += h->ntensors;
		shard_data += h->data_len;
		if (k >= 1 && k <= 6)
			shard_hdr[k - 1] = *h;
		if (k == 5)
			CHECK(tensor_is(h, "int64_357", SOUP_DT_I64, 3,
							(int64) 3, (int64) 5, (int64) 7), "shard 5: I64");
	}
	else if (ends_with(rel, "model-mnist.safetensors"))
	{
		CHECK(h->ntensors == 6 && !h->has_metadata && hlen == 424,
			  "mnist: %d tensors", h->ntensors);
		CHECK(tensor_is(h, "fc1.weight", SOUP_DT_F32, 2, (int64) 10, (int64) 784),
			  "mnist: fc1.weight [10,784]");
		CHECK(tensor_is(h, "conv2.weight", SOUP_DT_F32, 4, (int64) 16, (int64) 8,
						(int64) 3, (int64) 3), "mnist: conv2.weight");
		CHECK(tensor_is(h, "conv1.bias", SOUP_DT_F32, 1, (int64) 8),
			  "mnist: conv1.bias");
		CHECK(count_dtypes(h) == 1 && h->tensors[0].dtype == SOUP_DT_F32,
			  "mnist: all F32");
	}
	else if (ends_with(rel, "adapter_model.safetensors"))
	{
		CHECK(h->ntensors == 148 && hlen == 20928, "peft: %d tensors, header %zu",
			  h->ntensors, hlen);
		CHECK(h->has_metadata && h->nmeta == 1 &&
			  strcmp(meta_get(h, "format"), "pt") == 0, "peft: format=pt");
		CHECK(count_dtypes(h) == 1 && h->tensors[0].dtype == SOUP_DT_F32,
			  "peft: all F32");
		CHECK(tensor_is(h, "base_model.model.classifier.dense.weight",
						SOUP_DT_F32, 2, (int64) 768, (int64) 768) &&
			  tensor_is(h, "base_model.model.classifier.out_proj.weight",
						SOUP_DT_F32, 2, (int64) 2, (int64) 768) &&
			  tensor_is(h, "base_model.model.classifier.out_proj.bias",
						SOUP_DT_F32, 1, (int64) 2),
			  "peft: classifier dense [768,768], out_proj [2,768], [2]");
	}
	else
		CHECK(false, "fixture %s is not described by the test", rel);
}

/*
 * Parse one file; returns true when st_write_header reproduced its header
 * byte for byte.
 */
static bool
check_fixture(const char *path, const char *rel)
{
	size_t		flen;
	char	   *file = read_file(path, &flen);
	uint64		hlen = 0;
	StHeader	h;
	char	   *errmsg = NULL;
	StError		e;
	StringInfoData out;
	bool		same;

	CHECK(flen >= 8, "%s: shorter than 8 bytes", rel);
	if (flen < 8)
		return false;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | (unsigned char) file[i];
	CHECK(hlen <= flen - 8 && hlen <= ST_MAX_HEADER_LEN, "%s: header length", rel);
	if (hlen > flen - 8)
		return false;

	e = parse_header_n(file + 8, hlen, &h, &errmsg);
	CHECK(e == ST_OK, "%s: %s %s", rel, err_name(e), errmsg ? errmsg : "");
	if (e != ST_OK)
		return false;
	CHECK((uint64) h.data_len + 8 + hlen == flen,
		  "%s: data_len %lld + 8 + %llu != %zu", rel, (long long) h.data_len,
		  (unsigned long long) hlen, flen);
	for (int i = 1; i < h.ntensors; i++)
		CHECK(h.tensors[i].begin == h.tensors[i - 1].end, "%s: sorted", rel);
	check_facts(rel, file, hlen, &h);

	initStringInfo(&out);
	st_write_header(&h, &out);
	same = (out.len == (int) hlen && memcmp(out.data, file + 8, hlen) == 0);
	CHECK(same, "%s: rewritten header differs (%d vs %llu bytes)", rel,
		  out.len, (unsigned long long) hlen);
	if (!same)
		fprintf(stderr, "  original: %.*s\n  written:  %s\n",
				(int) Min(hlen, 300), file + 8, out.data);
	pfree(out.data);
	free(file);
	return same;
}

static void
test_fixtures(const char *dir)
{
	FixtureList fl = {0};
	StringInfoData same;
	int			nsame = 0;

	collect(dir, ".safetensors", &fl);
	qsort(fl.paths, fl.n, sizeof(char *), cmp_str);
	CHECK(fl.n == 12, "found %d .safetensors fixtures, expected 12", fl.n);

	initStringInfo(&same);
	for (int i = 0; i < fl.n; i++)
	{
		const char *rel = fl.paths[i] + strlen(dir) + 1;

		if (check_fixture(fl.paths[i], rel))
		{
			appendStringInfo(&same, "  byte-identical rewrite: %s\n", rel);
			nsame++;
		}
		else
			appendStringInfo(&same, "  DIFFERENT rewrite:      %s\n", rel);
	}
	printf("%s", same.data);
	printf("%d of %d fixture headers rewrite byte-identically\n", nsame, fl.n);

	CHECK(shard_tensors == 36, "shards hold %d tensors", shard_tensors);
	CHECK(shard_data == 4305, "shards hold %lld data bytes", (long long) shard_data);
}

/* The index agrees with the shards it names and with model.safetensors. */
/* st_check_shards and st_merge_metadata on the real shards, then broken. */
static void
test_shard_checks(const StIndex *ix)
{
	StHeader	hs[6];
	StHeader	merged = {0};
	StHeader	swap;
	int			bad = -2;
	char	   *errmsg = NULL;
	StError		e;

	if (ix->nfiles != 6)
		return;
	for (int f = 0; f < 6; f++)
		hs[f] = shard_hdr[atoi(strstr(ix->files[f], "model-0000") + 10) - 1];
	e = st_check_shards(ix, hs, &bad, &errmsg);
	CHECK(e == ST_OK, "shards: %s %s", err_name(e), e ? errmsg : "");
	st_merge_metadata(hs, 6, &merged);
	CHECK(merged.has_metadata && merged.nmeta == 1 &&
		  strcmp(merged.meta_keys[0], "format") == 0 &&
		  strcmp(merged.meta_values[0], "pt") == 0,
		  "shards: merged metadata has %d keys", merged.nmeta);

	/* shards read from the wrong files: the first misplaced tensor's file */
	swap = hs[0], hs[0] = hs[1], hs[1] = swap;
	e = st_check_shards(ix, hs, &bad, &errmsg);
	CHECK(e == ST_ERR_SCHEMA && bad == 0 && strstr(errmsg, "is not mapped to this shard"),
		  "shards swapped: %s bad=%d", err_name(e), bad);
	swap = hs[0], hs[0] = hs[1], hs[1] = swap;

	/* a shard that lacks a tensor the index maps to it */
	hs[2].ntensors--;
	e = st_check_shards(ix, hs, &bad, &errmsg);
	CHECK(e == ST_ERR_SCHEMA && bad == -1 && strstr(errmsg, "is missing from shard"),
		  "shard short: %s bad=%d", err_name(e), bad);
	hs[2].ntensors++;
}

/* The length prefix and data extent checks every file read goes through. */
static void
test_file_checks(void)
{
	unsigned char lenbuf[8] = {16, 0, 0, 0, 0, 0, 0, 0};
	StHeader	h = {0};
	uint64		n = 0;
	char	   *errmsg = NULL;

	CHECK(st_check_prefix(lenbuf, 7, &n, &errmsg) == ST_ERR_TRUNCATED, "prefix: 7-byte file");
	CHECK(st_check_prefix(lenbuf, 23, &n, &errmsg) == ST_ERR_TRUNCATED, "prefix: header past the end");
	CHECK(st_check_prefix(lenbuf, 24, &n, &errmsg) == ST_OK && n == 16, "prefix: exact fit");
	lenbuf[3] = 0x10;			/* 268435472 bytes > ST_MAX_HEADER_LEN */
	CHECK(st_check_prefix(lenbuf, (uint64) 1 << 40, &n, &errmsg) == ST_ERR_HEADER_TOO_LARGE,
		  "prefix: header too large");
	h.data_len = 100;
	CHECK(st_check_extent(&h, 8 + 16 + 100, 16, &errmsg) == ST_OK, "extent: exact");
	CHECK(st_check_extent(&h, 8 + 16 + 99, 16, &errmsg) == ST_ERR_TRUNCATED, "extent: short");
	CHECK(st_check_extent(&h, 8 + 16 + 101, 16, &errmsg) == ST_ERR_TRAILING, "extent: trailing");
}

static void
test_index_fixture(const char *dir)
{
	char	   *path = psprintf("%s/fluxml-safetensors-jl/sharded/model.safetensors.index.json", dir);
	size_t		len;
	char	   *json = read_file(path, &len);
	StIndex		ix;
	char	   *errmsg = NULL;
	StError		e = parse_index_n(json, len, &ix, &errmsg);
	int			agree = 0;

	CHECK(e == ST_OK, "index: %s %s", err_name(e), errmsg ? errmsg : "");
	if (e != ST_OK)
		return;
	CHECK(ix.nentries == 36, "index: %d entries", ix.nentries);
	CHECK(ix.nfiles == 6, "index: %d files", ix.nfiles);
	CHECK(ix.nfiles == 6 &&
		  strcmp(ix.files[0], "model-00001-of-00006.safetensors") == 0,
		  "index: first file");
	CHECK(ix.metadata_json != NULL &&
		  strcmp(ix.metadata_json, "{\n    \"total_size\": 4305\n  }") == 0,
		  "index: metadata_json is %s", ix.metadata_json ? ix.metadata_json : "NULL");
	CHECK(strcmp(ix.tensor_names[0], "float16_3") == 0, "index: map order");

	/* each tensor is in the shard the index names, with model's shape */
	for (int i = 0; i < ix.nentries; i++)
	{
		int			k = atoi(strstr(ix.tensor_files[i], "model-0000") + 10);
		const StTensor *t;
		const StTensor *m = find_tensor(&model_hdr, ix.tensor_names[i]);

		if (k < 1 || k > 6 || m == NULL)
			continue;
		t = find_tensor(&shard_hdr[k - 1], ix.tensor_names[i]);
		if (t != NULL && t->dtype == m->dtype && t->ndim == m->ndim &&
			t->end - t->begin == m->end - m->begin)
			agree++;
	}
	CHECK(agree == 36, "index: %d of 36 tensors agree with shards and model", agree);
	test_shard_checks(&ix);
	free(json);
}

/* ------------------------------------------------------------------------
 * Malformed and edge-case headers
 * ------------------------------------------------------------------------ */

#define T(name, dt, shape, offs) \
	"\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

typedef struct Case
{
	const char *what;
	const char *json;
	StError		expect;
	const char *in_msg;			/* the message must name this, if set */
} Case;

static const Case header_cases[] = {
	{"bad JSON: unterminated", "{\"a\":", ST_ERR_JSON, NULL},
	{"bad JSON: trailing garbage", "{} x", ST_ERR_JSON, NULL},
	{"bad JSON: trailing comma", "{" T("a", "F32", "[1]", "[0,4]") ",}", ST_ERR_JSON, NULL},
	{"bad JSON: empty", "", ST_ERR_JSON, NULL},
	{"bad JSON: only spaces", "        ", ST_ERR_JSON, NULL},
	{"bad JSON: \\u0000 in a name", "{" T("a\\u0000b", "F32", "[1]", "[0,4]") "}", ST_ERR_JSON, NULL},
	{"bad JSON: lone surrogate", "{" T("a\\ud800", "F32", "[1]", "[0,4]") "}", ST_ERR_JSON, NULL},
	{"bad JSON: leading zero", "{" T("a", "F32", "[01]", "[0,4]") "}", ST_ERR_JSON, NULL},
	{"bad JSON: raw newline in string", "{\"a\n\":1}", ST_ERR_JSON, NULL},
	{"nesting 9 deep", "{\"a\":{\"x\":[[[[[[[1]]]]]]]}}", ST_ERR_JSON, NULL},
	{"top-level array", "[]", ST_ERR_SCHEMA, NULL},
	{"top-level string", "\"x\"", ST_ERR_SCHEMA, NULL},
	{"top-level number", "8", ST_ERR_SCHEMA, NULL},
	{"tensor is an array", "{\"w\":[1]}", ST_ERR_SCHEMA, "\"w\""},
	{"tensor is a number", "{\"w\":1}", ST_ERR_SCHEMA, "\"w\""},
	{"tensor is null", "{\"w\":null}", ST_ERR_SCHEMA, "\"w\""},
	{"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_SCHEMA, "dtype"},
	{"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", ST_ERR_SCHEMA, "shape"},
	{"missing data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", ST_ERR_SCHEMA, "data_offsets"},
	{"empty entry", "{\"w\":{}}", ST_ERR_SCHEMA, "\"w\""},
	{"unknown dtype", "{" T("w", "F31", "[1]", "[0,4]") "}", ST_ERR_DTYPE, "F31"},
	{"unsupported dtype F4", "{" T("w", "F4", "[2]", "[0,1]") "}", ST_ERR_DTYPE, "\"w\""},
	{"unsupported dtype F6_E2M3", "{" T("w", "F6_E2M3", "[4]", "[0,3]") "}", ST_ERR_DTYPE, NULL},
	{"dtype in lower case", "{" T("w", "f32", "[1]", "[0,4]") "}", ST_ERR_DTYPE, NULL},
	{"dtype in SQL spelling", "{" T("w", "f8_e4m3", "[1]", "[0,1]") "}", ST_ERR_DTYPE, NULL},
	{"dtype empty", "{" T("w", "", "[1]", "[0,4]") "}", ST_ERR_DTYPE, NULL},
	{"dtype is a number", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_SCHEMA, NULL},
	{"dtype is an array", "{\"w\":{\"dtype\":[\"F32\"],\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_SCHEMA, NULL},
	{"negative dim", "{" T("w", "F32", "[-1]", "[0,4]") "}", ST_ERR_SHAPE, "\"w\""},
	{"negative zero dim", "{" T("w", "F32", "[-0]", "[0,0]") "}", ST_ERR_SHAPE, NULL},
	{"fractional dim", "{" T("w", "F32", "[1.0]", "[0,4]") "}", ST_ERR_SHAPE, "1.0"},
	{"exponent dim", "{" T("w", "F32", "[1e0]", "[0,4]") "}", ST_ERR_SHAPE, NULL},
	{"dim above 2^53", "{" T("w", "U8", "[9007199254740993]", "[0,1]") "}", ST_ERR_SHAPE, NULL},
	{"dim of 30 digits", "{" T("w", "U8", "[100000000000000000000000000000]", "[0,1]") "}", ST_ERR_SHAPE, NULL},
	{"33 dims", "{" T("w", "U8", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,1]") "}", ST_ERR_SHAPE, NULL},
	{"numel overflow", "{" T("w", "U8", "[9007199254740992,9007199254740992]", "[0,1]") "}", ST_ERR_SHAPE, "\"w\""},
	{"numel overflow before a 0", "{" T("w", "U8", "[4294967296,4294967296,4294967296,0]", "[0,0]") "}", ST_ERR_SHAPE, NULL},
	{"shape is a number", "{" T("w", "F32", "3", "[0,12]") "}", ST_ERR_SCHEMA, "shape"},
	{"shape is an object", "{" T("w", "F32", "{}", "[0,4]") "}", ST_ERR_SCHEMA, "shape"},
	{"shape holds a string", "{" T("w", "F32", "[\"3\"]", "[0,12]") "}", ST_ERR_SCHEMA, "shape"},
	{"shape holds an array", "{" T("w", "F32", "[[3]]", "[0,12]") "}", ST_ERR_SCHEMA, "shape"},
	{"shape holds null", "{" T("w", "F32", "[null]", "[0,4]") "}", ST_ERR_SCHEMA, "shape"},
	{"data_offsets of 1", "{" T("w", "F32", "[1]", "[4]") "}", ST_ERR_SCHEMA, "data_offsets"},
	{"data_offsets of 3", "{" T("w", "F32", "[1]", "[0,4,8]") "}", ST_ERR_SCHEMA, "data_offsets"},
	{"data_offsets empty", "{" T("w", "F32", "[1]", "[]") "}", ST_ERR_SCHEMA, "data_offsets"},
	{"data_offsets a number", "{" T("w", "F32", "[1]", "4") "}", ST_ERR_SCHEMA, "data_offsets"},
	{"data_offsets negative", "{" T("w", "F32", "[1]", "[-4,0]") "}", ST_ERR_OFFSETS, "\"w\""},
	{"data_offsets fractional", "{" T("w", "F32", "[1]", "[0,4.5]") "}", ST_ERR_OFFSETS, NULL},
	{"data_offsets string", "{" T("w", "F32", "[1]", "[0,\"4\"]") "}", ST_ERR_SCHEMA, NULL},
	{"begin > end", "{" T("w", "U8", "[0]", "[4,0]") "}", ST_ERR_OFFSETS, "\"w\""},
	{"size mismatch", "{" T("w", "F32", "[2,3]", "[0,23]") "}", ST_ERR_OFFSETS, "\"w\""},
	{"size mismatch, 0 for 1 element", "{" T("w", "F32", "[]", "[0,0]") "}", ST_ERR_OFFSETS, NULL},
	{"does not start at 0", "{" T("w", "F32", "[1]", "[4,8]") "}", ST_ERR_OFFSETS, "\"w\""},
	{"gap", "{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", ST_ERR_OFFSETS, "\"b\""},
	{"overlap", "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[1]", "[4,8]") "}", ST_ERR_OFFSETS, "\"b\""},
	{"same range twice", "{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[0,4]") "}", ST_ERR_OFFSETS, NULL},
	{"duplicate tensor names", "{" T("a", "F32", "[1]", "[0,4]") "," T("a", "F32", "[1]", "[4,8]") "}", ST_ERR_DUPLICATE, "\"a\""},
	{"duplicate names via escape", "{" T("a", "F32", "[1]", "[0,4]") "," T("\\u0061", "F32", "[1]", "[4,8]") "}", ST_ERR_DUPLICATE, NULL},
	{"duplicate dtype in entry", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_DUPLICATE, "dtype"},
	{"duplicate shape in entry", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_DUPLICATE, "shape"},
	{"duplicate unknown key in entry", "{\"w\":{\"x\":1,\"dtype\":\"F32\",\"x\":2,\"shape\":[1],\"data_offsets\":[0,4]}}", ST_ERR_DUPLICATE, "\"x\""},
	{"metadata value a number", "{\"__metadata__\":{\"a\":1}}", ST_ERR_SCHEMA, "\"a\""},
	{"metadata value null", "{\"__metadata__\":{\"a\":null}}", ST_ERR_SCHEMA, NULL},
	{"metadata value an object", "{\"__metadata__\":{\"a\":{}}}", ST_ERR_SCHEMA, NULL},
	{"metadata value an array", "{\"__metadata__\":{\"a\":[\"x\"]}}", ST_ERR_SCHEMA, NULL},
	{"metadata a string", "{\"__metadata__\":\"x\"}", ST_ERR_SCHEMA, "__metadata__"},
	{"metadata an array", "{\"__metadata__\":[]}", ST_ERR_SCHEMA, NULL},
	{"metadata null", "{\"__metadata__\":null}", ST_ERR_SCHEMA, NULL},
	{"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", ST_ERR_DUPLICATE, NULL},
	{"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", ST_ERR_DUPLICATE, "\"k\""},
	{"empty tensor name", "{" T("", "F32", "[1]", "[0,4]") "}", ST_ERR_SCHEMA, NULL},
};

static const Case index_cases[] = {
	{"index: ../x", "{\"weight_map\":{\"a\":\"../x\"}}", ST_ERR_PATH, "../x"},
	{"index: a/b", "{\"weight_map\":{\"a\":\"a/b\"}}", ST_ERR_PATH, "a/b"},
	{"index: /abs", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", ST_ERR_PATH, NULL},
	{"index: a\\b", "{\"weight_map\":{\"a\":\"a\\\\b\"}}", ST_ERR_PATH, NULL},
	{"index: empty shard", "{\"weight_map\":{\"a\":\"\"}}", ST_ERR_PATH, "\"a\""},
	{"index: .", "{\"weight_map\":{\"a\":\".\"}}", ST_ERR_PATH, NULL},
	{"index: ..", "{\"weight_map\":{\"a\":\"..\"}}", ST_ERR_PATH, NULL},
	{"index: shard \\u0000", "{\"weight_map\":{\"a\":\"x\\u0000y\"}}", ST_ERR_JSON, NULL},
	{"index: no weight_map", "{\"metadata\":{}}", ST_ERR_SCHEMA, "weight_map"},
	{"index: empty object", "{}", ST_ERR_SCHEMA, NULL},
	{"index: weight_map an array", "{\"weight_map\":[]}", ST_ERR_SCHEMA, NULL},
	{"index: weight_map null", "{\"weight_map\":null}", ST_ERR_SCHEMA, NULL},
	{"index: shard a number", "{\"weight_map\":{\"a\":1}}", ST_ERR_SCHEMA, "\"a\""},
	{"index: shard an object", "{\"weight_map\":{\"a\":{}}}", ST_ERR_SCHEMA, NULL},
	{"index: top-level array", "[]", ST_ERR_SCHEMA, NULL},
	{"index: duplicate tensor", "{\"weight_map\":{\"a\":\"x\",\"b\":\"x\",\"a\":\"y\"}}", ST_ERR_DUPLICATE, "\"a\""},
	{"index: duplicate weight_map", "{\"weight_map\":{},\"weight_map\":{}}", ST_ERR_DUPLICATE, NULL},
	{"index: duplicate metadata", "{\"metadata\":1,\"metadata\":2,\"weight_map\":{}}", ST_ERR_DUPLICATE, NULL},
	{"index: empty tensor name", "{\"weight_map\":{\"\":\"x\"}}", ST_ERR_SCHEMA, NULL},
	{"index: bad JSON", "{\"weight_map\":{\"a\":\"x\"}", ST_ERR_JSON, NULL},
	{"index: too deep", "{\"metadata\":[[[[[[[[[]]]]]]]]],\"weight_map\":{}}", ST_ERR_JSON, NULL},
};

static void
run_case(const Case *c, bool index)
{
	char	   *errmsg = NULL;
	StError		e;

	if (index)
	{
		StIndex		ix;

		e = parse_index_n(c->json, strlen(c->json), &ix, &errmsg);
	}
	else
	{
		StHeader	h;

		e = parse_header_n(c->json, strlen(c->json), &h, &errmsg);
	}
	if (verbose)
		printf("  %-34s %-18s %s\n", c->what, err_name(e), errmsg ? errmsg : "");
	CHECK(e == c->expect, "%s: got %s (%s), want %s", c->what, err_name(e),
		  errmsg ? errmsg : "no message", err_name(c->expect));
	if (e == c->expect && e != ST_OK)
	{
		CHECK(errmsg != NULL && errmsg[0] != '\0', "%s: no message", c->what);
		if (c->in_msg != NULL)
			CHECK(errmsg != NULL && strstr(errmsg, c->in_msg) != NULL,
				  "%s: message \"%s\" does not name %s", c->what,
				  errmsg ? errmsg : "", c->in_msg);
	}
}

/* Headers that need bytes a C string literal cannot hold, or are huge. */
static void
test_raw_headers(void)
{
	static const struct
	{
		const char *what;
		const char *bytes;
		size_t		len;
		StError		expect;
	}			raw[] = {
		{"invalid UTF-8 0xff", "{\"a\xff\":1}", 8, ST_ERR_UTF8},
		{"truncated UTF-8", "{\"a\xc3\":1}", 8, ST_ERR_UTF8},
		{"overlong UTF-8", "{\"\xc0\xaf\":1}", 9, ST_ERR_UTF8},
		{"UTF-8 surrogate", "{\"\xed\xa0\x80\":1}", 10, ST_ERR_UTF8},
		{"UTF-8 above U+10FFFF", "{\"\xf4\x90\x80\x80\":1}", 11, ST_ERR_UTF8},
		{"NUL inside", "{\"a\0b\":1}", 9, ST_ERR_UTF8},
		{"NUL padding", "{}\0\0\0\0\0\0", 8, ST_ERR_UTF8},
		{"UTF-8 cut at the end", "{}  \xe2\x82", 6, ST_ERR_UTF8},
	};
	StHeader	h;
	char	   *errmsg;
	StError		e;
	char	   *deep;
	const int	ndeep = 100000;

	for (int i = 0; i < (int) lengthof(raw); i++)
	{
		errmsg = NULL;
		e = parse_header_n(raw[i].bytes, raw[i].len, &h, &errmsg);
		if (verbose)
			printf("  %-34s %-18s %s\n", raw[i].what, err_name(e),
				   errmsg ? errmsg : "");
		CHECK(e == raw[i].expect, "%s: got %s (%s)", raw[i].what, err_name(e),
			  errmsg ? errmsg : "");
	}

	/* 100000 '[': must be refused before the recursive parser sees it */
	deep = pg_malloc(ndeep);
	memset(deep, '[', ndeep);
	e = parse_header_n(deep, ndeep, &h, &errmsg);
	CHECK(e == ST_ERR_JSON, "100000 '[': got %s", err_name(e));
	memset(deep, '{', ndeep);
	e = parse_header_n(deep, ndeep, &h, &errmsg);
	CHECK(e == ST_ERR_JSON, "100000 '{': got %s", err_name(e));
	{
		StIndex		ix;

		memset(deep, '[', ndeep);
		e = parse_index_n(deep, ndeep, &ix, &errmsg);
		CHECK(e == ST_ERR_JSON, "index of 100000 '[': got %s", err_name(e));
	}
	free(deep);

	/* the size limit is checked before the text is read */
	e = st_parse_header("{}", (size_t) ST_MAX_HEADER_LEN + 1, &h, &errmsg);
	CHECK(e == ST_ERR_HEADER_TOO_LARGE, "too large: got %s", err_name(e));
}

/* ------------------------------------------------------------------------
 * Headers that must parse
 * ------------------------------------------------------------------------ */

static StError
parse_ok(const char *json, StHeader *h)
{
	char	   *errmsg = NULL;
	StError		e = parse_header_n(json, strlen(json), h, &errmsg);

	CHECK(e == ST_OK, "%s: got %s (%s)", json, err_name(e), errmsg ? errmsg : "");
	return e;
}

/* Written form of a parsed header. */
static char *
rewrite(const StHeader *h)
{
	StringInfoData buf;

	initStringInfo(&buf);
	st_write_header(h, &buf);
	return buf.data;
}

static void
test_valid_headers(void)
{
	StHeader	h;
	char	   *w;

	if (parse_ok("{}", &h) == ST_OK)
	{
		CHECK(h.ntensors == 0 && h.data_len == 0 && !h.has_metadata &&
			  h.nmeta == 0, "{}: empty");
		w = rewrite(&h);
		CHECK(strcmp(w, "{}      ") == 0, "{} rewrites as \"%s\"", w);
	}
	if (parse_ok(" {}\t\r\n      ", &h) == ST_OK)
		CHECK(h.ntensors == 0, "whitespace around {}");

	if (parse_ok("{\"__metadata__\":{}}", &h) == ST_OK)
	{
		CHECK(h.has_metadata && h.nmeta == 0, "empty __metadata__");
		w = rewrite(&h);
		CHECK(strcmp(w, "{\"__metadata__\":{}}     ") == 0, "empty meta: %s", w);
	}

	/* zero-size tensors share offsets; ties keep header order */
	if (parse_ok("{" T("z2", "F32", "[0,5]", "[4,4]") ","
				 T("b", "F32", "[1]", "[4,8]") ","
				 T("z1", "U8", "[0]", "[4,4]") ","
				 T("a", "F32", "[1]", "[0,4]") ","
				 T("z0", "I64", "[3,0]", "[0,0]") "}", &h) == ST_OK)
	{
		CHECK(h.ntensors == 5 && h.data_len == 8, "zero-size: %d, %lld",
			  h.ntensors, (long long) h.data_len);
		CHECK(h.ntensors == 5 &&
			  strcmp(h.tensors[0].name, "z0") == 0 &&
			  strcmp(h.tensors[1].name, "a") == 0 &&
			  strcmp(h.tensors[2].name, "z2") == 0 &&
			  strcmp(h.tensors[3].name, "z1") == 0 &&
			  strcmp(h.tensors[4].name, "b") == 0, "zero-size: file order");
		CHECK(h.ntensors == 5 && h.tensors[0].numel == 0 &&
			  h.tensors[1].numel == 1, "zero-size: numel");
	}
	if (parse_ok("{" T("only", "BF16", "[0]", "[0,0]") "}", &h) == ST_OK)
		CHECK(h.ntensors == 1 && h.data_len == 0, "lone zero-size tensor");

	/* a scalar: shape [] holds one element */
	if (parse_ok("{" T("s", "F64", "[]", "[0,8]") "}", &h) == ST_OK)
		CHECK(h.tensors[0].ndim == 0 && h.tensors[0].numel == 1, "scalar tensor");

	/* unknown keys, however nested, are ignored; key order is free */
	if (parse_ok("{\"w\":{\"data_offsets\":[0,2],\"extra\":{\"x\":[[1,2],{}]},"
				 "\"shape\":[1],\"more\":null,\"dtype\":\"F16\"}}", &h) == ST_OK)
		CHECK(h.ntensors == 1 && h.tensors[0].dtype == SOUP_DT_F16 &&
			  h.tensors[0].end == 2, "unknown keys ignored");

	/* brackets in strings do not count as nesting */
	if (parse_ok("{" T("[[[[[[[[[[{{{{{{{{{{", "U8", "[1]", "[0,1]") ","
				 "\"__metadata__\":{\"]]]]]]]]]]\":\"[[[[[[[[[[\\\"[[[\"}}", &h) == ST_OK)
		CHECK(h.ntensors == 1 && h.nmeta == 1 &&
			  strcmp(h.meta_values[0], "[[[[[[[[[[\"[[[") == 0, "brackets in strings");

	/* 32 dims and a dim of 2^53 are allowed */
	if (parse_ok("{" T("d", "U8", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,1]") ","
				 T("e", "U8", "[9007199254740992,0]", "[1,1]") "}", &h) == ST_OK)
		CHECK(h.tensors[0].ndim == 32 &&
			  h.tensors[1].shape[0] == (INT64CONST(1) << 53), "32 dims, 2^53");

	/* every dtype name the reference writes */
	if (parse_ok("{" T("a", "F64", "[1]", "[0,8]") "," T("b", "I64", "[1]", "[8,16]") ","
				 T("c", "U64", "[1]", "[16,24]") "," T("d", "C64", "[1]", "[24,32]") ","
				 T("e", "F32", "[1]", "[32,36]") "," T("f", "I32", "[1]", "[36,40]") ","
				 T("g", "U32", "[1]", "[40,44]") "," T("h", "F16", "[1]", "[44,46]") ","
				 T("i", "BF16", "[1]", "[46,48]") "," T("j", "I16", "[1]", "[48,50]") ","
				 T("k", "U16", "[1]", "[50,52]") "," T("l", "I8", "[1]", "[52,53]") ","
				 T("m", "U8", "[1]", "[53,54]") "," T("n", "BOOL", "[1]", "[54,55]") ","
				 T("o", "F8_E4M3", "[1]", "[55,56]") "," T("p", "F8_E5M2", "[1]", "[56,57]") ","
				 T("q", "F8_E8M0", "[1]", "[57,58]") "}", &h) == ST_OK)
	{
		CHECK(h.ntensors == 17 && h.data_len == 58, "all dtypes");
		w = rewrite(&h);
		CHECK(strncmp(w, "{" T("a", "F64", "[1]", "[0,8]") ",", 54) == 0 &&
			  strstr(w, T("q", "F8_E8M0", "[1]", "[57,58]") "}") != NULL,
			  "all dtypes rewrite: %s", w);
	}
}

/* Names and metadata needing escapes come back as serde_json writes them. */
static void
test_escaping(void)
{
	StHeader	h;
	const char *in =
		"{\"__metadata__\":{\"q\\\"b\\\\s/\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\","
		"\"\\u00e9\\u20ac\\ud83d\\ude00\":\"\xc3\xa9\\/x\"},"
		T("n\\u000b\\u0019\\\"", "U8", "[1]", "[0,1]") "}";
	const char *want =
		"{\"__metadata__\":{\"q\\\"b\\\\s/\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\","
		"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":\"\xc3\xa9/x\"},"
		T("n\\u000b\\u0019\\\"", "U8", "[1]", "[0,1]") "}";
	char	   *w;
	StHeader	h2;

	if (parse_ok(in, &h) != ST_OK)
		return;
	CHECK(h.nmeta == 2 && strcmp(h.meta_keys[1], "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0,
		  "unicode escapes decode to UTF-8");
	CHECK(strcmp(h.tensors[0].name, "n\x0b\x19\"") == 0, "control chars decode");
	w = rewrite(&h);
	CHECK(strncmp(w, want, strlen(want)) == 0 && strlen(w) % 8 == 0 &&
		  strspn(w + strlen(want), " ") == strlen(w) - strlen(want),
		  "escaping:\n  got  %s\n  want %s", w, want);
	/* and the written form parses back to the same header */
	if (parse_ok(w, &h2) == ST_OK)
		CHECK(h2.nmeta == 2 &&
			  strcmp(h2.meta_values[0], h.meta_values[0]) == 0 &&
			  strcmp(h2.tensors[0].name, h.tensors[0].name) == 0,
			  "escaped header parses back");
}

static void
test_valid_indexes(void)
{
	StIndex		ix;
	char	   *errmsg = NULL;
	const char *j1 = "{\"weight_map\":{\"a\":\"s2\",\"b\":\"s1\",\"c\":\"s2\",\"d\":\"s3\",\"e\":\"s1\"},"
		"\"other\":[1,{\"x\":2}]}";
	const char *j2 = "{\"metadata\" :  [1, {\"a\": \"}\"}]  , \"weight_map\":{}}";
	const char *j3 = "{\"metadata\":null,\"weight_map\":{\"w\":\"..x\"}}";
	StError		e;

	e = parse_index_n(j1, strlen(j1), &ix, &errmsg);
	CHECK(e == ST_OK && ix.nentries == 5 && ix.nfiles == 3 &&
		  strcmp(ix.files[0], "s2") == 0 && strcmp(ix.files[1], "s1") == 0 &&
		  strcmp(ix.files[2], "s3") == 0 && ix.metadata_json == NULL &&
		  strcmp(ix.tensor_names[3], "d") == 0 &&
		  strcmp(ix.tensor_files[3], "s3") == 0,
		  "index: files in first-seen order (%s)", errmsg ? errmsg : "");

	e = parse_index_n(j2, strlen(j2), &ix, &errmsg);
	CHECK(e == ST_OK && ix.nentries == 0 && ix.nfiles == 0 &&
		  ix.metadata_json != NULL &&
		  strcmp(ix.metadata_json, "[1, {\"a\": \"}\"}]") == 0,
		  "index: metadata text kept exactly: %s",
		  ix.metadata_json ? ix.metadata_json : "NULL");

	e = parse_index_n(j3, strlen(j3), &ix, &errmsg);
	CHECK(e == ST_OK && ix.metadata_json != NULL &&
		  strcmp(ix.metadata_json, "null") == 0 && ix.nfiles == 1,
		  "index: metadata null, shard \"..x\" is a plain name");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../shared/fixtures/safetensors";

	verbose = getenv("ST_VERBOSE") != NULL;

	test_fixtures(dir);
	test_index_fixture(dir);
	for (int i = 0; i < (int) lengthof(header_cases); i++)
		run_case(&header_cases[i], false);
	for (int i = 0; i < (int) lengthof(index_cases); i++)
		run_case(&index_cases[i], true);
	test_raw_headers();
	test_valid_headers();
	test_escaping();
	test_valid_indexes();
	test_file_checks();

	printf("%d malformed headers, %d malformed indexes tried\n",
		   (int) lengthof(header_cases) + 11, (int) lengthof(index_cases) + 1);
	printf("%d passed, %d failed\n", npassed, nfailed);
	return nfailed == 0 ? 0 : 1;
}
