/* The knn index directory: FAISS index, float16 vectors, strings and
 * attributes (see knn_index.h and formats/knn-index.md). */
#include "index/knn_index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "index/faiss_shim.h"
#include "stream/record.h"
#include "stream/stream.h"
#include "stream/tensor.h"

#define MANIFEST "manifest.msgpack"
#define FORMAT_NAME "knnd-index"
/* Compressed indexes return this many times k candidates for rescoring. */
#define REFINE_FACTOR 8
/* Training sample: enough for the coarse and product quantisers. */
#define TRAIN_MAX 200000
/* A string table entry with this length is an absent string. */
#define STR_ABSENT UINT32_MAX

double knn_normalize(float *v, int d)
{
	double s = 0;
	for (int i = 0; i < d; i++)
		s += (double)v[i] * v[i];
	double n = sqrt(s);
	if (n > 0)
		for (int i = 0; i < d; i++)
			v[i] = (float)(v[i] / n);
	return n;
}

void knn_auto_factory(int64_t n, int d, char *buf, size_t size)
{
	if (n < KNN_EXACT_MAX) {
		snprintf(buf, size, "Flat");
		return;
	}
	int nlist = (int)(4 * sqrt((double)n));
	/* 4-bit fast-scan PQ of 8 dimensions per byte pair (64 bytes for d=512)
	 * finds the candidates, and the exact re-ranking over emb.f16 restores
	 * the order. OPQ would rotate first, but Debian's FAISS 1.7.3 trains
	 * its OPQ with 8-bit PQs for minutes even on 200k vectors. */
	if (d % 4 == 0)
		snprintf(buf, size, "IVF%d,PQ%dx4fs", nlist, d / 4);
	else
		snprintf(buf, size, "IVF%d,SQ8", nlist);
}

struct knn_index *knn_index_new(int d, const char *factory)
{
	struct knn_index *ix = xcalloc(1, sizeof *ix);
	ix->d = d;
	ix->factory = factory ? xstrdup(factory) : NULL;
	return ix;
}

void knn_index_free(struct knn_index *ix)
{
	if (!ix)
		return;
	if (ix->fx)
		fshim_free(ix->fx);
	if (ix->map)
		munmap(ix->map, ix->map_len);
	else
		free(ix->emb);
	for (int64_t i = 0; i < ix->count; i++) {
		if (ix->ids)
			free(ix->ids[i]);
		if (ix->paths)
			free(ix->paths[i]);
	}
	free(ix->ids);
	free(ix->paths);
	for (int a = 0; a < ix->nattr; a++) {
		free(ix->attr_names[a]);
		free(ix->attrs[a]);
	}
	free(ix->pending);
	free(ix->factory);
	free(ix);
}

int knn_index_attr(const struct knn_index *ix, const char *name)
{
	for (int a = 0; a < ix->nattr; a++)
		if (!strcmp(ix->attr_names[a], name))
			return a;
	return -1;
}

static int64_t faiss_count(const struct knn_index *ix)
{
	return ix->fx ? fshim_count(ix->fx) : 0;
}

/* Grows every per-row array to hold at least n rows; a memory-mapped emb
 * becomes a private copy first. */
static void reserve_rows(struct knn_index *ix, int64_t n)
{
	if (n <= ix->cap && !ix->map)
		return;
	int64_t cap = ix->cap > n ? ix->cap : n;
	if (cap < 2 * ix->cap)
		cap = 2 * ix->cap;
	if (cap < 64)
		cap = 64;
	size_t d = ix->d;
	if (ix->map) {
		uint16_t *copy = xmalloc(cap * d * sizeof *copy);
		memcpy(copy, ix->emb, ix->count * d * sizeof *copy);
		munmap(ix->map, ix->map_len);
		ix->map = NULL;
		ix->emb = copy;
	} else {
		ix->emb = xrealloc(ix->emb, cap * d * sizeof *ix->emb);
	}
	ix->ids = xrealloc(ix->ids, cap * sizeof *ix->ids);
	ix->paths = xrealloc(ix->paths, cap * sizeof *ix->paths);
	for (int a = 0; a < ix->nattr; a++)
		ix->attrs[a] = xrealloc(ix->attrs[a], cap * sizeof(double));
	int64_t queued = ix->count - faiss_count(ix);
	ix->pending = xrealloc(ix->pending, (queued + (cap - ix->count)) * d * sizeof(float));
	ix->cap = cap;
}

