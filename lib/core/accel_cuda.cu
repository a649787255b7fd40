// CUDA side of lib/core/accel.h. A machine without a driver or device reports
// zero devices instead of failing, so CUDA builds still run on the CPU.
#include <cuda_runtime.h>

extern "C" int accel_cuda_device_count_impl(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess)
		return 0;
	return n;
}
