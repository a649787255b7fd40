#include "stream/scalar_text.h"

#include <string.h>

#include "core/error.h"
#include "stream/json.h"

static const char *kind_name(enum value_kind k)
{
	switch (k) {
	case V_NIL: return "null";
	case V_BIN: return "bytes";
	case V_TENSOR: return "a tensor";
	default: return "an array or map";
	}
}

int scalar_text(const struct value *v, struct mp_buf *out)
{
	switch (v->kind) {
	case V_STR:
		mp_put_bytes(out, v->str.ptr, v->str.len);
		return 0;
	case V_BOOL: {
		const char *s = v->b ? "true" : "false";
		mp_put_bytes(out, s, strlen(s));
		return 0;
	}
	case V_INT:
	case V_FLOAT: {
		/* ts-cat's number text, so a caption shows what ts-cat shows; JSON
		 * quotes the non-finite floats, and a caption wants them bare. */
		size_t start = out->len;
		if (json_write_value(out, v, false) < 0)
			return -1;
		if (out->len - start >= 2 && out->data[start] == '"') {
			memmove(out->data + start, out->data + start + 1, out->len - start - 2);
			out->len -= 2;
		}
		return 0;
	}
	default:
		return errorf("is %s, not a scalar", kind_name(v->kind));
	}
}
