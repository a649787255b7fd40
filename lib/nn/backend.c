#include <string.h>

#include "core/accel.h"
#include "core/error.h"
#include "nn/ops.h"

const struct nn_ops *nn = &nn_cpu_ops;

#ifdef KNND_CUDA
extern const struct nn_ops nn_cuda_ops;
#endif

int nn_use_backend(const char *name)
{
	if (!strcmp(name, "cpu")) {
		nn = &nn_cpu_ops;
		return 0;
	}
	int want_cuda = !strcmp(name, "cuda");
	if (!want_cuda && strcmp(name, "auto"))
		return errorf("unknown backend '%s' (cpu, cuda or auto)", name);
#ifdef KNND_CUDA
	if (accel_cuda_devices() > 0) {
		nn = &nn_cuda_ops;
		return 0;
	}
#endif
	if (want_cuda)
		return errorf("no CUDA device (%s)", accel_describe());
	nn = &nn_cpu_ops;
	return 0;
}
