/* The FAISS C++ calls behind faiss_shim.h; nothing else in knnd is C++. */
#include "index/faiss_shim.h"

#include <exception>

#include <faiss/AutoTune.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexRefine.h>
#include <faiss/Index.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

extern "C" {
#include "core/error.h"
}

/* The tools link with the C compiler driver, which leaves out UBSan's C++
 * runtime, so its vptr check (clang -fsanitize=undefined) cannot link here. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((no_sanitize("vptr"))), apply_to = function)
#endif

static faiss::Index *unwrap(const struct fshim *ix)
{
	return (faiss::Index *)ix;
}

/* Runs f, turning any C++ exception into errorf() and -1. */
template <typename F>
static int guarded(const char *what, F f)
{
	try {
		f();
		return 0;
	} catch (const std::exception &e) {
		/* FAISS messages span several lines; keep the first. */
		const char *m = e.what();
		int len = 0;
		while (m[len] && m[len] != '\n')
			len++;
		return errorf("%s: %.*s", what, len, m);
	} catch (...) {
		return errorf("%s: unknown FAISS error", what);
	}
}

extern "C" struct fshim *fshim_new(int d, const char *factory)
{
	faiss::Index *ix = nullptr;
	if (guarded("index factory", [&] {
		    ix = faiss::index_factory(d, factory, faiss::METRIC_INNER_PRODUCT);
	    }) < 0)
		return nullptr;
	return (struct fshim *)ix;
}

extern "C" void fshim_free(struct fshim *ix)
{
	delete unwrap(ix);
}

extern "C" int fshim_dim(const struct fshim *ix) { return unwrap(ix)->d; }
extern "C" int64_t fshim_count(const struct fshim *ix) { return unwrap(ix)->ntotal; }
extern "C" int fshim_is_trained(const struct fshim *ix) { return unwrap(ix)->is_trained; }

/* The inverted lists under any wrapper. FAISS 1.7.3's try_extract_index_ivf
 * sees through pre-transforms (OPQ) and id maps but not a refine step. */
static faiss::IndexIVF *find_ivf(const faiss::Index *ix)
{
	auto *index = const_cast<faiss::Index *>(ix);
	if (auto *refine = dynamic_cast<faiss::IndexRefine *>(index))
		index = refine->base_index;
	return faiss::ivflib::try_extract_index_ivf(index);
}

extern "C" int fshim_is_ivf(const struct fshim *ix)
{
	return find_ivf(unwrap(ix)) != nullptr;
}

extern "C" int fshim_train(struct fshim *ix, int64_t n, const float *x)
{
	return guarded("train", [&] { unwrap(ix)->train(n, x); });
}

extern "C" int fshim_add(struct fshim *ix, int64_t n, const float *x)
{
	return guarded("add", [&] { unwrap(ix)->add(n, x); });
}

extern "C" int fshim_search(const struct fshim *ix, int64_t n, const float *x, int k,
                            float *scores, int64_t *labels)
{
	return guarded("search", [&] { unwrap(ix)->search(n, x, k, scores, labels); });
}

extern "C" int fshim_set_nprobe(struct fshim *ix, int nprobe)
{
	if (!fshim_is_ivf(ix))
		return 0;
	return guarded("nprobe", [&] {
		faiss::ParameterSpace ps;
		ps.set_index_parameter(unwrap(ix), "nprobe", nprobe);
	});
}

extern "C" int fshim_merge(struct fshim *into, struct fshim *from)
{
	return guarded("merge", [&] {
		faiss::Index *a = unwrap(into), *b = unwrap(from);
		auto *fa = dynamic_cast<faiss::IndexFlatCodes *>(a);
		auto *fb = dynamic_cast<faiss::IndexFlatCodes *>(b);
		if (faiss::ivflib::try_extract_index_ivf(a) && faiss::ivflib::try_extract_index_ivf(b)) {
			faiss::ivflib::merge_into(a, b, true);
		} else if (fa && fb && fa->code_size == fb->code_size && fa->metric_type == fb->metric_type) {
			/* merge_from insists on the same C++ type, but index_factory's
			 * IndexFlat reads back as IndexFlatIP: append the codes. */
			fa->codes.insert(fa->codes.end(), fb->codes.begin(), fb->codes.end());
			fa->ntotal += fb->ntotal;
			fb->reset();
		} else {
			a->merge_from(*b, 0);
		}
	});
}

extern "C" int fshim_write(const struct fshim *ix, const char *path)
{
	return guarded(path, [&] { faiss::write_index(unwrap(ix), path); });
}

extern "C" struct fshim *fshim_read(const char *path)
{
	faiss::Index *ix = nullptr;
	if (guarded(path, [&] { ix = faiss::read_index(path); }) < 0)
		return nullptr;
	return (struct fshim *)ix;
}

#ifdef __clang__
#pragma clang attribute pop
#endif
