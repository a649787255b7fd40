/* Parameters <-> safetensors, and resumable checkpoints (see checkpoint.h
 * and formats/checkpoint.md). */
#include "nn/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/ops.h"
#include "stream/json.h"

#define STATE_FORMAT "knnd-train-state"
#define STATE_VERSION "1"

static char *prefixed(const char *prefix, const char *name)
{
	size_t n = strlen(prefix) + strlen(name) + 1;
	char *s = xmalloc(n);
	snprintf(s, n, "%s%s", prefix, name);
	return s;
}

static size_t largest_param(const struct nn_params *p)
{
	size_t most = 1;
	for (int i = 0; i < p->n; i++)
		if (p->items[i].numel > most)
			most = p->items[i].numel;
	return most;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
	int at = snprintf(buf, size, "[");
	for (int d = 0; d < ndim && at < (int)size - 24; d++)
		at += snprintf(buf + at, size - at, d ? ",%lld" : "%lld", (long long)shape[d]);
	snprintf(buf + at, size - at, "]");
}

static int check_tensor(const struct nn_param *it, const struct st_entry *e)
{
	if (e->dtype != DT_FLOAT32 && e->dtype != DT_FLOAT16 && e->dtype != DT_BFLOAT16 &&
	    e->dtype != DT_FLOAT64)
		return errorf("tensor '%s' is %s, not a float dtype", e->name, st_dtype_name(e->dtype));
	int same = e->ndim == it->ndim;
	for (int d = 0; same && d < it->ndim; d++)
		same = e->shape[d] == it->shape[d];
	if (!same) {
		char want[128], got[128];
		format_shape(want, sizeof want, it->ndim, it->shape);
		format_shape(got, sizeof got, e->ndim, e->shape);
		return errorf("tensor '%s' has shape %s in the file, the model's is %s", e->name, got, want);
	}
	return 0;
}

/* Checks that f holds a fitting tensor prefix+name for every parameter
 * (unless missing ones are allowed) and, without a prefix, that it holds
 * nothing else (unless extra ones are allowed). */
static int check_set(const struct nn_params *p, const struct st_file *f, const char *prefix, int flags)
{
	int missing = 0, first_missing = -1;
	for (int i = 0; i < p->n; i++) {
		char *name = prefixed(prefix, p->items[i].name);
		const struct st_entry *e = st_find(f, name);
		free(name);
		if (!e) {
			if (!missing++)
				first_missing = i;
			continue;
		}
		if (check_tensor(&p->items[i], e) < 0)
			return -1;
	}
	if (missing && !(flags & NN_LOAD_ALLOW_MISSING))
		return errorf("tensor '%s%s' is missing from the file%s", prefix, p->items[first_missing].name,
		              missing > 1 ? " (and others)" : "");
	if (*prefix || (flags & NN_LOAD_ALLOW_EXTRA))
		return 0;
	int extra = 0;
	const char *first_extra = NULL;
	for (int i = 0; i < st_count(f); i++) {
		const char *name = st_entry_at(f, i)->name;
		if (nn_params_find(p, name) < 0 && !extra++)
			first_extra = name;
	}
	if (extra)
		return errorf("tensor '%s' in the file is not a parameter of the model%s", first_extra,
		              extra > 1 ? " (and others)" : "");
	return 0;
}

/* Copies each parameter's tensor prefix+name that f holds into dst (a
 * buffer of the parameters' layout). Call after check_set. */
static void copy_set(const struct nn_params *p, const struct st_file *f, const char *prefix, float *dst,
                     float *staging)
{
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		char *name = prefixed(prefix, it->name);
		const struct st_entry *e = st_find(f, name);
		free(name);
		if (!e)
			continue;
		st_read_f32(e, staging, it->numel); /* cannot fail after check_set */
		nn->upload(dst + it->offset, staging, it->numel * sizeof(float));
	}
}

