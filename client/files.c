/*
 * files.c - the client's local file access.  Every failure ends the program
 * with EXIT_FILE and names the file.
 */
#include "client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int
soup_open_file(const char *path, uint64 *size)
{
	int			fd = open(path, O_RDONLY | PG_BINARY, 0);
	struct stat st;

	if (fd < 0)
		soup_fatal(EXIT_FILE, "could not open file \"%s\": %m", path);
	if (fstat(fd, &st) != 0)
		soup_fatal(EXIT_FILE, "could not stat file \"%s\": %m", path);
	if (!S_ISREG(st.st_mode))
		soup_fatal(EXIT_FILE, "\"%s\" is not a regular file", path);
	*size = (uint64) st.st_size;
	return fd;
}

void
soup_pread_exact(int fd, const char *path, void *buf, size_t len, uint64 offset)
{
	while (len > 0)
	{
		ssize_t		n = pread(fd, buf, len, (off_t) offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			soup_fatal(EXIT_FILE, "could not read file \"%s\": %m", path);
		if (n == 0)
			soup_fatal(EXIT_FILE, "file \"%s\" ended early (it changed while being read?)", path);
		buf = (char *) buf + n;
		len -= n;
		offset += n;
	}
}

void
soup_write_all(int fd, const char *path, const void *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			soup_fatal(EXIT_FILE, "could not write file \"%s\": %m", path);
		buf = (const char *) buf + n;
		len -= n;
	}
}

/* A whole (small) file, NUL-terminated; *len excludes the NUL. */
char *
soup_read_whole(const char *path, uint64 max, size_t *len)
{
	uint64		size;
	int			fd = soup_open_file(path, &size);
	char	   *data;

	if (size > max)
		soup_fatal(EXIT_FILE, "file \"%s\" is too large (" UINT64_FORMAT " bytes, at most "
				   UINT64_FORMAT ")", path, size, max);
	data = palloc(size + 1);
	soup_pread_exact(fd, path, data, size, 0);
	data[size] = '\0';
	close(fd);
	*len = size;
	return data;
}
