// CUDA ops: convolutions through cuDNN (to be written; until then the table entries stay NULL and
// the engine reports them unsupported).
#include "cuda/cuda_internal.h"

void fg_cuda_register_conv_ops(fg_backend *b) { (void)b; }

fg_status fg_cuda_conv_supports(fg_backend *b, const fg_op_query *q) {
  (void)b;
  (void)q;
  return FG_OK;
}

void fg_cuda_conv_release(fg_backend *b) { (void)b; }
