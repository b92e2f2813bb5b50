/* The CPU backend: OpenBLAS GEMM, GEMM-based convolution, OpenMP-threaded elementwise work.
 *
 * Convolutions run image by image over a fixed number of "lanes" (independent im2col buffers
 * and weight-gradient partials); lanes are summed in a fixed order, so results are bit-identical
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

/* Creates (once) and registers the CPU backend; a second call only updates the thread count. */
fg_status fg_cpu_backend_register(const fg_cpu_options *opt);
fg_backend *fg_cpu_backend(void);
int fg_cpu_threads(void);

#endif
