#include "core/accel.h"

#include <stdio.h>

#ifdef KNND_CUDA
int accel_cuda_device_count_impl(void); /* accel_cuda.cu */
#endif

int accel_cuda_devices(void)
{
#ifdef KNND_CUDA
	return accel_cuda_device_count_impl();
#else
	return 0;
#endif
}

const char *accel_describe(void)
{
#ifdef KNND_CUDA
	static char line[64];
	int n = accel_cuda_devices();
	snprintf(line, sizeof line, "cuda: compiled in, %d device%s", n, n == 1 ? "" : "s");
	return line;
#else
	return "cuda: not compiled in";
#endif
}