int nn_params_load(struct nn_params *p, const struct st_file *f, int flags)
{
	if (!p->data)
		return errorf("parameters must be allocated before loading");
	if (check_set(p, f, "", flags) < 0)
		return -1;
	float *staging = xmalloc(largest_param(p) * sizeof *staging);
	copy_set(p, f, "", p->data, staging);
	free(staging);
	return 0;
}

/* ---- Writing sets of tensors ---- */

/* One F32 tensor per parameter, named prefix+name (names owned by t). */
static void describe_set(const struct nn_params *p, const char *prefix, struct st_tensor *t)
{
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		memset(&t[i], 0, sizeof t[i]);
		t[i].name = prefixed(prefix, it->name);
		t[i].dtype = DT_FLOAT32;
		t[i].ndim = it->ndim;
		for (int d = 0; d < it->ndim; d++)
			t[i].shape[d] = it->shape[d];
	}
}

static void free_names(struct st_tensor *t, int n)
{
	for (int i = 0; i < n; i++)
		free((char *)t[i].name);
}

/* Puts each parameter's slice of src (backend memory), in order. */
static int put_set(struct st_writer *w, const struct nn_params *p, const float *src, float *staging)
{
	for (int i = 0; i < p->n; i++) {
		const struct nn_param *it = &p->items[i];
		nn->download(staging, src + it->offset, it->numel * sizeof(float));
		if (st_writer_put(w, staging) < 0)
			return -1;
	}
	return 0;
}

/* Metadata whose strings the list owns. */
struct meta_list {
	struct st_meta *items;
	int n, cap;
};

