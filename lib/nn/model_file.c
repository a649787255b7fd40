#include "nn/model_file.h"

#include "core/error.h"
#include "nn/checkpoint.h"

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
