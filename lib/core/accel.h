/* Which accelerators this build can use. The CPU path always works; CUDA is
 * compiled in when nvcc was found at build time and used when a device is. */
#ifndef KNND_CORE_ACCEL_H
#define KNND_CORE_ACCEL_H

/* Number of usable CUDA devices: 0 when CUDA is not compiled in or no device
 * (or driver) is present. */
int accel_cuda_devices(void);

/* One line for --version, e.g. "cuda: compiled in, 1 device" or "cuda: not compiled in". */
const char *accel_describe(void);

#endif
