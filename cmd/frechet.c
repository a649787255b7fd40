/* frechet: the Fréchet distance between two streams of embeddings. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/tool.h"
#include "eval/frechet.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: frechet [--field F] [--json] A.ts B.ts\n"
	"The Frechet distance between the embeddings of two tensor streams (FID in\n"
	"whatever space the embeddings come from):\n"
	"  |mu_a - mu_b|^2 + tr(Sa) + tr(Sb) - 2 tr((Sa^1/2 Sb Sa^1/2)^1/2)\n"
	"with sample covariances, in double precision, one streaming pass over\n"
	"each input (memory O(d^2), whatever the number of records). '-' reads\n"
	"one of the two from stdin.\n"
	"\n"
	"  -f, --field F   the embedding field, a float vector [d] (default emb);\n"
	"                  both streams must have the same d and >= 2 records\n"
	"  -j, --json      print {\"frechet\": X, \"n_a\": N, \"n_b\": M, \"dim\": d}\n"
	"                  instead of the number alone\n"
	"  -h, --help      show this help\n"
	"      --version   show the version\n"
	"\n"
	"Example:\n"
	"  img-read real/*.png | clip-embed -m clip.safetensors --image > real.ts\n"
	"  diffuse sample ... | vq-decode ... | clip-embed -m clip.safetensors --image |\n"
	"    frechet - real.ts\n";

/* The moments of one input's field; dies naming the input and record. */
static void read_moments(const char *path, const char *field, struct moments *m)
{
	struct ts_reader *rd = ts_open(path);
	if (!rd)
		die("%s", error_message());
	struct record r = RECORD_INIT;
	int rc;
	while ((rc = ts_read(rd, &r)) == 1)
		if (moments_add_field(m, &r, field) < 0)
			die("%s: record %lld: %s", ts_name(rd), (long long)ts_record_index(rd), error_message());
	if (rc < 0)
		die("%s", error_message());
	if (m->n < 2)
		die("%s: %lld records; the Frechet distance needs at least 2 in each input", ts_name(rd),
		    (long long)m->n);
	record_free(&r);
	ts_close(rd);
}

int main(int argc, char **argv)
{
	tool_init("frechet", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { "field", 1, 0, 'f' }, { "json", 0, 0, 'j' }, { 0 },
	};
	const char *field = "emb";
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "hVf:j", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case 'f': field = optarg; break;
		case 'j': json = true; break;
		default: usage_error("unknown option");
		}
	}
	if (argc - optind != 2)
		usage_error("give two inputs, A.ts and B.ts");
	const char *pa = argv[optind], *pb = argv[optind + 1];
	if (!strcmp(pa, "-") && !strcmp(pb, "-"))
		usage_error("only one of the two inputs can be stdin ('-')");

	struct moments a, b;
	moments_init(&a, 0);
	moments_init(&b, 0);
	read_moments(pa, field, &a);
	read_moments(pb, field, &b);
	if (a.d != b.d)
		die("%s: field '%s' has %d elements, but %d in %s", pb, field, b.d, a.d, pa);
	double dist;
	if (frechet_distance(&a, &b, &dist) < 0)
		die("%s", error_message());
	if (json)
		printf("{\"frechet\": %.17g, \"n_a\": %lld, \"n_b\": %lld, \"dim\": %d}\n", dist, (long long)a.n,
		       (long long)b.n, a.d);
	else
		printf("%.6g\n", dist);
	if (fflush(stdout) != 0 || ferror(stdout))
		die("stdout: write error");
	moments_free(&a);
	moments_free(&b);
	return EXIT_OK;
}
