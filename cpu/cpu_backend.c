/* CPU backend: registration, threads, memory. The op families register their entries from
 * their own files (cpu/cpu_internal.h). */
#include "cpu/cpu_backend.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/conv_internal.h"
#include "cpu/cpu_internal.h"
#include "cpu/math_internal.h"
#include "cpu/nn_internal.h"

static fg_backend fg_cpu;
static fg_cpu_ctx fg_cpu_state;
static int fg_cpu_created;

static fg_status cpu_alloc(fg_backend *b, size_t bytes, void **out) {
  void *p = NULL;
  if (posix_memalign(&p, b->alignment, bytes) != 0 || !p)
    return FG_FAIL(FG_ERR_OOM, "cpu: the system allocator refused %zu bytes", bytes);
  *out = p;
  return FG_OK;
}

static void cpu_free(fg_backend *b, void *ptr) {
  (void)b;
  free(ptr);
}

static fg_status cpu_copy(fg_backend *b, void *dst, const void *src, size_t bytes, fg_copy_kind kind) {
  (void)b;
  (void)kind;
  if (bytes) memmove(dst, src, bytes);
  return FG_OK;
}

static fg_status cpu_sync(fg_backend *b) {
  (void)b;
  return FG_OK;
}

/* Free = MemAvailable, total = MemTotal, from /proc/meminfo. */
static fg_status cpu_mem_query(fg_backend *b, size_t *free_bytes, size_t *total_bytes) {
  (void)b;
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return FG_FAIL(FG_ERR_IO, "cpu: cannot read /proc/meminfo");
  char line[256];
  unsigned long long avail = 0, total = 0, v;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) avail = v;
    if (sscanf(line, "MemTotal: %llu kB", &v) == 1) total = v;
  }
  fclose(f);
  *free_bytes = (size_t)avail * 1024;
  *total_bytes = (size_t)total * 1024;
  return FG_OK;
}

/* The shape limits of the CPU kernels (BLAS takes int extents; a masked softmax row lives on the
 * stack); everything else the table has, it runs. */
static fg_status cpu_supports(fg_backend *b, const fg_op_query *q) {
  switch (q->op) {
    case FG_OP_CONV2D_FORWARD:
    case FG_OP_CONV2D_BACKWARD_DATA:
    case FG_OP_CONV2D_BACKWARD_FILTER: return fg_cpu_conv_supports(b, q);
    case FG_OP_LINEAR_FORWARD:
    case FG_OP_LINEAR_BACKWARD_DATA:
    case FG_OP_LINEAR_BACKWARD_PARAMS: return fg_cpu_linear_supports(q);
    case FG_OP_SOFTMAX_XENT: return fg_cpu_xent_supports(q);
    default: return FG_OK;
  }
}

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

fg_status fg_cpu_backend_register(const fg_cpu_options *opt) {
  int threads = opt && opt->threads > 0 ? opt->threads : online_cores();
  int lanes = opt && opt->lanes > 0 ? opt->lanes : FG_CPU_DEFAULT_LANES;
  if (threads > 1024 || lanes > 1024)
    return FG_FAIL(FG_ERR_INVALID, "cpu: %d threads / %d lanes requested, at most 1024", threads, lanes);
  if (!fg_cpu_created) {
    memset(&fg_cpu, 0, sizeof fg_cpu);
    fg_cpu.name = "cpu";
    fg_cpu.device = fg_host_device();
    fg_cpu.alignment = 64;
    fg_cpu.available = 1;
    fg_cpu.ctx = &fg_cpu_state;
    fg_cpu.alloc = cpu_alloc;
    fg_cpu.free = cpu_free;
    fg_cpu.copy = cpu_copy;
    fg_cpu.synchronize = cpu_sync;
    fg_cpu.mem_query = cpu_mem_query;
    fg_cpu.supports = cpu_supports;
    fg_cpu_register_nn_ops(&fg_cpu);
    fg_cpu_register_math_ops(&fg_cpu);
    fg_cpu_register_linalg_ops(&fg_cpu);
    fg_cpu_state.avx2 = fg_cpu_conv3x3_cpu_supported();
    fg_cpu_created = 1;
  }
  fg_cpu_state.threads = threads;
  fg_cpu_state.lanes = lanes;
  omp_set_num_threads(threads);
  fg_cpu_blas_set_threads(threads);
  snprintf(fg_cpu.description, sizeof fg_cpu.description, "cpu: %d threads, %d conv lanes%s, %s",
           threads, lanes, fg_cpu_state.avx2 ? ", AVX2 3x3 kernels" : "",
           fg_cpu_blas_description());
  return fg_backend_register(&fg_cpu);
}

fg_backend *fg_cpu_backend(void) { return fg_cpu_created ? &fg_cpu : NULL; }
int fg_cpu_threads(void) { return fg_cpu_state.threads; }
int fg_cpu_uses_avx2(void) { return fg_cpu_state.avx2; }

void fg_cpu_set_generic_kernels(int generic) {
  fg_cpu_state.avx2 = !generic && fg_cpu_conv3x3_cpu_supported();
}
