/* Loading a tokenizer checkpoint (formats/vqgan-checkpoint.md): taming's
 * state dict as safetensors, its structure read off the tensors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/checkpoint.h"
#include "vqgan/vqgan_internal.h"

/* Config files are a few kB; anything this large is not one. */
#define CONFIG_MAX_BYTES (1 << 20)

static int read_config_file(struct vqgan_config *g, const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return errorf("%s: %s", path, strerror(errno));
	char *text = xmalloc(CONFIG_MAX_BYTES + 1);
	size_t len = fread(text, 1, CONFIG_MAX_BYTES + 1, fp);
	int bad = ferror(fp);
	fclose(fp);
	int rc;
	if (bad) {
		rc = errorf("%s: read error", path);
	} else if (len > CONFIG_MAX_BYTES) {
		rc = errorf("%s: larger than %d bytes: not a config", path, CONFIG_MAX_BYTES);
	} else {
		text[len] = 0;
		rc = vqgan_config_from_json(g, text) < 0 ? error_prefix("%s", path) : 0;
	}
	free(text);
	return rc;
}

/* A real checkpoint also holds the training losses' weights (the
 * discriminator, LPIPS): loss.*, which the tokenizer does not use. Anything
 * else must be a parameter. */
static int check_extra_tensors(const struct nn_params *p, const struct st_file *f)
{
	for (int i = 0; i < st_count(f); i++) {
		const char *name = st_entry_at(f, i)->name;
		if (strncmp(name, "loss.", 5) && nn_params_find(p, name) < 0)
			return errorf("tensor '%s' is not a parameter of the VQGAN its encoder tensors describe", name);
	}
	return 0;
}

int vqgan_load(struct vqgan *m, const char *path, const char *config_path, int with_grad)
{
	struct st_file *f = st_open(path);
	if (!f)
		return -1; /* the message names the file */
	struct vqgan_config c, given;
	struct vqgan tmp;
	int rc = vqgan_config_from_checkpoint(&c, f);
	if (rc == 0 && config_path)
		rc = read_config_file(&given, config_path) < 0 || vqgan_config_adopt(&c, &given, config_path) < 0 ||
		     vqgan_config_check(&c) < 0 ? -1 : 0;
	if (rc == 0) {
		vqgan_init(&tmp, &c, with_grad);
		rc = check_extra_tensors(&tmp.params, f);
		if (rc == 0)
			rc = nn_params_load(&tmp.params, f, NN_LOAD_ALLOW_EXTRA);
		if (rc == 0)
			*m = tmp;
		else
			vqgan_free(&tmp);
	}
	if (rc < 0)
		error_prefix("%s", path);
	st_close(f);
	return rc;
}
