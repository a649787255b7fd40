/* A whole regular file mapped read-only: the way model checkpoints and
 * fonts are read, so that only the pages used are ever loaded. */
#ifndef KNND_CORE_FILE_MAP_H
#define KNND_CORE_FILE_MAP_H

#include <stddef.h>

struct file_map {
	const void *data; /* NULL for an empty file */
	size_t size;
};

/* Maps path. Returns 0, or -1 with errorf("problem") (the caller names the
 * file): missing, a directory, not a regular file, cannot be mapped. */
int file_map_open(struct file_map *m, const char *path);
void file_map_close(struct file_map *m);

#endif
