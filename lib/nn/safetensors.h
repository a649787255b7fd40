/* safetensors files: reading (mmap, validated) and writing (atomic).
 *
 * The format: 8 bytes of little-endian u64 header length N, N bytes of UTF-8
 * JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}, then the tensors' raw little-endian bytes,
 * offsets counted from the first byte after the header. The data must be
 * covered exactly: no holes, no overlaps, nothing after the last tensor.
 *
 * Reading maps the file and checks all of that once in st_open, so that an
 * entry's bytes can be used without further checks; any problem is an
 * errorf message that names the tensor. Every dtype of the format except
 * the 8-bit floats is readable as raw bytes; st_read_f32 converts the float
 * ones to float32. This is a format layer: loading into a model's parameters
 * is nn_params_load (nn/checkpoint.h). */
#ifndef KNND_NN_SAFETENSORS_H
#define KNND_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/atomic_file.h"
#include "stream/tensor.h"

/* A header larger than this is refused as corrupt (real headers of large
 * models are a few hundred kB). */
#define ST_MAX_HEADER (100u << 20)

struct st_entry {
	const char *name;   /* owned by the file */
	enum dtype dtype;
	int ndim;           /* 0 for a scalar */
	int64_t shape[TENSOR_MAX_DIMS];
	size_t numel, nbytes;
	const void *data;   /* into the mapping: read-only, maybe unaligned */
};

struct st_file;

/* Maps and validates a file. NULL on failure (errorf "PATH: problem"). */
struct st_file *st_open(const char *path);
/* The same for bytes in memory, which must outlive the result (not copied);
 * `label` names it in messages. */
struct st_file *st_open_memory(const void *bytes, size_t size, const char *label);
void st_close(struct st_file *f);

/* Entries in the order of their data in the file. */
int st_count(const struct st_file *f);
const struct st_entry *st_entry_at(const struct st_file *f, int i);
/* The entry of that name, or NULL. */
const struct st_entry *st_find(const struct st_file *f, const char *name);

/* The __metadata__ value of `key` (NUL-terminated), or NULL if absent. */
const char *st_metadata(const struct st_file *f, const char *key);
int st_metadata_count(const struct st_file *f);
void st_metadata_at(const struct st_file *f, int i, const char **key, const char **value);

/* The whole file, for checksums. */
const void *st_bytes(const struct st_file *f, size_t *size);

/* Converts an F32, F16, BF16 or F64 entry to n float32 values; n must be
 * its element count. Returns 0, or -1 (errorf naming the tensor). */
int st_read_f32(const struct st_entry *e, float *dst, size_t n);

/* safetensors' dtype name ("F32") for ours, NULL if the format has none. */
const char *st_dtype_name(enum dtype dt);

/* ---- Writing ---- */

/* How a tensor's bytes are stored: as given, or float32 data rounded
 * (to nearest even) to float16 or bfloat16. */
enum st_convert { ST_AS_IS, ST_TO_F16, ST_TO_BF16 };

struct st_tensor {
	const char *name;
	enum dtype dtype;     /* of the bytes at data */
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	const void *data;     /* host memory, C order (st_write only) */
	enum st_convert convert;
};

struct st_meta {
	const char *key, *value;
};

/* Writes a whole file atomically (temporary file, fsync, rename). Tensors
 * are laid out widest element first so that each is aligned for its dtype.
 * Returns 0, or -1 (errorf). */
int st_write(const char *path, const struct st_tensor *t, int n, const struct st_meta *meta, int nmeta);

/* The same in steps, for data that is not in host memory all at once:
 * st_writer_open writes the header, then st_writer_put supplies each
 * tensor's bytes (in its st_tensor dtype) in the order given; the data
 * fields are ignored. Layout follows that order, so put wider dtypes first
 * to keep them aligned. st_writer_sync flushes everything to disk without
 * making the file visible; st_writer_commit renames it into place (after
 * a sync), st_writer_abort removes it. The CRC-32 (zlib's) and size of the
 * file's bytes are known once all data is put. */
struct st_writer {
	struct atomic_file af;
	struct st_tensor *t; /* copies of the descriptions */
	int n, next;
	uint32_t crc32;
	uint64_t size;
	int failed;
};

int st_writer_open(struct st_writer *w, const char *path, const struct st_tensor *t, int n,
                   const struct st_meta *meta, int nmeta);
int st_writer_put(struct st_writer *w, const void *data);
int st_writer_sync(struct st_writer *w);
int st_writer_commit(struct st_writer *w);
void st_writer_abort(struct st_writer *w);

#endif
