/* A minimal unit-test harness. Each test prints "ok NAME", "FAIL NAME: why"
 * or "skip NAME: why"; tests/run counts those lines. */
#ifndef KNND_TEST_H
#define KNND_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_, test_skipped_;
static char test_why_[512];

#define CHECK(cond) do { if (!(cond)) { \
	if (!test_failed_) snprintf(test_why_, sizeof test_why_, "%s:%d: %s", __FILE__, __LINE__, #cond); \
	test_failed_ = 1; } } while (0)

#define CHECK_MSG(cond, ...) do { if (!(cond)) { \
	if (!test_failed_) { int n_ = snprintf(test_why_, sizeof test_why_, "%s:%d: ", __FILE__, __LINE__); \
		snprintf(test_why_ + n_, sizeof test_why_ - n_, __VA_ARGS__); } \
	test_failed_ = 1; } } while (0)

#define CHECK_NEAR(a, b, tol) CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), \
	"%s = %g, expected %g (tol %g)", #a, (double)(a), (double)(b), (double)(tol))

#define SKIP(...) do { test_skipped_ = 1; snprintf(test_why_, sizeof test_why_, __VA_ARGS__); return; } while (0)

static int test_total_failed_;

#define RUN(fn) do { \
		test_failed_ = test_skipped_ = 0; \
		fn(); \
		if (test_skipped_) { \
			printf("skip %s: %s\n", #fn, test_why_); \
		} else if (test_failed_) { \
			printf("FAIL %s: %s\n", #fn, test_why_); \
			test_total_failed_++; \
		} else { \
			printf("ok %s\n", #fn); \
		} \
		fflush(stdout); \
	} while (0)

#define TEST_EXIT() return test_total_failed_ ? 1 : 0

/* ../shared relative to the repository root, or $KNND_SHARED. */
static inline const char *test_shared_dir(void)
{
	const char *s = getenv("KNND_SHARED");
	return s && *s ? s : "../shared";
}

/* dir/name, in one of a few rotating buffers: enough for the paths of
 * one call's arguments. */
static inline const char *test_join(const char *dir, const char *name)
{
	static char buf[4][1024];
	static int next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

#endif
