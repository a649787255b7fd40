/* Error reporting for library code.
 *
 * Library functions never print or exit. On failure they record one line
 * with errorf() and return -1 (or NULL); the tool that called them decides
 * how to report it, usually with die("%s: %s", input, error_message()). */
#ifndef KNND_CORE_ERROR_H
#define KNND_CORE_ERROR_H

#define KNND_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Records a message and returns -1, so callers can `return errorf(...)`. */
int errorf(const char *fmt, ...) KNND_PRINTF(1, 2);

/* Prefixes the current message: "context: old message". Returns -1. */
int error_prefix(const char *fmt, ...) KNND_PRINTF(1, 2);

/* The last recorded message (never NULL). */
const char *error_message(void);

#endif