static void meta_add(struct meta_list *l, const char *key, const char *fmt, ...) KNND_PRINTF(3, 4);
static void meta_add(struct meta_list *l, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *value = NULL;
	if (vasprintf(&value, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->items = xrealloc(l->items, (size_t)l->cap * sizeof *l->items);
	}
	l->items[l->n].key = xstrdup(key);
	l->items[l->n].value = value;
	l->n++;
}

static void meta_free(struct meta_list *l)
{
	for (int i = 0; i < l->n; i++) {
		free((char *)l->items[i].key);
		free((char *)l->items[i].value);
	}
	free(l->items);
	memset(l, 0, sizeof *l);
}

static int write_weights(struct st_writer *w, const char *path, const struct nn_params *p,
                         const struct meta_list *meta)
{
	struct st_tensor *t = xcalloc((size_t)(p->n ? p->n : 1), sizeof *t);
	describe_set(p, "", t);
	int rc = st_writer_open(w, path, t, p->n, meta->items, meta->n);
	free_names(t, p->n);
	free(t);
	if (rc < 0)
		return -1;
	float *staging = xmalloc(largest_param(p) * sizeof *staging);
	rc = put_set(w, p, p->data, staging);
	free(staging);
	if (rc < 0)
		st_writer_abort(w);
	return rc;
}

int nn_params_save(const char *path, const struct nn_params *p, const struct st_meta *meta, int nmeta)
{
	struct meta_list l = { 0 };
	int has_format = 0;
	for (int i = 0; i < nmeta; i++) {
		meta_add(&l, meta[i].key, "%s", meta[i].value);
		has_format |= !strcmp(meta[i].key, "format");
	}
	if (!has_format)
		meta_add(&l, "format", "pt");
	struct st_writer w;
	int rc = write_weights(&w, path, p, &l);
	meta_free(&l);
	if (rc < 0)
		return -1;
	return st_writer_commit(&w);
}

/* ---- Checkpoints ---- */

char *nn_checkpoint_sibling_path(const char *weights_path, const char *suffix)
{
	const char *ext = ".safetensors";
	size_t len = strlen(weights_path), elen = strlen(ext);
	if (len >= elen && !strcmp(weights_path + len - elen, ext))
		len -= elen;
	size_t n = len + strlen(suffix) + 1;
	char *s = xmalloc(n);
	snprintf(s, n, "%.*s%s", (int)len, weights_path, suffix);
	return s;
}

char *nn_checkpoint_state_path(const char *weights_path, int prev)
{
	return nn_checkpoint_sibling_path(weights_path, prev ? ".state.prev.safetensors" : ".state.safetensors");
}

/* The optimiser settings a resumed run must share with the saved one. */
static const struct {
	const char *key;
	size_t offset;
	char type; /* 'f' float, 'l' int64_t, 'i' int */
} config_fields[] = {
	{ "lr", offsetof(struct nn_optim_config, lr), 'f' },
	{ "beta1", offsetof(struct nn_optim_config, beta1), 'f' },
	{ "beta2", offsetof(struct nn_optim_config, beta2), 'f' },
	{ "eps", offsetof(struct nn_optim_config, eps), 'f' },
	{ "weight_decay", offsetof(struct nn_optim_config, weight_decay), 'f' },
	{ "warmup_steps", offsetof(struct nn_optim_config, warmup_steps), 'l' },
	{ "decay_steps", offsetof(struct nn_optim_config, decay_steps), 'l' },
	{ "min_lr", offsetof(struct nn_optim_config, min_lr), 'f' },
	{ "clip_norm", offsetof(struct nn_optim_config, clip_norm), 'f' },
	{ "ema_decay", offsetof(struct nn_optim_config, ema_decay), 'f' },
	{ "accum_steps", offsetof(struct nn_optim_config, accum_steps), 'i' },
};
#define N_CONFIG_FIELDS (int)(sizeof config_fields / sizeof *config_fields)

/* The shortest text that reads back as the same float (9 digits always do). */
static void float_text(char *buf, size_t size, float v)
{
	for (int digits = 6; digits <= 9; digits++) {
		snprintf(buf, size, "%.*g", digits, v);
		if (strtof(buf, NULL) == v)
			return;
	}
}

static void config_field_text(const struct nn_optim_config *c, int i, char *buf, size_t size)
{
	const char *at = (const char *)c + config_fields[i].offset;
	if (config_fields[i].type == 'f') {
		float v;
		memcpy(&v, at, sizeof v);
		float_text(buf, size, v);
	} else if (config_fields[i].type == 'l') {
		int64_t v;
		memcpy(&v, at, sizeof v);
		snprintf(buf, size, "%" PRId64, v);
	} else {
		int v;
		memcpy(&v, at, sizeof v);
		snprintf(buf, size, "%d", v);
	}
}

/* One character per parameter: '1' without weight decay, '0' with. */
static char *no_decay_text(const struct nn_optim *o)
{
	int n = o->params->n;
	char *s = xmalloc((size_t)n + 1);
	for (int i = 0; i < n; i++)
		s[i] = o->no_decay[i] ? '1' : '0';
	s[n] = 0;
	return s;
}

static void describe_state(struct meta_list *l, const struct nn_optim *o, const struct nn_train_position *pos,
                           const struct st_writer *weights)
{
	meta_add(l, "format", STATE_FORMAT);
	meta_add(l, "version", STATE_VERSION);
	meta_add(l, "step", "%" PRId64, o->step);
	meta_add(l, "micro_step", "%d", o->micro_step);
	meta_add(l, "skipped_steps", "%" PRId64, o->skipped_steps);
	meta_add(l, "rng_seed", "%" PRIu64, pos->rng_seed);
	meta_add(l, "rng_offset", "%" PRIu64, pos->rng_offset);
	meta_add(l, "data_pos", "%" PRId64, pos->data_pos);
	meta_add(l, "weights_size", "%" PRIu64, weights->size);
	meta_add(l, "weights_crc32", "%08" PRIx32, weights->crc32);
	for (int i = 0; i < N_CONFIG_FIELDS; i++) {
		char buf[48];
		config_field_text(&o->cfg, i, buf, sizeof buf);
		meta_add(l, config_fields[i].key, "%s", buf);
	}
	char *nd = no_decay_text(o);
	meta_add(l, "no_decay", "%s", nd);
	free(nd);
}

static int write_state(struct st_writer *w, const char *path, const struct nn_params *p,
                       const struct nn_optim *o, const struct meta_list *meta)
{
	/* m, v, then EMA and the partly accumulated gradient if there are any */
	const float *bufs[4] = { o->m, o->v, o->ema, o->micro_step > 0 ? p->grad : NULL };
	const char *prefixes[4] = { "m.", "v.", "ema.", "grad." };
	int nsets = 0;
	struct st_tensor *t = xcalloc((size_t)(4 * p->n + 1), sizeof *t);
	for (int s = 0; s < 4; s++)
		if (bufs[s])
			describe_set(p, prefixes[s], t + p->n * nsets++);
	int rc = st_writer_open(w, path, t, p->n * nsets, meta->items, meta->n);
	free_names(t, p->n * nsets);
	free(t);
	if (rc < 0)
		return -1;
	float *staging = xmalloc(largest_param(p) * sizeof *staging);
	for (int s = 0; s < 4 && rc == 0; s++)
		if (bufs[s])
			rc = put_set(w, p, bufs[s], staging);
	free(staging);
	if (rc < 0)
		st_writer_abort(w);
	return rc;
}

/* Makes renames in the directory of `path` durable, so that they reach
 * the disk in the order they were made. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd >= 0 && fsync(fd) == 0 ? 0 : errorf("%s: cannot sync the directory: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

static int validate_json(const char *text)
{
	struct mp_buf mp = { 0 };
	int rc = json_to_msgpack(text, strlen(text), &mp);
	mp_buf_free(&mp);
	return rc;
}

int nn_checkpoint_save(const char *path, const struct nn_params *p, const struct nn_optim *o,
                       const struct nn_train_position *pos, const char *config_json)
{
	return nn_checkpoint_save_meta(path, p, o, pos, config_json, NULL, 0);
}

int nn_checkpoint_save_meta(const char *path, const struct nn_params *p, const struct nn_optim *o,
                            const struct nn_train_position *pos, const char *config_json,
                            const struct st_meta *extra, int nextra)
{
	if (o->params != p)
		return errorf("%s: the optimiser belongs to other parameters", path);
	if (config_json && validate_json(config_json) < 0)
		return error_prefix("%s: the model config is not valid JSON", path);
	struct meta_list wmeta = { 0 }, smeta = { 0 };
	meta_add(&wmeta, "format", "pt");
	if (config_json)
		meta_add(&wmeta, "config", "%s", config_json);
	for (int i = 0; i < nextra; i++)
		meta_add(&wmeta, extra[i].key, "%s", extra[i].value);
	meta_add(&wmeta, "step", "%" PRId64, o->step);
	char *state_path = nn_checkpoint_state_path(path, 0);
	char *prev_path = nn_checkpoint_state_path(path, 1);
	struct st_writer ww, sw;
	int rc = write_weights(&ww, path, p, &wmeta);
	if (rc == 0 && (rc = st_writer_sync(&ww)) < 0)
		st_writer_abort(&ww);
	if (rc == 0) {
		describe_state(&smeta, o, pos, &ww);
		rc = write_state(&sw, state_path, p, o, &smeta);
		if (rc < 0)
			st_writer_abort(&ww);
	}
	if (rc == 0) {
		/* From here on, some state on disk matches the weights on disk. */
		if (rename(state_path, prev_path) < 0 && errno != ENOENT)
			rc = errorf("%s: cannot rename to %s: %s", state_path, prev_path, strerror(errno));
		if (rc == 0)
			rc = sync_dir(path);
		if (rc == 0)
			rc = st_writer_commit(&sw);
		else
			st_writer_abort(&sw);
		if (rc == 0)
			rc = sync_dir(path);
		if (rc == 0)
			rc = st_writer_commit(&ww);
		else
			st_writer_abort(&ww);
		if (rc == 0)
			rc = sync_dir(path);
		if (rc == 0)
			unlink(prev_path);
	}
	meta_free(&wmeta);
	meta_free(&smeta);
	free(state_path);
	free(prev_path);
	return rc;
}

