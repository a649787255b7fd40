/* What every command-line tool shares: its name in messages, exit codes,
 * --help/--version, checked allocation and quiet handling of closed pipes. */
#ifndef KNND_CORE_TOOL_H
#define KNND_CORE_TOOL_H

#include <stddef.h>
#include <stdnoreturn.h>

#include "core/error.h"

#define KNND_VERSION "0.1.0"

enum exit_code { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

extern const char *tool_name;

/* Sets the tool name and restores default SIGPIPE so that a closed pipe
 * ends the tool quietly. Handles -h/--help and --version when they are the
 * first argument, printing `help` (the full usage text) and exiting 0. */
void tool_init(const char *name, int argc, char **argv, const char *help);

/* "tool: message" on stderr, removes unfinished output files, exits 1. */
noreturn void die(const char *fmt, ...) KNND_PRINTF(1, 2);
/* fn(ctx) runs when the tool dies (before unfinished files are removed),
 * e.g. to pass on the records a filter has already produced, as a filter
 * that stops at bad input should. Returns a handle for tool_forget_at_die. */
int tool_at_die(void (*fn)(void *ctx), void *ctx);
void tool_forget_at_die(int handle);
/* "tool: message" plus a pointer to --help, exits 2. */
noreturn void usage_error(const char *fmt, ...) KNND_PRINTF(1, 2);
/* "tool: message" on stderr, continues. */
void warnx_tool(const char *fmt, ...) KNND_PRINTF(1, 2);

/* Handles the options every tool has; returns 1 if `opt` was one of them.
 * Call from the getopt_long loop for 'h' and 'V'. */
int tool_common_option(int opt, const char *help);

/* A command of a tool whose first argument is a command (`diffuse train
 * ...`): run gets the arguments from the command's name on (argv[0]) and
 * returns the exit code. */
struct tool_command {
	const char *name;
	int (*run)(int argc, char **argv);
};

/* Runs the command named by argv[1], one of commands (ended by a { 0 }
 * entry), and returns its exit code. Before a command only -h/--help and
 * --version are taken; anything else is a usage error, "give a command:
 * train or sample" or "unknown command 'x': train or sample". */
int tool_run_command(int argc, char **argv, const struct tool_command commands[], const char *help);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Strict number parsing for option values; dies with a usage error naming
 * the option on anything but a complete number in [min, max]. */
long long parse_int_option(const char *opt, const char *arg, long long min, long long max);
double parse_float_option(const char *opt, const char *arg);
double parse_float_range(const char *opt, const char *arg, double min, double max);

#endif