static int add_attr(struct knn_index *ix, const char *name)
{
	if (ix->nattr == KNN_MAX_ATTRS)
		return errorf("more than %d numeric attributes", KNN_MAX_ATTRS);
	int a = ix->nattr++;
	ix->attr_names[a] = xstrdup(name);
	ix->attrs[a] = xmalloc((ix->cap ? ix->cap : 1) * sizeof(double));
	for (int64_t i = 0; i < ix->count; i++)
		ix->attrs[a][i] = NAN;
	return a;
}

int knn_index_append(struct knn_index *ix, const float *v, const char *id, const char *path,
                     int nattr, const char *const *names, const double *values)
{
	reserve_rows(ix, ix->count + 1);
	int64_t row = ix->count;
	int64_t queued = row - faiss_count(ix);
	memcpy(ix->pending + queued * ix->d, v, ix->d * sizeof *v);
	for (int j = 0; j < ix->d; j++)
		ix->emb[row * ix->d + j] = float_to_half(v[j]);
	ix->ids[row] = id ? xstrdup(id) : NULL;
	ix->paths[row] = path ? xstrdup(path) : NULL;
	for (int a = 0; a < ix->nattr; a++)
		ix->attrs[a][row] = NAN;
	for (int j = 0; j < nattr; j++) {
		int a = knn_index_attr(ix, names[j]);
		if (a < 0 && (a = add_attr(ix, names[j])) < 0) {
			free(ix->ids[row]);
			free(ix->paths[row]);
			return -1;
		}
		ix->attrs[a][row] = values[j];
	}
	ix->count++;
	return 0;
}

/* Creates the FAISS index and trains it on an evenly strided sample of the
 * queued vectors, if it is not trained yet. */
static int train_on_queued(struct knn_index *ix, void (*progress)(const char *msg))
{
	if (!ix->factory) {
		char buf[128];
		knn_auto_factory(ix->count, ix->d, buf, sizeof buf);
		ix->factory = xstrdup(buf);
	}
	if (!ix->fx) {
		if (!(ix->fx = fshim_new(ix->d, ix->factory)))
			return error_prefix("factory \"%s\"", ix->factory);
		ix->refine = strcmp(ix->factory, "Flat") != 0;
	}
	if (fshim_is_trained(ix->fx))
		return 0;
	int64_t queued = ix->count - fshim_count(ix->fx);
	int64_t n = queued < TRAIN_MAX ? queued : TRAIN_MAX;
	if (n == 0)
		return errorf("nothing to train the index on");
	float *sample = xmalloc(n * ix->d * sizeof *sample);
	for (int64_t i = 0; i < n; i++)
		memcpy(sample + i * ix->d, ix->pending + (i * queued / n) * ix->d, ix->d * sizeof(float));
	if (progress) {
		char msg[256];
		snprintf(msg, sizeof msg, "training %s on %lld vectors", ix->factory, (long long)n);
		progress(msg);
	}
	int rc = fshim_train(ix->fx, n, sample);
	free(sample);
	return rc;
}

int knn_index_train(struct knn_index *ix, void (*progress)(const char *msg))
{
	if (faiss_count(ix) > 0)
		return errorf("the index already holds vectors");
	if (train_on_queued(ix, progress) < 0)
		return -1;
	for (int64_t i = 0; i < ix->count; i++) {
		free(ix->ids[i]), free(ix->paths[i]);
		ix->ids[i] = ix->paths[i] = NULL;
	}
	ix->count = 0;
	return 0;
}