/* ---- Loading a checkpoint ---- */

static uint32_t crc_of(const struct st_file *f)
{
	size_t size;
	const uint8_t *b = st_bytes(f, &size);
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	for (size_t done = 0; done < size;) {
		size_t chunk = size - done < (1u << 30) ? size - done : (1u << 30);
		crc = (uint32_t)crc32(crc, b + done, (uInt)chunk);
		done += chunk;
	}
	return crc;
}

/* Unsigned or signed decimal metadata, the whole string. */
static int meta_u64(const struct st_file *f, const char *key, uint64_t *v)
{
	const char *s = st_metadata(f, key);
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-' || (*v = strtoull(s, &end, 10), errno) || *end)
		return errorf("metadata '%s' is missing or not an unsigned integer", key);
	return 0;
}

static int meta_i64(const struct st_file *f, const char *key, int64_t *v)
{
	const char *s = st_metadata(f, key);
	char *end;
	errno = 0;
	if (!s || !*s || (*v = strtoll(s, &end, 10), errno) || *end)
		return errorf("metadata '%s' is missing or not an integer", key);
	return 0;
}

/* Why a state file does not belong to the weights, or 0 if it does. */
static int state_matches(const struct st_file *s, size_t wsize, uint32_t wcrc, const char *wstep)
{
	const char *format = st_metadata(s, "format"), *version = st_metadata(s, "version");
	if (!format || strcmp(format, STATE_FORMAT))
		return errorf("not a knnd training state (metadata 'format' is not '%s')", STATE_FORMAT);
	if (!version || strcmp(version, STATE_VERSION))
		return errorf("training state version %s, this build reads %s", version ? version : "(none)",
		              STATE_VERSION);
	uint64_t size;
	const char *crc = st_metadata(s, "weights_crc32"), *step = st_metadata(s, "step");
	char want[16];
	snprintf(want, sizeof want, "%08" PRIx32, wcrc);
	if (meta_u64(s, "weights_size", &size) < 0 || !crc)
		return errorf("it does not record which weights it belongs to");
	if (size != wsize || strcmp(crc, want))
		return errorf("it belongs to the weights of step %s (size %" PRIu64 ", CRC-32 %s), but the "
		              "weights file is step %s (size %zu, CRC-32 %s)",
		              step ? step : "?", size, crc, wstep ? wstep : "?", wsize, want);
	return 0;
}

