/* OpenBLAS threading and identification. */
#include <cblas.h>

#include "cpu/cpu_internal.h"

void fg_cpu_blas_set_threads(int threads) { openblas_set_num_threads(threads); }

const char *fg_cpu_blas_description(void) { return openblas_get_config(); }

const char *fg_cpu_blas_core(void) { return openblas_get_corename(); }
