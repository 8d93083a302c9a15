/*
 * fileio.c - server-side file access for import and export.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"

#include "fileio.h"

void
soup_check_file_privilege(bool write, const char *fname)
{
	Oid			role = write ? ROLE_PG_WRITE_SERVER_FILES : ROLE_PG_READ_SERVER_FILES;

	if (!superuser() && !has_privs_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s a server file with %s",
						write ? "write" : "read", fname),
				 errhint("Only roles with privileges of the \"%s\" role may %s files on the server, as with COPY.",
						 write ? "pg_write_server_files" : "pg_read_server_files",
						 write ? "write" : "read")));
}

void
soup_check_absolute_path(const char *path)
{
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("path \"%s\" is not absolute", path),
				 errhint("Server-side files are named by absolute paths; "
						 "the pg_soup client streams files from the client side.")));
}

int
soup_open_read(const char *path, off_t *size)
{
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	struct stat st;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	if (fstat(fd, &st) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if (S_ISDIR(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a directory", path)));
	*size = st.st_size;
	return fd;
}

void
soup_read_exact(int fd, const char *path, void *buf, size_t len, off_t offset)
{
	char	   *p = buf;

	while (len > 0)
	{
		ssize_t		n = pg_pread(fd, p, Min(len, (size_t) 1 << 30), offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		}
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("file \"%s\" is truncated", path)));
		p += n;
		offset += n;
		len -= n;
	}
}

void
soup_write_all(int fd, const char *path, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0)
	{
		ssize_t		n = write(fd, p, Min(len, (size_t) 1 << 30));

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", path)));
		}
		p += n;
		len -= n;
	}
}

void
soup_raise_st_error(StError err, const char *path, const char *msg)
{
	int			code;

	switch (err)
	{
		case ST_ERR_HEADER_TOO_LARGE:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case ST_ERR_UTF8:
			code = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
			break;
		case ST_ERR_JSON:
			code = ERRCODE_INVALID_JSON_TEXT;
			break;
		case ST_ERR_PATH:
			code = ERRCODE_INSUFFICIENT_PRIVILEGE;
			break;
		default:
			code = ERRCODE_BAD_COPY_FILE_FORMAT;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("invalid safetensors file \"%s\": %s", path, msg)));
}

void
soup_read_st_header(int fd, const char *path, off_t file_size, StHeader *h,
					uint64 *hdr_len, char **raw)
{
	unsigned char lenbuf[8] = {0};
	uint64		n = 0;
	char	   *json;
	char	   *msg = NULL;
	StError		err;

	if (file_size >= 8)
		soup_read_exact(fd, path, lenbuf, 8, 0);
	err = st_check_prefix(lenbuf, (uint64) file_size, &n, &msg);
	if (err != ST_OK)
		soup_raise_st_error(err, path, msg);
	json = palloc(n + 1);
	soup_read_exact(fd, path, json, n, 8);
	json[n] = '\0';
	err = st_parse_header(json, n, h, &msg);
	if (err == ST_OK)
		err = st_check_extent(h, (uint64) file_size, n, &msg);
	if (err != ST_OK)
		soup_raise_st_error(err, path, msg);
	*hdr_len = n;
	if (raw)
		*raw = json;
	else
		pfree(json);
}