/* The state file that belongs to the weights: the current one, or the
 * previous one when a save was cut short between its renames. */
static struct st_file *open_matching_state(const char *path, const struct st_file *w, char **used)
{
	size_t wsize;
	st_bytes(w, &wsize);
	uint32_t wcrc = crc_of(w);
	const char *wstep = st_metadata(w, "step");
	char why[2][600] = { "", "" };
	int prev_exists = 0;
	for (int prev = 0; prev < 2; prev++) {
		char *sp = nn_checkpoint_state_path(path, prev);
		struct st_file *s = st_open(sp);
		if (s && state_matches(s, wsize, wcrc, wstep) == 0) {
			*used = sp;
			return s;
		}
		if (s)
			error_prefix("%s", sp);
		if (prev)
			prev_exists = access(sp, F_OK) == 0;
		snprintf(why[prev], sizeof why[prev], "%s", error_message());
		st_close(s);
		free(sp);
	}
	if (prev_exists)
		errorf("%s: no training state matches these weights: %s; %s", path, why[0], why[1]);
	else
		errorf("%s: no training state matches these weights: %s", path, why[0]);
	return NULL;
}

static int check_config(const struct st_file *s, const struct nn_optim *o)
{
	for (int i = 0; i < N_CONFIG_FIELDS; i++) {
		char now[48];
		config_field_text(&o->cfg, i, now, sizeof now);
		const char *saved = st_metadata(s, config_fields[i].key);
		if (!saved || strcmp(saved, now))
			return errorf("the checkpoint was trained with %s %s, this run has %s", config_fields[i].key,
			              saved ? saved : "(none)", now);
	}
	char *nd = no_decay_text(o);
	const char *saved = st_metadata(s, "no_decay");
	int same = saved && !strcmp(saved, nd);
	free(nd);
	if (!same)
		return errorf("the checkpoint applied weight decay to other parameters than this run");
	return 0;
}

