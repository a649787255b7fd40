/* Read-only mappings of whole files (file_map.h). */
#include "core/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int file_map_open(struct file_map *m, const char *path)
{
	*m = (struct file_map){ 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errorf("%s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno;
		close(fd);
		return errorf("%s", e ? strerror(e) : S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
	}
	size_t size = (size_t)st.st_size;
	void *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	int e = errno;
	close(fd);
	if (data == MAP_FAILED)
		return errorf("cannot map: %s", strerror(e));
	m->data = data;
	m->size = size;
	return 0;
}

void file_map_close(struct file_map *m)
{
	if (m->data)
		munmap((void *)m->data, m->size);
	*m = (struct file_map){ 0 };
}