int knn_index_commit(struct knn_index *ix, void (*progress)(const char *msg))
{
	if (train_on_queued(ix, progress) < 0)
		return -1;
	int64_t queued = ix->count - fshim_count(ix->fx);
	/* Add in chunks so that progress shows on large collections. */
	const int64_t chunk = 100000;
	for (int64_t done = 0; done < queued; done += chunk) {
		int64_t n = queued - done < chunk ? queued - done : chunk;
		if (fshim_add(ix->fx, n, ix->pending + done * ix->d) < 0)
			return -1;
		if (progress && queued > chunk) {
			char msg[256];
			snprintf(msg, sizeof msg, "added %lld of %lld vectors", (long long)(done + n), (long long)queued);
			progress(msg);
		}
	}
	return 0;
}

int knn_index_merge(struct knn_index *a, struct knn_index *b)
{
	if (a->d != b->d)
		return errorf("dimension %d does not match %d", b->d, a->d);
	if (strcmp(a->factory, b->factory))
		return errorf("index type \"%s\" does not match \"%s\"", b->factory, a->factory);
	if (a->count != faiss_count(a) || b->count != faiss_count(b))
		return errorf("merge of uncommitted indexes");
	if (fshim_merge(a->fx, b->fx) < 0)
		return -1;
	/* The FAISS vectors moved; the side data follows row by row. */
	int64_t base = a->count;
	reserve_rows(a, base + b->count);
	memcpy(a->emb + base * a->d, b->emb, b->count * a->d * sizeof *a->emb);
	for (int64_t i = 0; i < b->count; i++) {
		a->ids[base + i] = b->ids[i] ? xstrdup(b->ids[i]) : NULL;
		a->paths[base + i] = b->paths[i] ? xstrdup(b->paths[i]) : NULL;
	}
	for (int at = 0; at < a->nattr; at++)
		for (int64_t i = 0; i < b->count; i++)
			a->attrs[at][base + i] = NAN;
	a->count += b->count;
	for (int bt = 0; bt < b->nattr; bt++) {
		int at = knn_index_attr(a, b->attr_names[bt]);
		if (at < 0 && (at = add_attr(a, b->attr_names[bt])) < 0)
			return -1;
		a->attrs[at] = xrealloc(a->attrs[at], a->cap * sizeof(double));
		memcpy(a->attrs[at] + base, b->attrs[bt], b->count * sizeof(double));
	}
	return 0;
}

/* ---- files ---- */

