/* ts-shuffle: the records of tensor streams in a seeded random order.
 *
 * Records are re-encoded into an unlinked spool file under $TMPDIR as they
 * are read, so memory holds one offset per record, not the records; the
 * permutation then copies their bytes out in the new order. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/tool.h"
#include "nn/philox.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: ts-shuffle [--seed S] [FILE...]\n"
	"Writes the records of tensor streams (stdin by default, files one after\n"
	"another) in a random order that depends only on the seed and the number\n"
	"of records. The records are spooled to a temporary file under $TMPDIR,\n"
	"so memory holds 8 bytes per record, whatever their size; nothing is\n"
	"written before the input has ended.\n"
	"\n"
	"A file named twice is read twice, so `ts-shuffle a.ts a.ts b.ts` weighs\n"
	"a's records double when a trainer later mixes the two collections.\n"
	"\n"
	"  -s, --seed S      random seed (default 1)\n"
	"  -p, --progress    print the number of records read on stderr\n"
	"  -h, --help        show this help\n"
	"      --version     show the version\n"
	"\n"
	"Example:\n"
	"  ts-shuffle --seed 7 stickers.ts stickers.ts clothes.ts > mixed.ts\n";

/* Spools every input record to fd; returns the record count and fills
 * *offsets (count + 1 entries: record i spans offsets[i]..offsets[i+1]). */
static int64_t spool(struct ts_inputs *in, int fd, const char *spool_name, int64_t **offsets, bool progress)
{
	struct ts_writer *w = ts_writer_fd(fd, spool_name);
	struct record r = RECORD_INIT;
	int64_t n = 0, cap = 1024;
	*offsets = xmalloc((size_t)cap * sizeof **offsets);
	(*offsets)[0] = 0;
	int rc;
	while ((rc = ts_inputs_read(in, &r)) > 0) {
		if (ts_write(w, &r) < 0 || ts_flush(w) < 0)
			die("%s", error_message());
		if (n + 2 > cap) {
			cap *= 2;
			*offsets = xrealloc(*offsets, (size_t)cap * sizeof **offsets);
		}
		off_t pos = lseek(fd, 0, SEEK_CUR);
		if (pos < 0)
			die("%s: %s", spool_name, strerror(errno));
		(*offsets)[++n] = pos;
		if (progress && n % 10000 == 0)
			fprintf(stderr, "ts-shuffle: %lld records read\n", (long long)n);
	}
	if (rc < 0)
		die("%s", error_message());
	record_free(&r);
	if (ts_writer_close(w) < 0)
		die("%s", error_message());
	return n;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("stdout: %s", strerror(errno));
		p += k;
		n -= (size_t)k;
	}
}

int main(int argc, char **argv)
{
	tool_init("ts-shuffle", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "seed", 1, 0, 's' },
		{ "progress", 0, 0, 'p' }, { 0 },
	};
	uint64_t seed = 1;
	bool progress = false;
	int c;
	while ((c = getopt_long(argc, argv, "hs:p", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 's': seed = (uint64_t)parse_int_option("--seed", optarg, 0, INT64_MAX); break;
		case 'p': progress = true; break;
		default: usage_error("unknown option");
		}
	}
	struct ts_inputs *in = ts_inputs_open(argc - optind, argv + optind);
	if (!in)
		die("%s", error_message());

	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/ts-shuffle.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		die("%s: cannot create the spool file: %s", path, strerror(errno));
	unlink(path);
	int64_t *offsets;
	int64_t n = spool(in, fd, path, &offsets, progress);
	ts_inputs_close(in);
	if (n == 0)
		return EXIT_OK;

	size_t size = (size_t)offsets[n];
	const uint8_t *bytes = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (bytes == MAP_FAILED)
		die("%s: %s", path, strerror(errno));
	/* Fisher-Yates with Philox draws: the order is a function of (seed, n). */
	int64_t *order = xmalloc((size_t)n * sizeof *order);
	for (int64_t i = 0; i < n; i++)
		order[i] = i;
	for (int64_t i = n - 1; i > 0; i--) {
		struct philox_block b = philox_block_at(seed, (uint64_t)i * 4);
		uint64_t u = ((uint64_t)b.w[0] << 32) | b.w[1];
		int64_t j = (int64_t)(u % (uint64_t)(i + 1));
		int64_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int64_t i = 0; i < n; i++) {
		int64_t k = order[i];
		write_all(1, bytes + offsets[k], (size_t)(offsets[k + 1] - offsets[k]));
	}
	if (progress)
		fprintf(stderr, "ts-shuffle: %lld records written\n", (long long)n);
	munmap((void *)bytes, size);
	close(fd);
	free(order);
	free(offsets);
	return EXIT_OK;
}
