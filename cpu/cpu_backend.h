/* The CPU backend: OpenBLAS GEMM, GEMM-based convolution (dense 3x3 stride-1 convolutions on
 * AVX2/FMA kernels when the CPU has them), OpenMP-threaded elementwise work.
 *
 * Convolutions run image by image over a fixed number of "lanes" (independent buffers and
 * weight-gradient partials); lanes are summed in a fixed order, so results are bit-identical
 * whatever the thread count, and the workspace a plan asks for does not depend on it.
 * Owns: the backend table and its options. */
#ifndef FG_CPU_BACKEND_H
#define FG_CPU_BACKEND_H

#include "engine/backend/backend.h"

typedef struct fg_cpu_options {
  int threads; /* worker threads for OpenMP and OpenBLAS; 0 = number of online cores */
  int lanes;   /* convolution lanes; 0 = FG_CPU_DEFAULT_LANES */
} fg_cpu_options;

enum { FG_CPU_DEFAULT_LANES = 4 };

/* Creates (once) and registers the CPU backend; a second call only updates the thread count
 * and the lanes. */
fg_status fg_cpu_backend_register(const fg_cpu_options *opt);
fg_backend *fg_cpu_backend(void);
int fg_cpu_threads(void);
/* generic 1: convolutions use only the portable code from now on (to compare with it, or to
 * test it on a CPU that has the specific kernels); 0: the AVX2/FMA kernels of dense 3x3
 * stride-1 convolutions are used when the CPU has AVX2 and FMA (the default, set when the
 * backend is created). Call after fg_cpu_backend_register, between steps, never while an op
 * runs or between a workspace query and the calls sized by it: workspace sizes follow the
 * choice. */
void fg_cpu_set_generic_kernels(int generic);
/* 1 when dense 3x3 stride-1 convolutions (pad <= 2) run on the AVX2/FMA kernels. */
int fg_cpu_uses_avx2(void);
/* The kernel family OpenBLAS chose for this CPU (e.g. "Haswell"): processes that must compute
 * bit-identical results need the same one (OPENBLAS_CORETYPE forces it). */
const char *fg_cpu_blas_core(void);

#endif
