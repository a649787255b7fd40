#include "core/tool.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/accel.h"
#include "core/atomic_file.h"

const char *tool_name = "knnd";

static void print_version(void)
{
	printf("%s (knnd) %s\n%s\n", tool_name, KNND_VERSION, accel_describe());
}

void tool_init(const char *name, int argc, char **argv, const char *help)
{
	tool_name = name;
	signal(SIGPIPE, SIG_DFL);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(help, stdout);
		exit(EXIT_OK);
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		print_version();
		exit(EXIT_OK);
	}
}

int tool_common_option(int opt, const char *help)
{
	if (opt == 'h') {
		fputs(help, stdout);
		exit(EXIT_OK);
	}
	if (opt == 'V') {
		print_version();
		exit(EXIT_OK);
	}
	return 0;
}

/* "a, b or c" */
static void list_commands(const struct tool_command commands[], char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = 0;
	for (int i = 0; commands[i].name && len < size; i++)
		len += snprintf(buf + len, size - len, "%s%s", i == 0 ? "" : commands[i + 1].name ? ", " : " or ",
		                commands[i].name);
}

int tool_run_command(int argc, char **argv, const struct tool_command commands[], const char *help)
{
	char list[256];
	list_commands(commands, list, sizeof list);
	if (argc < 2 || argv[1][0] == '-') {
		static const struct option opts[] = { { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0 } };
		int c;
		while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1)
			if (!tool_common_option(c, help))
				usage_error("unknown option");
		usage_error("give a command: %s", list);
	}
	for (int i = 0; commands[i].name; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	usage_error("unknown command '%s': %s", argv[1], list);
}

static void vreport(const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "%s: ", tool_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* A few writers at most are open at once. */
#define AT_DIE_MAX 8
static struct {
	void (*fn)(void *ctx);
	void *ctx;
} at_die[AT_DIE_MAX];

int tool_at_die(void (*fn)(void *ctx), void *ctx)
{
	for (int i = 0; i < AT_DIE_MAX; i++)
		if (!at_die[i].fn) {
			at_die[i].fn = fn;
			at_die[i].ctx = ctx;
			return i;
		}
	return -1;
}

void tool_forget_at_die(int handle)
{
	if (handle >= 0 && handle < AT_DIE_MAX)
		at_die[handle].fn = NULL;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	for (int i = 0; i < AT_DIE_MAX; i++)
		if (at_die[i].fn) {
			void (*fn)(void *) = at_die[i].fn;
			at_die[i].fn = NULL; /* once, even if fn dies itself */
			fn(at_die[i].ctx);
		}
	atomic_abort_all();
	exit(EXIT_FAIL);
}

void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", tool_name);
	atomic_abort_all();
	exit(EXIT_USAGE);
}

void warnx_tool(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory allocating %zu bytes", n);
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

long long parse_int_option(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (end == arg || *end || errno)
		usage_error("%s: '%s' is not an integer", opt, arg);
	if (v < min || v > max)
		usage_error("%s: %lld is out of range [%lld, %lld]", opt, v, min, max);
	return v;
}

double parse_float_option(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (end == arg || *end || errno || !isfinite(v))
		usage_error("%s: '%s' is not a finite number", opt, arg);
	return v;
}

double parse_float_range(const char *opt, const char *arg, double min, double max)
{
	double v = parse_float_option(opt, arg);
	if (!(v >= min && v <= max))
		usage_error("%s: must be in [%g, %g], not %s", opt, min, max, arg);
	return v;
}
