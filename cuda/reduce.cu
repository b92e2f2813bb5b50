// CUDA ops: the reductions (sum_squares) over a flat f32 tensor, result in double on the host.
//
// The terms (cuda/math/reduce.h, exact in double) are summed in double by cuda/reduce.cuh's
// deterministic grid reduction (a fixed grid of FG_CUDA_REDUCE_BLOCKS x FG_CUDA_THREADS threads,
// each striding over the input in order, then fixed trees), into the context's first scalar slot,
// and read back through fg_cuda_read_scalars (one stream synchronisation). The order of the
// additions is fixed and does not depend on the device, so the result is bitwise the same run
// after run. It differs from the CPU's order (blocks of 16384 terms, each summed in sequence, then
// the blocks in sequence), which puts it in the tolerance class, far inside it: every term is
// non-negative, so a sum whose additions nest at most d deep is within d * 2^-53 relative of the
// exact one, d = n / 65536 + 17 here and 16384 + n / 16384 on the CPU (below 1e-11 relative
// apart for n up to 10^9).
#include "cuda/cuda_internal.h"
#include "cuda/math/reduce.h"
#include "cuda/reduce.cuh"

// The term of sum_squares for fg_cuda_grid_sum: x[i]^2 in double.
struct sum_squares_term {
  const float *x;
  __device__ double operator()(int64_t i) const { return fg_math_square(x[i]); }
};

// *out = sum of x^2 over every element of x (any shape), in double.
static fg_status cuda_sum_squares(fg_backend *b, const fg_tensor *x, double *out) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x);
  sum_squares_term term;
  term.x = (const float *)x->data;
  FG_TRY(fg_cuda_grid_sum(c, n, term, (double *)c->scalars.ptr));
  return fg_cuda_read_scalars(c, out, 1);
}

void fg_cuda_register_reduce_ops(fg_backend *b) { b->sum_squares = cuda_sum_squares; }
