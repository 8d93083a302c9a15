/*
 * fuzz_safetensors.c - libFuzzer harness for src/safetensors.c.
 *
 * Built outside the server with -DFRONTEND against libpgcommon/libpgport,
 * like test/unit/test_safetensors.c (see test/fuzz/run.sh).  Each input is
 * used three ways:
 *
 * 1. The whole input as a header's JSON text: st_parse_header.
 * 2. The input as a file: 8-byte little-endian header length N, N bytes of
 *    JSON, then the data buffer; the checks of soup_read_st_header in
 *    src/fileio.c are redone here without ereport (size, length limit,
 *    length past the end, data_len against the bytes that follow).
 * 3. The whole input as a sharded index: st_parse_index.
 *
 * Every accepted header is checked for the invariants the importer relies
 * on (contiguous offsets from 0, size = numel * element size, distinct
 * names, ...), then written with st_write_header and parsed again: the
 * result must be the same tensors and metadata, and writing that gives the
 * same bytes again.  Every accepted index is checked the same way.  A
 * failed check prints why and aborts, which libFuzzer reports as a crash.
 *
 * Every parse gets a private malloc'd copy of exactly len bytes with no NUL
 * after it, so ASan catches any read past the text.  Memory the parser
 * palloc's lives in the per-input arena of fuzz_arena.c, freed after each
 * input (as a memory context would be in the server); LeakSanitizer stays
 * on.
 */
#include "postgres_fe.h"

#include "common/int.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "safetensors.h"

#include "fuzz_arena.h"

#define ST_MAX_JSON_INT (INT64CONST(1) << 53)
#define ST_NERR ((int) ST_ERR_PATH + 1)

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_VERBOSE=1 in the environment: print each input's outcome. */
static bool verbose = false;

#define FUZZ_NAME "fuzz_safetensors"
#include "fuzz_check.h"

/* The frontend arena must never see a request the server would refuse. */
void
fuzz_alloc_too_large(size_t size)
{
	fail("palloc of %zu bytes, above MaxAllocSize", size);
}

/* An exact-size malloc'd copy (no terminator), so overreads show in ASan. */
static char *
exact_copy(const char *s, size_t len)
{
	char	   *p = malloc(len > 0 ? len : 1);

	if (p == NULL)
		abort();
	if (len > 0)
		memcpy(p, s, len);
	return p;
}

/* An error result must carry a code in range and a readable message. */
static void
check_error(StError err, const char *errmsg, const char *what)
{
	CHECK((int) err > 0 && (int) err < ST_NERR, "%s: error code %d out of range",
		  what, (int) err);
	CHECK(errmsg != NULL, "%s: error %d without a message", what, (int) err);
	/* strlen makes ASan look at every byte of the message */
	CHECK(strlen(errmsg) > 0, "%s: empty error message", what);
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* True when the n strings are pairwise distinct. */
static bool
all_distinct(char **strs, int n)
{
	char	  **sorted;
	bool		ok = true;

	if (n < 2)
		return true;
	sorted = malloc(sizeof(char *) * n);
	memcpy(sorted, strs, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), cmp_cstr);
	for (int i = 1; i < n && ok; i++)
		ok = strcmp(sorted[i - 1], sorted[i]) != 0;
	free(sorted);
	return ok;
}

/* Text that is valid UTF-8 with no NUL, as the header's strings must be. */
static void
check_utf8(const char *s, const char *what)
{
	int			len = (int) strlen(s);

	CHECK(pg_encoding_verifymbstr(PG_UTF8, s, len) == len,
		  "%s is not valid UTF-8", what);
}

