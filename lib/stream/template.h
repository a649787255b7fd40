/* Text templates filled from a record's fields: "a photo of a {text}".
 *
 * {NAME} stands for the field NAME as scalar_text writes it; {{ and }} are
 * literal braces. Parsing catches malformed templates once, up front, so a
 * tool can reject them before reading any input. */
#ifndef KNND_STREAM_TEMPLATE_H
#define KNND_STREAM_TEMPLATE_H

#include "stream/msgpack.h"
#include "stream/record.h"

struct template;

/* Parses text; NULL (errorf "'{' at column N is not closed", ...) if an
 * opening brace has no closing one, a '}' stands alone or a name is empty. */
struct template *template_parse(const char *text);
/* Appends the template filled from r to out. Returns 0, or -1 (errorf
 * "field 'NAME' is missing" / "field 'NAME' is a tensor, not a scalar"). */
int template_expand(const struct template *t, const struct record *r, struct mp_buf *out);
/* The text the template was parsed from. */
const char *template_text(const struct template *t);
void template_free(struct template *t);

#endif
