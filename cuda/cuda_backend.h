/* The CUDA backend (cuBLAS, cuDNN, cuSOLVER and fedgap's kernels).
 *
 * Three states, reported by `fedgap devices`: not compiled (this header's functions are absent;
 * FEDGAP_WITH_CUDA is 0), compiled but no usable device (registered with available = 0 and the
 * runtime's reason), available (device name and memory). Only plain CUDA runtime calls that
 * exist in CUDA 10.2 are used, so a Jetson Nano toolkit can build it. Owns: the device context. */
#ifndef FG_CUDA_BACKEND_H
#define FG_CUDA_BACKEND_H

/* The engine headers are C: give them C linkage when this header is read by nvcc. */
#ifdef __cplusplus
extern "C" {
#endif

#include "engine/backend/backend.h"

/* Probes device `index` and registers the CUDA backend, available or not. Returns FG_OK in
 * both cases; the state is in fg_backend_registered(FG_DEV_CUDA)->available. */
fg_status fg_cuda_backend_register(int index);

#ifdef __cplusplus
}
#endif

#endif