/* What an accepted header promises its users. */
static void
check_header_invariants(const StHeader *h)
{
	int64		expect = 0;

	CHECK(h->ntensors >= 0, "ntensors %d", h->ntensors);
	CHECK(h->ntensors == 0 || h->tensors != NULL, "tensors NULL");
	CHECK(h->nmeta >= 0, "nmeta %d", h->nmeta);
	CHECK(h->nmeta == 0 || h->has_metadata, "metadata entries without __metadata__");
	CHECK(h->nmeta == 0 || (h->meta_keys != NULL && h->meta_values != NULL),
		  "meta arrays NULL");
	for (int i = 0; i < h->ntensors; i++)
	{
		const StTensor *t = &h->tensors[i];
		int64		numel = 1;

		CHECK(t->name != NULL && t->name[0] != '\0', "tensor %d: empty name", i);
		CHECK(strcmp(t->name, "__metadata__") != 0, "tensor named __metadata__");
		check_utf8(t->name, "tensor name");
		CHECK(soup_dtype_valid((int) t->dtype), "tensor %s: dtype %d", t->name,
			  (int) t->dtype);
		CHECK(soup_dtype_st_name(t->dtype) != NULL, "no st name");
		CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_NDIM, "tensor %s: ndim %d",
			  t->name, t->ndim);
		for (int d = 0; d < t->ndim; d++)
		{
			CHECK(t->shape[d] >= 0 && t->shape[d] <= ST_MAX_JSON_INT,
				  "tensor %s: dim %lld", t->name, (long long) t->shape[d]);
			CHECK(!pg_mul_s64_overflow(numel, t->shape[d], &numel),
				  "tensor %s: numel overflows yet accepted", t->name);
		}
		CHECK(numel == t->numel, "tensor %s: numel %lld, shape gives %lld",
			  t->name, (long long) t->numel, (long long) numel);
		CHECK(t->begin >= 0 && t->begin <= t->end, "tensor %s: begin %lld end %lld",
			  t->name, (long long) t->begin, (long long) t->end);
		CHECK(t->end <= ST_MAX_JSON_INT, "tensor %s: end %lld", t->name,
			  (long long) t->end);
		/* no overflow: numel * size == end - begin <= 2^53 */
		CHECK(t->numel * soup_dtype_size(t->dtype) == t->end - t->begin,
			  "tensor %s: %lld elements of %d bytes in [%lld, %lld)", t->name,
			  (long long) t->numel, soup_dtype_size(t->dtype),
			  (long long) t->begin, (long long) t->end);
		CHECK(t->begin == expect, "tensor %s: begins at %lld, expected %lld",
			  t->name, (long long) t->begin, (long long) expect);
		expect = t->end;
	}
	CHECK(h->data_len == expect, "data_len %lld, tensors end at %lld",
		  (long long) h->data_len, (long long) expect);
	for (int i = 0; i < h->nmeta; i++)
	{
		CHECK(h->meta_keys[i] != NULL && h->meta_values[i] != NULL,
			  "metadata entry %d NULL", i);
		check_utf8(h->meta_keys[i], "metadata key");
		check_utf8(h->meta_values[i], "metadata value");
	}
	if (h->ntensors > 0)
	{
		char	  **names = malloc(sizeof(char *) * h->ntensors);
		bool		ok;

		for (int i = 0; i < h->ntensors; i++)
			names[i] = h->tensors[i].name;
		ok = all_distinct(names, h->ntensors);
		free(names);
		CHECK(ok, "duplicate tensor names accepted");
	}
	CHECK(all_distinct(h->meta_keys, h->nmeta), "duplicate metadata keys accepted");
}

static void
check_same_header(const StHeader *a, const StHeader *b)
{
	CHECK(a->ntensors == b->ntensors, "round trip: %d tensors became %d",
		  a->ntensors, b->ntensors);
	CHECK(a->has_metadata == b->has_metadata, "round trip: has_metadata changed");
	CHECK(a->nmeta == b->nmeta, "round trip: %d metadata entries became %d",
		  a->nmeta, b->nmeta);
	CHECK(a->data_len == b->data_len, "round trip: data_len changed");
	for (int i = 0; i < a->ntensors; i++)
	{
		const StTensor *x = &a->tensors[i];
		const StTensor *y = &b->tensors[i];

		CHECK(strcmp(x->name, y->name) == 0,
			  "round trip: tensor %d name \"%s\" became \"%s\"", i, x->name, y->name);
		CHECK(x->dtype == y->dtype && x->ndim == y->ndim &&
			  x->numel == y->numel && x->begin == y->begin && x->end == y->end &&
			  memcmp(x->shape, y->shape, sizeof(int64) * x->ndim) == 0,
			  "round trip: tensor \"%s\" changed", x->name);
	}
	for (int i = 0; i < a->nmeta; i++)
	{
		CHECK(strcmp(a->meta_keys[i], b->meta_keys[i]) == 0,
			  "round trip: metadata key %d changed", i);
		CHECK(strcmp(a->meta_values[i], b->meta_values[i]) == 0,
			  "round trip: metadata value of \"%s\" changed", a->meta_keys[i]);
	}
}

/* Write h, parse it back, compare; writing the result must repeat the bytes. */
static void
check_round_trip(const StHeader *h)
{
	StringInfoData buf1;
	StringInfoData buf2;
	StHeader	h2;
	char	   *msg = NULL;
	char	   *copy;
	StError		err;

	initStringInfo(&buf1);
	st_write_header(h, &buf1);
	CHECK(buf1.len % 8 == 0, "written header is %d bytes, not a multiple of 8",
		  buf1.len);
	copy = exact_copy(buf1.data, buf1.len);
	err = st_parse_header(copy, buf1.len, &h2, &msg);
	free(copy);
	if (err != ST_OK)
		fail("round trip: own header refused (%d: %s): %.*s", (int) err,
			 msg ? msg : "?", buf1.len, buf1.data);
	check_header_invariants(&h2);
	check_same_header(h, &h2);

	initStringInfo(&buf2);
	st_write_header(&h2, &buf2);
	CHECK(buf1.len == buf2.len && memcmp(buf1.data, buf2.data, buf1.len) == 0,
		  "round trip: writing the re-parsed header gives different bytes");
}

/* Parse json[0..len) as a header; on success check it.  Returns the code. */
static StError
parse_and_check_header(const char *json, size_t len, StHeader *h)
{
	char	   *copy = exact_copy(json, len);
	char	   *msg = NULL;
	StError		err;

	err = st_parse_header(copy, len, h, &msg);
	free(copy);
	if (err != ST_OK)
	{
		check_error(err, msg, "st_parse_header");
		if (verbose)
			fprintf(stderr, "  header: %s\n", msg);
		return err;
	}
	CHECK(msg == NULL, "st_parse_header: message on success");
	check_header_invariants(h);
	check_round_trip(h);
	return ST_OK;
}

