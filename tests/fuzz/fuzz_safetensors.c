/* libFuzzer target for the safetensors reader: whatever opens must describe
 * entries that tile the data exactly, and every float entry converts. */
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_file *f = st_open_memory(data, size, "fuzz");
	if (!f)
		return 0;
	size_t total = 0;
	for (int i = 0; i < st_count(f); i++) {
		const struct st_entry *e = st_entry_at(f, i);
		if (st_find(f, e->name) != e)
			abort();
		if ((const uint8_t *)e->data < data || (const uint8_t *)e->data + e->nbytes > data + size)
			abort();
		total += e->nbytes;
		if (e->dtype == DT_FLOAT32 || e->dtype == DT_FLOAT16 || e->dtype == DT_BFLOAT16 || e->dtype == DT_FLOAT64) {
			if (e->numel > (1u << 20))
				continue;
			float *buf = malloc(e->numel * 4 + 4);
			if (st_read_f32(e, buf, e->numel) != 0)
				abort();
			free(buf);
		}
	}
	size_t n;
	st_bytes(f, &n);
	if (st_count(f) && (const uint8_t *)st_entry_at(f, 0)->data + total != data + size)
		abort();
	for (int i = 0; i < st_metadata_count(f); i++) {
		const char *k, *v;
		st_metadata_at(f, i, &k, &v);
		if (st_metadata(f, k) != v)
			abort();
	}
	st_close(f);
	return 0;
}