int nn_checkpoint_load(const char *path, struct nn_params *p, struct nn_optim *o,
                       struct nn_train_position *pos, int flags)
{
	if (o->params != p)
		return errorf("%s: the optimiser belongs to other parameters", path);
	struct st_file *w = st_open(path);
	if (!w)
		return -1;
	char *state_path = NULL;
	struct st_file *s = open_matching_state(path, w, &state_path);
	if (!s) {
		st_close(w);
		return -1;
	}
	int64_t step = 0, micro = 0, skipped = 0, data_pos = 0;
	uint64_t seed = 0, offset = 0;
	int rc = meta_i64(s, "step", &step);
	if (rc == 0)
		rc = meta_i64(s, "micro_step", &micro);
	if (rc == 0)
		rc = meta_i64(s, "skipped_steps", &skipped);
	if (rc == 0)
		rc = meta_u64(s, "rng_seed", &seed);
	if (rc == 0)
		rc = meta_u64(s, "rng_offset", &offset);
	if (rc == 0)
		rc = meta_i64(s, "data_pos", &data_pos);
	if (rc == 0 && (step < 0 || micro < 0 || micro > 1 << 30 || skipped < 0))
		rc = errorf("negative or huge step counters");
	if (rc == 0 && !(flags & NN_CKPT_NEW_CONFIG))
		rc = check_config(s, o);
	if (rc < 0)
		error_prefix("%s", state_path);

	/* Check everything before changing anything. */
	int has_ema = 0, has_grad = 0;
	for (int i = 0; i < st_count(s); i++) {
		const char *name = st_entry_at(s, i)->name;
		has_ema |= !strncmp(name, "ema.", 4);
		has_grad |= !strncmp(name, "grad.", 5);
	}
	int load_ema = o->ema && has_ema;
	if (rc == 0 && (rc = check_set(p, w, "", flags & (NN_LOAD_ALLOW_EXTRA | NN_LOAD_ALLOW_MISSING))) < 0)
		error_prefix("%s", path);
	const char *sets[4] = { "m.", "v.", load_ema ? "ema." : NULL, micro > 0 ? "grad." : NULL };
	for (int k = 0; k < 4 && rc == 0; k++)
		if (sets[k] && (rc = check_set(p, s, sets[k], 0)) < 0)
			error_prefix("%s", state_path);
	if (rc == 0 && micro > 0 && !has_grad)
		rc = errorf("%s: micro-step %" PRId64 " but no accumulated gradient", state_path, micro);

	if (rc == 0) {
		float *staging = xmalloc(largest_param(p) * sizeof *staging);
		copy_set(p, w, "", p->data, staging);
		copy_set(p, s, "m.", o->m, staging);
		copy_set(p, s, "v.", o->v, staging);
		if (load_ema)
			copy_set(p, s, "ema.", o->ema, staging);
		else if (o->ema && step > 0) /* EMA newly switched on: start from the weights */
			nn->scale(o->ema, p->data, 1.0f, p->total);
		nn_params_zero_grad(p);
		if (micro > 0)
			copy_set(p, s, "grad.", p->grad, staging);
		free(staging);
		o->step = step;
		o->micro_step = (int)micro;
		o->skipped_steps = skipped;
		pos->rng_seed = seed;
		pos->rng_offset = offset;
		pos->data_pos = data_pos;
	}
	free(state_path);
	st_close(s);
	st_close(w);
	return rc;
}
