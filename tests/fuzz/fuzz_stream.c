/* libFuzzer target for the stream reader. Beyond "no crash", it checks the
 * round-trip invariant: every record that decodes re-encodes to bytes that
 * decode to a record which re-encodes identically. */
#include <stdlib.h>
#include <string.h>

#include "stream/stream.h"

static void *encode(const struct record *r, size_t *len)
{
	struct ts_writer *w = ts_writer_mem();
	ts_write(w, r);
	const void *d = ts_writer_mem_data(w, len);
	void *out = malloc(*len ? *len : 1);
	memcpy(out, d, *len);
	ts_writer_close(w);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ts_reader *rd = ts_open_mem(data, size, "fuzz");
	struct record r = RECORD_INIT, again = RECORD_INIT;
	while (ts_read(rd, &r) > 0) {
		size_t n1, n2;
		void *b1 = encode(&r, &n1);
		struct ts_reader *rd2 = ts_open_mem(b1, n1, "re-encoded");
		if (ts_read(rd2, &again) != 1)
			abort();
		void *b2 = encode(&again, &n2);
		if (n1 != n2 || memcmp(b1, b2, n1))
			abort();
		ts_close(rd2);
		free(b1);
		free(b2);
	}
	ts_close(rd);
	record_free(&r);
	record_free(&again);
	return 0;
}
