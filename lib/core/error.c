#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char message[1024] = "no error";

int errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	return -1;
}

int error_prefix(const char *fmt, ...)
{
	char old[sizeof message];
	memcpy(old, message, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	size_t at = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
	/* Append ": old", truncating at the buffer's end. */
	const char *sep = ": ";
	for (const char *s = sep; *s && at + 1 < sizeof message; s++)
		message[at++] = *s;
	for (const char *s = old; *s && at + 1 < sizeof message; s++)
		message[at++] = *s;
	message[at] = 0;
	return -1;
}

const char *error_message(void)
{
	return message;
}
