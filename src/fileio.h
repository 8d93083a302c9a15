/*
 * fileio.h - server-side file access for import and export.
 *
 * Follows COPY's rules: a superuser or a member of pg_read_server_files
 * (pg_write_server_files to write) may name any absolute path the server
 * can reach.  Files are transient files, closed on error.
 */
#ifndef SOUP_FILEIO_H
#define SOUP_FILEIO_H

#include "postgres.h"

#include "safetensors.h"

extern void soup_check_file_privilege(bool write, const char *fname);
extern void soup_check_absolute_path(const char *path);

/* Open a file for reading; ereports with errcode_for_file_access. */
extern int	soup_open_read(const char *path, off_t *size);

/* Read exactly len bytes at offset or ereport (short read = truncated). */
extern void soup_read_exact(int fd, const char *path, void *buf, size_t len,
							off_t offset);

/* Write all of buf or ereport. */
extern void soup_write_all(int fd, const char *path, const void *buf,
						   size_t len);

/* Raise the SQL error for a safetensors parse failure in file path. */
extern void soup_raise_st_error(StError err, const char *path,
								const char *msg) pg_attribute_noreturn();

/*
 * Read and validate one file's header: returns the parsed header, the header
 * length in *hdr_len (data starts at 8 + *hdr_len); the raw JSON text in
 * *raw when raw is not NULL.  Checks that the file holds exactly the data
 * the header describes.
 */
extern void soup_read_st_header(int fd, const char *path, off_t file_size,
								StHeader *h, uint64 *hdr_len, char **raw);

#endif							/* SOUP_FILEIO_H */
