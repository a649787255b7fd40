#include "image/image_set.h"

#include "core/error.h"
#include "core/tool.h"
#include "stream/stream.h"

/* Records the array first has room for; it doubles from there. */
#define FIRST_CAPACITY 64

int image_set_read(const char *path, int max, size_t per, image_set_convert_fn convert, void *ctx, float **x)
{
	struct ts_reader *rd = ts_open(path);
	if (!rd)
		return -1;
	struct record r = RECORD_INIT;
	int n = 0, cap = 0, rc = 0;
	while (n < max && (rc = ts_read(rd, &r)) > 0) {
		long long index = (long long)ts_record_index(rd);
		if (n == cap) {
			cap = cap ? 2 * cap : FIRST_CAPACITY;
			if (cap > max)
				cap = max;
			*x = xrealloc(*x, (size_t)cap * per * sizeof **x);
		}
		struct image view;
		if (image_from_record(&r, "image", &view) < 0 || convert(ctx, &r, &view, n, *x + n * per) < 0) {
			rc = error_prefix("%s: record %lld", path, index);
			break;
		}
		n++;
	}
	record_free(&r);
	ts_close(rd);
	if (rc < 0)
		return -1;
	if (n == 0)
		return errorf("%s: no image records", path);
	return n;
}
