/* The oracle data of tests: ../shared/golden/NAME (its folder, and its
 * expected.safetensors opened once) and the fixtures in tests/golden/. */
#ifndef KNND_TEST_GOLDEN_H
#define KNND_TEST_GOLDEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
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

/* Opens the repository's tests/golden/<path> (the repository: $KNND_ROOT,
 * else the working folder). If it does not open, prints the test's line
 * "FAIL <what>: <why>" and returns NULL. */
static inline struct st_file *golden_fixture(const char *path, const char *what)
{
	const char *root = getenv("KNND_ROOT");
	char full[4096];
	snprintf(full, sizeof full, "%s%stests/golden/%s", root && *root ? root : "", root && *root ? "/" : "", path);
	struct st_file *f = st_open(full);
	if (!f)
		printf("FAIL %s: %s\n", what, error_message());
	return f;
}

/* Tensor `name` of expected as float32 (malloc'd; its element count in
 * *numel unless numel is NULL), or NULL if it is missing or unreadable. */
static inline float *golden_f32(const struct st_file *expected, const char *name, size_t *numel)
{
	const struct st_entry *e = st_find(expected, name);
	if (!e)
		return NULL;
	float *x = xmalloc((e->numel ? e->numel : 1) * sizeof *x);
	if (st_read_f32(e, x, e->numel) < 0) {
		free(x);
		return NULL;
	}
	if (numel)
		*numel = e->numel;
	return x;
}

/* An int64 tensor of expected (token ids, codes) as int32 (malloc'd), or
 * NULL if it is missing or not int64. */
static inline int32_t *golden_ids(const struct st_file *expected, const char *name, size_t *numel)
{
	const struct st_entry *e = st_find(expected, name);
	if (!e || e->dtype != DT_INT64)
		return NULL;
	int32_t *ids = xmalloc((e->numel ? e->numel : 1) * sizeof *ids);
	for (size_t i = 0; i < e->numel; i++) {
		int64_t v;
		memcpy(&v, (const char *)e->data + 8 * i, 8);
		ids[i] = (int32_t)v;
	}
	if (numel)
		*numel = e->numel;
	return ids;
}

/* got [n] against want [m] (want NULL: nothing to compare): prints
 * "# name mismatches W of n" and checks that no id differs. */
static inline void golden_check_ids(const char *name, const int32_t *got, size_t n, const int32_t *want, size_t m)
{
	size_t wrong = 0, first = 0;
	for (size_t i = 0; want && i < n && i < m; i++)
		if (got[i] != want[i] && !wrong++)
			first = i;
	printf("# %s mismatches %zu of %zu\n", name, wrong, n);
	CHECK_MSG(!wrong, "%s: %zu of %zu differ, first at %zu (%d, want %d)", name, wrong, n, first, got[first],
	          want[first]);
}

#endif
