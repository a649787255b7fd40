/* The oracle data of ../shared/golden/NAME for tests: its folder, and its
 * expected.safetensors opened once. */
#ifndef KNND_TEST_GOLDEN_H
#define KNND_TEST_GOLDEN_H

#include <unistd.h>

#include "nn/safetensors.h"
#include "test.h"

/* Fills dir (size bytes) with the folder of golden set `name` and opens its
 * expected.safetensors into *expected (once). 1 when present, else 0: the
 * caller skips with a message. */
static inline int golden_open(const char *name, char *dir, size_t size, struct st_file **expected)
{
	if (*expected)
		return 1;
	snprintf(dir, size, "%s/golden/%s", test_shared_dir(), name);
	const char *path = test_join(dir, "expected.safetensors");
	if (access(path, R_OK))
		return 0;
	*expected = st_open(path);
	return *expected != NULL;
}

#endif
