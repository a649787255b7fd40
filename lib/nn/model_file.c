#include "nn/model_file.h"

#include <string.h>

#include "core/error.h"
#include "nn/checkpoint.h"
#include "stream/json.h"

struct st_file *nn_model_file_open(const char *path, const char *kind, int (*parse)(void *config, const char *json),
                                   void *config)
{
	struct st_file *f = st_open(path);
	if (!f)
		return NULL; /* the message names the file */
	const char *json = st_metadata(f, "config");
	if (!json)
		errorf("%s: no \"config\" in the metadata: not %s", path, kind);
	else if (parse(config, json) < 0)
		error_prefix("%s: config", path);
	else
		return f;
	st_close(f);
	return NULL;
}

int nn_model_file_load(struct nn_params *p, struct st_file *f, const char *path)
{
	int rc = nn_params_load(p, f, 0);
	if (rc < 0)
		error_prefix("%s", path);
	st_close(f);
	return rc;
}

int nn_model_config_map(const char *json, struct mp_buf *mp)
{
	*mp = (struct mp_buf){ 0 };
	if (json_to_msgpack(json, strlen(json), mp) < 0) {
		mp_buf_free(mp);
		return -1;
	}
	struct mp_header h;
	if (mp_decode_header(mp->data, mp->len, &h) <= 0 || h.type != MP_MAP) {
		mp_buf_free(mp);
		return errorf("not a JSON object");
	}
	return 0;
}
