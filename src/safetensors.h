/*
 * safetensors.h - parse, validate and write safetensors headers.
 *
 * Format (DESIGN.md section 5): 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON, then the data buffer.  The JSON maps tensor names to
 * {"dtype", "shape", "data_offsets": [begin, end)} relative to the buffer,
 * plus an optional "__metadata__" object of string to string.
 *
 * This file uses only PostgreSQL's common code (palloc, StringInfo, the JSON
 * parser in common/jsonapi.c, encoding checks), never ereport, so the same
 * source links into the server and into standalone fuzz harnesses.  Errors
 * come back as an StError code and a palloc'd message.
 */
#ifndef SOUP_SAFETENSORS_H
#define SOUP_SAFETENSORS_H

#include "c.h"
#include "kernels/dtype.h"

/* The reference reader refuses headers longer than this. */
#define ST_MAX_HEADER_LEN 100000000
/* The deepest JSON nesting a valid header needs is 3; refuse deeper early. */
#define ST_MAX_DEPTH 8
/* Dimensions a tensor may have. */
#define ST_MAX_NDIM 32

typedef enum StError
{
	ST_OK = 0,
	ST_ERR_TRUNCATED,			/* file shorter than its header says */
	ST_ERR_HEADER_TOO_LARGE,	/* N > ST_MAX_HEADER_LEN */
	ST_ERR_UTF8,				/* header is not valid UTF-8 */
	ST_ERR_JSON,				/* header is not valid JSON */
	ST_ERR_SCHEMA,				/* valid JSON, wrong structure or types */
	ST_ERR_DTYPE,				/* unknown or unsupported dtype */
	ST_ERR_SHAPE,				/* bad dims, numel overflow */
	ST_ERR_DUPLICATE,			/* duplicate tensor name or key */
	ST_ERR_OFFSETS,				/* gaps, overlaps, size != numel * elsize */
	ST_ERR_TRAILING,			/* buffer size != end of last tensor */
	ST_ERR_PATH					/* index names a shard outside its folder */
} StError;

typedef struct StTensor
{
	char	   *name;			/* NUL-terminated UTF-8 */
	SoupDtype	dtype;
	int			ndim;
	int64		shape[ST_MAX_NDIM];
	int64		numel;
	int64		begin;			/* data_offsets, relative to the buffer */
	int64		end;
} StTensor;

typedef struct StHeader
{
	int			ntensors;
	StTensor   *tensors;		/* sorted by begin offset (file order) */
	int			nmeta;			/* __metadata__ entries, in header order */
	char	  **meta_keys;
	char	  **meta_values;
	bool		has_metadata;	/* "__metadata__" present (maybe empty) */
	int64		data_len;		/* end of the last tensor (0 when none) */
} StHeader;

/*
 * Parse and validate a header's JSON text (json, len bytes; need not be
 * NUL-terminated; trailing spaces allowed as the reference writer pads).
 * On success fills *out (palloc'd in CurrentMemoryContext) and returns ST_OK.
 * On failure returns the error code and sets *errmsg to a palloc'd message.
 * Offsets are checked for contiguity from 0 and size = numel * elsize; the
 * caller checks data_len against the file (ST_ERR_TRAILING / TRUNCATED).
 */
extern StError st_parse_header(const char *json, size_t len, StHeader *out,
							   char **errmsg);

/*
 * The checks made before any JSON from outside reaches the parser: at most
 * ST_MAX_HEADER_LEN bytes, valid UTF-8 without NUL bytes, nesting no deeper
 * than ST_MAX_DEPTH (outside the server the parser has no stack check).
 * what names the text in the message.
 */
extern StError st_check_json_text(const char *json, size_t len, const char *what,
								  char **errmsg);

/*
 * A sharded checkpoint's "model.safetensors.index.json":
 * {"metadata": {...}, "weight_map": {tensor: shard file name}}.
 * Shard names must be plain file names in the index's folder: no '/', no
 * '\\', not "." or "..", not empty.  Every tensor is named once.
 */
typedef struct StIndex
{
	int			nentries;
	char	  **tensor_names;	/* in the order of the weight_map */
	char	  **tensor_files;	/* shard of each tensor */
	int			nfiles;
	char	  **files;			/* distinct shard names, first-seen order */
	char	   *metadata_json;	/* the "metadata" value as JSON text, or NULL */
} StIndex;

extern StError st_parse_index(const char *json, size_t len, StIndex *out,
							  char **errmsg);

/* Does path name a sharded checkpoint's index (it ends in ".index.json")? */
extern bool st_is_index_path(const char *path);

/*
 * The two checks that tie a header to its file, shared by the server's import
 * and the client: the 8-byte length prefix (lenbuf) against the file's size,
 * giving the header length *hdr_len; then, once the header is parsed, the
 * tensors' extent against the bytes that follow it.
 */
extern StError st_check_prefix(const unsigned char lenbuf[8], uint64 file_size,
							   uint64 *hdr_len, char **errmsg);
extern StError st_check_extent(const StHeader *h, uint64 file_size, uint64 hdr_len,
							   char **errmsg);

/*
 * Check the headers of a sharded checkpoint's files against its index:
 * headers[f] was read from idx->files[f].  Every tensor of a shard must be
 * mapped to that shard and every tensor of the index must be found.  On
 * failure *bad_file is the shard at fault, or -1 for the index.
 */
extern StError st_check_shards(const StIndex *idx, const StHeader *headers,
							   int *bad_file, char **errmsg);

/*
 * The metadata of a sharded model: every shard's __metadata__ in file order,
 * the first value of a key winning.  Fills out's metadata fields only.
 */
extern void st_merge_metadata(const StHeader *headers, int n, StHeader *out);

/*
 * Write a header in the reference writer's canonical form: compact JSON,
 * "__metadata__" first (when has_metadata), tensors in the order given with
 * keys dtype, shape, data_offsets, padded with spaces to a multiple of 8.
 * Appends the JSON (without the 8-byte length) to buf.
 */
struct StringInfoData;
extern void st_write_header(const StHeader *h, struct StringInfoData *buf);

/* A JSON string literal, escaped as the reference writer does (UTF-8). */
extern void st_write_json_string(struct StringInfoData *buf, const char *s);

/* The __metadata__ object as JSON text (UTF-8), or NULL when there is none. */
extern char *st_metadata_json(const StHeader *h);

#endif							/* SOUP_SAFETENSORS_H */