static char *join(const char *dir, const char *name)
{
	char *p = xmalloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = join(dir, name);
	FILE *f = fopen(path, "wb");
	int rc = 0;
	if (!f || (len && fwrite(data, 1, len, f) != len) || fflush(f) || fsync(fileno(f)))
		rc = errorf("%s: %s", path, strerror(errno));
	if (f && fclose(f) && !rc)
		rc = errorf("%s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int write_strings(const char *dir, const char *name, char *const *s, int64_t n)
{
	size_t len = 0;
	for (int64_t i = 0; i < n; i++)
		len += 4 + (s[i] ? strlen(s[i]) : 0);
	char *buf = xmalloc(len + 1), *p = buf;
	for (int64_t i = 0; i < n; i++) {
		uint32_t l = s[i] ? (uint32_t)strlen(s[i]) : STR_ABSENT;
		memcpy(p, &l, 4);
		p += 4;
		if (s[i]) {
			memcpy(p, s[i], l);
			p += l;
		}
	}
	int rc = write_file(dir, name, buf, len);
	free(buf);
	return rc;
}

static int write_manifest(const struct knn_index *ix, const char *dir)
{
	struct record m = RECORD_INIT;
	record_set_str(&m, "format", FORMAT_NAME);
	record_set_int(&m, "version", KNN_INDEX_VERSION);
	record_set_int(&m, "d", ix->d);
	record_set_str(&m, "metric", "inner_product");
	record_set_int(&m, "count", ix->count);
	record_set_str(&m, "factory", ix->factory);
	record_set_bool(&m, "refine", ix->refine);
	record_set_int(&m, "nattr", ix->nattr);
	for (int a = 0; a < ix->nattr; a++) {
		char key[32];
		snprintf(key, sizeof key, "attr%d", a);
		record_set_str(&m, key, ix->attr_names[a]);
	}
	struct ts_writer *w = ts_writer_mem();
	int rc = ts_write(w, &m);
	size_t len;
	const void *data = ts_writer_mem_data(w, &len);
	if (rc == 0)
		rc = write_file(dir, MANIFEST, data, len);
	ts_writer_close(w);
	record_free(&m);
	return rc;
}

static int write_all(const struct knn_index *ix, const char *dir)
{
	char *path = join(dir, "faiss.index");
	int rc = fshim_write(ix->fx, path);
	free(path);
	if (rc < 0)
		return -1;
	if (write_file(dir, "emb.f16", ix->emb, ix->count * ix->d * sizeof *ix->emb) < 0 ||
	    write_strings(dir, "ids.str", ix->ids, ix->count) < 0 ||
	    write_strings(dir, "paths.str", ix->paths, ix->count) < 0)
		return -1;
	for (int a = 0; a < ix->nattr; a++) {
		char name[32];
		snprintf(name, sizeof name, "attr-%d.f64", a);
		if (write_file(dir, name, ix->attrs[a], ix->count * sizeof(double)) < 0)
			return -1;
	}
	/* Last, so that a directory with a manifest is complete. */
	return write_manifest(ix, dir);
}

/* Removes a directory of plain files (ours: no subdirectories). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				char *p = join(dir, e->d_name);
				unlink(p);
				free(p);
			}
		closedir(d);
	}
	rmdir(dir);
}

int knn_index_save(const struct knn_index *ix, const char *dir)
{
	if (!ix->fx || faiss_count(ix) != ix->count)
		return errorf("%s: index not committed", dir);
	struct stat st;
	bool exists = stat(dir, &st) == 0;
	if (exists) {
		char *m = join(dir, MANIFEST);
		bool ours = S_ISDIR(st.st_mode) && access(m, F_OK) == 0;
		free(m);
		if (!ours)
			return errorf("%s: exists and is not a knn index directory", dir);
	}
	char *tmp = xmalloc(strlen(dir) + 16);
	sprintf(tmp, "%s.tmp-XXXXXX", dir);
	if (!mkdtemp(tmp)) {
		int rc = errorf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	int rc = write_all(ix, tmp);
	char *old = NULL;
	if (rc == 0 && exists) {
		/* Move the old index aside, then the new one in. */
		old = xmalloc(strlen(dir) + 16);
		sprintf(old, "%s.old-XXXXXX", dir);
		if (!mkdtemp(old) || rename(dir, old) < 0)
			rc = errorf("%s: %s", dir, strerror(errno));
	}
	if (rc == 0 && rename(tmp, dir) < 0) {
		rc = errorf("%s: %s", dir, strerror(errno));
		if (old)
			rename(old, dir);
	}
	if (rc < 0)
		remove_dir(tmp);
	if (old)
		remove_dir(old);
	free(old);
	free(tmp);
	return rc;
}

/* Reads a whole small file; NULL with errorf on failure. */
static void *read_file(const char *dir, const char *name, size_t *len)
{
	char *path = join(dir, name);
	FILE *f = fopen(path, "rb");
	void *buf = NULL;
	if (!f) {
		errorf("%s: %s", path, strerror(errno));
	} else if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);
		rewind(f);
		buf = xmalloc(n > 0 ? n : 1);
		if (n < 0 || fread(buf, 1, n, f) != (size_t)n) {
			errorf("%s: cannot read", path);
			free(buf);
			buf = NULL;
		}
		*len = n;
	}
	if (f)
		fclose(f);
	free(path);
	return buf;
}

