/* gen_stream: writes a synthetic tensor stream for the throughput benchmark.
 *
 *   gen_stream emb N D        N records {id, emb: float32 [D]}, unit length
 *   gen_stream image N H W C  N records {id, image: uint8 [H,W,C]}
 *
 * Compiled by bench/stream_throughput.sh against lib/, not by the Makefile:
 * it is a tool for the benchmark, not for users. The data is pseudo-random
 * (images a gradient with a little noise, so that PNG compresses them
 * about as well as photographs, not as well as flat color or as badly as
 * static), fixed by the record index. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tool.h"
#include "stream/stream.h"

static uint32_t next_random(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void fill_emb(struct tensor *t, uint32_t seed)
{
	float *v = t->data;
	int64_t d = t->shape[0];
	double norm = 0;
	for (int64_t i = 0; i < d; i++) {
		v[i] = (float)((int32_t)next_random(&seed) / 2147483648.0);
		norm += (double)v[i] * v[i];
	}
	float scale = norm > 0 ? (float)(1 / sqrt(norm)) : 0;
	for (int64_t i = 0; i < d; i++)
		v[i] *= scale;
}

static void fill_image(struct tensor *t, uint32_t seed)
{
	uint8_t *p = t->data;
	int64_t h = t->shape[0], w = t->shape[1], c = t->shape[2];
	uint8_t shift = (uint8_t)seed; /* each image its own gradient */
	for (int64_t y = 0; y < h; y++)
		for (int64_t x = 0; x < w; x++)
			for (int64_t k = 0; k < c; k++)
				*p++ = (uint8_t)(x + y + 40 * k + shift + (next_random(&seed) & 7));
}

static const char help[] =
	"Usage: gen_stream emb N D\n"
	"       gen_stream image N H W C\n"
	"Write N synthetic records to stdout (benchmark input).\n";

int main(int argc, char **argv)
{
	tool_init("gen_stream", argc, argv, help);
	int is_emb = argc == 4 && !strcmp(argv[1], "emb");
	int is_image = argc == 6 && !strcmp(argv[1], "image");
	if (!is_emb && !is_image)
		usage_error("expected 'emb N D' or 'image N H W C'");
	int64_t n = parse_int_option("N", argv[2], 0, INT64_MAX);
	int64_t shape[3];
	int ndim = argc - 3;
	for (int i = 0; i < ndim; i++)
		shape[i] = parse_int_option("dimension", argv[3 + i], 1, 1 << 16);

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record r = RECORD_INIT;
	for (int64_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "%08lld", (long long)i);
		record_clear(&r);
		record_set_str(&r, "id", id);
		uint32_t seed = 0x9e3779b9u ^ (uint32_t)(i * 2654435761u);
		if (is_emb)
			fill_emb(record_new_tensor(&r, "emb", DT_FLOAT32, 1, shape), seed);
		else
			fill_image(record_new_tensor(&r, "image", DT_UINT8, 3, shape), seed);
		if (ts_write(out, &r) < 0)
			die("%s", error_message());
	}
	if (ts_writer_close(out) < 0)
		die("%s", error_message());
	record_free(&r);
	return EXIT_OK;
}
