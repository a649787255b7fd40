/* idx-read: (Fashion-)MNIST IDX files to image records. */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/tool.h"
#include "data/fashion_mnist.h"
#include "stream/stream.h"

static const char help[] =
	"Usage: idx-read [OPTION]... IMAGES [LABELS]\n"
	"Read an IDX images file (the MNIST format, gzipped or not) and write one\n"
	"record per image: id, image (uint8 [rows,cols,1]) and, with a labels file,\n"
	"label and text (the Fashion-MNIST class name).\n"
	"\n"
	"Without LABELS, a file named X-images-idx3-ubyte[.gz] is paired with\n"
	"X-labels-idx1-ubyte[.gz] beside it when that exists. IMAGES may be '-'\n"
	"for stdin.\n"
	"\n"
	"Options:\n"
	"      --start N        skip the first N images\n"
	"  -n, --count N        write at most N records\n"
	"      --no-labels      do not look for a labels file\n"
	"      --classes FILE   class names, one per line (line 1 names label 0),\n"
	"                       instead of the Fashion-MNIST ones\n"
	"  -h, --help           show this help and exit\n"
	"      --version        show the version and exit\n"
	"\n"
	"Example:\n"
	"  idx-read /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz |\n"
	"    ts-head -n 64 | img-write --sheet s.png --caption text\n";

enum { OPT_START = 256, OPT_NO_LABELS, OPT_CLASSES };

int main(int argc, char **argv)
{
	tool_init("idx-read", argc, argv, help);
	static const struct option opts[] = {
		{ "help", 0, 0, 'h' }, { "version", 0, 0, 'V' },
		{ "start", 1, 0, OPT_START }, { "count", 1, 0, 'n' },
		{ "no-labels", 0, 0, OPT_NO_LABELS }, { "classes", 1, 0, OPT_CLASSES },
		{ 0 },
	};
	int64_t start = 0, count = INT64_MAX;
	int no_labels = 0;
	const char *classes_path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "hVn:", opts, NULL)) != -1) {
		if (tool_common_option(c, help))
			continue;
		switch (c) {
		case OPT_START: start = parse_int_option("--start", optarg, 0, INT64_MAX); break;
		case 'n': count = parse_int_option("-n", optarg, 0, INT64_MAX); break;
		case OPT_NO_LABELS: no_labels = 1; break;
		case OPT_CLASSES: classes_path = optarg; break;
		default: usage_error("unknown option");
		}
	}
	int nargs = argc - optind;
	if (nargs < 1 || nargs > 2)
		usage_error(nargs < 1 ? "missing IMAGES file" : "too many arguments");
	if (nargs == 2 && no_labels)
		usage_error("--no-labels with a LABELS file");
	const char *images_path = argv[optind];

	char *labels_path = NULL;
	if (nargs == 2)
		labels_path = xstrdup(argv[optind + 1]);
	else if (!no_labels)
		labels_path = mnist_labels_path(images_path);

	const char *const *names = fashion_mnist_class_names;
	int nclasses = FASHION_MNIST_CLASSES;
	char **loaded = NULL;
	if (classes_path) {
		nclasses = mnist_load_class_names(classes_path, &loaded);
		if (nclasses < 0)
			die("%s", error_message());
		names = (const char *const *)loaded;
	}

	struct mnist_reader m;
	if (mnist_reader_open(&m, images_path, labels_path, names, nclasses) < 0 ||
	    mnist_reader_seek(&m, start) < 0)
		die("%s", error_message());

	struct ts_writer *out = ts_writer_fd(1, "stdout");
	struct record r = RECORD_INIT;
	int rc = 1;
	for (int64_t i = 0; i < count && (rc = mnist_reader_read(&m, &r)) > 0; i++)
		if (ts_write(out, &r) < 0)
			die("%s", error_message());
	if (rc < 0)
		die("%s", error_message());
	if (ts_writer_close(out) < 0)
		die("%s", error_message());

	record_free(&r);
	mnist_reader_close(&m);
	mnist_free_class_names(loaded, loaded ? nclasses : 0);
	free(labels_path);
	return EXIT_OK;
}