static int read_strings(const char *dir, const char *name, char **out, int64_t n)
{
	size_t len;
	unsigned char *buf = read_file(dir, name, &len), *p = buf, *end = buf + len;
	if (!buf)
		return -1;
	int64_t i = 0;
	for (; i < n && end - p >= 4; i++) {
		uint32_t l;
		memcpy(&l, p, 4);
		p += 4;
		if (l == STR_ABSENT) {
			out[i] = NULL;
			continue;
		}
		if ((size_t)(end - p) < l)
			break;
		out[i] = xstrndup((const char *)p, l);
		p += l;
	}
	free(buf);
	if (i < n || p != end) {
		for (int64_t j = 0; j < i; j++)
			free(out[j]);
		memset(out, 0, n * sizeof *out);
		return errorf("%s: corrupt string table", name);
	}
	return 0;
}

static int read_manifest(struct knn_index *ix, const char *dir)
{
	char *path = join(dir, MANIFEST);
	struct ts_reader *rd = ts_open(path);
	struct record m = RECORD_INIT;
	int rc = -1;
	int64_t v, d, count, nattr;
	const char *format, *factory;
	if (!rd) {
		errorf("not a knn index directory (no %s)", MANIFEST);
		goto out;
	}
	if (ts_read(rd, &m) <= 0 || !(format = record_str(&m, "format")) || strcmp(format, FORMAT_NAME)) {
		errorf("%s: not a knnd index manifest", MANIFEST);
		goto out;
	}
	if (record_int(&m, "version", &v) < 0 || v != KNN_INDEX_VERSION) {
		errorf("%s: unsupported version", MANIFEST);
		goto out;
	}
	struct value *refine = record_get(&m, "refine");
	if (record_int(&m, "d", &d) < 0 || d < 1 || d > 65536 || record_int(&m, "count", &count) < 0 ||
	    count < 0 || !(factory = record_str(&m, "factory")) || !refine || refine->kind != V_BOOL ||
	    record_int(&m, "nattr", &nattr) < 0 || nattr < 0 || nattr > KNN_MAX_ATTRS) {
		errorf("%s: missing or bad fields", MANIFEST);
		goto out;
	}
	ix->d = (int)d;
	ix->factory = xstrdup(factory);
	ix->refine = refine->b;
	for (int a = 0; a < nattr; a++) {
		char key[32];
		snprintf(key, sizeof key, "attr%d", a);
		const char *name = record_str(&m, key);
		if (!name) {
			errorf("%s: missing %s", MANIFEST, key);
			goto out;
		}
		ix->attr_names[ix->nattr++] = xstrdup(name);
	}
	ix->count = count;
	rc = 0;
out:
	record_free(&m);
	if (rd)
		ts_close(rd);
	free(path);
	return rc;
}