/*
 * The input as a file, checked as soup_read_st_header (src/fileio.c) does,
 * returning the code it would raise.
 */
static StError
fuzz_file(const uint8_t *data, size_t size)
{
	uint64		n = 0;
	uint64		rest;
	StHeader	h;
	StError		err;

	if (size < 8)
		return ST_ERR_TRUNCATED;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | data[i];
	if (n > ST_MAX_HEADER_LEN)
		return ST_ERR_HEADER_TOO_LARGE;
	if (n > (uint64) size - 8)
		return ST_ERR_TRUNCATED;
	err = parse_and_check_header((const char *) data + 8, n, &h);
	if (err != ST_OK)
		return err;
	rest = (uint64) size - 8 - n;
	if ((uint64) h.data_len != rest)
		return h.data_len > (int64) rest ? ST_ERR_TRUNCATED : ST_ERR_TRAILING;

	/* accepted: every tensor's bytes lie inside the file */
	for (int i = 0; i < h.ntensors; i++)
	{
		const StTensor *t = &h.tensors[i];

		CHECK((uint64) t->end <= rest,
			  "file: tensor \"%s\" ends at %lld past %llu data bytes", t->name,
			  (long long) t->end, (unsigned long long) rest);
	}
	return ST_OK;
}

/* Valid JSON text, per PostgreSQL's own parser. */
static bool
is_valid_json(const char *s)
{
	JsonLexContext *lex;
	JsonParseErrorType jerr;
	char	   *copy = pstrdup(s);

	lex = makeJsonLexContextCstringLen(copy, (int) strlen(copy), PG_UTF8, true);
	jerr = pg_parse_json(lex, &nullSemAction);
	return jerr == JSON_SUCCESS;
}

static bool
shard_name_ok(const char *name)
{
	return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
		strchr(name, '/') == NULL && strchr(name, '\\') == NULL;
}

static StError
fuzz_index(const uint8_t *data, size_t size)
{
	char	   *copy = exact_copy((const char *) data, size);
	char	   *msg = NULL;
	StIndex		ix;
	StError		err;
	int			prev_first = -1;

	err = st_parse_index(copy, size, &ix, &msg);
	free(copy);
	if (err != ST_OK)
	{
		check_error(err, msg, "st_parse_index");
		if (verbose)
			fprintf(stderr, "  index: %s\n", msg);
		return err;
	}
	CHECK(ix.nentries >= 0, "index: nentries %d", ix.nentries);
	CHECK(ix.nfiles >= 0 && ix.nfiles <= ix.nentries,
		  "index: %d files for %d entries", ix.nfiles, ix.nentries);
	CHECK(ix.nentries == 0 || ix.nfiles > 0, "index: entries without files");
	for (int i = 0; i < ix.nentries; i++)
	{
		bool		found = false;

		CHECK(ix.tensor_names[i] != NULL && ix.tensor_names[i][0] != '\0',
			  "index: empty tensor name");
		check_utf8(ix.tensor_names[i], "index tensor name");
		CHECK(shard_name_ok(ix.tensor_files[i]), "index: bad shard \"%s\"",
			  ix.tensor_files[i]);
		for (int j = 0; j < ix.nfiles && !found; j++)
			found = strcmp(ix.files[j], ix.tensor_files[i]) == 0;
		CHECK(found, "index: shard \"%s\" missing from files", ix.tensor_files[i]);
	}
	CHECK(all_distinct(ix.tensor_names, ix.nentries), "index: duplicate tensors accepted");
	CHECK(all_distinct(ix.files, ix.nfiles), "index: files not distinct");
	/* files are in first-seen order */
	for (int j = 0; j < ix.nfiles; j++)
	{
		int			first = -1;

		for (int i = 0; i < ix.nentries && first < 0; i++)
			if (strcmp(ix.tensor_files[i], ix.files[j]) == 0)
				first = i;
		CHECK(first > prev_first, "index: files not in first-seen order");
		prev_first = first;
	}
	if (ix.metadata_json != NULL)
		CHECK(is_valid_json(ix.metadata_json),
			  "index: metadata_json is not valid JSON: %s", ix.metadata_json);
	return ST_OK;
}

int			LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("FUZZ_VERBOSE");

	verbose = (v != NULL && *v != '\0' && *v != '0');
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StHeader	h;
	StError		e_hdr,
				e_file,
				e_idx;

	e_hdr = parse_and_check_header((const char *) data, size, &h);
	fuzz_arena_reset();
	e_file = fuzz_file(data, size);
	fuzz_arena_reset();
	e_idx = fuzz_index(data, size);
	fuzz_arena_reset();
	if (verbose)
		fprintf(stderr, "header %d, file %d, index %d (%zu bytes)\n",
				(int) e_hdr, (int) e_file, (int) e_idx, size);
	return 0;
}
