/* libFuzzer target for the JSON view. A line that parses must print back to
 * JSON (ts-cat --full) that parses again and prints identically, and the
 * record it builds must be a valid stream record. */
#include <stdlib.h>
#include <string.h>

#include "stream/json.h"
#include "stream/stream.h"

static int is_valid_stream_record(const struct record *r)
{
	struct ts_writer *w = ts_writer_mem();
	ts_write(w, r);
	size_t n;
	const void *d = ts_writer_mem_data(w, &n);
	struct ts_reader *rd = ts_open_mem(d, n, "rebuilt");
	struct record x = RECORD_INIT;
	int ok = ts_read(rd, &x) == 1;
	ts_close(rd);
	record_free(&x);
	ts_writer_close(w);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record r = RECORD_INIT, back = RECORD_INIT;
	if (json_read_record((const char *)data, size, &r) == 0) {
		struct json_options full = { .full = true }, summary = { 0 };
		struct mp_buf line = { 0 }, again = { 0 }, brief = { 0 };
		if (json_write_record(&line, &r, &full) != 0 || !is_valid_stream_record(&r))
			abort();
		if (json_read_record((const char *)line.data, line.len, &back) != 0)
			abort();
		json_write_record(&again, &back, &full);
		if (again.len != line.len || memcmp(again.data, line.data, line.len))
			abort();
		json_write_record(&brief, &r, &summary);
		mp_buf_free(&line);
		mp_buf_free(&again);
		mp_buf_free(&brief);
	}
	record_free(&r);
	record_free(&back);
	return 0;
}