static int open_parts(struct knn_index *ix, const char *dir)
{
	if (read_manifest(ix, dir) < 0)
		return -1;
	char *path = join(dir, "faiss.index");
	ix->fx = fshim_read(path);
	free(path);
	if (!ix->fx)
		return -1;
	if (fshim_dim(ix->fx) != ix->d || fshim_count(ix->fx) != ix->count)
		return errorf("faiss.index does not match the manifest");
	/* The vectors stay on disk, paged in as searches touch them. */
	path = join(dir, "emb.f16");
	int fd = open(path, O_RDONLY);
	struct stat st;
	size_t want = ix->count * ix->d * sizeof(uint16_t);
	int rc = 0;
	if (fd < 0 || fstat(fd, &st) < 0)
		rc = errorf("emb.f16: %s", strerror(errno));
	else if ((size_t)st.st_size != want)
		rc = errorf("emb.f16: %lld bytes, expected %zu", (long long)st.st_size, want);
	else if (want && (ix->map = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		ix->map = NULL;
		rc = errorf("emb.f16: %s", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	free(path);
	if (rc < 0)
		return -1;
	ix->map_len = want;
	ix->emb = ix->map;
	ix->cap = ix->count;
	ix->ids = xcalloc(ix->count + 1, sizeof *ix->ids);
	ix->paths = xcalloc(ix->count + 1, sizeof *ix->paths);
	if (read_strings(dir, "ids.str", ix->ids, ix->count) < 0 ||
	    read_strings(dir, "paths.str", ix->paths, ix->count) < 0)
		return -1;
	for (int a = 0; a < ix->nattr; a++) {
		char name[32];
		size_t len;
		snprintf(name, sizeof name, "attr-%d.f64", a);
		if (!(ix->attrs[a] = read_file(dir, name, &len)))
			return -1;
		if (len != ix->count * sizeof(double))
			return errorf("%s: wrong size", name);
	}
	return 0;
}

struct knn_index *knn_index_open(const char *dir)
{
	struct knn_index *ix = xcalloc(1, sizeof *ix);
	struct stat st;
	int rc = stat(dir, &st) < 0 ? errorf("%s", strerror(errno))
	         : !S_ISDIR(st.st_mode) ? errorf("not a directory")
	         : open_parts(ix, dir);
	if (rc < 0) {
		if (!ix->ids)  /* nothing per-row was allocated yet */
			ix->count = 0;
		knn_index_free(ix);
		error_prefix("%s", dir);
		return NULL;
	}
	return ix;
}

/* ---- search ---- */

void knn_index_vector(const struct knn_index *ix, int64_t i, float *out)
{
	const uint16_t *e = ix->emb + i * ix->d;
	for (int j = 0; j < ix->d; j++)
		out[j] = half_to_float(e[j]);
}

/* The dot products of q with n stored float16 rows; this is the exact
 * re-ranking step, so it converts 8 halves at a time where the CPU can. */
static float dot_f16_body(const uint16_t *e, const float *q, int d)
{
	float s = 0;
	for (int j = 0; j < d; j++)
		s += half_to_float(e[j]) * q[j];
	return s;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("arch=x86-64-v3"))) static float dot_f16_avx2(const uint16_t *e, const float *q, int d)
{
	__m256 acc = _mm256_setzero_ps();
	int j = 0;
	for (; j + 8 <= d; j += 8)
		acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(e + j))),
		                      _mm256_loadu_ps(q + j), acc);
	float lanes[8];
	_mm256_storeu_ps(lanes, acc);
	float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
	return s + dot_f16_body(e + j, q + j, d - j);
}

/* Chosen once, before any parallel region reads it. */
static float (*dot_f16)(const uint16_t *e, const float *q, int d);

static void pick_dot_f16(void)
{
	if (dot_f16)
		return;
	/* Clang 14's __builtin_cpu_supports does not know "f16c". */
	unsigned a, b, c, d;
	int fast = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	           __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
	dot_f16 = fast ? dot_f16_avx2 : dot_f16_body;
}
#else
static float (*const dot_f16)(const uint16_t *e, const float *q, int d) = dot_f16_body;
static void pick_dot_f16(void)
{
}
#endif

static float stored_dot(const struct knn_index *ix, int64_t i, const float *q)
{
	return dot_f16(ix->emb + i * ix->d, q, ix->d);
}

static bool wanted(const struct knn_index *ix, const struct knn_search_opts *o, int64_t row, float score)
{
	if (o->exclude_self) {
		if (score >= 1 - 1e-6f)
			return false;
		if (o->self_id && ix->ids[row] && !strcmp(ix->ids[row], o->self_id))
			return false;
	}
	if (o->filter_attr >= 0) {
		double a = ix->attrs[o->filter_attr][row];
		if (!(a >= o->filter_lo && a < o->filter_hi))
			return false;
	}
	return true;
}

