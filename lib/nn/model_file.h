/* Loading a model whose file carries its config as JSON under the
 * safetensors metadata key "config" (as nn_checkpoint_save writes it): open,
 * parse the config, build the model from it, load the weights. The model
 * builds itself between the two calls:
 *
 *   struct st_file *f = nn_model_file_open(path, "a judge model", parse, &cfg);
 *   if (!f) return -1;
 *   judge_init(m, &cfg, with_grad);
 *   if (nn_model_file_load(&m->params, f, path) < 0) { judge_free(m); return -1; } */
#ifndef KNND_NN_MODEL_FILE_H
#define KNND_NN_MODEL_FILE_H

#include "nn/params.h"
#include "nn/safetensors.h"
#include "stream/msgpack.h"

/* Opens path and parses its "config" with parse(config, json). kind names
 * what a file without one is not ("a judge model"). Returns the open file
 * for nn_model_file_load, or NULL with errorf naming path. */
struct st_file *nn_model_file_open(const char *path, const char *kind, int (*parse)(void *config, const char *json),
                                   void *config);

/* Loads every parameter of p from f (all must be there, nothing else) and
 * closes f. Returns 0, or -1 with errorf naming path. */
int nn_model_file_load(struct nn_params *p, struct st_file *f, const char *path);

/* For the parse function: the config's JSON text as msgpack in mp, checked
 * to be an object, whose members mp_map_int and its kin then read. Returns
 * 0 (the caller frees mp), or -1 with errorf and mp left empty. */
int nn_model_config_map(const char *json, struct mp_buf *mp);

#endif
