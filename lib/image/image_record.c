/* Images as stream fields (uint8 [H,W,C]), and dropping alpha onto white. */
#include "image/image.h"

#include <string.h>

#include "core/error.h"
#include "stream/record.h"

void image_composite_on_white(struct image *img)
{
	int c = img->channels;
	if (c != 2 && c != 4)
		return;
	size_t n = (size_t)img->width * img->height;
	uint8_t *out = img->pixels;
	/* In place: pixel i is written at i*(c-1), never ahead of where it is read. */
	for (size_t i = 0; i < n; i++) {
		const uint8_t *px = img->pixels + i * c;
		uint8_t a = px[c - 1];
		for (int k = 0; k < c - 1; k++)
			*out++ = composite_on_white(px[k], a);
	}
	img->channels = c - 1;
}

void image_to_record(struct record *r, const char *key, struct image *img)
{
	struct tensor t = {
		.dtype = DT_UINT8,
		.ndim = 3,
		.shape = { img->height, img->width, img->channels },
		.data = img->pixels,
		.nbytes = image_bytes(img),
	};
	record_set_tensor(r, key, &t);
	memset(img, 0, sizeof *img);
}

/* "float32 [2,3]" for messages. */
static void describe_tensor(const struct tensor *t, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s [", dtype_name(t->dtype));
	for (int i = 0; i < t->ndim && n > 0 && (size_t)n < size; i++)
		n += snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
	if (n > 0 && (size_t)n < size)
		snprintf(buf + n, size - n, "]");
}

int image_from_record(const struct record *r, const char *key, struct image *view)
{
	memset(view, 0, sizeof *view);
	const struct value *v = record_get(r, key);
	if (!v)
		return errorf("no '%s' field", key);
	if (v->kind != V_TENSOR)
		return errorf("field '%s' is not a tensor", key);
	const struct tensor *t = &v->t;
	if (t->dtype != DT_UINT8 || t->ndim != 3 || t->shape[2] < 1 || t->shape[2] > 4) {
		char desc[160];
		describe_tensor(t, desc, sizeof desc);
		return errorf("field '%s' is %s, expected uint8 [H,W,C] with C from 1 to 4", key, desc);
	}
	if (image_check_size(t->shape[1], t->shape[0], (int)t->shape[2]) < 0)
		return error_prefix("field '%s'", key);
	view->height = (int)t->shape[0];
	view->width = (int)t->shape[1];
	view->channels = (int)t->shape[2];
	view->pixels = t->data;
	return 0;
}