static int by_score_desc(const void *a, const void *b)
{
	const struct knn_hit *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return (x->label > y->label) - (x->label < y->label);
}

/* Candidates asked of FAISS per query for k neighbours. */
static int64_t candidates(const struct knn_index *ix, const struct knn_search_opts *o)
{
	int64_t fetch = o->k + (o->exclude_self ? 8 : 0);
	if (ix->refine && o->refine_factor > 1)
		fetch *= o->refine_factor;
	if (o->filter_attr >= 0)
		fetch *= 4;
	return fetch < ix->count ? fetch : ix->count;
}

/* One FAISS call for nq queries of `fetch` candidates each, then per query:
 * exact rescoring (refine), exclusions, filter, the best k into hits. */
static int search_round(struct knn_index *ix, int nq, const float *q, const char *const *self_ids,
                        const struct knn_search_opts *o, int64_t fetch, struct knn_hit *hits, int *found)
{
	float *scores = xmalloc((size_t)nq * fetch * sizeof *scores);
	int64_t *labels = xmalloc((size_t)nq * fetch * sizeof *labels);
	if (fshim_search(ix->fx, nq, q, (int)fetch, scores, labels) < 0) {
		free(scores), free(labels);
		return -1;
	}
	bool rescore = ix->refine && o->refine_factor > 0;
	pick_dot_f16();
#pragma omp parallel
	{
		struct knn_hit *cand = xmalloc(fetch * sizeof *cand);
		struct knn_search_opts mine = *o;
#pragma omp for schedule(dynamic, 4)
		for (int i = 0; i < nq; i++) {
			const float *qi = q + (size_t)i * ix->d;
			const int64_t *li = labels + (size_t)i * fetch;
			mine.self_id = self_ids ? self_ids[i] : NULL;
			int n = 0;
			for (int64_t j = 0; j < fetch; j++) {
				if (li[j] < 0 || li[j] >= ix->count)
					continue;
				float s = rescore ? stored_dot(ix, li[j], qi) : scores[(size_t)i * fetch + j];
				if (wanted(ix, &mine, li[j], s))
					cand[n++] = (struct knn_hit){ li[j], s };
			}
			qsort(cand, n, sizeof *cand, by_score_desc);
			found[i] = n < o->k ? n : o->k;
			memcpy(hits + (size_t)i * o->k, cand, found[i] * sizeof *hits);
		}
		free(cand);
	}
	free(scores), free(labels);
	return 0;
}

int knn_index_search_batch(struct knn_index *ix, int nq, const float *q, const char *const *self_ids,
                           const struct knn_search_opts *o, struct knn_hit *hits, int *found)
{
	if (o->k < 1)
		return errorf("k must be at least 1");
	if (ix->count == 0 || nq == 0) {
		memset(found, 0, nq * sizeof *found);
		return 0;
	}
	if (o->nprobe > 0 && fshim_set_nprobe(ix->fx, o->nprobe) < 0)
		return -1;
	int64_t fetch = candidates(ix, o);
	if (search_round(ix, nq, q, self_ids, o, fetch, hits, found) < 0)
		return -1;
	/* Exclusions or a filter left a query short: ask again for it alone,
	 * doubling the candidates until k survive or the whole index was asked. */
	for (int i = 0; i < nq; i++)
		for (int64_t more = fetch; found[i] < o->k && more < ix->count;) {
			more = more * 2 < ix->count ? more * 2 : ix->count;
			if (search_round(ix, 1, q + (size_t)i * ix->d, self_ids ? self_ids + i : NULL, o, more,
			                 hits + (size_t)i * o->k, found + i) < 0)
				return -1;
		}
	return 0;
}

int knn_index_search(struct knn_index *ix, const float *q, const struct knn_search_opts *o,
                     struct knn_hit *hits)
{
	int found;
	const char *self = o->self_id;
	return knn_index_search_batch(ix, 1, q, &self, o, hits, &found) < 0 ? -1 : found;
}
