/* Parameters to and from safetensors files, and training checkpoints that
 * resume exactly (formats/checkpoint.md).
 *
 * A checkpoint is two files: MODEL.safetensors, the weights (a plain
 * safetensors file any tool can read, the model config as JSON under the
 * metadata key "config"), and MODEL.state.safetensors beside it, the
 * optimiser moments, EMA weights and the counters a trainer needs. The state
 * records the size and CRC-32 of the weights file it belongs to, and a save
 * never leaves the two out of step: see nn_checkpoint_save. */
#ifndef KNND_NN_CHECKPOINT_H
#define KNND_NN_CHECKPOINT_H

#include <stdint.h>

#include "nn/optim.h"
#include "nn/params.h"
#include "nn/safetensors.h"

enum {
	NN_LOAD_ALLOW_EXTRA = 1,   /* file tensors that are no parameter are ignored */
	NN_LOAD_ALLOW_MISSING = 2, /* parameters the file lacks keep their values */
};

/* Copies every parameter from the tensor of the same name (F32, F16, BF16
 * or F64, upcast to float32), checking shapes. Nothing is changed unless
 * everything matches. Returns 0, or -1 with errorf naming the first
 * offending tensor (missing, extra, wrong shape or dtype). */
int nn_params_load(struct nn_params *p, const struct st_file *f, int flags);

/* Writes all parameters as F32 tensors, atomically, with the metadata given
 * plus "format": "pt" (what Hugging Face loaders expect). */
int nn_params_save(const char *path, const struct nn_params *p, const struct st_meta *meta, int nmeta);

/* What the trainer must restore besides weights and optimiser to continue
 * exactly: its random stream and its place in the data. */
struct nn_train_position {
	uint64_t rng_seed, rng_offset;
	int64_t data_pos; /* opaque to the library: records consumed, say */
};

/* Saves weights to `path` and training state beside it. config_json (may be
 * NULL) must be valid JSON. The order makes every crash point recoverable:
 * weights to a synced temporary file first (its CRC known), then the state
 * to its own temporary; the old state is renamed to .state.prev, the new
 * state into place, the weights into place, and .state.prev removed. At any
 * moment the weights file matches the state or the previous state, and
 * nn_checkpoint_load picks whichever matches. Returns 0 or -1 (errorf). */
int nn_checkpoint_save(const char *path, const struct nn_params *p, const struct nn_optim *o,
                       const struct nn_train_position *pos, const char *config_json);

/* The same, with more metadata in the weights file (for a model whose
 * loaders read their own keys, e.g. a CLIP's config and tokenizer). */
int nn_checkpoint_save_meta(const char *path, const struct nn_params *p, const struct nn_optim *o,
                            const struct nn_train_position *pos, const char *config_json,
                            const struct st_meta *extra, int nextra);

/* Loads weights into p, and state into o (created by nn_optim_init on p,
 * with the run's config) and pos. The optimiser config in the checkpoint
 * must equal o's unless flags has NN_CKPT_NEW_CONFIG (then o's is kept, e.g.
 * to change the learning rate on resume, and exactness is given up).
 * Read the model config first with st_open + st_metadata(f, "config") to
 * build the model. Returns 0, or -1 (errorf) with nothing changed. */
enum { NN_CKPT_NEW_CONFIG = 4 };
int nn_checkpoint_load(const char *path, struct nn_params *p, struct nn_optim *o,
                       struct nn_train_position *pos, int flags);

/* The state file's path for a weights path: "x.safetensors" ->
 * "x.state.safetensors" (or .state.prev.safetensors); other names get the
 * suffix appended. Caller frees. */
char *nn_checkpoint_state_path(const char *weights_path, int prev);

/* A file beside the weights: weights_path without its ".safetensors", then
 * suffix (".state.safetensors"). Caller frees. */
char *nn_checkpoint_sibling_path(const char *weights_path, const char *suffix);

#endif
